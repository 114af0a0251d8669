"Tests of maskviz.analysis: JS divergence and Zipf fits, mask profiles on synthetic and WikiText-2 blocks, run records, trajectories, speedup and seed means."
import json, math, re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from datasets import Dataset
from hypothesis import given, settings, strategies as st
from scipy import stats

from maskviz.analysis import (EVAL_COLUMNS, METRIC_COLUMNS, Runs, js_divergence, load_runs, mask_profiles, seed_means,
                              speedup_to_target, trajectory, zipf_fit)
from maskviz.corpora import UPOS_TAGS, frequency_ranks, make_blocks
from maskviz.data import load_corpus, train_wordpiece
from maskviz.maskers import Vocab, make_masker
from maskviz.schedules import parse_schedule
from maskviz.config import PretrainConfig
from maskviz.records import RunDir
from maskviz.trainers import pretrain

SUMMARY = ["policy", "rate", "realised_rate", "masked", "selectable", "fallback_rows", "entity_share", "corpus_entity_share",
           "zipf_exponent", "corpus_zipf_exponent", "corpus_zipf_same_size", "corpus_zipf_same_low",
           "corpus_zipf_same_high", "js_pos", "js_rank", "mean_log10_rank", "corpus_mean_log10_rank"]


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path, monkeypatch):
    import datasets
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


# --- js_divergence -----------------------------------------------------------------------------------------------

counts = st.lists(st.integers(0, 1000), min_size=1, max_size=20).filter(lambda c: sum(c) > 0)


@given(st.data())
def test_js_is_symmetric_bounded_and_zero_for_equal(data):
    p = data.draw(counts)
    q = data.draw(st.lists(st.integers(0, 1000), min_size=len(p), max_size=len(p)).filter(lambda c: sum(c) > 0))
    d = js_divergence(p, q)
    assert 0 <= d <= 1
    assert d == pytest.approx(js_divergence(q, p), abs=1e-12)
    assert js_divergence(p, [3 * v for v in p]) == pytest.approx(0, abs=1e-12)
    assert js_divergence(p, np.asarray(p) / sum(p)) == pytest.approx(0, abs=1e-12)  # counts or probabilities alike


@given(counts, counts)
def test_js_of_disjoint_supports_is_one(p, q):
    assert js_divergence(p + [0] * len(q), [0] * len(p) + q) == pytest.approx(1.0)


def test_js_against_scipy():
    from scipy.spatial.distance import jensenshannon
    p, q = [5, 3, 0, 2], [1, 1, 4, 0]
    assert js_divergence(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2)


@pytest.mark.parametrize("p, q, message", [
    ([1, 2], [1, 2, 3], "p and q must count the same categories, got lengths 2 and 3"),
    ([1, -2], [1, 2], "p must hold finite non-negative counts, got -2.0"),
    ([1, 2], [1, float("nan")], "q must hold finite non-negative counts, got nan"),
    ([0, 0], [1, 2], "p is all zeros"),
    ([[1, 2]], [[1, 2]], "p must be a 1-D vector"),
])
def test_js_bad_input(p, q, message):
    with pytest.raises(ValueError, match=re.escape(message)): js_divergence(p, q)


# --- zipf_fit ----------------------------------------------------------------------------------------------------

@given(st.floats(0.6, 1.6), st.sampled_from([None, 50, 200]))
@settings(max_examples=30, deadline=None)
def test_zipf_fit_recovers_the_exponent_of_power_law_counts(s, points):
    rank = np.arange(1, 3001)
    c = np.round(1e7 * rank ** -s)  # whole counts, shuffled, zeros at the end of the tail
    fit, intercept = zipf_fit(np.random.default_rng(0).permutation(c), points)
    assert fit == pytest.approx(s, abs=0.02)
    assert intercept == pytest.approx(np.log10(c[0] / c.sum()), abs=0.05)


def test_zipf_fit_is_exact_on_an_exact_power_law_and_checks_its_input():
    c = 1e6 * np.arange(1, 1001) ** -1.2
    assert zipf_fit(c)[0] == pytest.approx(1.2, abs=1e-9)
    assert zipf_fit(np.append(c, [0, 0]), points=20)[0] == pytest.approx(1.2, abs=1e-9)
    with pytest.raises(ValueError, match="needs at least 2 nonzero counts, got 1"): zipf_fit([0, 7, 0])
    with pytest.raises(ValueError, match="points must be an integer >= 2"): zipf_fit(c, points=1)
    with pytest.raises(ValueError, match="finite non-negative counts"): zipf_fit([3, -1, 2])


# --- mask_profiles: synthetic blocks -----------------------------------------------------------------------------

VOCAB = Vocab(80, mask_id=4, special_ids=(0, 1, 2, 3), pad_id=0)


def toy_blocks(B=40, L=20, annotate=True, seed=0) -> Dataset:
    "Blocks [CLS] w ... w [SEP] [PAD]... with random tokens and tags and one 2-word entity per block."
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, 80, (B, L))
    n = rng.integers(8, L + 1, B)  # used length; padding after it
    pos_in = np.arange(L)[None, :]
    special = (pos_in == 0) | (pos_in == n[:, None] - 1) | (pos_in >= n[:, None])
    ids[:, 0] = 2
    ids[pos_in == n[:, None] - 1] = 3
    ids[pos_in >= n[:, None]] = 0
    cols = dict(input_ids=ids, special_tokens_mask=special.astype(np.int64), attention_mask=(pos_in < n[:, None]).astype(np.int64))
    if annotate:
        words = np.where(special, -1, pos_in - 1)
        cols.update(word_ids=words, pos_ids=np.where(special, -1, rng.integers(0, 17, (B, L))),
                    ent_ids=np.where((words == 2) | (words == 3), 0, -1))
    return Dataset.from_dict({k: v.tolist() for k, v in cols.items()})


def test_profiles_frames_and_counts_add_up():
    blocks = toy_blocks()
    masker = make_masker("whole_word", VOCAB)
    out = mask_profiles(blocks, VOCAB, {"random": "random", "exact": ("random", {"exact": True}), "ww": masker, "ss": "salient_span"},
                        rates=[0.15, 0.4], batch_size=7, quiet=True)
    assert list(out) == ["summary", "pos", "rank", "zipf", "divergence"]
    s = out["summary"]
    assert list(s.columns[:len(SUMMARY)]) == SUMMARY and len(s) == 8
    assert list(out["pos"].columns[:6]) == ["policy", "rate", "pos", "masked", "masked_share", "corpus_share"]
    assert list(out["rank"].columns[:8]) == ["policy", "rate", "rank_bin", "rank_lo", "rank_hi", "masked", "masked_share", "corpus_share"]
    assert list(out["zipf"].columns) == ["policy", "rate", "rank", "frequency", "fit"]
    assert list(out["divergence"].columns) == ["rate", "a", "b", "js_pos", "js_rank"]
    s = s.set_index(["policy", "rate"])
    for key in ("pos", "rank"):
        sums = out[key].groupby(["policy", "rate"])[["masked", "selectable"]].sum().loc[s.index]
        assert (sums.masked == s.masked).all() and (sums.selectable == s.selectable).all()
    assert (out["pos"].groupby(["policy", "rate"]).size() == len(UPOS_TAGS)).all()
    assert "unseen" not in set(out["rank"].rank_bin)  # every token id of the blocks has a rank: the empty row is dropped
    special = np.asarray(blocks["special_tokens_mask"])
    assert (s.selectable == int((special == 0).sum())).all()
    ss = s.loc["ss"]
    assert (ss.masked == 2 * len(blocks)).all() and (ss.entity_share == 1).all() and (ss.fallback_rows == 0).all()
    assert s.loc[("exact", 0.4), "realised_rate"] == pytest.approx(0.4, abs=0.02)
    for shares in ("masked_share", "corpus_share"):
        assert np.allclose(out["pos"].groupby(["policy", "rate"])[shares].sum(), 1)
    for rate, d in out["divergence"].groupby("rate"):
        m = d.pivot(index="a", columns="b", values="js_rank")
        assert m.shape == (5, 5) and set(m.index) == {"random", "exact", "ww", "ss", "corpus"}
        assert np.allclose(m.values, m.values.T) and np.allclose(np.diag(m.values), 0)
        assert m.loc["random", "corpus"] == pytest.approx(s.loc[("random", rate), "js_rank"])
    z = out["zipf"]
    assert z[z.policy == "corpus"].rate.isna().all() and len(z[z.policy == "corpus"]) > 0
    for _, curve in z.groupby(["policy", "rate"], dropna=False):
        assert curve["rank"].iloc[0] == 1 and curve["rank"].is_monotonic_increasing and curve.frequency.is_monotonic_decreasing
        assert len(curve) <= 200


def test_profiles_are_deterministic_and_take_names_ranks_and_limits():
    blocks = toy_blocks()
    a = mask_profiles(blocks, VOCAB, ["random", "span"], rates=0.3, seed=5, quiet=True)
    b = mask_profiles(blocks, VOCAB, {"random": "random", "span": "span"}, rates=[0.3], seed=5, quiet=True)
    for key in a: pd.testing.assert_frame_equal(a[key], b[key])
    other = mask_profiles(blocks, VOCAB, ["random", "span"], rates=0.3, seed=6, batch_size=3, quiet=True)["summary"]
    assert (other.selectable == a["summary"].selectable).all() and (other.masked != a["summary"].masked).any()
    ranks = frequency_ranks(blocks, VOCAB.size)
    c = mask_profiles(blocks, VOCAB, "random", rates=0.3, seed=5, ranks=ranks, bins=3, max_blocks=10, quiet=True)
    assert c["summary"].loc[0, "blocks"] == 10 and len(c["rank"]) <= 4
    assert mask_profiles(blocks, VOCAB, ["random"], rates=0.0, quiet=True)["summary"].loc[0, "masked"] == 0


def test_profiles_without_annotations():
    out = mask_profiles(toy_blocks(annotate=False), VOCAB, ["random"], quiet=True)
    s = out["summary"].iloc[0]
    assert math.isnan(s.entity_share) and math.isnan(s.corpus_entity_share) and math.isnan(s.js_pos)
    assert len(out["pos"]) == 0 and list(out["pos"].columns[:3]) == ["policy", "rate", "pos"]
    assert out["divergence"].js_pos.isna().all() and out["divergence"].js_rank.notna().all()


@pytest.mark.parametrize("kwargs, message", [
    (dict(policies={"corpus": "random"}), "the label 'corpus' is taken"),
    (dict(policies=[]), "policies is empty"),
    (dict(policies={"x": 5}), "policy 'x' must be a name"),
    (dict(policies=["random"], rates=[0.1, 2.0]), "each masking rate must be in [0, 1], got 2.0"),
    (dict(policies=["random"], batch_size=0), "batch_size must be a positive integer, got 0"),
    (dict(policies=["random"], max_blocks=0), "max_blocks must be a positive integer or None (every block), got 0"),
    (dict(policies=["random"], zipf_points=1), "zipf_points must be an integer >= 2"),
    (dict(policies=["random"], ranks=np.ones(5)), "ranks must give the rank of each of the 80 token ids"),
])
def test_profiles_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)): mask_profiles(toy_blocks(), VOCAB, quiet=True, **kwargs)


def test_profiles_need_blocks_with_the_policies_annotations():
    with pytest.raises(ValueError, match=re.escape("policy 'salient_span' needs batch['ent_ids']")):
        mask_profiles(toy_blocks(annotate=False), VOCAB, ["salient_span"], quiet=True)
    with pytest.raises(ValueError, match="blocks must be a datasets.Dataset"): mask_profiles({"input_ids": [[2, 5, 3]]}, VOCAB, ["random"])


# --- mask_profiles: Ye et al.'s observations on WikiText-2 ---------------------------------------------------------

@pytest.fixture(scope="module")
def wiki_profiles(shared_data, tmp_path_factory):
    "Four policies at 15% and 30% over ~210 annotated blocks of 128 tokens of WikiText-2 validation."
    cache = tmp_path_factory.mktemp("wiki-cache")
    tok = train_wordpiece(load_corpus("wikitext-2", split="validation", data_dir=shared_data, cache_dir=cache), vocab_size=8000)
    blocks = make_blocks(load_corpus("wikitext-2", split="validation", max_lines=300, data_dir=shared_data, cache_dir=cache),
                         tok, block_size=128, annotate=True, cache_dir=cache)
    policies = {"random": "random", "salient_span": "salient_span", "noun": ("pos", {"tags": ("NOUN",)})}
    return blocks, mask_profiles(blocks, tok, policies, rates=[0.15, 0.30], quiet=True)


def test_random_masking_follows_the_corpus(wiki_profiles):
    blocks, out = wiki_profiles
    assert len(blocks) > 150
    r = out["summary"].set_index(["policy", "rate"]).loc["random"]
    assert (r.js_pos < 0.01).all() and (r.js_rank < 0.01).all()
    # measured on 210 blocks: 0.08-0.10 below the corpus at 15% (a 15% sample's thinner tail), 0.05 at 30%
    assert ((r.zipf_exponent - r.corpus_zipf_exponent).abs() < 0.15).all()
    assert ((r.mean_log10_rank - r.corpus_mean_log10_rank).abs() < 0.05).all()
    assert r.realised_rate.values == pytest.approx([0.15, 0.30], abs=0.01)
    assert (r.entity_share - r.corpus_entity_share).abs().max() < 0.03


def test_salient_span_leans_to_proper_nouns_and_rare_tokens(wiki_profiles):
    _, out = wiki_profiles
    s = out["summary"].set_index(["policy", "rate"]).loc["salient_span"]
    pos = out["pos"].set_index(["policy", "rate", "pos"])
    for rate in (0.15, 0.30):
        propn = pos.loc[("salient_span", rate, "PROPN")]
        assert propn.masked_share > 2 * propn.corpus_share  # measured: about 3x
    assert (s.entity_share > 0.9).all()                                   # measured: 0.94-0.98
    assert (s.mean_log10_rank > s.corpus_mean_log10_rank + 0.2).all()     # measured: +0.4-0.5
    assert (s.zipf_exponent < s.corpus_zipf_exponent - 0.2).all()         # measured: 0.4 flatter
    assert (s.js_pos > 0.1).all()


def test_pos_masking_masks_only_its_tags(wiki_profiles):
    _, out = wiki_profiles
    noun = out["pos"][out["pos"].policy == "noun"]
    assert set(noun[noun.masked > 0].pos) == {"NOUN"}
    s = out["summary"].set_index(["policy", "rate"])
    share = noun.set_index(["rate", "pos"]).loc[(0.30, "NOUN"), "corpus_share"]
    assert s.loc[("noun", 0.15), "realised_rate"] == pytest.approx(0.15, abs=0.01)
    assert s.loc[("noun", 0.30), "realised_rate"] == pytest.approx(share)  # fewer nouns than 30%: all of them


# --- load_runs -----------------------------------------------------------------------------------------------------

def fake_run(path: Path, schedule="constant(0.15)", seed=0, steps=100, evals=(), metrics=True, **config) -> Path:
    "A run folder as trainers.pretrain writes it, with a made-up loss every 10 steps and the given evals."
    cfg = PretrainConfig(schedule=schedule, seed=seed, steps=steps, output_dir=str(path), **config)
    run = RunDir(path).start(cfg.to_dict())
    run.update_config(schedule=parse_schedule(schedule).to_dict(), policy={"policy": cfg.policy}, model=cfg.dims)
    rate = parse_schedule(schedule)
    if metrics:  # the row of step s: masked at progress (s - 1) / steps
        run.append("metrics", [{"step": s, "progress": (s - 1) / steps, "mask_rate": rate((s - 1) / steps),
                                "loss": 7 - s / steps, "lr": 1e-3} for s in range(10, steps + 1, 10)])
    if evals: run.append("evals", list(evals))
    return path


def glue(step, acc, seeds=(0, 1)):
    "SST-2 accuracy per fine-tuning seed (acc, acc + 0.02, ...) and the GLUE average record."
    return [{"step": step, "suite": "glue", "task": "sst2", "metric": "accuracy", "value": acc + 0.02 * i, "seed": s} for i, s in enumerate(seeds)] + \
           [{"step": step, "suite": "glue", "task": "average", "metric": "headline", "value": acc, "tasks": ["sst2"]}]


@pytest.fixture
def sweep(tmp_path):
    "Two schedules x two seeds; the last run's metrics end in a line cut short."
    for seed in (0, 1):
        fake_run(tmp_path / "sweep" / f"c{seed}", "constant(0.15)", seed, evals=glue(50, 0.80) + glue(100, 0.84))
        fake_run(tmp_path / "sweep" / f"l{seed}", "linear(0.3, 0.15)", seed, evals=glue(50, 0.82) + glue(100, 0.86),
                 data_dir=f"/somewhere/{seed}", workers=seed)  # where data is read from does not split a group
    with open(tmp_path / "sweep" / "l1" / "metrics.jsonl", "a") as f: f.write('{"step": 110, "lo')
    (tmp_path / "sweep" / "notes").mkdir()  # not a run: skipped
    return tmp_path / "sweep"


def test_load_runs_frames_and_groups(sweep):
    runs = load_runs(sweep)
    assert isinstance(runs, Runs)
    c = runs.configs
    assert list(c.columns) == ["run", "path", "group", "schedule", "policy", "seed", "model", "steps", "last_step", "config"]
    assert c.run.tolist() == ["c0", "c1", "l0", "l1"]
    assert c.group.tolist() == ["constant(0.15)"] * 2 + ["linear(0.3, 0.15)"] * 2
    assert c.seed.tolist() == [0, 1, 0, 1] and c.steps.tolist() == [100] * 4 and c.model.unique().tolist() == ["tiny"]
    assert c.config[2]["schedule"] == "linear(0.3, 0.15)" and c.path[0] == str(sweep / "c0")
    assert list(runs.metrics.columns[:2 + len(METRIC_COLUMNS)]) == ["run", "group", *METRIC_COLUMNS]
    assert runs.metrics.groupby("run").size().tolist() == [10] * 4  # the cut line is skipped
    assert runs.metrics.step.dtype == np.int64
    assert list(runs.evals.columns) == ["run", "group", *EVAL_COLUMNS]
    assert len(runs.evals) == 4 * 6 and runs.evals.seed.isna().sum() == 8
    assert "4 runs in 2 groups" in repr(runs) and "<table" in runs._repr_html_()


def test_load_runs_inputs_and_labels(sweep, tmp_path):
    assert load_runs(sweep / "c0").configs.group.tolist() == ["c0"]  # one group: named after its first run
    assert load_runs([sweep / "l0", sweep / "l1"]).configs.group.tolist() == ["l0", "l0"]
    assert load_runs({"base": sweep / "c0", "lin": sweep / "l0"}).configs[["run", "group"]].values.tolist() == \
        [["base", "constant(0.15)"], ["lin", "linear(0.3, 0.15)"]]
    fake_run(tmp_path / "a" / "run")
    fake_run(tmp_path / "b" / "run", policy="span", lr=1e-4)
    runs = load_runs([tmp_path / "a", tmp_path / "b", tmp_path / "a" / "run"])
    assert runs.configs.run.tolist() == ["a/run", "b/run", "a/run-2"]
    assert runs.configs.group.tolist() == ["random · lr=0.0005", "span · lr=0.0001", "random · lr=0.0005"]


def test_load_runs_missing_records_and_errors(tmp_path):
    bare = fake_run(tmp_path / "bare", metrics=False)
    runs = load_runs(bare)
    assert (len(runs.metrics), len(runs.evals)) == (0, 0)
    assert list(runs.metrics.columns) == ["run", "group", *METRIC_COLUMNS]
    assert list(runs.evals.columns) == ["run", "group", *EVAL_COLUMNS]
    assert runs.configs.last_step.tolist() == [0]
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"): load_runs(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty is not a run folder .* and holds none"): load_runs(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="run 'x': .* is not a run folder"): load_runs({"x": tmp_path / "empty"})
    with pytest.raises(ValueError, match="no runs given"): load_runs([])
    with pytest.raises(ValueError, match="a run is given by its folder, got 7"): load_runs([bare, 7])
    (bare / "evals.jsonl").write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match="line 2 is not JSON"): load_runs(bare)


# --- trajectory ----------------------------------------------------------------------------------------------------

def test_trajectory_means_glue_seeds_and_follows_the_schedule(sweep):
    runs = load_runs(sweep)
    t = trajectory(runs, "glue", "sst2")
    assert list(t.columns) == ["run", "group", "step", "progress", "value", "mask_rate", "suite", "task", "metric"]
    assert t.metric.unique().tolist() == ["accuracy"]  # SST-2's headline metric
    assert t.value.values == pytest.approx([0.81, 0.85] * 2 + [0.83, 0.87] * 2)
    assert t.progress.tolist() == [0.5, 1.0] * 4
    assert t.mask_rate.tolist() == [0.15] * 4 + [parse_schedule("linear(0.3, 0.15)").at(s - 1, 100) for s in (50, 100)] * 2
    assert t.mask_rate.tolist()[4:6] == pytest.approx([0.2265, 0.1515])  # the rate the last step before each evaluation trained at
    avg = trajectory(sweep, "glue")
    assert avg.task.unique().tolist() == ["average"] and avg.value.values == pytest.approx([0.80, 0.84] * 2 + [0.82, 0.86] * 2)
    with pytest.raises(ValueError, match="no suite 'blimp' in the runs' evaluations; the suites there: glue"): trajectory(runs, "blimp")
    with pytest.raises(ValueError, match="no task 'cola' in suite 'glue'; the tasks there: average, sst2"): trajectory(runs, "glue", "cola")
    with pytest.raises(ValueError, match="no metric 'f1' in glue task 'sst2'; the metrics there: accuracy"): trajectory(runs, "glue", "sst2", "f1")


def test_trajectory_defaults_and_bad_steps(tmp_path):
    evals = [{"step": 10, "suite": "blimp", "task": t, "metric": m, "value": v} for t, m, v in
             [("overall", "pll_accuracy", 0.6), ("overall", "pll_word_l2r_accuracy", 0.65), ("field:syntax", "pll_accuracy", 0.55)]]
    evals += [{"step": 10, "suite": "mlm", "task": f"rate={r}", "metric": m, "value": v} for r in ("0.15", "0.30")
              for m, v in (("loss", 5.0 + float(r)), ("accuracy", 0.2))]
    evals += [{"step": 10, "suite": "qa", "task": "webquestions", "metric": "em", "value": 0.1}]
    runs = load_runs(fake_run(tmp_path / "r", steps=20, evals=evals))
    assert trajectory(runs, "blimp").value.tolist() == [0.6]
    assert trajectory(runs, "blimp", metric="pll_word_l2r_accuracy").value.tolist() == [0.65]
    assert trajectory(runs, "mlm").value.tolist() == [5.15] and trajectory(runs, "mlm", "rate=0.30").value.tolist() == [5.3]
    assert trajectory(runs, "qa").metric.tolist() == ["em"]  # a suite without defaults and one task, one metric
    RunDir(tmp_path / "r").append("evals", [{"step": 30, "suite": "blimp", "task": "overall", "metric": "pll_accuracy", "value": 0.7}])
    with pytest.raises(ValueError, match="run 'r' has a blimp result at step 30, outside its 20 steps"): trajectory(tmp_path / "r", "blimp")


def test_trajectory_of_real_runs(shared_data, tmp_path, one_thread):
    base = dict(model="tiny", hidden_size=32, num_heads=2, corpus="wikitext-2", split="validation", max_lines=150, data_dir=str(shared_data),
                vocab_size=500, block_size=32, batch_size=4, steps=4, lr=1e-3, log_every=1, save_every=4, eval_every=2,
                eval_suites=["mlm"], eval_max_lines=30, progress_bar=False)
    pretrain(PretrainConfig(**base, schedule="linear(0.4, 0.2)", output_dir=str(tmp_path / "runs" / "linear")))
    runs = load_runs(tmp_path / "runs")
    assert runs.metrics.step.tolist() == [1, 2, 3, 4]
    assert runs.metrics.mask_rate.tolist() == [parse_schedule("linear(0.4, 0.2)").at(s - 1, 4) for s in (1, 2, 3, 4)]
    t = trajectory(runs, "mlm")
    # step 0: the untrained model, at the rate the first step trains at
    assert t.step.tolist() == [0, 2, 4] and t.mask_rate.tolist() == pytest.approx([0.4, 0.35, 0.25]) and (t.value > 0).all()
    trained = t[t.step > 0]
    assert trained.mask_rate.tolist() == runs.metrics.set_index("step").mask_rate[[2, 4]].tolist()  # as metrics.jsonl logged
    assert trajectory(runs, "mlm", "rate=0.30", "accuracy").value.between(0, 1).all()


# --- speedup_to_target ---------------------------------------------------------------------------------------------

def paper_trajectory() -> pd.DataFrame:
    "GLUE averages every 10k steps: constant 15% ends at 83.787 at 70k; linear 30->15% crosses 83.787 at 37,044."
    steps = range(10_000, 70_001, 10_000)
    curves = {"constant 15%": [81.0, 82.2, 82.9, 83.3, 83.5, 83.65, 83.787],
              "linear": [81.5, 82.8, 83.787 - 0.7044 * 0.5, 83.787 + 0.2956 * 0.5, 84.1, 84.2, 84.25],
              "constant 30%": [80.5, 81.9, 82.6, 83.0, 83.2, 83.4, 83.5]}
    return pd.DataFrame([dict(run=g, group=g, step=s, value=v, suite="glue", task="average", metric="headline")
                         for g, vs in curves.items() for s, v in zip(steps, vs)])


def test_speedup_reproduces_the_papers_numbers():
    out = speedup_to_target(paper_trajectory(), "constant 15%")
    assert list(out.columns) == ["group", "target", "steps_to_target", "baseline_steps", "speedup"]
    out = out.set_index("group")
    assert out.target.tolist() == [83.787] * 3 and out.baseline_steps.tolist() == [70_000] * 3
    assert out.loc["linear", "steps_to_target"] == pytest.approx(37_044, abs=1e-6)
    assert out.loc["linear", "speedup"] == pytest.approx(70_000 / 37_044) and round(out.loc["linear", "speedup"], 2) == 1.89
    assert out.loc["constant 15%", "speedup"] == 1.0
    assert math.isnan(out.loc["constant 30%", "steps_to_target"]) and math.isnan(out.loc["constant 30%", "speedup"])


def test_speedup_targets_groups_runs_and_losses():
    traj = paper_trajectory()
    explicit = speedup_to_target(traj, "constant 15%", target=83.0).set_index("group")
    assert explicit.loc["constant 15%", "baseline_steps"] == pytest.approx(30_000 + 10_000 * 0.1 / 0.4)
    assert explicit.loc["constant 30%", "steps_to_target"] == 40_000
    first = speedup_to_target(traj, "constant 15%", target=80.0).set_index("group")
    assert first.steps_to_target.tolist() == [10_000] * 3  # at the target already at the first evaluation
    # a group of two seeds: its mean curve, and its mean final value as the target
    seeds = pd.concat([traj.assign(run=traj.run + " s0"), traj.assign(run=traj.run + " s1", value=traj.value + 0.2)])
    g = speedup_to_target(seeds, "constant 15%").set_index("group")
    assert g.loc["constant 15%", "target"] == pytest.approx(83.887)
    assert g.loc["linear", "steps_to_target"] == pytest.approx(37_044, abs=1e-6)
    runs = speedup_to_target(seeds, "constant 15% s0", by="run")
    assert list(runs.columns[:2]) == ["run", "group"] and len(runs) == 6
    assert runs.set_index("run").loc["constant 15% s1", "steps_to_target"] < 70_000
    loss = traj.assign(value=-traj.value, metric="loss")  # lower is better for a loss
    assert speedup_to_target(loss, "constant 15%").set_index("group").loc["linear", "steps_to_target"] == pytest.approx(37_044, abs=1e-6)
    assert speedup_to_target(loss, "constant 15%", higher_is_better=True).steps_to_target.tolist() == [10_000] * 3  # told otherwise


def test_speedup_bad_input():
    traj = paper_trajectory()
    with pytest.raises(ValueError, match="baseline 'bert' is neither a group nor a run of traj"): speedup_to_target(traj, "bert")
    with pytest.raises(ValueError, match="traj mixes the metrics"): speedup_to_target(pd.concat([traj, traj.assign(metric="f1")]), "linear")
    with pytest.raises(ValueError, match="traj must be a trajectory frame"): speedup_to_target(traj[["step", "value"]], "linear")
    with pytest.raises(ValueError, match="traj is empty"): speedup_to_target(traj.iloc[:0], "linear")
    with pytest.raises(ValueError, match="by must be one of group, run, got 'seed'"): speedup_to_target(traj, "linear", by="seed")


# --- seed_means ----------------------------------------------------------------------------------------------------

def test_seed_means_against_a_hand_computation():
    df = pd.DataFrame({"group": ["a"] * 4 + ["b"], "step": [1, 1, 1, 2, 1], "value": [0.70, 0.74, 0.81, 0.9, 0.5]})
    out = seed_means(df)
    assert list(out.columns) == ["group", "step", "mean", "std", "n", "ci_low", "ci_high"]
    a = out.iloc[0]
    x = np.array([0.70, 0.74, 0.81])
    mean, sd = x.sum() / 3, math.sqrt(((x - x.mean()) ** 2).sum() / 2)
    half = stats.t.ppf(0.975, 2) * sd / math.sqrt(3)
    assert (a.group, a.step, a.n) == ("a", 1, 3)
    assert [a["mean"], a["std"], a.ci_low, a.ci_high] == pytest.approx([mean, sd, mean - half, mean + half])
    single = out.iloc[1:]
    assert single.n.tolist() == [1, 1] and single["mean"].tolist() == [0.9, 0.5]
    assert single[["std", "ci_low", "ci_high"]].isna().all().all()  # one seed: no spread, no interval
    wider = seed_means(df, confidence=0.99).iloc[0]
    assert wider.ci_high - wider.ci_low > a.ci_high - a.ci_low
    assert seed_means(df.rename(columns={"value": "acc"}), by="group", value="acc").n.tolist() == [4, 1]


def test_seed_means_bad_input():
    df = pd.DataFrame({"group": ["a"], "step": [1], "value": [1.0]})
    with pytest.raises(ValueError, match="df has no column\\(s\\) 'run'"): seed_means(df, by=("run", "step"))
    with pytest.raises(ValueError, match="confidence must be in \\(0, 1\\)"): seed_means(df, confidence=1.0)
    with pytest.raises(ValueError, match="df must be a DataFrame"): seed_means([1, 2])
