"Property and statistical tests of maskviz.maskers: every policy, format and option on random batches."
import functools, math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from maskviz.corpora import UPOS_IDS, UPOS_TAGS
from maskviz.analysis import mask_stats, rank_bins
from maskviz.corpora import mine_pmi_ngrams
from maskviz.maskers import (POLICIES, MaskedBatch, Masker, Vocab, make_masker, pmi_units, selectable_positions,
                             word_units)

PAD, UNK, CLS, SEP, MASK = range(5)
SENTINELS = tuple(range(5, 25))  # 20 sentinel ids, special like T5's <extra_id_N>


def fake_vocab(size: int = 200) -> Vocab:
    return Vocab(size, mask_id=MASK, special_ids=(PAD, UNK, CLS, SEP), pad_id=PAD, eos_id=None, sentinel_ids=SENTINELS)


def synthetic_batch(seed: int, B: int, L: int, V: int = 200, ent_frac: float = 0.3) -> dict:
    """Blocks laid out like maskviz.data's: [CLS] words [SEP] (sometimes a second document) then padding, with
    word_ids (per block, -1 on specials), pos_ids (one tag per word) and ent_ids (runs of words, numbered per block)."""
    rng = np.random.default_rng(seed)
    first = max(SENTINELS) + 1
    cols = {k: np.full((B, L), v, dtype=np.int64) for k, v in
            dict(input_ids=PAD, special_tokens_mask=1, attention_mask=0, word_ids=-1, pos_ids=-1, ent_ids=-1).items()}
    for b in range(B):
        n = int(rng.integers(2, L + 1))  # used length, padding after it
        ids = rng.integers(first, V, n)
        special = np.zeros(n, bool)
        special[[0, n - 1]] = True
        if n > 6 and rng.random() < 0.3: special[rng.integers(2, n - 2)] = True  # a [SEP] between two packed documents
        ids[special] = SEP
        ids[0] = CLS
        word = np.full(n, -1)
        w, i = -1, 1
        while i < n:
            if special[i]: i += 1; continue
            w += 1
            k = int(rng.integers(1, 4))
            j = i
            while j < min(i + k, n) and not special[j]: word[j] = w; j += 1
            i = j
        tags = rng.integers(0, len(UPOS_TAGS), w + 2)  # one spare so that tags[-1] exists in rows without words
        ent_of_word = np.full(w + 2, -1)
        e, x = -1, 0
        while x <= w:  # entities: runs of 1-3 words, one word apart at least
            if rng.random() < ent_frac:
                e += 1
                k = int(rng.integers(1, 4))
                ent_of_word[x:x + k] = e
                x += k + 1
            else: x += 1
        cols["input_ids"][b, :n] = ids
        cols["special_tokens_mask"][b, :n] = special
        cols["attention_mask"][b, :n] = 1
        cols["word_ids"][b, :n] = word
        cols["pos_ids"][b, :n] = np.where(word >= 0, tags[word], -1)
        cols["ent_ids"][b, :n] = np.where(word >= 0, ent_of_word[word], -1)
    return {k: torch.from_numpy(v) for k, v in cols.items()}


def flat_batch(B: int, L: int, V: int = 1000, seed: int = 0) -> dict:
    "Rows of ordinary tokens between [CLS] and [SEP], one token per word: for rate statistics."
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(max(SENTINELS) + 1, V, (B, L), generator=g)
    ids[:, 0], ids[:, -1] = CLS, SEP
    words = torch.arange(L).expand(B, L) - 1
    words = torch.where((ids == CLS) | (ids == SEP), -1, words)
    return {"input_ids": ids, "word_ids": words}


NGRAMS = [(30, 31), (40, 41, 42), (50, 51, 52, 53), (60, 61, 62, 63, 64), (31, 32)]


def masker_for(policy: str, fmt: str, data) -> Masker:
    "A masker of `policy` with random valid options."
    opts = {}
    if policy in ("random", "rts"): opts["exact"] = data.draw(st.booleans(), label="exact")
    if policy == "span":
        opts["p"] = data.draw(st.floats(0.05, 1.0), label="p")
        opts["max_len"] = data.draw(st.integers(1, 12), label="max_len")
    if policy == "salient_span":
        opts["fill"] = data.draw(st.booleans(), label="fill")
        opts["fallback"] = data.draw(st.sampled_from(["random", "none"]), label="fallback")
    if policy == "pos":
        tags = data.draw(st.lists(st.sampled_from(UPOS_TAGS), min_size=1, max_size=5, unique=True), label="tags")
        if data.draw(st.booleans(), label="weighted"): opts["weights"] = {t: data.draw(st.floats(0, 5)) for t in tags}
        else: opts["tags"] = tuple(tags)
    if policy == "pmi": opts["ngrams"] = NGRAMS
    if fmt == "mlm":
        a = data.draw(st.floats(0, 1), label="mask_replace_prob")
        opts.update(mask_replace_prob=a, random_replace_prob=data.draw(st.floats(0, 1 - a), label="random_replace_prob"))
    if fmt is not None: opts["format"] = fmt
    return make_masker(policy, fake_vocab(), **opts)


def with_ngrams(batch: dict, seed: int) -> dict:
    "Plant vocabulary n-grams in the batch so that pmi has something to find."
    rng = np.random.default_rng(seed)
    ids = batch["input_ids"].clone()
    B, L = ids.shape
    for _ in range(min(B * L // 8, 20_000)):
        g = NGRAMS[rng.integers(len(NGRAMS))]
        b, i = int(rng.integers(B)), int(rng.integers(L))
        for k, t in enumerate(g):
            if i + k < L and ids[b, i + k] > max(SENTINELS): ids[b, i + k] = t
    return {**batch, "input_ids": ids}


@functools.lru_cache
def big_batch(ngrams: bool) -> dict:
    batch = synthetic_batch(1, 1000, 1000)
    return with_ngrams(batch, 1) if ngrams else batch


policies = st.sampled_from(sorted(POLICIES))
formats = st.sampled_from([None, "mlm", "orig", "rand"])
shapes = st.tuples(st.integers(1, 6), st.integers(2, 40))


def run(masker, batch, rate, seed):
    return masker(batch, rate, torch.Generator().manual_seed(seed))


def check_invariants(masker: Masker, batch: dict, out: MaskedBatch):
    ids = batch["input_ids"]
    sel = (batch["special_tokens_mask"] == 0) & (batch["attention_mask"] == 1) & (ids > max(SENTINELS))
    assert out.mask.dtype == torch.bool and out.mask.shape == ids.shape
    assert torch.equal(out.selectable, sel)
    assert not (out.mask & ~sel).any(), "selected a special or padding token"
    if masker.format == "rts":
        assert torch.equal(out.labels, torch.where(sel, out.mask.long(), -100))
        changed = out.input_ids != ids
        assert torch.equal(changed, out.mask), "rts replaces exactly the selected tokens, each by a different token"
        assert (out.input_ids[out.mask] > max(SENTINELS)).all(), "random replacements come from the ordinary vocabulary"
        return
    assert torch.equal(out.labels, torch.where(out.mask, ids, -100))
    if masker.format == "mlm":
        assert torch.equal(out.input_ids[~out.mask], ids[~out.mask])
        new = out.input_ids[out.mask]
        assert ((new == MASK) | (new > max(SENTINELS))).all()
        if masker.mask_replace_prob == 1: assert (new == MASK).all()
        if masker.mask_replace_prob == 0 and masker.random_replace_prob == 0: assert torch.equal(new, ids[out.mask])
    elif masker.format == "orig":
        assert torch.equal(out.input_ids, torch.where(out.mask, MASK, ids))
        assert torch.equal(out.targets, torch.where(batch["attention_mask"] == 1, ids, -100))
    elif masker.format == "rand":
        check_rand_round_trip(batch, out)


def check_rand_round_trip(batch: dict, out: MaskedBatch):
    "Putting each sentinel's target tokens back in place of the sentinel gives the original row."
    for b in range(len(batch["input_ids"])):
        original = batch["input_ids"][b][batch["attention_mask"][b] == 1].tolist()
        inputs = out.input_ids[b][out.attention_mask[b] == 1].tolist()
        target = out.targets[b][out.targets[b] != -100].tolist()
        spans, cur = {}, None
        for t in target:
            if t in SENTINELS: cur = t; spans[cur] = []
            else: spans[cur].append(t)
        n_spans = sum(t in SENTINELS for t in inputs)
        assert target[-1] == SENTINELS[n_spans] and spans[SENTINELS[n_spans]] == [], "closing sentinel"
        assert [t for t in inputs if t in SENTINELS] == list(SENTINELS[:n_spans]), "sentinels numbered in order"
        rebuilt = [x for t in inputs for x in (spans[t] if t in SENTINELS else [t])]
        assert rebuilt == original
        assert all(spans[s] for s in SENTINELS[:n_spans]), "no empty span"


# ---------------------------------------------------------------- invariants of every policy, format and option

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies, formats, shapes, st.floats(0, 1), st.integers(0, 2 ** 31), st.data())
def test_invariants(policy, fmt, shape, rate, seed, data):
    if policy == "rts" and fmt is not None: fmt = None
    masker = masker_for(policy, fmt, data)
    batch = synthetic_batch(seed, *shape)
    if policy == "pmi": batch = with_ngrams(batch, seed)
    if data.draw(st.booleans(), label="int32"):  # Arrow stores blocks as int32/int8 columns
        batch = {k: v.to(torch.int8 if k in ("special_tokens_mask", "pos_ids") else torch.int32) for k, v in batch.items()}
    before = {k: v.clone() for k, v in batch.items()}
    out = run(masker, batch, rate, seed)
    for k in batch: assert torch.equal(batch[k], before[k]) and batch[k].dtype == before[k].dtype, f"the masker modified batch[{k!r}]"
    assert out.input_ids.dtype == out.labels.dtype == torch.int64
    check_invariants(masker, {k: v.long() for k, v in batch.items()}, out)
    again = run(masker, batch, rate, seed)
    for name in ("input_ids", "labels", "mask", "targets", "attention_mask", "fallback"):
        a, b = getattr(out, name), getattr(again, name)
        assert (a is None and b is None) or torch.equal(a, b), f"{name} differs for the same seed"


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["whole_word", "span", "pmi"]), shapes, st.floats(0, 1), st.integers(0, 2 ** 31))
def test_units_are_never_split(policy, shape, rate, seed):
    opts = {"ngrams": NGRAMS} if policy == "pmi" else {}
    masker = make_masker(policy, fake_vocab(), **opts)
    batch = synthetic_batch(seed, *shape)
    if policy == "pmi": batch = with_ngrams(batch, seed)
    out = run(masker, batch, rate, seed)
    sel = out.selectable
    units = pmi_units(batch, sel, masker.options) if policy == "pmi" else word_units(batch, sel)
    for b in range(shape[0]):
        for u in units[b][units[b] >= 0].unique():
            m = out.mask[b][units[b] == u]
            assert m.all() or not m.any(), f"unit {u} of row {b} is split"


@settings(max_examples=60, deadline=None)
@given(st.floats(0.05, 1.0), st.integers(1, 12), st.floats(0, 1), st.integers(0, 2 ** 31))
def test_span_lengths_within_bounds(p, max_len, rate, seed):
    masker = make_masker("span", fake_vocab(), p=p, max_len=max_len)
    batch = synthetic_batch(seed, 4, 60)
    out = run(masker, batch, rate, seed)
    units = word_units(batch, out.selectable)
    for b in range(4):
        masked_units = units[b][out.mask[b]].unique().tolist()
        run_len = 1
        for x, y in zip(masked_units, masked_units[1:]):
            run_len = run_len + 1 if y == x + 1 else 1
            assert run_len <= max_len


@settings(max_examples=60, deadline=None)
@given(shapes, st.floats(0, 1), st.integers(0, 2 ** 31), st.booleans())
def test_salient_span_masks_exactly_one_entity(shape, rate, seed, to_none):
    masker = make_masker("salient_span", fake_vocab(), fallback="none" if to_none else "random")
    batch = synthetic_batch(seed, *shape)
    out = run(masker, batch, rate, seed)
    ent = batch["ent_ids"]
    for b in range(shape[0]):
        has = bool((ent[b][out.selectable[b]] >= 0).any())
        assert bool(out.fallback[b]) == (not has)
        if has:
            chosen = ent[b][out.mask[b]].unique().tolist()
            assert len(chosen) == 1 and chosen[0] >= 0
            assert torch.equal(out.mask[b], (ent[b] == chosen[0]) & out.selectable[b]), "the whole entity, nothing else"
        elif to_none: assert not out.mask[b].any()


@settings(max_examples=40, deadline=None)
@given(shapes, st.floats(0, 1), st.integers(0, 2 ** 31))
def test_salient_span_fill_masks_only_whole_entities(shape, rate, seed):
    masker = make_masker("salient_span", fake_vocab(), fill=True, fallback="none")
    batch = synthetic_batch(seed, *shape)
    out = run(masker, batch, rate, seed)
    ent = batch["ent_ids"]
    assert not (out.mask & (ent < 0)).any()
    for b in range(shape[0]):
        for e in ent[b][out.mask[b]].unique():
            assert out.mask[b][ent[b] == e].all()
        if (ent[b][out.selectable[b]] >= 0).any(): assert out.mask[b].any(), "at least one entity"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(UPOS_TAGS), min_size=1, max_size=4, unique=True), st.floats(0, 1), st.integers(0, 2 ** 31))
def test_pos_masks_only_chosen_tags(tags, rate, seed):
    masker = make_masker("pos", fake_vocab(), tags=tuple(tags))
    batch = synthetic_batch(seed, 4, 40)
    out = run(masker, batch, rate, seed)
    allowed = torch.tensor([UPOS_IDS[t] for t in tags])
    assert torch.isin(batch["pos_ids"][out.mask], allowed).all()


@settings(max_examples=40, deadline=None)
@given(shapes, st.floats(0, 1), st.integers(0, 2 ** 31))
def test_exact_random_count_per_row(shape, rate, seed):
    out = run(make_masker("random", fake_vocab(), exact=True), synthetic_batch(seed, *shape), rate, seed)
    want = torch.round(out.selectable.sum(1) * rate)
    assert torch.equal(out.mask.sum(1).double(), want.double())


@settings(max_examples=40, deadline=None)
@given(policies, st.integers(0, 2 ** 31))
def test_rate_zero_masks_nothing_and_one_masks_all_tokens(policy, seed):
    opts = {"ngrams": NGRAMS} if policy == "pmi" else {"tags": UPOS_TAGS} if policy == "pos" else {}
    if policy == "salient_span": opts["fill"] = True
    masker = make_masker(policy, fake_vocab(), **opts)
    batch = synthetic_batch(seed, 3, 30)
    if policy != "salient_span": assert not run(masker, batch, 0.0, seed).mask.any()
    full = run(masker, batch, 1.0, seed)
    if policy in ("random", "rts", "whole_word", "pmi", "pos"): assert torch.equal(full.mask, full.selectable)


def test_policies_are_all_tested():
    assert set(POLICIES) == {"random", "rts", "whole_word", "span", "salient_span", "pos", "pmi"}


# ---------------------------------------------------------------- statistics, with tolerances from binomial errors

Z = 5  # standard errors: a fixed-seed test that fails only for a real bias (p ~ 6e-7 by chance)


@pytest.mark.parametrize("policy", ["random", "rts", "whole_word", "pmi", "pos"])
@pytest.mark.parametrize("rate", [0.15, 0.3])
def test_token_level_rate_within_0005_over_a_million_tokens(policy, rate):
    opts = {"ngrams": NGRAMS} if policy == "pmi" else {"tags": UPOS_TAGS} if policy == "pos" else {}
    batch = big_batch(policy == "pmi")  # ~500K selectable tokens per call: two calls make a million
    masker = make_masker(policy, fake_vocab(), **opts)
    outs = [run(masker, batch, rate, s) for s in (0, 1)]
    n = sum(int(o.selectable.sum()) for o in outs)
    realised = sum(int(o.mask.sum()) for o in outs) / n
    assert n > 900_000
    assert abs(realised - rate) < 0.005
    # and within Z standard errors; units of several tokens are selected together, which widens the error
    units = pmi_units(batch, outs[0].selectable, masker.options) if policy == "pmi" else word_units(batch, outs[0].selectable)
    if policy in ("random", "rts", "pos"): se = math.sqrt(rate * (1 - rate) / n)
    else:
        counts = np.concatenate([np.bincount(r[r >= 0].numpy()) for r in units])
        se = math.sqrt(rate * (1 - rate) * 2 * float((counts.astype(float) ** 2).sum())) / n
    assert abs(realised - rate) < Z * se, (realised, se)


@pytest.mark.parametrize("probs", [(0.8, 0.1), (0.5, 0.4), (0.0, 1.0), (1.0, 0.0)])
def test_80_10_10_split(probs):
    mrp, rrp = probs
    batch = flat_batch(500, 400)
    masker = make_masker("random", fake_vocab(1000), mask_replace_prob=mrp, random_replace_prob=rrp)
    out = run(masker, batch, 0.3, 0)
    new, old = out.input_ids[out.mask], batch["input_ids"][out.mask]
    m = len(new)
    to_mask = (new == MASK).float().mean().item()
    same = (new == old).float().mean().item()
    to_random = 1 - to_mask - same
    # a random replacement equals the original token with probability 1 / ordinary vocabulary size
    n_ordinary = 1000 - 5 - len(SENTINELS)
    for got, want in ((to_mask, mrp), (to_random, rrp * (1 - 1 / n_ordinary)), (same, 1 - mrp - rrp + rrp / n_ordinary)):
        assert abs(got - want) <= Z * math.sqrt(want * (1 - want) / m) + 1e-12, (got, want)


def test_random_replacements_cover_the_ordinary_vocabulary_only():
    masker = make_masker("random", fake_vocab(60), mask_replace_prob=0.0, random_replace_prob=1.0)
    batch = flat_batch(200, 200, V=60)
    out = run(masker, batch, 1.0, 0)
    new = out.input_ids[out.mask]
    assert set(new.unique().tolist()) == set(range(max(SENTINELS) + 1, 60))


def test_rts_never_keeps_a_token():
    masker = make_masker("rts", fake_vocab(27))  # 2 ordinary tokens: a replacement is always the other one
    batch = flat_batch(50, 50, V=27)
    out = run(masker, batch, 0.5, 0)
    assert torch.equal(out.input_ids[out.mask], 25 + 26 - batch["input_ids"][out.mask])


def test_span_rate_and_lengths_follow_spanbert():
    masker = make_masker("span", fake_vocab(1000))
    batch = flat_batch(400, 514)  # one token per word, long rows: few spans cut by the row's end
    out = run(masker, batch, 0.15, 0)
    n = int(out.selectable.sum())
    budget = torch.round(out.selectable.sum(1) * 0.15)
    assert ((out.mask.sum(1) - budget).abs() <= 5).all(), "each row within half the longest span of its budget"
    assert abs(out.realised_rate() - 0.15) < 0.005
    lengths = []
    for row in out.mask[:, 1:-1]:
        d = torch.diff(torch.cat([torch.zeros(1), row.float(), torch.zeros(1)]))
        lengths += (torch.nonzero(d == -1).flatten() - torch.nonzero(d == 1).flatten()).tolist()
    lengths = np.array(lengths)
    probs = masker.options.length_probs
    mean, sd = masker.options.mean_len, math.sqrt(float(((np.arange(1, 11) - masker.options.mean_len) ** 2 * probs).sum()))
    # the span that crosses the budget is kept only if half of it fits, which shortens the mean a little
    assert abs(lengths.mean() - mean) < Z * sd / math.sqrt(len(lengths)) + 0.15, (lengths.mean(), mean)
    assert lengths.max() <= 10 and lengths.min() >= 1
    for k in (1, 2, 10):
        p = probs[k - 1]
        assert abs((lengths == k).mean() - p) < Z * math.sqrt(p * (1 - p) / len(lengths)) + 0.01


def test_salient_span_picks_entities_uniformly():
    B = 4000
    ent = torch.full((B, 12), -1)
    ent[:, 1:3], ent[:, 4:5], ent[:, 6:10] = 0, 1, 2  # three entities of 2, 1 and 4 tokens
    batch = {**flat_batch(B, 12), "ent_ids": ent}
    out = run(make_masker("salient_span", fake_vocab(1000)), batch, 0.15, 0)
    first = torch.where(out.mask, ent, -1).amax(1)
    share = torch.bincount(first, minlength=3).float() / B
    se = math.sqrt(1 / 3 * 2 / 3 / B)
    assert (share - 1 / 3).abs().max() < Z * se, share


def test_pos_weights_set_selection_odds():
    batch = synthetic_batch(3, 400, 200)
    masker = make_masker("pos", fake_vocab(), weights={"NOUN": 2.0, "VERB": 1.0})
    out = run(masker, batch, 0.05, 0)
    pos = batch["pos_ids"]
    rate = lambda tag: out.mask[pos == UPOS_IDS[tag]].float().mean().item()
    n_noun, n_verb = int((pos == UPOS_IDS["NOUN"]).sum()), int((pos == UPOS_IDS["VERB"]).sum())
    assert abs(rate("NOUN") / rate("VERB") - 2) < Z * 2 * math.sqrt(1 / (rate("NOUN") * n_noun) + 1 / (rate("VERB") * n_verb))
    assert abs(out.realised_rate() - 0.05) < Z * math.sqrt(0.05 * 0.95 * 4 / int(out.selectable.sum()))


# ---------------------------------------------------------------- errors name the bad value and the fix

@pytest.mark.parametrize("policy,key", [("whole_word", "word_ids"), ("span", "word_ids"), ("salient_span", "ent_ids"), ("pos", "pos_ids")])
def test_missing_annotation_is_named(policy, key):
    masker = make_masker(policy, fake_vocab())
    with pytest.raises(ValueError, match=rf"needs batch\['{key}'\].*make_blocks\(corpus, tokenizer, annotate=True\)"):
        run(masker, {"input_ids": synthetic_batch(0, 2, 10)["input_ids"]}, 0.15, 0)


@pytest.mark.parametrize("options,message", [
    (dict(mask_replace_prob=1.2), "mask_replace_prob must be a probability in \\[0, 1\\], got 1.2"),
    (dict(mask_replace_prob=0.7, random_replace_prob=0.4), "at most 1"),
    (dict(format="t5"), "format must be one of"),
    (dict(exakt=True), "unknown option 'exakt' for policy 'random'"),
    (dict(exact=1), "exact must be True or False, got 1"),
])
def test_bad_options(options, message):
    with pytest.raises(ValueError, match=message): make_masker("random", fake_vocab(), **options)


@pytest.mark.parametrize("policy,options,message", [
    ("span", dict(p=1.5), "p must be in \\(0, 1\\]"), ("span", dict(max_len=0), "max_len must be a positive integer"),
    ("pos", dict(tags=("NOUNS",)), "unknown POS tag 'NOUNS'"), ("pos", dict(weights={"NOUN": -1}), "weight of 'NOUN'"),
    ("salient_span", dict(fallback="skip"), "fallback must be"), ("pmi", {}, "pmi masking needs ngrams"),
    ("pmi", dict(ngrams=[(5,)]), "at least 2 tokens"),
])
def test_bad_policy_options(policy, options, message):
    with pytest.raises(ValueError, match=message): make_masker(policy, fake_vocab(), **options)


def test_bad_calls():
    masker = make_masker("random", fake_vocab())
    batch = synthetic_batch(0, 2, 10)
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="rate must be a probability in \\[0, 1\\], got -0.1"): masker(batch, -0.1, g)
    with pytest.raises(ValueError, match="generator must be a torch.Generator"): masker(batch, 0.1, 0)
    with pytest.raises(ValueError, match="2-D integer tensor"): masker({"input_ids": batch["input_ids"].float()}, 0.1, g)
    with pytest.raises(ValueError, match="shaped like input_ids"): masker({**batch, "attention_mask": batch["attention_mask"][:1]}, 0.1, g)
    with pytest.raises(ValueError, match="format 'rand' replaces each masked span by a sentinel"):
        make_masker("random", Vocab(100, mask_id=4), format="rand")
    with pytest.raises(ValueError, match="no mask token"): make_masker("random", Vocab(100))
    make_masker("random", Vocab(100), mask_replace_prob=0.0)  # fine without [MASK] if it is never used


def test_too_few_sentinels_is_an_error():
    masker = make_masker("random", fake_vocab(), format="rand", sentinel_ids=[5, 6])
    with pytest.raises(ValueError, match="needs .* sentinel tokens, but there are only 2"):
        run(masker, flat_batch(2, 50, V=200), 0.5, 0)


# ---------------------------------------------------------------- with a real tokenizer

@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast
    text = ["the quick brown fox jumps over the lazy dog", "a stitch in time saves nine",
            "new york city is in new york state", "the early bird catches the worm"] * 10
    wp = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wp.normalizer, wp.pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    wp.train_from_iterator(text, trainers.WordPieceTrainer(vocab_size=90, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    wp.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok = PreTrainedTokenizerFast(tokenizer_object=wp, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                  sep_token="[SEP]", mask_token="[MASK]")
    tok.text = text
    return tok


def test_vocab_from_tokenizer(tokenizer):
    v = Vocab.from_tokenizer(tokenizer)
    assert v.size == len(tokenizer) and v.mask_id == tokenizer.mask_token_id and v.pad_id == 0
    assert set(v.special_ids) == set(tokenizer.all_special_ids) and v.sentinel_ids == ()
    import copy
    t5 = copy.deepcopy(tokenizer)
    t5.add_special_tokens({"additional_special_tokens": [f"<extra_id_{i}>" for i in range(3)]})
    v = Vocab.from_tokenizer(t5)
    assert v.sentinel_ids == tuple(t5.convert_tokens_to_ids([f"<extra_id_{i}>" for i in range(3)]))
    assert set(v.sentinel_ids) <= set(v.special_ids)


def test_whole_word_with_tokenizer_word_ids(tokenizer):
    enc = tokenizer(tokenizer.text, padding=True, return_special_tokens_mask=True)
    word_ids = [[-1 if w is None else w for w in enc.word_ids(i)] for i in range(len(tokenizer.text))]
    batch = {k: torch.tensor(v) for k, v in enc.items()} | {"word_ids": torch.tensor(word_ids)}
    out = run(make_masker("whole_word", tokenizer), batch, 0.5, 0)
    for b in range(len(word_ids)):
        for w in set(word_ids[b]) - {-1}:
            m = out.mask[b][batch["word_ids"][b] == w]
            assert m.all() or not m.any()
    assert not out.mask[batch["input_ids"] == tokenizer.pad_token_id].any()


def test_mine_pmi_ngrams(tokenizer):
    seqs = tokenizer(tokenizer.text)["input_ids"]
    df = mine_pmi_ngrams(seqs, tokenizer, max_n=4, min_count=5)
    assert list(df.columns) == ["ngram", "n", "count", "pmi", "text"]
    assert df.pmi.is_monotonic_decreasing and set(df.n) <= {2, 3, 4} and (df["count"] >= 5).all()
    special = set(tokenizer.all_special_ids)
    assert not any(set(g) & special for g in df.ngram), "n-grams never include special tokens"
    # counts are right: count a few by brute force
    flat = [tuple(s) for s in seqs]
    for g, c in zip(df.ngram[:5], df["count"][:5]):
        assert c == sum(sum(s[i:i + len(g)] == g for i in range(len(s))) for s in flat)
    assert len(mine_pmi_ngrams(seqs, tokenizer, size=3)) == 3
    # PMI against the worst segmentation, by hand for one bigram: log p(ab) / (p(a) p(b))
    uni = np.bincount(np.concatenate([[t for t in s if t not in special] for s in seqs]))
    bi = {}
    for s in seqs:
        s = [t for t in s if t not in special]
        for a, b in zip(s, s[1:]): bi[(a, b)] = bi.get((a, b), 0) + 1
    row = df[df.n == 2].iloc[0]
    a, b = row.ngram
    want = math.log(bi[(a, b)] / sum(bi.values())) - math.log(uni[a] / uni.sum()) - math.log(uni[b] / uni.sum())
    assert abs(row.pmi - want) < 1e-9
    with pytest.raises(ValueError, match="max_n must be an integer >= 2"): mine_pmi_ngrams(seqs, max_n=1)
    with pytest.raises(ValueError, match=r"min_pmi must be a finite number or None \(every PMI\), got 'high'"): mine_pmi_ngrams(seqs, min_pmi="high")
    assert (df.pmi > 0).all()
    everything = mine_pmi_ngrams(seqs, tokenizer, max_n=4, min_count=5, min_pmi=None)
    assert len(everything) >= len(df) and everything[everything.pmi > 0].ngram.tolist() == df.ngram.tolist()


def test_pmi_units_prefer_the_longest_earliest_ngram():
    masker = make_masker("pmi", fake_vocab(), ngrams=[(30, 31), (30, 31, 32), (32, 33), (33, 34)])
    batch = {"input_ids": torch.tensor([[CLS, 30, 31, 32, 33, 34, 35, SEP]])}
    sel = selectable_positions(batch, masker._tensors("cpu")["is_special"])
    # 30 31 32 wins; 32 33 overlaps it; 33 34 overlaps the (rejected) 32 33 and is not used either
    assert pmi_units(batch, sel, masker.options).tolist() == [[-1, 0, 0, 0, 1, 2, 3, -1]]


def test_mask_stats_counts():
    batch = synthetic_batch(5, 50, 40)
    out = run(make_masker("random", fake_vocab()), batch, 0.3, 0)
    ranks = np.arange(1, 201)
    ranks[-5:] = -1
    s = mask_stats([batch, batch], [out, out], ranks=ranks, mask_id=MASK)
    assert set(s) == {"summary", "pos", "entity", "rank"}
    summary = s["summary"].iloc[0]
    assert summary.masked == 2 * int(out.mask.sum()) and summary.selectable == 2 * int(out.selectable.sum())
    assert summary.to_mask_token + summary.to_random_token + summary.unchanged == summary.masked
    for name in ("pos", "entity", "rank"):
        assert s[name].masked.sum() == summary.masked and s[name].selectable.sum() == summary.selectable
        assert abs(s[name].masked_share.sum() - 1) < 1e-9
    assert s["rank"].rank_bin.tolist() == ["1-9", "10-99", "100-999", "unseen"]
    assert rank_bins(ranks, bins=2).tolist() == [1, 14, 196]
    assert list(mask_stats(batch, out)) == ["summary", "pos", "entity"]


def test_masker_pickles_for_dataloader_workers():
    import pickle
    masker = make_masker("span", fake_vocab())
    batch = synthetic_batch(0, 4, 30)
    copy = pickle.loads(pickle.dumps(masker))
    assert torch.equal(copy(batch, 0.3, torch.Generator().manual_seed(0)).input_ids, run(masker, batch, 0.3, 0).input_ids)


def test_masker_to_dict_is_json():
    import json
    for name in POLICIES:
        m = make_masker(name, fake_vocab(), **({"ngrams": NGRAMS} if name == "pmi" else {}))
        assert json.loads(json.dumps(m.to_dict()))["policy"] == name


# ---------------------------------------------------------------- CUDA

@pytest.mark.gpu
@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_cuda_matches_invariants_without_host_syncs(policy):
    dev = torch.device("cuda")
    opts = {"ngrams": NGRAMS} if policy == "pmi" else {}
    masker = make_masker(policy, fake_vocab(), **opts)
    cpu = with_ngrams(synthetic_batch(0, 64, 128), 0)
    batch = {k: v.to(dev) for k, v in cpu.items()}
    g = lambda: torch.Generator(device=dev).manual_seed(0)
    masker(batch, 0.15, g())  # warm-up: vocabulary tables move to the device once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try: out = masker(batch, 0.15, g())
    finally: torch.cuda.set_sync_debug_mode("default")
    assert out.input_ids.device.type == "cuda" and out.mask.device.type == "cuda"
    out_cpu = MaskedBatch(*(None if v is None else v.cpu() for v in (out.input_ids, out.labels, out.mask, out.targets,
                                                                    out.attention_mask, out.selectable, out.fallback)))
    check_invariants(masker, cpu, out_cpu)
    again = masker(batch, 0.15, g())
    assert torch.equal(again.input_ids, out.input_ids) and torch.equal(again.mask, out.mask)
    with pytest.raises(ValueError, match="the generator is on cpu but the batch is on cuda"):
        masker(batch, 0.15, torch.Generator().manual_seed(0))


@pytest.mark.gpu
@pytest.mark.parametrize("fmt", ["orig", "rand"])
def test_cuda_text_to_text(fmt):
    masker = make_masker("span", fake_vocab(), format=fmt)
    cpu = synthetic_batch(1, 32, 64)
    out = masker({k: v.cuda() for k, v in cpu.items()}, 0.15, torch.Generator(device="cuda").manual_seed(0))
    out_cpu = MaskedBatch(*(None if v is None else v.cpu() for v in (out.input_ids, out.labels, out.mask, out.targets,
                                                                    out.attention_mask, out.selectable, out.fallback)))
    check_invariants(masker, cpu, out_cpu)
