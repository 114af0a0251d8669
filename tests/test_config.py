"Run configuration (maskviz.config): files and run folders as configs, command-line overrides, and their errors."
import json

import pytest

from maskviz.config import PretrainConfig, apply_overrides, config_diff, config_fingerprint, load_config, save_config


def test_config_round_trip_and_overrides(tmp_path):
    cfg = PretrainConfig(model="mini", schedule="warmup(cosine(0.3, 0.15), 0.1, 0.0)", policy="whole_word",
                         policy_options={"exact": True}, eval_every=500, eval_suites=["blimp", "glue"], bf16=True)
    for name in ("c.yaml", "c.yml", "c.json"): assert load_config(save_config(cfg, tmp_path/name)) == cfg
    changed = load_config(tmp_path/"c.yaml", ["--steps", "50", "--lr=2e-4", "seed=7", "--eval-every", "none", "--compile", "yes"])
    assert (changed.steps, changed.lr, changed.seed, changed.eval_every, changed.compile) == (50, 2e-4, 7, None, True)
    assert changed.policy == "whole_word" and changed.eval_suites == ["blimp", "glue"]
    lists = load_config(None, ["--eval_suites", "blimp,mlm", "--eval_glue_seeds", "[1, 2]", "--policy_options", "{exact: true}"])
    assert (lists.eval_suites, lists.eval_glue_seeds, lists.policy_options) == (["blimp", "mlm"], [1, 2], {"exact": True})
    assert load_config() == PretrainConfig()


def test_a_run_folder_is_a_config_that_trains_in_that_folder(tmp_path):
    cfg = PretrainConfig(steps=30, output_dir="runs/elsewhere")
    run = tmp_path/"copied-run"
    run.mkdir()
    (run/"config.json").write_text(json.dumps({"config": cfg.to_dict(), "versions": {}}))
    for where in (run, run/"config.json"):
        loaded = load_config(where)
        assert loaded.steps == 30 and loaded.output_dir == str(run)  # a copied run folder trains in the copy
    assert load_config(run, ["--steps", "40"]).steps == 40


def test_fingerprint_ignores_where_a_run_lives():
    a, b = PretrainConfig(output_dir="x", data_dir="/d1", progress_bar=True), PretrainConfig(output_dir="y", data_dir="/d2")
    assert config_fingerprint(a) == config_fingerprint(b) and config_diff(a, b) == []
    c = PretrainConfig(batch_size=8)
    assert config_fingerprint(c) != config_fingerprint(b)
    assert config_diff(b, c) == [f"batch_size: {b.batch_size!r} -> 8"]


@pytest.mark.parametrize("overrides, message", [
    (["--model", "huge"], "model must be one of tiny, mini, small, base, got 'huge'"),
    (["--batch_size", "0"], "batch_size must be a positive integer, got 0"),
    (["--warmup", "1"], "warmup must be a fraction of the steps in [0, 1), got 1"),
    (["--eval_rate", "2"], "eval_rate must be a masking rate in [0, 1], got 2"),
    (["--schedule", "linear(0.3"], "schedule 'linear(0.3' does not parse"),
    (["--hidden_size", "96", "--num_heads", "5"], "hidden_size=96 must be a multiple of num_heads=5"),
    (["--lr", "fast"], "lr must be a positive number, got 'fast'"),
    (["--bf16", "maybe"], "bf16 must be true or false, got 'maybe'"),
    (["--learning_rate", "1e-3"], "unknown config key(s) 'learning_rate'"),
    (["--step", "5"], "unknown config key(s) 'step'; did you mean 'steps'?"),  # no abbreviations
    (["--steps"], "argument --steps: expected one argument"),
])
def test_validation_errors(overrides, message):
    with pytest.raises(ValueError) as e: apply_overrides(PretrainConfig(), overrides)
    assert message in str(e.value)


def test_unknown_key_in_file_and_missing_file(tmp_path):
    (tmp_path/"c.yaml").write_text("steps: 3\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match=r"unknown config key.*'learning_rate'"): load_config(tmp_path/"c.yaml")
    with pytest.raises(FileNotFoundError, match="no config file"): load_config(tmp_path/"none.yaml")
