"Pretraining trainer: per-step rates, config files and overrides, run records, and resume after SIGKILL."
import json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest

from maskviz.schedules import parse_schedule
from maskviz.trainers import (PretrainConfig, append_records, apply_overrides, load_config, pretrain, read_records,
                              save_config, truncate_records)


def tiny_config(shared_data, out, **kw) -> PretrainConfig:
    "A 2-layer, hidden-64 BERT on 300 lines of WikiText-2 validation, blocks of 32, on the CPU."
    base = dict(model="tiny", hidden_size=64, corpus="wikitext-2", split="validation", max_lines=300, data_dir=str(shared_data),
                vocab_size=800, block_size=32, batch_size=4, steps=10, lr=1e-3, schedule="linear(0.5, 0.1)",
                log_every=1, save_every=100, output_dir=str(out), progress_bar=False)
    return PretrainConfig(**{**base, **kw})


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path, monkeypatch):
    import datasets
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path/"hf-cache")


def test_rates_per_step_equal_schedule(shared_data, tmp_path):
    cfg = tiny_config(shared_data, tmp_path/"run", grad_accum=2, save_every=5, eval_every=5)
    calls = []
    def evaluator(model, tokenizer, step):
        calls.append((model.training, step))
        return [{"suite": "demo", "task": "t", "metric": "m", "value": step / 10}]
    run = pretrain(cfg, evaluator=evaluator)
    metrics, schedule = read_records(run), parse_schedule(cfg.schedule)
    assert [m["step"] for m in metrics] == list(range(1, 11))
    assert [m["mask_rate"] for m in metrics] == [schedule.at(s - 1, 10) for s in range(1, 11)]
    assert all(m["tokens_per_s"] > 0 and m["mfu"] is None and m["loss"] > 0 for m in metrics)
    assert [(e["step"], e["suite"], e["value"]) for e in read_records(run, "evals")] == [(5, "demo", 0.5), (10, "demo", 1.0)]
    assert calls == [(False, 5), (False, 10)]  # the evaluator sees the model in eval mode
    record = json.loads((run/"config.json").read_text())
    assert record["config"] == cfg.to_dict()
    assert record["schedule"] == {"family": "linear", "start": 0.5, "end": 0.1}
    assert record["policy"]["policy"] == "random"
    assert record["model"]["num_layers"] == 2 and record["model"]["hidden_size"] == 64
    assert record["data"]["tokens_per_step"] == 4 * 2 * 32
    assert record["versions"]["torch"]
    ckpt = run/"checkpoints"/"checkpoint-10"
    assert (ckpt/"model.safetensors").exists() and (ckpt/"trainer_state.json").exists() and (ckpt/"tokenizer.json").exists()
    with pytest.raises(ValueError, match="different config"): pretrain(tiny_config(shared_data, run, steps=20))

    # resume in-process, as after a kill past step 5: checkpoint-10 gone, records past 5 partly written
    import shutil
    shutil.rmtree(run/"checkpoints"/"checkpoint-10")
    lines = (run/"metrics.jsonl").read_text().splitlines()
    (run/"metrics.jsonl").write_text("\n".join(lines[:7]) + "\n" + lines[7][:20])  # steps 1-7 and a cut line
    calls.clear()
    pretrain(cfg, evaluator=evaluator)
    resumed = read_records(run)
    assert [m["step"] for m in resumed] == list(range(1, 11))
    assert [m["mask_rate"] for m in resumed] == [m["mask_rate"] for m in metrics]
    assert [m["loss"] for m in resumed] == pytest.approx([m["loss"] for m in metrics], rel=1e-4)  # same data, masks, weights
    assert [e["step"] for e in read_records(run, "evals")] == [5, 10]
    assert calls == [(False, 10)]


def test_config_round_trip_and_overrides(tmp_path):
    cfg = PretrainConfig(model="mini", schedule="warmup(cosine(0.3, 0.15), 0.1, 0.0)", policy="whole_word",
                         policy_options={"exact": True}, eval_every=500, eval_suites=["blimp", "glue"], bf16=True)
    for name in ("c.yaml", "c.yml", "c.json"): assert load_config(save_config(cfg, tmp_path/name)) == cfg
    changed = load_config(tmp_path/"c.yaml", ["--steps", "50", "--lr=2e-4", "seed=7", "--eval-every", "none", "--compile", "yes"])
    assert (changed.steps, changed.lr, changed.seed, changed.eval_every, changed.compile) == (50, 2e-4, 7, None, True)
    assert changed.policy == "whole_word"
    # a run's config.json is accepted as a config file
    (tmp_path/"config.json").write_text(json.dumps({"config": cfg.to_dict(), "versions": {}}))
    assert load_config(tmp_path/"config.json") == cfg
    assert load_config() == PretrainConfig()


@pytest.mark.parametrize("overrides, message", [
    (["--model", "huge"], "model must be one of tiny, mini, small, base, got 'huge'"),
    (["--batch_size", "0"], "batch_size must be a positive integer, got 0"),
    (["--warmup", "1"], "warmup must be a fraction of the steps in [0, 1), got 1.0"),
    (["--eval_rate", "2"], "eval_rate must be a masking rate in [0, 1], got 2.0"),
    (["--schedule", "linear(0.3"], "schedule 'linear(0.3' does not parse"),
    (["--hidden_size", "96", "--num_heads", "5"], "hidden_size=96 must be a multiple of num_heads=5"),
    (["--lr", "fast"], "--lr takes a float, got 'fast'"),
    (["--bf16", "maybe"], "--bf16 takes a bool, got 'maybe'"),
    (["--learning_rate", "1e-3"], "unknown config key 'learning_rate'"),
    (["--steps"], "override '--steps' has no value"),
])
def test_validation_errors(overrides, message):
    with pytest.raises(ValueError) as e: apply_overrides(PretrainConfig(), overrides)
    assert message in str(e.value)


def test_unknown_key_in_file_and_missing_file(tmp_path):
    (tmp_path/"c.yaml").write_text("steps: 3\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match="unknown config key.*'learning_rate'"): load_config(tmp_path/"c.yaml")
    with pytest.raises(FileNotFoundError, match="no config file"): load_config(tmp_path/"none.yaml")


def test_reader_tolerates_truncated_last_line(tmp_path):
    append_records(tmp_path/"metrics.jsonl", [{"step": s, "loss": 1.0 / s} for s in range(1, 6)])
    with open(tmp_path/"metrics.jsonl", "a") as f: f.write('{"step": 6, "loss": 0.1')
    assert [r["step"] for r in read_records(tmp_path)] == [1, 2, 3, 4, 5]
    assert truncate_records(tmp_path/"metrics.jsonl", 3) == 2
    assert [r["step"] for r in read_records(tmp_path)] == [1, 2, 3]
    (tmp_path/"evals.jsonl").write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match="line 2 is not JSON"): read_records(tmp_path, "evals")


RUNNER = '''
import json, sys, time
from transformers import TrainerCallback
from maskviz.trainers import load_config, pretrain
class Slow(TrainerCallback):  # slow the first attempt down, so the test can kill it between checkpoints
    def on_train_begin(self, args, state, *a, **k): print("begin", state.global_step, flush=True)
    def on_step_end(self, *a, **k): time.sleep(float(sys.argv[2]))
pretrain(load_config(sys.argv[1]), callbacks=[Slow()])
'''


@pytest.mark.slow  # two fresh processes: about 40 s on 2 busy cores
def test_resume_after_sigkill(shared_data, tmp_path):
    steps, save_every = 16, 4
    cfg = tiny_config(shared_data, tmp_path/"run", steps=steps, save_every=save_every)
    save_config(cfg, tmp_path/"config.yaml")
    (tmp_path/"runner.py").write_text(RUNNER)
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path/"hf-cache"), "TOKENIZERS_PARALLELISM": "false"}
    cmd = lambda delay: [sys.executable, str(tmp_path/"runner.py"), str(tmp_path/"config.yaml"), str(delay)]
    first = subprocess.Popen(cmd(0.25), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done = tmp_path/"run"/"checkpoints"/"checkpoint-8"/"trainer_state.json"
    deadline = time.time() + 120
    while not done.exists():
        assert first.poll() is None, first.stderr.read().decode()[-3000:]
        assert time.time() < deadline, "no checkpoint-8 within 120 s"
        time.sleep(0.05)
    time.sleep(0.4)  # a step or so past the checkpoint: records past it must go
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = max(r["step"] for r in read_records(tmp_path/"run"))
    assert 8 <= killed_at < steps
    second = subprocess.run(cmd(0), env=env, capture_output=True, timeout=300)
    assert second.returncode == 0, second.stderr.decode()[-3000:]
    assert "begin 8" in second.stdout.decode() or "begin 12" in second.stdout.decode()  # resumed, not restarted
    metrics, schedule = read_records(tmp_path/"run"), parse_schedule(cfg.schedule)
    assert [m["step"] for m in metrics] == list(range(1, steps + 1))  # none missing, none twice
    assert [m["mask_rate"] for m in metrics] == [schedule.at(s - 1, steps) for s in range(1, steps + 1)]
    state = json.loads((tmp_path/"run"/"checkpoints"/f"checkpoint-{steps}"/"trainer_state.json").read_text())
    assert state["global_step"] == steps


DDP_RUNNER = '''
import hashlib, json, os, sys
from transformers import TrainerCallback
import maskviz.trainers as T
made = []
def capture(*a, **k):
    made.append(T_scheduled(*a, **k))
    return made[-1]
T_scheduled, T.scheduled_masking = T.scheduled_masking, capture
class Note(TrainerCallback):  # each rank notes the rate and a digest of the mask of every step
    def on_step_end(self, args, state, *a, **k):
        masking = made[0][1]
        with open(os.path.join(sys.argv[2], f"rank{args.process_index}.jsonl"), "a") as f:
            f.write(json.dumps({"step": masking.step, "rate": masking.rate, "world": args.world_size,
                                "mask": hashlib.sha1(masking.last.mask.numpy().tobytes()).hexdigest()}) + "\\n")
T.pretrain(T.load_config(sys.argv[1]), callbacks=[Note()])
'''


@pytest.mark.slow  # two processes under torchrun: 20-45 s on 2 busy cores
def test_ddp_two_processes_same_rates_different_masks(shared_data, tmp_path):
    steps = 6
    cfg = tiny_config(shared_data, tmp_path/"run", steps=steps, save_every=3)
    save_config(cfg, tmp_path/"config.yaml")
    (tmp_path/"runner.py").write_text(DDP_RUNNER)
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path/"hf-cache"), "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).parent/"torchrun"
    done = subprocess.run([str(torchrun), "--nproc_per_node", "2", "--master_port", "29571", str(tmp_path/"runner.py"),
                           str(tmp_path/"config.yaml"), str(tmp_path)], env=env, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode()[-4000:]
    ranks = [[json.loads(l) for l in (tmp_path/f"rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)]
    schedule = parse_schedule(cfg.schedule)
    for notes in ranks:
        assert [n["step"] for n in notes] == list(range(steps)) and {n["world"] for n in notes} == {2}
        assert [n["rate"] for n in notes] == [schedule.at(s, steps) for s in range(steps)]
    assert all(a["mask"] != b["mask"] for a, b in zip(*ranks))  # each process masks its own batch its own way
    metrics = read_records(tmp_path/"run")
    assert [m["step"] for m in metrics] == list(range(1, steps + 1))  # one run record, written once
    assert [m["mask_rate"] for m in metrics] == [schedule.at(s, steps) for s in range(steps)]
    assert json.loads((tmp_path/"run"/"config.json").read_text())["data"]["world_size"] == 2
