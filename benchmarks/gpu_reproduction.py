"""The GPU checks of maskviz in one command that fits a 10-minute limit: training speed, full-BLiMP time, a sweep.

(a) `benchmarks/train.py` at `small` and `base`, sequence length 128, bf16: maskviz's tokens/s against the plain HF
    Trainer with `DataCollatorForLanguageModeling`, and model FLOPs utilisation (goals: >= 1.3x HF, >= 40% MFU at base);
(b) BLiMP in full (67 paradigms x 1000 pairs, 134,000 sentences) scored by PLL with a `base` model: the seconds
    (goal: under 60);
(c) as much of the `ankner-main` sweep at `mini` scale as the time left allows, several cells at once on the GPU;
    the run records (no checkpoints) are packed into OUT/ankner-mini-records.tar.gz for the docs to read.

Each stage has its own time budget and is stopped at it, so one slow stage cannot take the others' time; every number
printed is measured in this run. `--dry-run` does all three on a CPU in about a minute with tiny models and a few
steps (the tests run it), so that a lent GPU gives its results in one call:

    bash benchmarks/gpu_reproduction.sh --prepare   # here: the data and the wheels the GPU machine lacks, git-ignored
    bash benchmarks/gpu_reproduction.sh             # there (device run, carry .gpu-data and .whl)
    python benchmarks/gpu_reproduction.py --dry-run --out /tmp/gpu-dry
"""
import argparse, os, subprocess, sys, tarfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET = {"train": 170, "blimp": 100}  # seconds; the sweep gets what is left of --total


def stage(name:str, cmd:list, budget:float, log) -> int:
    "Run one stage as a subprocess, its output into the log and on the console, stopped at `budget` seconds."
    print(f"\n=== {name} (at most {budget:.0f} s): {' '.join(cmd)}", file=log, flush=True)
    print(f"=== {name} (at most {budget:.0f} s)", flush=True)
    t = time.perf_counter()
    try: rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=budget, cwd=ROOT).returncode
    except subprocess.TimeoutExpired: rc = 124
    print(f"=== {name}: exit {rc} after {time.perf_counter() - t:.0f} s", file=log, flush=True)
    print(f"=== {name}: exit {rc} after {time.perf_counter() - t:.0f} s", flush=True)
    return rc


BLIMP = r"""
import sys, time, tempfile, torch
from maskviz.config import PretrainConfig
from maskviz.data import load_corpus, train_wordpiece
from maskviz.evals import blimp_scores, blimp_accuracy
from maskviz.trainers import build_model
model_name, pairs, paradigms, batch = sys.argv[1], (int(sys.argv[2]) or None), sys.argv[3], int(sys.argv[4])
corpus = load_corpus("corpus/enwiki_2015_wikiextractor", max_lines=20000)
tok = train_wordpiece(corpus, vocab_size=30522 if model_name == "base" else 2000)
device = "cuda" if torch.cuda.is_available() else "cpu"
model = build_model(PretrainConfig(model=model_name, block_size=128), len(tok)).to(device).eval()
if device == "cuda": model = model.to(torch.bfloat16)
names = None if paradigms == "all" else paradigms.split(",")
warm = names[:1] if names else ["anaphor_number_agreement"]
blimp_scores(model, tok, warm, 5, batch_size=batch, quiet=True)  # warm-up
if device == "cuda": torch.cuda.synchronize()
t = time.perf_counter()
scored = blimp_scores(model, tok, names, pairs, batch_size=batch, quiet=True)
if device == "cuda": torch.cuda.synchronize()
s = time.perf_counter() - t
print(f"BLiMP PLL: {model_name} model ({sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters, "
      f"{'bf16 on ' + torch.cuda.get_device_name() if device == 'cuda' else 'fp32 on the CPU'}), "
      f"{len(scored)} pairs ({2 * len(scored)} sentences) of {scored.UID.nunique()} paradigms in {s:.1f} s: "
      f"{len(scored) / s:,.0f} pairs/s; batch {batch}")
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="tiny models and a few steps, on the CPU")
    ap.add_argument("--out", default=os.environ.get("OUT", "gpu-out"), help="where the log and records go ($OUT)")
    ap.add_argument("--total", type=float, default=540, help="seconds for the three stages (a command's limit: 600)")
    args = ap.parse_args()
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    if not os.environ.get("MASKVIZ_DATA"):
        local = ROOT/".gpu-data"
        os.environ["MASKVIZ_DATA"] = str(local if local.is_dir() else ROOT.parent/"shared"/"data")
    py, start = sys.executable, time.perf_counter()
    cli = [py, "-c", "import sys; from maskviz.cli import main; sys.exit(main(sys.argv[1:]))"]
    with open(out/"gpu_reproduction.log", "w") as log:
        print(f"MASKVIZ_DATA={os.environ['MASKVIZ_DATA']} dry_run={args.dry_run}", file=log, flush=True)
        subprocess.run([py, "-c", "import torch, transformers; print('torch', torch.__version__, 'cuda', "
                        "torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '', "
                        "'transformers', transformers.__version__)"], stdout=log, stderr=subprocess.STDOUT)
        if args.dry_run:
            train = [py, "benchmarks/train.py", "--models", "tiny", "--steps", "6", "--warmup", "2", "--repeats", "1",
                     "--lines", "300", "--vocab", "1000", "--threads", "1"]
            blimp = [py, "-c", BLIMP, "tiny", "10", "anaphor_number_agreement,principle_A_case_1", "64"]
            sweep = ["ankner-main", "--model", "tiny", "--hidden_size", "64", "--steps", "4", "--max_lines", "300",
                     "--vocab_size", "600", "--eval_every", "2", "--save_every", "2", "--eval_max_lines", "20",
                     "--eval_blimp_limit", "3",
                     "--eval_blimp_paradigms", "[anaphor_number_agreement, principle_A_case_1]"]
            jobs = "1"
        else:
            train = [py, "benchmarks/train.py", "--models", "small", "base", "--bf16", "--steps", "60", "--warmup",
                     "10", "--repeats", "1", "--batch-size", "128", "--vocab", "30522"]
            blimp = [py, "-c", BLIMP, "base", "0", "all", "1024"]
            sweep = ["ankner-main", "--model", "mini", "--bf16", "true", "--steps", "3000", "--batch_size", "64",
                     "--eval_every", "500", "--save_every", "500", "--max_lines", "60000"]
            jobs = "5"
        stage("training speed (benchmarks/train.py)", train, BUDGET["train"], log)
        stage("BLiMP PLL time", blimp, BUDGET["blimp"], log)
        left = args.total - (time.perf_counter() - start)
        records = out/"ankner-mini"
        stage("ankner-main sweep", cli + ["sweep", *sweep, "--out", str(records), "--jobs", jobs, "--no-report"],
              max(left, 30), log)
        with tarfile.open(out/"ankner-mini-records.tar.gz", "w:gz") as tar:
            for p in sorted(records.rglob("*")) if records.is_dir() else []:
                rel = p.relative_to(records)
                if p.is_file() and "checkpoints" not in rel.parts and ".submitit" not in rel.parts:
                    tar.add(p, arcname=str(Path("ankner-mini")/rel))
    print((out/"gpu_reproduction.log").read_text()[-6000:])


if __name__ == "__main__":
    main()
