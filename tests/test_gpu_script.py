"""The GPU script's dry run: the three stages of benchmarks/gpu_reproduction.py on the CPU with tiny models, so that
a lent GPU gives its results in one call."""
import subprocess, sys, tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_reproduction_dry_run(shared_data, tmp_path):
    out = subprocess.run([sys.executable, str(ROOT/"benchmarks"/"gpu_reproduction.py"), "--dry-run", "--out",
                          str(tmp_path)], capture_output=True, text=True, timeout=600,
                         env={"MASKVIZ_DATA": str(shared_data), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
                              "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-3000:]
    log = (tmp_path/"gpu_reproduction.log").read_text()
    for name in ("training speed (benchmarks/train.py)", "BLiMP PLL time", "ankner-main sweep"):
        assert f"=== {name}: exit 0" in log, log[-3000:]
    assert "tok/s" in log and "BLiMP PLL: tiny model" in log and "15 cells in" in log
    with tarfile.open(tmp_path/"ankner-mini-records.tar.gz") as tar:
        names = tar.getnames()
    assert "ankner-mini/constant-0.15_seed-0/evals.jsonl" in names and not any("checkpoint" in n for n in names)
