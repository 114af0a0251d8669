"""Sweeps (maskviz.sweeps): a tiny grid trained, killed with SIGKILL and resumed without retraining the finished
cells; N cells at once; a local Ray cluster and submitit's debug executor; the command line end to end; and the
comparison of its records (maskviz.compare)."""
import dataclasses, json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest
import yaml

from maskviz.compare import compare_groups, speedup_intervals
from maskviz.analysis import load_runs, trajectory
from maskviz.records import RunDir
from maskviz.sweeps import Sweep, load_sweep, plan, run_sweep


def tiny_sweep(shared_data, out, steps=8, seeds=(0, 1), **base) -> Sweep:
    "Two schedules by `seeds` of a hidden-64 BERT on 200 lines of WikiText-2, the MLM loss evaluated at the end."
    b = dict(model="tiny", hidden_size=64, corpus="wikitext-2", split="validation", max_lines=200,
             data_dir=str(shared_data), vocab_size=600, block_size=32, batch_size=8, steps=steps, lr=1e-3,
             log_every=2, save_every=4, eval_suites=["mlm"], eval_split="test", eval_max_lines=50, progress_bar=False)
    return Sweep("tiny", grid={"schedule": ["constant(0.15)", "constant(0.3)"], "seed": list(seeds)},
                 base={**b, **base}, output_dir=str(out))


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path, monkeypatch):
    import datasets
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path/"hf-cache")


def _finished(folder:Path) -> list[str]:
    "The cells of a sweep folder marked finished."
    out = []
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
        if RunDir.is_run(p) and RunDir(p).read_config().get("sweep", {}).get("finished"): out.append(p.name)
    return out


def test_killed_sweep_resumes_without_retraining(shared_data, tmp_path):
    sweep = tiny_sweep(shared_data, tmp_path/"sweep", steps=60, seeds=(0,), save_every=10)
    spec = tmp_path/"sweep.yaml"
    spec.write_text(yaml.safe_dump(sweep.to_dict()))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [str(Path(sys.executable).parent/"maskviz"), "sweep", str(spec), "--no-report"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    second = tmp_path/"sweep"/"constant-0.30_seed-0"
    deadline = time.time() + 300
    # kill it once the first cell is finished and the second has a checkpoint: in the middle of the second
    while time.time() < deadline and not (_finished(tmp_path/"sweep") and RunDir(second).last_checkpoint()):
        assert proc.poll() is None, "the sweep ended before it could be killed"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _finished(tmp_path/"sweep") == ["constant-0.15_seed-0"]
    first = tmp_path/"sweep"/"constant-0.15_seed-0"
    before = {f: (first/f).read_bytes() for f in ("metrics.jsonl", "evals.jsonl")}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "(1 done, 1 to resume, 0 new)" in out.stdout
    assert "1 trained now, 1 done before" in out.stdout
    assert {f: (first/f).read_bytes() for f in before} == before  # the finished cell was not trained again
    assert _finished(tmp_path/"sweep") == ["constant-0.15_seed-0", "constant-0.30_seed-0"]
    metrics = RunDir(second).read("metrics")
    assert [m["step"] for m in metrics] == list(range(2, 61, 2))  # resumed: each logged step once, in order
    assert "MLM loss at 15% masking" in out.stdout and "baseline" in out.stdout  # the comparison is printed


def test_jobs_ray_and_submitit_engines(shared_data, tmp_path):
    # one tokenizer for the three sweeps: WordPiece training breaks frequency ties differently from run to run
    run_sweep(tiny_sweep(shared_data, tmp_path/"tok", seeds=(0,), steps=1, eval_suites=[]), quiet=True)
    tok = str(tmp_path/"tok"/"tokenizer")
    local = run_sweep(tiny_sweep(shared_data, tmp_path/"jobs", tokenizer=tok), jobs=2, quiet=True)
    assert sorted(local.trained) == sorted(local.cells) and not local.failed
    ray = pytest.importorskip("ray")
    try:
        result = run_sweep(tiny_sweep(shared_data, tmp_path/"ray", seeds=(0,), tokenizer=tok), engine="ray", num_cpus=2,
                           quiet=True)  # a local Ray cluster: two worker processes
    finally: ray.shutdown()
    assert sorted(result.trained) == ["constant-0.15_seed-0", "constant-0.30_seed-0"]
    pytest.importorskip("submitit")
    result = run_sweep(tiny_sweep(shared_data, tmp_path/"slurm", seeds=(0,), tokenizer=tok), engine="submitit", cluster="debug",
                       quiet=True)
    assert sorted(result.trained) == ["constant-0.15_seed-0", "constant-0.30_seed-0"]
    # each engine trains a cell to the same numbers, a cell being a function of its config; up to float rounding,
    # since the engines give a process different thread counts, whose reductions add in different orders
    loss = lambda p: [r["value"] for r in RunDir(p).read("evals") if r["metric"] == "loss"]
    for engine in ("ray", "slurm"):
        assert loss(tmp_path/engine/"constant-0.30_seed-0") == pytest.approx(loss(tmp_path/"jobs"/"constant-0.30_seed-0"),
                                                                               rel=1e-3)


def test_failed_cell_does_not_stop_the_others(shared_data, tmp_path):
    sweep = tiny_sweep(shared_data, tmp_path/"s", seeds=(0,))
    sweep.grid = {"variant": {"ok": {"schedule": "constant(0.15)"},
                              "bad": {"schedule": "constant(0.15)", "tokenizer": str(tmp_path/"no-such-tokenizer")}},
                  "seed": [0]}
    with pytest.raises(RuntimeError, match=r"1 of 2 cells failed: bad_seed-0 \(.*no-such-tokenizer"):
        run_sweep(sweep, quiet=True)
    assert _finished(tmp_path/"s") == ["ok_seed-0"]


def test_compare_on_a_sweep(shared_data, tmp_path):
    run_sweep(tiny_sweep(shared_data, tmp_path/"s", steps=8, seeds=(0, 1, 2), eval_every=4), quiet=True)
    runs = load_runs(tmp_path/"s")
    assert set(runs.configs.group) == {"constant-0.15", "constant-0.30"}
    table = compare_groups(runs)
    row = table[(table.group == "constant-0.30") & (table.measure == "MLM loss at 15% masking")].iloc[0]
    assert row.n == 3 and row.baseline_n == 3 and 0 <= row.p <= 1 and row.ci_low < row["mean"] < row.ci_high
    sp = speedup_intervals(trajectory(runs, "mlm"), "constant-0.15", n_boot=100)
    assert set(sp.group) == {"constant-0.15", "constant-0.30"} and sp.speedup.iloc[0] == 1.0


def test_report_to_tensorboard(shared_data, tmp_path):
    pytest.importorskip("tensorboard")
    from maskviz.trainers import pretrain
    cell = plan(tiny_sweep(shared_data, tmp_path/"s", seeds=(0,), report_to=["tensorboard"], eval_suites=[]))[0]
    pretrain(dataclasses.replace(cell.config, tokenizer=None))  # a plain run, which trains its own tokenizer
    events = list((Path(cell.config.output_dir)/"tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    assert RunDir(cell.config.output_dir).read("metrics")  # the run record is written as always


def test_presets_plan(tmp_path):
    for name in ("ankner-main", "ankner-end-rates", "ankner-subset", "ankner-rts"):
        cells = plan(load_sweep(name, output_dir=tmp_path))
        assert len({c.group for c in cells}) * 3 == len(cells)
