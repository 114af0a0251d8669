"Tests of maskviz.evals: PLL by hand and batched, GLUE metrics against scipy/sklearn, MLM eval determinism, GLUE plumbing."
import json, math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from datasets import Dataset
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef
from transformers import BertConfig, BertForMaskedLM

from maskviz.data import train_wordpiece
from maskviz.evalsets import GLUE_TASKS
from maskviz.evals import (PLL_VARIANTS, blimp_accuracy, checkpoint_steps, evaluate, evaluate_run, glue_average,
                           glue_finetune, glue_metrics, masked_copies, mlm_eval, pll_scores, suite_evaluator)
from maskviz.metrics import METRICS, TASK_METRICS, headline
from maskviz.records import RunDir

TEXTS = ["The cat sat on the mat.", "Some unbelievably small dogs were running.", "Every teacher praised herself.",
         "A dog barks.", "Who did the children see?", "These books were not read by anyone."] * 5


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.fixture(scope="module")
def tokenizer():
    return train_wordpiece(TEXTS, vocab_size=60, min_frequency=1)  # small: most words split into several pieces


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    return BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                      intermediate_size=64, max_position_embeddings=64)).eval()


class CountMasks(torch.nn.Module):
    "Stub masked LM: logit m (the number of [MASK]s in the row) for token 0 ([PAD]), 0 for every other token."
    def __init__(self, vocab_size, mask_id):
        super().__init__(); self.v, self.mask_id, self.w = vocab_size, mask_id, torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None):
        m = (input_ids == self.mask_id).sum(1).float()
        logits = torch.zeros(*input_ids.shape, self.v)
        logits[..., 0] = m[:, None]
        return SimpleNamespace(logits=logits)


def test_masked_copies_word_l2r():
    copies, pos = masked_copies([2, 10, 11, 12, 13, 3], [None, 0, 0, 0, 1, None], 4, "within_word_l2r")
    assert copies.tolist() == [[2, 4, 4, 4, 13, 3], [2, 10, 4, 4, 13, 3], [2, 10, 11, 4, 13, 3], [2, 10, 11, 12, 4, 3]]
    assert pos.tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize("variant", PLL_VARIANTS)
def test_pll_by_hand(tokenizer, variant):
    V, sents = len(tokenizer), ["Some unbelievably small dogs.", "A cat."]
    enc = tokenizer(sents)
    assert max(np.bincount([w for w in enc.word_ids(0) if w is not None])) > 1  # a multi-piece word

    def by_hand(i):
        words = [w for w in enc.word_ids(i) if w is not None]
        if variant == "original": return -len(words) * math.log(V - 1 + math.e)
        return -sum(math.log(V - 1 + math.exp(sum(1 for v in words[j:] if v == w))) for j, w in enumerate(words))

    got = pll_scores(CountMasks(V, tokenizer.mask_token_id), tokenizer, sents, variant, quiet=True)
    np.testing.assert_allclose(got, [by_hand(0), by_hand(1)], rtol=1e-5)


@pytest.mark.parametrize("variant", PLL_VARIANTS)
def test_pll_batched_equals_one_at_a_time(model, tokenizer, variant):
    sents = TEXTS[:6]
    one = [pll_scores(model, tokenizer, [s], variant, batch_size=1, quiet=True)[0] for s in sents]
    for bs in (3, 64):
        np.testing.assert_allclose(pll_scores(model, tokenizer, sents, variant, batch_size=bs, quiet=True), one, atol=1e-4)


def test_pll_restores_training_mode(model, tokenizer):
    model.train()
    pll_scores(model, tokenizer, ["A dog."], quiet=True)
    assert model.training
    model.eval()


def test_pll_rejects_bad_input(model, tokenizer):
    with pytest.raises(ValueError, match="within_word_l2r"): pll_scores(model, tokenizer, ["a"], "word")
    with pytest.raises(ValueError, match="list of strings"): pll_scores(model, tokenizer, "a dog")


def test_blimp_accuracy_levels():
    import pandas as pd
    df = pd.DataFrame({"UID": ["a"] * 4 + ["b"] * 2 + ["c"] * 2, "field": ["f"] * 6 + ["g"] * 2,
                       "linguistics_term": ["x"] * 6 + ["y"] * 2, "correct": [1, 1, 1, 0, 1, 0, 0, 0]}).astype({"correct": bool})
    acc = blimp_accuracy(df).set_index(["level", "name"]).accuracy
    assert acc["paradigm", "a"] == 0.75 and acc["phenomenon", "x"] == 0.625 and acc["field", "g"] == 0.0
    assert acc["overall", "overall"] == pytest.approx((0.75 + 0.5 + 0) / 3)  # mean of paradigm accuracies


def test_glue_metrics_match_sklearn_scipy():
    mcc, f1, accuracy, pearson, spearman = (METRICS[m] for m in ("mcc", "f1", "accuracy", "pearson", "spearman"))
    rng = np.random.default_rng(1)
    for _ in range(5):
        y, p = rng.integers(0, 2, 80), rng.integers(0, 2, 80)
        assert mcc(p, y) == pytest.approx(matthews_corrcoef(y, p))
        assert f1(p, y) == pytest.approx(f1_score(y, p))
        assert accuracy(p, y) == pytest.approx(accuracy_score(y, p))
        assert glue_metrics("mrpc", p, y) == {"f1": f1(p, y), "accuracy": accuracy(p, y)}
        a, b = rng.normal(size=60).round(1), rng.normal(size=60).round(1)
        assert pearson(a, b) == pytest.approx(pearsonr(a, b)[0])
        assert spearman(a, b) == pytest.approx(spearmanr(a, b)[0])
        assert glue_metrics("stsb", a, b) == {"spearman": spearman(a, b), "pearson": pearson(a, b)}
    assert mcc([0, 0, 0], [0, 0, 0]) == matthews_corrcoef([0, 0, 0], [0, 0, 0]) == 0.0
    assert f1([0, 0], [0, 0]) == 0.0
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3])) and math.isnan(spearman([1, 2, 3], [2, 2, 2]))


def test_glue_tasks_headlines():
    # every GLUE task but the unlabelled diagnostic set has metrics, and MNLI's mismatched dev set its own record task;
    # the headlines are the ones Ankner et al. average
    tasks = set(TASK_METRICS["glue"]) - {"average"}
    assert tasks == set(GLUE_TASKS) - {"ax"} | {"mnli-mm"}
    assert {name: headline("glue", name).name for name in tasks if headline("glue", name).name != "accuracy"} == {
        "cola": "mcc", "mrpc": "f1", "qqp": "f1", "stsb": "spearman"}


def test_glue_average_headline_numbers():
    recs = [dict(suite="glue", task="stsb", metric="pearson", value=0.9), dict(suite="glue", task="stsb", metric="spearman", value=0.8),
            dict(suite="glue", task="rte", metric="accuracy", value=0.6), dict(suite="glue", task="wnli", metric="accuracy", value=0.1)]
    assert glue_average(recs)["value"] == pytest.approx(0.7)
    with pytest.raises(ValueError): glue_average([])


def heldout(tokenizer, n=40):
    enc = tokenizer(TEXTS[:n], padding="max_length", max_length=16, truncation=True, return_special_tokens_mask=True)
    return Dataset.from_dict({"input_ids": enc["input_ids"], "special_tokens_mask": enc["special_tokens_mask"]})


def test_mlm_eval_deterministic(model, tokenizer):
    blocks = heldout(tokenizer)
    a = mlm_eval(model, tokenizer, blocks, quiet=True)
    b = mlm_eval(model, tokenizer, blocks, batch_size=5, quiet=True)
    c = mlm_eval(model, tokenizer, blocks, seed=1, quiet=True)
    assert [r["value"] for r in a] == pytest.approx([r["value"] for r in b], abs=1e-5)
    assert [r["value"] for r in a] != [r["value"] for r in c]
    assert {r["task"] for r in a} == {"rate=0.15", "rate=0.30"}


def test_evaluate_run_appends_records(tmp_path, shared_data, model, tokenizer):
    for name in ("checkpoint-10", "step-5", "checkpoint-x"):  # the Trainer's folders and hand-saved ones; not a step: ignored
        model.save_pretrained(tmp_path/"checkpoints"/name); tokenizer.save_pretrained(tmp_path/"checkpoints"/name)
    assert list(checkpoint_steps(tmp_path)) == [5, 10]
    recs = evaluate_run(tmp_path, suites=("mlm",), eval_split="test", eval_max_lines=30, quiet=True)
    lines = (tmp_path/"evals.jsonl").read_text().splitlines()
    assert len(lines) == len(recs) == 12 and json.loads(lines[0])["step"] == 5
    assert set(json.loads(lines[0])) >= {"step", "suite", "task", "metric", "value"}
    assert evaluate_run(tmp_path, suites=("mlm",), eval_split="test", eval_max_lines=30, quiet=True) == []
    assert sorted({r["step"] for r in RunDir(tmp_path).read("evals")}) == [5, 10]
    with pytest.raises(ValueError, match="no checkpoint for step 7"): evaluate_run(tmp_path, steps=[7])


def test_suite_evaluator(shared_data, model, tokenizer):
    from maskviz.data import load_corpus
    ev = suite_evaluator(["mlm", "blimp"], load_corpus("wikitext-2", split="test", max_lines=30), block_size=256,
                         blimp_paradigms=["anaphor_number_agreement"], blimp_limit=5)
    recs = ev(model, tokenizer, 7)
    assert {r["step"] for r in recs} == {7} and {r["suite"] for r in recs} == {"mlm", "blimp"}
    assert next(r for r in recs if r["task"] == "overall")["value"] in {i / 5 for i in range(6)}
    with pytest.raises(ValueError, match="mlm_corpus="): suite_evaluator(["mlm"])


def test_evaluate_checks_suites(model, tokenizer):
    with pytest.raises(ValueError, match="unknown suite"): evaluate(model, tokenizer, suites=("squad",))
    with pytest.raises(ValueError, match="checkpoint="): evaluate(model, tokenizer, suites=("glue",))


@pytest.mark.slow
@pytest.mark.parametrize("task", ["sst2", "rte"])
def test_glue_finetune_plumbing(tmp_path, shared_data, model, tokenizer, task):
    model.save_pretrained(tmp_path); tokenizer.save_pretrained(tmp_path)
    recs = glue_finetune(tmp_path, task, seed=0, epochs=1, batch_size=8, max_train=32, max_eval=16, quiet=True)
    assert [(r["task"], r["metric"]) for r in recs] == [(task, "accuracy")]
    assert 0 <= recs[0]["value"] <= 1
