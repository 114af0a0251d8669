"""BLiMP pseudo-log-likelihood: maskviz's batched `pll_scores` against minicons' `MaskedLMScorer`.

Both score the same BLiMP sentences with the same checkpoint folder (a small BERT and a WordPiece tokenizer trained on
WikiText-2 valid in the script, saved with save_pretrained), for PLL_metric "original" and "within_word_l2r". Prints
sentences/s of both, the ratio, and the largest per-sentence difference of the scores (minicons reduced by summing the
token log-probabilities, as `pll_scores` does).

    python benchmarks/blimp.py                       # 4 paradigms x 50 pairs, 1 torch thread
    python benchmarks/blimp.py --threads 2 --pairs 100

minicons 0.3.39 calls `tokenizer.batch_encode_plus`, which transformers 5 removed; the script puts the tokenizer's
`__call__` in its place (same arguments, same output) and changes nothing else. minicons' `sequence_score` ignores the
`PLL_metric` given to the constructor (its `prepare_text` defaults to "original"), so the script passes it to each call.
Reads $MASKVIZ_DATA (default: ../shared/data next to the repository).
"""
import argparse, os, tempfile, time
from pathlib import Path

os.environ.setdefault("MASKVIZ_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
import numpy as np
import torch
from transformers import AutoModelForMaskedLM, BertConfig, BertForMaskedLM

from maskviz.data import train_wordpiece
from maskviz.evalsets import load_blimp
from maskviz.evals import pll_scores
from maskviz.maskers import make_masker

PARADIGMS = ("determiner_noun_agreement_1", "anaphor_gender_agreement", "irregular_past_participle_adjectives",
             "wh_questions_object_gap")


def small_checkpoint(folder: Path, steps: int, vocab_size: int) -> None:
    "A 2-layer BERT (hidden 128) and WordPiece tokenizer trained on WikiText-2 valid for `steps` steps, in `folder`."
    path = Path(os.environ["MASKVIZ_DATA"]) / "wikitext-2-raw" / "wiki.valid.raw"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; set MASKVIZ_DATA to the folder holding wikitext-2-raw/")
    lines = [l.strip() for l in path.read_text(encoding="utf-8").splitlines()
             if len(l.strip()) > 40 and not l.strip().startswith("=")]
    tok = train_wordpiece(lines, vocab_size=vocab_size)
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=len(tok), hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                                       intermediate_size=512, max_position_embeddings=128))
    ids = [i for l in lines for i in tok(l, add_special_tokens=False)["input_ids"]]
    L = 64
    blocks = torch.tensor([[tok.cls_token_id, *ids[i:i + L - 2], tok.sep_token_id]
                           for i in range(0, len(ids) - L, L - 2)])
    masker, g = make_masker("random", tok), torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for step in range(steps):
        batch = blocks[torch.randint(len(blocks), (32,), generator=g)]
        m = masker({"input_ids": batch}, 0.15, g)
        loss = model(input_ids=m.input_ids, labels=m.labels).loss
        loss.backward(); opt.step(); opt.zero_grad()
        if step % 100 == 0 or step == steps - 1: print(f"  step {step}: MLM loss {loss.item():.3f}")
    model.eval().save_pretrained(folder); tok.save_pretrained(folder)


def timed(fn, *args, **kwargs):
    t = time.perf_counter(); out = fn(*args, **kwargs); return out, time.perf_counter() - t


def minicons_scores(mc, sents: list[str], metric: str, batch: int) -> np.ndarray:
    "minicons' PLL of each sentence (its token log-probabilities summed), `batch` sentences per sequence_score call."
    return np.array([v for i in range(0, len(sents), batch)
                     for v in mc.sequence_score(sents[i:i + batch], reduction=lambda x: x.sum(0).item(),
                                                PLL_metric=metric)])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--pairs", type=int, default=50, help="pairs per paradigm")
    ap.add_argument("--steps", type=int, default=300, help="pretraining steps of the small BERT (0: random weights)")
    ap.add_argument("--vocab", type=int, default=8000, help="WordPiece vocabulary size")
    ap.add_argument("--batch", type=int, default=128, help="maskviz: masked copies per forward pass")
    ap.add_argument("--mc-batch", type=int, default=16, help="minicons: sentences per sequence_score call")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from minicons import scorer

    folder = Path(tempfile.mkdtemp()) / "ckpt"
    print(f"training the small BERT for {args.steps} steps ...")
    small_checkpoint(folder, args.steps, args.vocab)
    blimp = load_blimp(list(PARADIGMS)).to_pandas().groupby("UID").head(args.pairs)
    sents = list(blimp.sentence_good) + list(blimp.sentence_bad)
    model = AutoModelForMaskedLM.from_pretrained(folder).eval()
    print(f"\n{len(PARADIGMS)} paradigms x {args.pairs} pairs = {len(sents)} sentences; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), {os.cpu_count()} CPUs\n")
    print("| PLL_metric | maskviz sent/s | minicons sent/s | speedup | max abs diff | BLiMP acc (maskviz / minicons) |")
    print("|---|---|---|---|---|---|")
    n = len(sents) // 2
    for metric in ("original", "within_word_l2r"):
        mc = scorer.MaskedLMScorer(str(folder), "cpu", PLL_metric=metric)
        mc.tokenizer.batch_encode_plus = mc.tokenizer.__call__  # removed in transformers 5; same signature and output
        ours, t_ours = timed(pll_scores, model, mc.tokenizer, sents, metric, batch_size=args.batch, quiet=True)
        theirs, t_theirs = timed(minicons_scores, mc, sents, metric, args.mc_batch)
        diff = float(np.abs(ours - theirs).max())
        acc = lambda s: float((s[:n] > s[n:]).mean())
        print(f"| {metric} | {len(sents) / t_ours:.1f} | {len(sents) / t_theirs:.1f} | {t_theirs / t_ours:.2f}x "
              f"| {diff:.2e} | {acc(ours):.3f} / {acc(theirs):.3f} |")


if __name__ == "__main__":
    main()
