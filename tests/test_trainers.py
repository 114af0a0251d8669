"""Pretraining (maskviz.trainers) and its run folder: per-step rates, resume, finished runs, folders that hold
something else, checkpoints cut off by SIGKILL, and resumes that would train differently."""
import dataclasses, json, os, shutil, subprocess, sys
from pathlib import Path

import pytest
from transformers import TrainerCallback

from maskviz.config import PretrainConfig, load_config, save_config
from maskviz.records import RunDir
from maskviz.schedules import parse_schedule, progress
from maskviz.trainers import pretrain


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


def _check_rows(metrics, cfg):
    "Every step logged once, in order, with the progress it was masked at and that progress's rate."
    schedule, n = parse_schedule(cfg.schedule), cfg.steps
    assert [m["step"] for m in metrics] == list(range(1, n + 1))
    assert [m["progress"] for m in metrics] == [progress(s - 1, n) for s in range(1, n + 1)]
    assert all(abs(m["mask_rate"] - schedule(m["progress"])) <= 1e-9 for m in metrics)


def test_rates_records_resume_and_finished_runs(shared_data, tmp_path, capfd):
    cfg = tiny_config(shared_data, tmp_path/"run", grad_accum=2, save_every=5, eval_every=5)
    calls = []
    def evaluator(model, tokenizer, step):
        calls.append((model.training, step))
        return [{"suite": "demo", "task": "t", "metric": "m", "value": step / 10}]
    run = RunDir(pretrain(cfg, evaluator=evaluator))
    metrics = run.read("metrics")
    _check_rows(metrics, cfg)
    assert all(m["tokens_per_s"] > 0 and m["mfu"] is None and m["loss"] > 0 for m in metrics)
    assert [(e["step"], e["suite"], e["value"]) for e in run.read("evals")] == [(0, "demo", 0.0), (5, "demo", 0.5),
                                                                               (10, "demo", 1.0)]
    assert calls == [(False, 0), (False, 5), (False, 10)]  # the untrained model too; each seen in eval mode
    record = run.read_config()
    assert record["config"] == cfg.to_dict()
    assert record["schedule"] == {"family": "linear", "start": 0.5, "end": 0.1}
    assert record["policy"]["policy"] == "random"
    assert record["model"]["num_layers"] == 2 and record["model"]["hidden_size"] == 64
    assert record["data"]["tokens_per_step"] == 4 * 2 * 32 and record["data"]["world_size"] == 1
    assert record["versions"]["torch"]
    assert sorted(run.checkpoints()) == [5, 10]
    ckpt = run.checkpoints()[10]
    assert (ckpt/"model.safetensors").exists() and (ckpt/"trainer_state.json").exists() and (ckpt/"tokenizer.json").exists()
    assert (ckpt/"optimizer.pt").exists() and not (run.checkpoints()[5]/"optimizer.pt").exists()  # latest only
    assert not run.staging_dir.exists()

    # run again: finished, nothing trains, nothing is written
    before = (run.path/"metrics.jsonl").read_bytes()
    capfd.readouterr()
    assert pretrain(cfg, evaluator=evaluator) == run.path
    assert "run already finished at step 10" in capfd.readouterr().err
    assert (run.path/"metrics.jsonl").read_bytes() == before and len(calls) == 3

    # another config in the same folder is refused, naming what differs
    with pytest.raises(ValueError, match=r"holds a run of another config \(steps: 10 -> 20\)"):
        pretrain(dataclasses.replace(cfg, steps=20))
    with pytest.raises(ValueError, match=r"batch_size: 4 -> 8"): pretrain(dataclasses.replace(cfg, batch_size=8))

    # a run that dies at step 8, its metrics line of step 7 cut off: the rerun resumes at checkpoint-5 (which holds the
    # optimizer state, being the latest) and repeats steps 6-10 exactly
    class Die(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 8: raise KeyboardInterrupt
    died = RunDir(tmp_path/"died")
    again = dataclasses.replace(cfg, output_dir=str(died.path), tokenizer=str(run.tokenizer_dir))  # the same vocabulary
    with pytest.raises(KeyboardInterrupt): pretrain(again, evaluator, [Die()])
    assert sorted(died.checkpoints()) == [5] and (died.checkpoints()[5]/"optimizer.pt").exists()
    text = (died.path/"metrics.jsonl").read_text()
    (died.path/"metrics.jsonl").write_text(text[:text.rindex('{"step": 7') + 20])
    calls.clear()
    pretrain(again, evaluator=evaluator)
    resumed = died.read("metrics")
    _check_rows(resumed, cfg)
    assert [m["loss"] for m in resumed] == pytest.approx([m["loss"] for m in metrics], rel=1e-5)  # same data, masks, weights
    assert [e["step"] for e in died.read("evals")] == [0, 5, 10]
    assert calls == [(False, 10)]

    # resuming from an older checkpoint, which keeps no optimizer state, says that the steps after it will differ
    shutil.rmtree(run.checkpoints()[10])
    capfd.readouterr()
    pretrain(cfg, evaluator=evaluator)
    assert "checkpoint-5 keeps no optimizer state" in capfd.readouterr().err
    _check_rows(run.read("metrics"), cfg)


def test_checkpoint_loads_without_warnings(shared_data, tmp_path):
    "The tied decoder is declared, so loading a checkpoint as a stock BertForMaskedLM misses no weight."
    from transformers import BertForMaskedLM
    run = RunDir(pretrain(tiny_config(shared_data, tmp_path/"run", steps=2)))
    model, info = BertForMaskedLM.from_pretrained(run.checkpoints()[2], output_loading_info=True)
    assert info["missing_keys"] == set() or info["missing_keys"] == []
    assert not info["unexpected_keys"] and not info.get("mismatched_keys")
    assert model.cls.predictions.decoder.weight.data_ptr() == model.bert.embeddings.word_embeddings.weight.data_ptr()


def test_folders_that_hold_something_else(shared_data, tmp_path):
    leftovers = tmp_path/"leftovers"
    leftovers.mkdir()
    (leftovers/"metrics.jsonl").write_text('{"step": 1}\n')
    cfg = tiny_config(shared_data, leftovers, steps=2)
    with pytest.raises(ValueError, match=r"holds files but no run \(metrics.jsonl\).*--overwrite"): pretrain(cfg)
    run = RunDir(pretrain(cfg, overwrite=True))
    assert [m["step"] for m in run.read("metrics")] == [1, 2]

    notes = tmp_path/"notes"
    notes.mkdir()
    (notes/"notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"will not clear .*notes.txt"): pretrain(tiny_config(shared_data, notes), overwrite=True)
    assert (notes/"notes.txt").read_text() == "mine"


def test_copied_run_resumes_in_the_copy(shared_data, tmp_path):
    cfg = tiny_config(shared_data, tmp_path/"run", steps=4, save_every=2)
    run = RunDir(pretrain(cfg))
    copy = tmp_path/"copy"
    shutil.copytree(run.path, copy)
    shutil.rmtree(copy/"checkpoints"/"checkpoint-4")
    RunDir(copy).truncate("metrics", 2)
    assert pretrain(load_config(copy)) == copy
    assert sorted(RunDir(copy).checkpoints()) == [2, 4] and [m["step"] for m in RunDir(copy).read()] == [1, 2, 3, 4]
    assert RunDir(copy).config()["output_dir"] == str(run.path)  # the record keeps the settings it was started with
    assert os.path.getmtime(run.checkpoints()[4]) < os.path.getmtime(RunDir(copy).checkpoints()[4])


def test_resume_on_another_world_size_is_refused(shared_data, tmp_path):
    cfg = tiny_config(shared_data, tmp_path/"run", steps=4, save_every=2)
    run = RunDir(pretrain(cfg))
    shutil.rmtree(run.checkpoints()[4])
    record = run.read_config()
    run.update_config(data={**record["data"], "world_size": 2})
    with pytest.raises(ValueError, match=r"trained by 2 process\(es\) and is resumed by 1"): pretrain(cfg)


KILLED_SAVE = '''
import os, signal, sys
import transformers
from maskviz.config import load_config
from maskviz.trainers import pretrain
kill_at = int(sys.argv[2])
save = transformers.Trainer._save_optimizer_and_scheduler
def dying_save(self, output_dir):  # the weights of this checkpoint are written, its optimizer state is not
    if self.state.global_step == kill_at: os.kill(os.getpid(), signal.SIGKILL)
    return save(self, output_dir)
transformers.Trainer._save_optimizer_and_scheduler = dying_save
pretrain(load_config(sys.argv[1]))
'''


def test_sigkill_during_a_checkpoint_save_then_resume(shared_data, tmp_path):
    "Killed while saving checkpoint-8: the rerun removes the half-written save, resumes from checkpoint-4, logs each step once."
    cfg = tiny_config(shared_data, tmp_path/"run", steps=10, save_every=4)
    save_config(cfg, tmp_path/"config.yaml")
    (tmp_path/"runner.py").write_text(KILLED_SAVE)
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path/"hf-cache"), "TOKENIZERS_PARALLELISM": "false"}
    cmd = lambda kill_at: [sys.executable, str(tmp_path/"runner.py"), str(tmp_path/"config.yaml"), str(kill_at)]
    first = subprocess.run(cmd(8), env=env, capture_output=True, timeout=300)
    assert first.returncode == -9, first.stderr.decode()[-3000:]
    run = RunDir(cfg.output_dir)
    assert (run.staging_dir/"checkpoint-8"/"model.safetensors").exists()  # cut off mid-save
    assert sorted(run.checkpoints()) == [4] and run.last_checkpoint().name == "checkpoint-4"
    assert max(m["step"] for m in run.read()) == 8

    second = subprocess.run(cmd(-1), env=env, capture_output=True, timeout=300)
    assert second.returncode == 0, second.stderr.decode()[-3000:]
    assert "removed the incomplete checkpoint checkpoint-8" in second.stderr.decode()
    _check_rows(run.read(), cfg)
    assert sorted(run.checkpoints()) == [4, 8, 10] and not run.staging_dir.exists()
    assert json.loads((run.checkpoints()[10]/"trainer_state.json").read_text())["global_step"] == 10


DDP_RUNNER = '''
import hashlib, json, os, sys
from transformers import TrainerCallback
import maskviz.hf
from maskviz.config import load_config
from maskviz.trainers import pretrain
calls, mask_batch = [], maskviz.hf.mask_batch
def noting(masker, batch, rate, seed):  # the one masking path: note each micro-batch's rate and mask
    inputs, masked = mask_batch(masker, batch, rate, seed)
    calls.append((rate, hashlib.sha1(masked.mask.cpu().numpy().tobytes()).hexdigest()))
    return inputs, masked
maskviz.hf.mask_batch = noting
class Note(TrainerCallback):  # each rank notes the rate and mask digests of every step
    def on_step_end(self, args, state, *a, **k):
        with open(os.path.join(sys.argv[2], f"rank{args.process_index}.jsonl"), "a") as f:
            f.write(json.dumps({"step": state.global_step - 1, "world": args.world_size, "calls": calls}) + "\\n")
        calls.clear()
pretrain(load_config(sys.argv[1]), callbacks=[Note()])
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
        assert [[rate for rate, _ in n["calls"]] for n in notes] == [[schedule(progress(s, steps))] for s in range(steps)]
    assert all(a["calls"][0][1] != b["calls"][0][1] for a, b in zip(*ranks))  # each process masks its batch its own way
    run = RunDir(cfg.output_dir)
    _check_rows(run.read(), cfg)  # one run record, written once
    assert run.read_config()["data"]["world_size"] == 2
    with pytest.raises(ValueError, match=r"trained by 2 process\(es\) and is resumed by 1"):
        shutil.rmtree(run.checkpoints()[6])
        pretrain(cfg)


def test_evaluations_leave_training_as_it_was(shared_data, tmp_path, one_thread):
    "An evaluator that reseeds (as GLUE fine-tuning does) at steps 0 and 5 changes no training step."
    import random
    import numpy as np
    import torch
    def reseeding(model, tokenizer, step):
        torch.manual_seed(123); np.random.seed(123); random.seed(123)
        return [{"suite": "demo", "task": "t", "metric": "m", "value": float(torch.rand(1))}]
    plain = RunDir(pretrain(tiny_config(shared_data, tmp_path/"plain", eval_at_start=False)))
    evaluated = RunDir(pretrain(tiny_config(shared_data, tmp_path/"evaluated", eval_every=5,
                                            tokenizer=str(plain.tokenizer_dir)), evaluator=reseeding))
    assert [e["step"] for e in evaluated.read("evals")] == [0, 5, 10]
    loss = lambda run: [m["loss"] for m in run.read("metrics")]
    assert loss(evaluated) == pytest.approx(loss(plain), rel=1e-6)
