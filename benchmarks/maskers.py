"""Masking throughput: maskviz's maskers against HF transformers' DataCollatorForLanguageModeling.

Both mask the same pre-tokenized 256x128 batches of WikiText-2 (valid) text, tokenized by a WordPiece tokenizer trained
on that text, and both find the special tokens themselves. Reports sequences/s (median of several runs), the ratio,
and the realised masking rate and 80/10/10 split of both, so that the speeds are compared at identical statistics.

    python benchmarks/maskers.py                  # CPU, 1 torch thread
    python benchmarks/maskers.py --threads 2
    python benchmarks/maskers.py --device cuda    # maskviz on the GPU (HF's collator runs on the CPU)

Reads $MASKVIZ_DATA/wikitext-2-raw/wiki.valid.raw (default: ../shared/data next to the repository).
"""
import argparse, os, statistics, time, warnings
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerFast

from maskviz.maskers import make_masker

BATCH, LENGTH = 256, 128


def data_file() -> Path:
    root = Path(os.environ.get("MASKVIZ_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    path = root / "wikitext-2-raw" / "wiki.valid.raw"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; set MASKVIZ_DATA to the folder holding wikitext-2-raw/")
    return path


def paragraphs() -> list[str]:
    "The text paragraphs of WikiText-2 valid (no headings, no blank lines)."
    lines = (l.strip() for l in data_file().read_text(encoding="utf-8").splitlines())
    return [l for l in lines if l and not l.startswith("=")]


def wordpiece(texts: list[str], vocab_size: int = 8000) -> PreTrainedTokenizerFast:
    "A BERT-style WordPiece tokenizer trained on `texts`."
    wp = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wp.normalizer, wp.pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    special_tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wp.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special_tokens))
    wp.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                      special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=wp, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


def blocks(tok, texts: list[str], n_batches: int) -> list[dict]:
    """`n_batches` batches of 256 rows of 128 tokens: input_ids, attention_mask, offset_mapping (what HF's whole-word
    masking needs), and the annotations maskviz reads: word_ids (HF's own rule: a new word after a gap in the offsets
    or a special token), and ent_ids from a crude stand-in for NER (runs of capitalised words) for salient_span."""
    enc = tok(texts, truncation=True, max_length=LENGTH, return_overflowing_tokens=True, padding="max_length",
              return_offsets_mapping=True, return_special_tokens_mask=True)
    ids, offsets = np.array(enc["input_ids"]), np.array(enc["offset_mapping"])
    special = np.array(enc["special_tokens_mask"]).astype(bool)
    starts, ends = offsets[..., 0], offsets[..., 1]
    new_word = ~special & ((starts != np.roll(ends, 1, 1)) | np.roll(special, 1, 1))
    word_ids = np.where(special, -1, np.cumsum(new_word, 1) - 1)
    # stand-in entities: maximal runs of words whose first token starts with a capital letter in the original text
    which = np.array(enc["overflow_to_sample_mapping"])
    capital = np.zeros_like(special)
    for r, (text, row) in enumerate(zip((texts[i] for i in which), offsets)):
        capital[r] = [e > s and text[s].isupper() for s, e in row]
    word_cap = capital & new_word
    first_of_word = np.maximum.accumulate(np.where(new_word, np.arange(LENGTH), 0), 1)
    in_ent = ~special & np.take_along_axis(word_cap, first_of_word, 1)
    ent_start = in_ent & ~np.roll(in_ent, 1, 1)
    ent_ids = np.where(in_ent, np.cumsum(ent_start, 1) - 1, -1)
    rows = len(ids)
    take = lambda a, b: torch.tensor(a[[(b * BATCH + i) % rows for i in range(BATCH)]])
    return [dict(input_ids=take(ids, b), attention_mask=take(np.array(enc["attention_mask"]), b),
                 word_ids=take(word_ids, b), ent_ids=take(ent_ids, b), offset_mapping=take(offsets, b))
            for b in range(n_batches)]


def seqs_per_s(fn, batches, repeats: int) -> float:
    "Median over `repeats` runs of sequences masked per second, masking every batch once per run."
    fn(batches[0])  # warm up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for b in batches: fn(b)
        if torch.cuda.is_available(): torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return BATCH * len(batches) / statistics.median(times)


def split(original, inputs, labels, mask_id) -> dict:
    "Realised rate and [MASK] / random / unchanged split of masked positions (from labels != -100)."
    masked = labels != -100
    new, old = inputs[masked], original[masked]
    n = max(int(masked.sum()), 1)
    return dict(masked=int(masked.sum()), to_mask=int((new == mask_id).sum()) / n,
                to_random=int(((new != mask_id) & (new != old)).sum()) / n, unchanged=int((new == old).sum()) / n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1; see benchmarks/README.md)")
    ap.add_argument("--device", default="cpu", help="device for maskviz (HF's collator always runs on the CPU)")
    ap.add_argument("--batches", type=int, default=8, help="distinct 256x128 batches masked per run")
    ap.add_argument("--repeats", type=int, default=7, help="runs; the median is reported")
    ap.add_argument("--rate", type=float, default=0.15)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*Random token replacement is not supported with whole word masking.*")

    texts = paragraphs()
    tok = wordpiece(texts)
    batches = blocks(tok, texts, args.batches)
    dev = torch.device(args.device)
    on_dev = [{k: v.to(dev) for k, v in b.items() if k != "offset_mapping"} for b in batches]
    special_ids = torch.tensor(tok.all_special_ids)
    selectable = sum(int((~torch.isin(b["input_ids"], special_ids)).sum()) for b in batches)
    print(f"WikiText-2 valid, WordPiece vocab {len(tok)}, {args.batches} batches of {BATCH}x{LENGTH} "
          f"({selectable} selectable tokens), rate {args.rate}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, maskviz on {dev}, median of {args.repeats} runs\n")

    def hf_examples(b, whole_word):  # what a Trainer hands the collator: one dict per row
        keys = ("input_ids", "offset_mapping") if whole_word else ("input_ids",)
        return [{k: b[k][i] for k in keys} for i in range(BATCH)]

    rows, stats = [], []
    for name, whole_word in (("random", False), ("whole_word", True)):
        # HF turns whole-word masking's corruption into 100% [MASK]; maskviz is set the same way for that comparison
        probs = dict(mask_replace_prob=1.0, random_replace_prob=0.0) if whole_word else {}
        hf = DataCollatorForLanguageModeling(tok, mlm_probability=args.rate, whole_word_mask=whole_word, seed=0,
                                             **probs)
        examples = [hf_examples(b, whole_word) for b in batches]
        mv = make_masker(name, tok, **probs)
        g = torch.Generator(device=dev).manual_seed(0)
        hf_full = seqs_per_s(hf, examples, args.repeats)
        # this iteration's collator, masker and generator, bound as defaults
        hf_mask = seqs_per_s(lambda b, hf=hf, whole_word=whole_word: hf.torch_mask_tokens(
                                 b["input_ids"].clone(), offset_mapping=b["offset_mapping"] if whole_word else None),
                             batches, args.repeats)
        ours = seqs_per_s(lambda b, mv=mv, g=g: mv(b, args.rate, g), on_dev, args.repeats)
        rows.append((name, hf_full, hf_mask, ours))
        # statistics over all batches
        hf_s = [split(b["input_ids"], out["input_ids"], out["labels"], tok.mask_token_id) for b, out in
                ((b, hf(e)) for b, e in zip(batches, examples))]
        mv_s = [split(b["input_ids"], out.input_ids.cpu(), out.labels.cpu(), tok.mask_token_id) for b, out in
                ((b, mv(d, args.rate, g)) for b, d in zip(batches, on_dev))]
        for who, ss in (("HF", hf_s), ("maskviz", mv_s)):
            m = sum(s["masked"] for s in ss)
            stats.append((name, who, m / selectable,
                          *(sum(s[k] * s["masked"] for s in ss) / m for k in ("to_mask", "to_random", "unchanged"))))

    for name in ("span", "salient_span"):
        mv = make_masker(name, tok)
        g = torch.Generator(device=dev).manual_seed(0)
        ours = seqs_per_s(lambda b, mv=mv, g=g: mv(b, args.rate, g), on_dev, args.repeats)
        rows.append((name, None, None, ours))
        outs = [mv(d, args.rate, g) for d in on_dev]
        m = sum(int(o.mask.sum()) for o in outs)
        fb = sum(int(o.fallback.sum()) for o in outs if o.fallback is not None)
        stats.append((name, "maskviz", m / selectable, *(split(torch.cat([b["input_ids"] for b in batches]),
                      torch.cat([o.input_ids.cpu() for o in outs]), torch.cat([o.labels.cpu() for o in outs]),
                      tok.mask_token_id)[k] for k in ("to_mask", "to_random", "unchanged"))))
        if name == "salient_span":
            print(f"salient_span: {fb} of {BATCH * len(batches)} rows had no entity (fallback: random)")

    fmt = lambda v: f"{v:>12,.0f}" if v is not None else f"{'-':>12}"
    ratio = lambda a, b: f"{a / b:>8.1f}x" if b else f"{'-':>9}"
    print(f"\n| {'policy':<12} | {'HF collator':>12} | {'HF masking':>12} | {'maskviz':>12} "
          f"| {'vs collator':>11} | {'vs masking':>10} |")
    print(f"|{'-' * 14}|{'-' * 13}:|{'-' * 13}:|{'-' * 13}:|{'-' * 12}:|{'-' * 11}:|")
    for name, full, mask, ours in rows:
        print(f"| {name:<12} | {fmt(full)} | {fmt(mask)} | {fmt(ours)} "
              f"| {ratio(ours, full):>11} | {ratio(ours, mask):>10} |")
    print("\nsequences/s; 'HF collator' = collator(list of row dicts), "
          "'HF masking' = collator.torch_mask_tokens(batch tensor)")
    print(f"\n| {'policy':<12} | {'who':<8} | {'rate':>7} | {'[MASK]':>7} | {'random':>7} | {'same':>7} |")
    print(f"|{'-' * 14}|{'-' * 10}|{'-' * 8}:|{'-' * 8}:|{'-' * 8}:|{'-' * 8}:|")
    for name, who, rate, a, b, c in stats:
        print(f"| {name:<12} | {who:<8} | {rate:>7.4f} | {a:>7.3f} | {b:>7.3f} | {c:>7.3f} |")


if __name__ == "__main__":
    main()
