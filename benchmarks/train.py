"""Training throughput: maskviz's trainer against the plain HF Trainer with DataCollatorForLanguageModeling.

Both train the same BERT (same dimensions, same initial weights) on the same packed blocks of 128 tokens, with the
same batch size, optimizer and learning-rate schedule, masking 15% of the tokens. maskviz's side is `pretrain`
exactly as users run it (scheduled masking on the device inside the step, the sparse MLM head, run records);
HF's side is `Trainer` + `BertForMaskedLM` + `DataCollatorForLanguageModeling(mlm_probability=0.15)` masking in the
DataLoader. One callback, given to both, stamps the time at the end of every optimizer step; tokens/s is the
median over the steps after `--warmup`. On a GPU it adds bf16 autocast and model FLOPs utilisation (6 x params x
tokens/s over the device's bf16 peak).

    python benchmarks/train.py                                   # CPU: tiny, 2 threads
    python benchmarks/train.py --models tiny mini --threads 2
    python benchmarks/train.py --models small base --bf16        # on a GPU

Reads $MASKVIZ_DATA/corpus/enwiki_2015_wikiextractor (default: ../shared/data next to the repository).
"""
import argparse, os, statistics, tempfile, time
from pathlib import Path

import torch
from transformers import (BertForMaskedLM, DataCollatorForLanguageModeling, PrinterCallback, Trainer, TrainerCallback,
                          TrainingArguments)

from maskviz.corpora import make_blocks
from maskviz.data import load_corpus, train_wordpiece
from maskviz.config import PretrainConfig
from maskviz.trainers import build_model, mfu, peak_flops, pretrain


class StepClock(TrainerCallback):
    "The wall time at the end of every optimizer step."
    def __init__(self): self.times = []
    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available(): torch.cuda.synchronize()
        self.times.append(time.perf_counter())

    def tokens_per_s(self, tokens_per_step:int, warmup:int) -> float:
        gaps = [b - a for a, b in zip(self.times[warmup:], self.times[warmup + 1:])]
        if not gaps: raise ValueError("no timed steps: --steps must exceed --warmup + 1")
        return tokens_per_step / statistics.median(gaps)


def data_root() -> Path:
    root = Path(os.environ.get("MASKVIZ_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    if not (root / "corpus" / "enwiki_2015_wikiextractor").is_dir():
        raise FileNotFoundError(f"{root}/corpus/enwiki_2015_wikiextractor not found; "
                                "set MASKVIZ_DATA to the local data folder")
    return root


def config(model:str, args, work:Path, tag:str) -> PretrainConfig:
    return PretrainConfig(model=model, corpus="corpus/enwiki_2015_wikiextractor", max_lines=args.lines,
                          data_dir=str(data_root()), tokenizer=str(work / "tokenizer"), vocab_size=args.vocab,
                          block_size=128, batch_size=args.batch_size, steps=args.steps, lr=5e-4, warmup=0.06,
                          schedule="constant(0.15)", log_every=args.steps, save_every=10 * args.steps, bf16=args.bf16,
                          progress_bar=False, output_dir=str(work / tag), seed=0)


def run_ours(cfg:PretrainConfig, warmup:int) -> float:
    clock = StepClock()
    pretrain(cfg, callbacks=[clock])
    return clock.tokens_per_s(cfg.batch_size * cfg.block_size, warmup)


def run_hf(cfg:PretrainConfig, tokenizer, blocks, warmup:int) -> float:
    sparse = build_model(cfg, len(tokenizer))  # the same initial weights as ours, as a plain BertForMaskedLM
    model = BertForMaskedLM(sparse.config)
    model.load_state_dict(sparse.state_dict())
    args = TrainingArguments(output_dir=cfg.output_dir, max_steps=cfg.steps, per_device_train_batch_size=cfg.batch_size,
                             learning_rate=cfg.lr, warmup_steps=cfg.warmup, weight_decay=cfg.weight_decay,
                             lr_scheduler_type="linear", logging_steps=cfg.steps, save_strategy="no", seed=cfg.seed,
                             bf16=cfg.bf16, report_to=[], use_cpu=not torch.cuda.is_available(), disable_tqdm=True)
    clock = StepClock()
    trainer = Trainer(model=model, args=args, train_dataset=blocks.select_columns(["input_ids", "special_tokens_mask"]),
                      data_collator=DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15), callbacks=[clock])
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    return clock.tokens_per_s(cfg.batch_size * cfg.block_size, warmup)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["tiny"], help="model presets (tiny, mini, small, base)")
    p.add_argument("--steps", type=int, default=40, help="optimizer steps per run")
    p.add_argument("--warmup", type=int, default=5, help="steps left out of the timing")
    p.add_argument("--batch-size", type=int, default=32, help="blocks of 128 tokens per step")
    p.add_argument("--vocab", type=int, default=8192, help="WordPiece vocabulary size (BERT's: 30522)")
    p.add_argument("--lines", type=int, default=20_000, help="corpus lines read")
    p.add_argument("--repeats", type=int, default=2, help="runs per side; the best is reported")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (CPU)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import datasets, transformers
    datasets.disable_progress_bars(); transformers.logging.set_verbosity_error()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    peak = peak_flops(device)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        first = config(args.models[0], args, work, "setup")
        corpus = load_corpus(first.corpus, max_lines=first.max_lines, data_dir=first.data_dir)
        tokenizer = train_wordpiece(corpus, vocab_size=args.vocab)
        tokenizer.save_pretrained(work / "tokenizer")
        blocks = make_blocks(corpus, tokenizer, block_size=128, annotate=False)
        print(f"device {device}{' (' + torch.cuda.get_device_name() + ')' if device == 'cuda' else ''}, "
              f"{args.threads} threads, "
              f"{len(blocks)} blocks of 128, batch {args.batch_size}, vocab {len(tokenizer)}, {args.steps} steps "
              f"(first {args.warmup} untimed), best of {args.repeats}{', bf16' if args.bf16 else ''}\n")
        rows = []
        for name in args.models:
            ours, hf = [], []
            for r in range(args.repeats):
                ours.append(run_ours(config(name, args, work, f"ours-{name}-{r}"), args.warmup))
                hf.append(run_hf(config(name, args, work, f"hf-{name}-{r}"), tokenizer, blocks, args.warmup))
            params = sum(p.numel() for p in build_model(config(name, args, work, "count"), len(tokenizer)).parameters())
            rows.append((name, params, max(hf), max(ours)))
    print(f"{'model':6} {'params':>8} {'HF Trainer+collator':>20} {'maskviz':>12} {'ratio':>6} {'MFU HF':>7} "
          f"{'MFU maskviz':>11}")
    m = lambda params, tps: f"{mfu(params, tps, peak):.1%}" if peak else "-"
    for name, params, hf, ours in rows:
        print(f"{name:6} {params / 1e6:7.1f}M {hf:>14,.0f} tok/s {ours:>6,.0f} tok/s {ours / hf:5.2f}x "
              f"{m(params, hf):>7} {m(params, ours):>11}")


if __name__ == "__main__":
    main()
