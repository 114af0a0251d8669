"""The bad-input suite: each row is one mistake a user makes, and the one-line message that must name it.

Command rows run `maskviz.cli.main` in this process (as the console script does, without a process per row) and
assert exit status 2, no traceback, and the message. API rows call a public function and assert the exception type
and the message. Every message names the bad value (or the file and line that holds it), and most say the fix.
The docs' troubleshooting page lists the same cases.
"""
import json, os, string, time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maskviz.cli import main

# ---- fixtures: files with one mistake each, a tiny model, a tiny finished run -----------------------------------


def _yaml(work: Path, name: str, text: str) -> Path:
    (work / name).write_text(text)
    return work / name


@pytest.fixture(scope="module")
def work(tmp_path_factory, shared_data):
    "A folder of bad inputs. `ok.yaml` is a valid tiny config whose runs stop in seconds."
    w = tmp_path_factory.mktemp("bad")
    tiny = (f"model: tiny\nhidden_size: 32\ncorpus: wikitext-2\nsplit: validation\nmax_lines: 60\ndata_dir: {shared_data}\n"
            f"vocab_size: 300\nblock_size: 32\nbatch_size: 2\nsteps: 2\nsave_every: 2\nlog_every: 1\nprogress_bar: false\n")
    _yaml(w, "ok.yaml", tiny + f"output_dir: {w}/ok-run\n")
    for name, text in {
        "broken.yaml": "steps: 10\nlr: [1e-3\n", "step.yaml": "step: 5\n", "zero.yaml": "steps: 0\n",
        "neglr.yaml": "lr: -1\n", "fast.yaml": "lr: fast\n", "sched.yaml": 'schedule: "linear(0.3)"\n',
        "list.yaml": "- 1\n- 2\n", "block.yaml": "block_size: 2\n", "suites.yaml": "eval_suites: [blimpp]\n",
        "model.yaml": "model: tinny\n", "warmup.yaml": "warmup: 1.5\n", "seed.yaml": "seed: -1\n",
        "gseeds.yaml": "eval_glue_seeds: [-1]\n", "bf16.yaml": "bf16: maybe\n", "popts.yaml": "policy_options: 3\n",
        "heads.yaml": "hidden_size: 100\nnum_heads: 3\n", "rate.yaml": "eval_rate: 1.5\n",
        "ww.yaml": f"policy: whole-word\noutput_dir: {w}/ww-run\n",
    }.items(): _yaml(w, name, text)
    (w / "latin1.yaml").write_bytes(b"corpus: caf\xe9\n")
    (w / "afile").write_text("not a run")
    (w / "emptydir").mkdir()
    (w / "adir.html").mkdir()
    _yaml(w, "fileout.yaml", tiny + f"output_dir: {w}/afile\n")
    _yaml(w, "nocorpus.yaml", tiny.replace("corpus: wikitext-2", "corpus: ./nope.txt") + f"output_dir: {w}/nocorpus-run\n")
    (w / "blank.txt").write_text("\n   \n\n")
    _yaml(w, "blankcorpus.yaml", tiny.replace("corpus: wikitext-2", f"corpus: {w}/blank.txt") + f"output_dir: {w}/blank-run\n")
    # pre-flight: each of these must stop before the first training step
    _yaml(w, "paradigm.yaml", tiny + f"eval_suites: [blimp]\neval_blimp_paradigms: [adjunct_islands]\noutput_dir: {w}/pf-paradigm\n")
    _yaml(w, "short.yaml", tiny.replace("block_size: 32", "block_size: 8")
          + f"eval_suites: [blimp]\neval_blimp_paradigms: [adjunct_island]\neval_blimp_limit: 50\noutput_dir: {w}/pf-short\n")
    _yaml(w, "glueopt.yaml", tiny + f"eval_suites: [glue]\neval_glue_tasks: [rte]\neval_glue_options: {{epochs: -1}}\n"
                                    f"output_dir: {w}/pf-glueopt\n")
    root = w / "data"  # a data root whose RTE train split has a row with an empty label
    (root / "glue" / "RTE").mkdir(parents=True)
    for split in ("train", "dev"):
        lines = (shared_data / "glue" / "RTE" / f"{split}.tsv").read_text().splitlines()[:20]
        if split == "train": lines[3] = "\t".join(lines[3].split("\t")[:-1] + [""])
        (root / "glue" / "RTE" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    _yaml(w, "label.yaml", tiny.replace(f"data_dir: {shared_data}", f"data_dir: {root}").replace(
        "corpus: wikitext-2", f"corpus: {shared_data}/wikitext-2-raw/wiki.valid.raw")
        + f"eval_suites: [glue]\neval_glue_tasks: [rte]\noutput_dir: {w}/pf-label\n")
    return w


@pytest.fixture(scope="module")
def model_dir(work, shared_data):
    "A tiny untrained BERT and its WordPiece, saved as a model folder (safetensors); and a copy with pickled weights."
    from transformers import BertConfig, BertForMaskedLM
    from maskviz.data import load_corpus, train_wordpiece
    tok = train_wordpiece(load_corpus("wikitext-2", split="validation", max_lines=300, data_dir=shared_data), vocab_size=300)
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=64, max_position_embeddings=32))
    model.save_pretrained(work / "model")
    tok.save_pretrained(work / "model")
    pickled = work / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((work / "model" / "config.json").read_text())
    torch.save(model.state_dict(), pickled / "pytorch_model.bin")
    tok.save_pretrained(pickled)
    return work / "model"


# ---- the command ------------------------------------------------------------------------------------------------

SHELL_ROWS = [  # (id, arguments after `maskviz`, what the one-line message must contain); {w}: the work folder
    # schedules
    ("spec rate out of range", ["schedules", "linear(0.3, 1.5)"], "end must be a masking rate in [0, 1], got 1.5"),
    ("spec family typo", ["schedules", "linaer(0.3, 0.15)"], "unknown schedule family 'linaer'"),
    ("spec family did-you-mean", ["schedules", "cosin(0.3, 0.15)"], "did you mean 'cosine'?"),
    ("spec missing argument", ["schedules", "linear(0.3)"], "missing a required argument: 'end'"),
    ("spec step outside (0, 1)", ["schedules", "step(0.3, 0.15, at=1.5)"], "at must be a fraction of training in (0, 1), got 1.5"),
    ("spec cyclic shape", ["schedules", "cyclic(0.1, 0.3, 2, 'saw')"], "shape must be one of triangle, cosine, got 'saw'"),
    ("spec code", ["schedules", "linear(0.3, __import__('os'))"], "unknown schedule family '__import__'"),
    ("spec malformed", ["schedules", "linear(0.3; 0.15)"], "malformed schedule spec"),
    ("spec nested too deep", ["schedules", "warmup(" * 9 + "linear(0.3, 0.15)" + ", 0.1, 0.0)" * 9],
     "nests 10 calls deep; at most 8"),
    ("spec too long", ["schedules", "constant(0.15)" + " " * 1200], "a schedule spec of 1214 characters"),
    ("steps zero", ["schedules", "--steps", "0"], "expected a positive whole number, got '0'"),
    ("steps text", ["schedules", "--steps", "ten"], "expected a positive whole number, got 'ten'"),
    ("figure not html", ["schedules", "--out", "figure.png"], "--out must name an .html file, got 'figure.png'"),
    ("figure is a folder", ["schedules", "--out", "{w}/adir.html"], "adir.html' is a folder; name a file in it"),
    ("figure folder missing", ["schedules", "--out", "{w}/no/such/f.html"], "does not exist; create it first"),
    # pretrain: the config file
    ("config missing", ["pretrain", "{w}/nowhere.yaml"], "no config file at {w}/nowhere.yaml"),
    ("config folder", ["pretrain", "{w}/emptydir"], "emptydir is a folder without config.json"),
    ("config YAML syntax", ["pretrain", "{w}/broken.yaml"], "broken.yaml, line 3, column 1: not valid YAML"),
    ("config not UTF-8", ["pretrain", "{w}/latin1.yaml"], "latin1.yaml: not UTF-8 text"),
    ("config a list", ["pretrain", "{w}/list.yaml"], "must hold a mapping of config fields, got list"),
    ("config key typo", ["pretrain", "{w}/step.yaml"], "unknown config key(s) 'step' in {w}/step.yaml; did you mean 'steps'?"),
    ("config steps zero", ["pretrain", "{w}/zero.yaml"], "steps must be a positive integer, got 0"),
    ("config negative lr", ["pretrain", "{w}/neglr.yaml"], "lr must be a positive number, got -1"),
    ("config lr word", ["pretrain", "{w}/fast.yaml"], "lr must be a positive number, got 'fast'"),
    ("config schedule", ["pretrain", "{w}/sched.yaml"], "schedule 'linear(0.3)' does not parse"),
    ("config block_size", ["pretrain", "{w}/block.yaml"], "block_size must be an integer of at least 3 ([CLS], a token, [SEP]), got 2"),
    ("config suite typo", ["pretrain", "{w}/suites.yaml"], "got ['blimpp']"),
    ("config model typo", ["pretrain", "{w}/model.yaml"], "did you mean 'tiny'?"),
    ("config warmup", ["pretrain", "{w}/warmup.yaml"], "warmup must be a fraction of the steps in [0, 1), got 1.5"),
    ("config seed", ["pretrain", "{w}/seed.yaml"], "seed must be a seed, an integer in [0, 2**32 - 1], got -1"),
    ("config glue seeds", ["pretrain", "{w}/gseeds.yaml"], "eval_glue_seeds must be a non-empty list of seeds"),
    ("config bool", ["pretrain", "{w}/bf16.yaml"], "bf16 must be true or false, got 'maybe'"),
    ("config policy options", ["pretrain", "{w}/popts.yaml"], "policy_options must be a mapping of make_masker options"),
    ("config heads", ["pretrain", "{w}/heads.yaml"], "hidden_size=100 must be a multiple of num_heads=3"),
    ("config eval rate", ["pretrain", "{w}/rate.yaml"], "eval_rate must be a masking rate in [0, 1], got 1.5"),
    ("config policy typo", ["pretrain", "{w}/ww.yaml"], "got 'whole-word'; did you mean 'whole_word'?"),
    ("override key typo", ["pretrain", "{w}/ok.yaml", "--stepz", "3"], "unknown config key(s) 'stepz'; did you mean 'steps'?"),
    ("override bad value", ["pretrain", "{w}/ok.yaml", "--steps", "-1"], "steps must be a positive integer, got -1"),
    ("output_dir a file", ["pretrain", "{w}/fileout.yaml"], "output_dir '{w}/afile' is a file, not a folder"),
    ("corpus missing", ["pretrain", "{w}/nocorpus.yaml"], "nope.txt does not exist"),
    ("corpus blank", ["pretrain", "{w}/blankcorpus.yaml"], "holds no text"),
    # pre-flight: found before training
    ("preflight BLiMP paradigm", ["pretrain", "{w}/paradigm.yaml"], "did you mean 'adjunct_island'"),
    ("preflight sentence longer than block_size", ["pretrain", "{w}/short.yaml"], "more than the model's 8 positions (block_size)"),
    ("preflight GLUE option", ["pretrain", "{w}/glueopt.yaml"], "epochs must be a positive number of epochs, got -1"),
    ("preflight GLUE empty label", ["pretrain", "{w}/label.yaml"], "RTE/train.tsv, line 4: the label is empty"),
    # eval-blimp
    ("blimp no model", ["eval-blimp", "{w}/nothing"], "is neither a run folder (with checkpoints/) nor a model folder"),
    ("blimp limit zero", ["eval-blimp", "{m}", "--limit", "0"], "expected a positive whole number, got '0'"),
    ("blimp variant", ["eval-blimp", "{m}", "--variant", "orig"], "invalid choice: 'orig'"),
    ("blimp paradigm typo", ["eval-blimp", "{m}", "--paradigms", "adjunct_islands", "--quiet"], "did you mean 'adjunct_island'"),
    ("blimp pickled weights", ["eval-blimp", "{w}/pickled", "--quiet"], "holds its weights as a pickle (pytorch_model.bin)"),
    # finetune-glue
    ("glue epochs negative", ["finetune-glue", "{m}", "--epochs", "-1"], "argument --epochs: expected a positive number, got '-1'"),
    ("glue epochs nan", ["finetune-glue", "{m}", "--epochs", "nan"], "expected a positive number, got 'nan'"),
    ("glue lr zero", ["finetune-glue", "{m}", "--lr", "0"], "argument --lr: expected a positive number, got '0'"),
    ("glue seed negative", ["finetune-glue", "{m}", "--seeds", "-3"], "expected a seed, an integer in [0, 2**32 - 1], got '-3'"),
    ("glue seed too big", ["finetune-glue", "{m}", "--seeds", "4294967296"], "got '4294967296'"),
    ("glue batch size", ["finetune-glue", "{m}", "--batch-size", "0"], "expected a positive whole number, got '0'"),
    ("glue max train", ["finetune-glue", "{m}", "--max-train", "0"], "expected a positive whole number, got '0'"),
    ("glue max eval", ["finetune-glue", "{m}", "--max-eval", "all"], "expected a positive whole number, got 'all'"),
    ("glue task typo", ["finetune-glue", "{m}", "--tasks", "sst3"], "unknown GLUE task 'sst3'; did you mean 'sst2'?"),
    ("glue task not fine-tunable", ["finetune-glue", "{m}", "--tasks", "ax"], "task must be one of cola, sst2"),
    # report
    ("report missing", ["report", "{w}/nothing"], "nothing does not exist"),
    ("report a file", ["report", "{w}/afile"], "afile is not a run folder"),
    ("report empty folder", ["report", "{w}/emptydir"], "emptydir is not a run folder (it has no config.json) and holds none"),
    ("report no run among several", ["report", "{w}/afile", "{w}/emptydir"], "none of {w}/afile, {w}/emptydir is a run folder"),
    ("report out not html", ["report", "{w}/emptydir", "--out", "{w}/r.pdf"], "--out must name an .html file"),
    ("report out a folder", ["report", "{w}/emptydir", "--out", "{w}/adir.html"], "is a folder; name a file in it"),
    # demo
    ("demo steps", ["demo", "--steps", "0"], "expected a positive whole number, got '0'"),
    ("demo eval_every", ["demo", "--eval-every", "-5"], "expected a positive whole number, got '-5'"),
]


def _main(argv, capsys):
    "Exit status and stderr of `maskviz ARGV`, in this process."
    try: code = main(argv)
    except SystemExit as e: code = e.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [r[1:] for r in SHELL_ROWS], ids=[r[0] for r in SHELL_ROWS])
def test_command_rows(work, model_dir, argv, message, capsys):
    code, err = _main([a.format(w=work, m=model_dir) for a in argv], capsys)
    assert code == 2, err
    assert message.format(w=work) in err, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("maskviz")  # one line, last


def test_preflight_stops_before_the_first_step(work, model_dir, capsys):
    "The pre-flight rows found their problem before training: no step was recorded and no checkpoint written."
    for name in ("pf-paradigm", "pf-short", "pf-glueopt", "pf-label"):
        run = work / name
        if not run.exists(): _main(["pretrain", str(work / f"{name[3:]}.yaml")], capsys)
        assert not (run / "metrics.jsonl").exists() or not (run / "metrics.jsonl").read_text().strip(), name
        assert not list((run / "checkpoints").glob("checkpoint-*")), name


def test_policy_typo_writes_nothing(work, capsys):
    "A config is checked whole before the run folder or the tokenizer is written."
    _main(["pretrain", str(work / "ww.yaml")], capsys)
    assert not (work / "ww-run").exists()


def test_demo_offline_without_a_data_root_stops_at_once(monkeypatch, capsys):
    monkeypatch.delenv("MASKVIZ_DATA", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.perf_counter()
    code, err = _main(["demo", "--out", "/nonexistent/demo"], capsys)
    assert code == 2 and "cannot reach the HuggingFace hub: set MASKVIZ_DATA" in err and time.perf_counter() - t < 30
    assert len(err.strip().splitlines()) == 1


def test_demo_without_a_data_root_reads_only_hub_datasets(monkeypatch):
    "With no data root, every data set the demo reads resolves to a hub dataset (checked with a mocked hub listing)."
    import datasets
    from maskviz.cli import demo_configs
    from maskviz.data import HUB_DATASETS, NAMED_CORPORA, data_source, load_corpus
    monkeypatch.delenv("MASKVIZ_DATA", raising=False)
    calls = []
    def hub(path, name=None, split=None, streaming=False):
        calls.append((path, name, split))
        return datasets.Dataset.from_dict({"text": ["Some text .", "More text ."]})
    monkeypatch.setattr(datasets, "load_dataset", hub)
    config = next(iter(demo_configs("/tmp/demo").values()))
    assert config.corpus in NAMED_CORPORA and config.eval_corpus in NAMED_CORPORA
    assert load_corpus(config.corpus, max_lines=10)["text"] == ["Some text .", "More text ."]
    assert calls[-1] == ("Salesforce/wikitext", "wikitext-103-raw-v1", "train")
    for name in ("blimp", "glue", config.eval_corpus): assert data_source(name) == HUB_DATASETS[name][0]


# ---- the Python API ---------------------------------------------------------------------------------------------

def _blimp_root(tmp: Path, shared: Path, change: dict) -> Path:
    "A data root whose adjunct_island paradigm is one real pair and a second one with `change` applied."
    (tmp / "blimp").mkdir(parents=True, exist_ok=True)
    real = json.loads((shared / "blimp" / "adjunct_island.jsonl").read_text().splitlines()[0])
    (tmp / "blimp" / "adjunct_island.jsonl").write_text(json.dumps(real) + "\n" + json.dumps(real | change) + "\n")
    return tmp


def _api_rows():
    "(id, call(work, model_dir, shared_data, tmp), exception type, message)"
    from maskviz import analysis, corpora, data, evals, evalsets, maskers, records, schedules
    from maskviz.config import PretrainConfig, load_config
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    def tiny(m): return AutoModelForMaskedLM.from_pretrained(m), AutoTokenizer.from_pretrained(m)
    vocab = maskers.Vocab(100, mask_id=4, special_ids=(0, 1, 2, 3, 4), pad_id=0)
    ids = torch.tensor([[2, 10, 11, 12, 3], [2, 20, 21, 22, 3]])
    def masked(bad_id):
        x = ids.clone(); x[1, 2] = bad_id
        return maskers.make_masker("random", vocab)({"input_ids": x}, 0.15, torch.Generator().manual_seed(0))
    no_mask = lambda *a: maskers.make_masker("random", maskers.Vocab(100))
    return [
        ("schedule not a string", lambda *a: schedules.parse_schedule(0.15), ValueError, "a schedule spec is a string"),
        ("schedule step beyond the run", lambda *a: schedules.progress(5, 3), ValueError, "step must be an integer in [0, total_steps=3], got 5"),
        ("schedule run of no steps", lambda *a: schedules.mean_rate("linear(0.3, 0.15)", 0), ValueError, "total_steps must be a positive integer, got 0"),
        ("schedule progress outside [0, 1]", lambda *a: schedules.linear(0.3, 0.15).rates([1.5]), ValueError, "progress must be in [0, 1], got 1.5"),
        ("vocab of one id", lambda *a: maskers.Vocab(1), ValueError, "size must be an integer >= 2 (the number of token ids), got 1"),
        ("negative token id", lambda *a: masked(-1), ValueError, "holds the token id -1 (row 1, position 2), outside this masker's vocabulary [0, 100)"),
        ("token id beyond the vocabulary", lambda *a: masked(100), ValueError, "holds the token id 100 (row 1, position 2)"),
        ("masking rate above 1", lambda *a: maskers.make_masker("random", vocab)({"input_ids": ids}, 1.5, torch.Generator()), ValueError, "rate must be a probability in [0, 1], got 1.5"),
        ("policy typo", lambda *a: maskers.make_masker("whole-word", vocab), ValueError, "did you mean 'whole_word'?"),
        ("tokenizer without a mask token", no_mask, ValueError, "the tokenizer has no mask token"),
        ("BLiMP paradigm typo", lambda *a: evalsets.load_blimp("adjunct_islands"), ValueError, "did you mean 'adjunct_island'"),
        ("BLiMP empty sentence", lambda w, m, s, t: evalsets.load_blimp("adjunct_island", _blimp_root(t, s, {"sentence_good": ""})), ValueError, "adjunct_island.jsonl, line 2: sentence_good must be a non-empty string, got ''"),
        ("BLiMP null field", lambda w, m, s, t: evalsets.load_blimp("adjunct_island", _blimp_root(t, s, {"field": None})), ValueError, "line 2: field must be a non-empty string, got None"),
        ("BLiMP pairID not a number", lambda w, m, s, t: evalsets.load_blimp("adjunct_island", _blimp_root(t, s, {"pairID": "x7"})), ValueError, "line 2: pairID must be an integer (the pair's number), got 'x7'"),
        ("BLiMP identical pair", lambda w, m, s, t: evalsets.load_blimp("adjunct_island", _blimp_root(t, s, {"sentence_bad": "Who should Derek hug after shocking Richard?"}), identical="error"), ValueError, "line 2: sentence_good and sentence_bad are the same sentence"),
        ("GLUE empty label", lambda w, m, s, t: evalsets.load_glue("rte", "train", w / "data"), ValueError, "RTE/train.tsv, line 4: the label is empty"),
        ("GLUE split", lambda *a: evalsets.load_glue("rte", "valid"), ValueError, "GLUE rte has splits train, validation, test, got split='valid'"),
        ("GLUE task typo", lambda *a: evalsets.load_glue("mrcp"), ValueError, "did you mean 'mrpc'?"),
        ("corpus missing", lambda *a: data.load_corpus("./nope.txt"), FileNotFoundError, "nope.txt does not exist"),
        ("corpus blank", lambda w, *a: data.load_corpus(w / "blank.txt"), ValueError, "holds no text"),
        ("corpus line limit", lambda *a: data.load_corpus("wikitext-2", split="validation", max_lines=0), ValueError, "max_lines must be a positive integer or None (no limit), got 0"),
        ("tokenizer folder missing", lambda w, *a: data.load_tokenizer(w / "no-tokenizer"), FileNotFoundError, "no tokenizer folder at"),
        ("tokenizer vocabulary too small", lambda *a: data.train_wordpiece(["a b c"], vocab_size=3), ValueError, "vocab_size must be an integer above 5 (the special tokens), got 3"),
        ("blocks too short", lambda w, m, *a: corpora.encode_texts(["a cat"], AutoTokenizer.from_pretrained(m), max_length=2), ValueError, "max_length must be an integer of at least 3 ([CLS], a token, [SEP]), got 2"),
        ("PLL empty sentence", lambda w, m, *a: evals.pll_scores(*tiny(m), ["A cat sat.", " "], quiet=True), ValueError, "sentences[1] = ' ' has no token to score"),
        ("PLL sentence too long", lambda w, m, *a: evals.pll_scores(*tiny(m), ["word " * 40], quiet=True), ValueError, "tokens long, more than the model's 32 positions"),
        ("PLL variant typo", lambda w, m, *a: evals.pll_scores(*tiny(m), ["A cat."], "orignal"), ValueError, "did you mean 'original'?"),
        ("BLiMP limit zero", lambda w, m, *a: evals.blimp_scores(*tiny(m), "adjunct_island", limit=0), ValueError, "limit must be a positive number of pairs per paradigm or None (all pairs), got 0"),
        ("GLUE epochs zero", lambda w, m, *a: evals.glue_finetune(m, "rte", epochs=0), ValueError, "epochs must be a positive number of epochs, got 0"),
        ("GLUE seed negative", lambda w, m, *a: evals.glue_finetune(m, "rte", seed=-1), ValueError, "seed must be a seed, an integer in [0, 2**32 - 1], got -1"),
        ("GLUE option typo", lambda *a: evals.suite_evaluator(["glue"], glue_tasks=["rte"], glue_options={"lr_rate": 1e-4}), ValueError, "unknown GLUE option 'lr_rate'"),
        ("pickled weights", lambda w, *a: records.load_pretrained(AutoModelForMaskedLM, w / "pickled"), ValueError, "holds its weights as a pickle (pytorch_model.bin)"),
        ("run folder is a file", lambda w, *a: records.RunDir(w / "afile").check_writable(), ValueError, "is a file, not a folder"),
        ("run folder under a file", lambda w, *a: records.RunDir(w / "afile" / "run").check_writable(), PermissionError, "is not a writable folder"),
        ("runs that do not exist", lambda w, *a: analysis.load_runs(w / "nothing"), FileNotFoundError, "nothing does not exist"),
        ("confidence as a percentage", lambda *a: analysis.seed_means(__import__("pandas").DataFrame({"group": ["a"], "step": [1], "value": [0.5]}), confidence=95), ValueError, "confidence must be in (0, 1), e.g. 0.95, got 95"),
        ("config field type", lambda *a: PretrainConfig(policy_options=[1]), ValueError, "policy_options must be a mapping of make_masker options"),
        ("config YAML syntax", lambda w, *a: load_config(w / "broken.yaml"), ValueError, "broken.yaml, line 3, column 1: not valid YAML"),
        ("config key typo", lambda w, *a: load_config(w / "step.yaml"), ValueError, "did you mean 'steps'?"),
    ]


API_IDS = ["schedule not a string", "schedule step beyond the run", "schedule run of no steps", "schedule progress outside [0, 1]",
           "vocab of one id", "negative token id", "token id beyond the vocabulary", "masking rate above 1", "policy typo",
           "tokenizer without a mask token", "BLiMP paradigm typo", "BLiMP empty sentence", "BLiMP null field",
           "BLiMP pairID not a number", "BLiMP identical pair", "GLUE empty label", "GLUE split", "GLUE task typo",
           "corpus missing", "corpus blank", "corpus line limit", "tokenizer folder missing",
           "tokenizer vocabulary too small", "blocks too short", "PLL empty sentence", "PLL sentence too long",
           "PLL variant typo", "BLiMP limit zero", "GLUE epochs zero", "GLUE seed negative", "GLUE option typo",
           "pickled weights", "run folder is a file", "run folder under a file", "runs that do not exist",
           "confidence as a percentage", "config field type", "config YAML syntax", "config key typo"]


def test_api_rows_are_the_listed_ones():
    assert [r[0] for r in _api_rows()] == API_IDS


@pytest.mark.parametrize("row", API_IDS)
def test_api_rows(row, work, model_dir, shared_data, tmp_path):
    _, call, error, message = next(r for r in _api_rows() if r[0] == row)
    with pytest.raises(error) as e: call(work, model_dir, shared_data, tmp_path)
    assert message in str(e.value), str(e.value)


def test_the_suite_has_at_least_60_rows():
    assert len(SHELL_ROWS) + len(API_IDS) >= 60


# ---- security -----------------------------------------------------------------------------------------------------

class _Payload:
    "A pickle that runs a command when it is loaded by plain pickle."
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (os.system, (f"touch {self.marker}",))


def test_a_crafted_pickle_in_a_checkpoint_is_refused(work, tmp_path, capsys):
    "Resuming from a checkpoint whose rng_state.pth is a crafted pickle stops with one line, and runs nothing."
    import shutil
    run = tmp_path / "run"
    config = (work / "ok.yaml").read_text().replace(f"output_dir: {work}/ok-run", f"output_dir: {run}")
    config = config.replace("steps: 2\nsave_every: 2", "steps: 4\nsave_every: 2").replace("vocab_size: 300", "vocab_size: 5000")
    (tmp_path / "c.yaml").write_text(config)
    code, err = _main(["pretrain", str(tmp_path / "c.yaml")], capsys)
    assert code == 0, err
    # every recorded value is the one used: the model's vocabulary is the tokenizer's, whatever vocab_size asked for
    record = json.loads((run / "config.json").read_text())
    weights = json.loads((run / "checkpoints" / "checkpoint-4" / "config.json").read_text())
    tokens = len(json.loads((run / "tokenizer" / "tokenizer.json").read_text())["model"]["vocab"])
    assert record["model"]["vocab_size"] == weights["vocab_size"] == tokens
    assert tokens < 5000 and f"has {tokens} tokens, fewer than vocab_size=5000" in err  # 60 lines hold fewer pieces
    shutil.rmtree(run / "checkpoints" / "checkpoint-4")  # as if killed before the last save
    marker = tmp_path / "pwned"
    torch.save(_Payload(marker), run / "checkpoints" / "checkpoint-2" / "rng_state.pth")
    code, err = _main(["pretrain", str(tmp_path / "c.yaml")], capsys)
    assert code == 2 and "checkpoint-2: a file in this checkpoint holds objects other than tensors" in err, err
    assert "Traceback" not in err and not marker.exists()


# ---- random inputs: the documented error or a result, quickly, never another exception ----------------------------

SPEC_CHARS = string.ascii_lowercase[:12] + "0123456789.,()=_ -+*'\"[]{}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(SPEC_CHARS, max_size=80),
                 st.builds(lambda f, a: f"{f}({a})", st.sampled_from(["linear", "cosine", "step", "warmup", "cyclic",
                                                                      "constant", "piecewise", "exponential"]),
                           st.text(SPEC_CHARS, max_size=40))))
def test_random_specs_parse_or_raise_value_error(spec):
    from maskviz.schedules import parse_schedule
    t = time.perf_counter()
    try: schedule = parse_schedule(spec)
    except ValueError: pass
    else: assert 0 <= schedule(0.5) <= 1
    assert time.perf_counter() - t < 1.0


CONFIG_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**6), st.floats(allow_nan=True),
                          st.text(max_size=12), st.lists(st.integers(-2, 3), max_size=3),
                          st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["steps", "lr", "schedule", "policy", "block_size", "model", "warmup", "seed",
                                        "eval_suites", "eval_glue_seeds", "bf16", "policy_options", "stepz", "vocab_size",
                                        "eval_blimp_limit", "hidden_size", "num_heads"]), CONFIG_VALUES, max_size=5))
def test_random_configs_load_or_raise_value_error(tmp_path_factory, values):
    import yaml
    from maskviz.config import load_config
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text(yaml.safe_dump(values))
    t = time.perf_counter()
    try: load_config(path)
    except ValueError: pass
    assert time.perf_counter() - t < 1.0
