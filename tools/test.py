"""Run every check CI runs, in order, and report each: the README's test command.

1. maskviz/*.py match what nbdev-export makes from nbs/      (tools/check_export.py)
2. README.md matches nbs/index.ipynb                          (tools/render_readme.py --check)
3. ruff finds nothing in maskviz/, tools/, benchmarks/       (tools/lint.py; rules in pyproject.toml)
4. the notebooks' test cells                                  (nbdev-test; `#| slow`/`#| gpu` cells skipped)
5. the docs site builds                                       (tools/build_docs.py -> _site/)
6. pytest, including the browser test of the built docs       (tests/)

Every step runs even after one fails, so one run shows every problem. Exits 1 if any step failed.
"""
import os, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
BIN = Path(PY).parent
SITE = ROOT / "_site"
PYTEST_NO_TESTS = 5


def step(title: str, cmd: list, env: dict | None = None, ok_codes=(0,)) -> bool:
    print(f"\n=== {title}: {' '.join(map(str, cmd))}", flush=True)
    start = time.monotonic()
    code = subprocess.run([str(c) for c in cmd], cwd=ROOT, env={**os.environ, **(env or {})}).returncode
    verdict = "ok" if code in ok_codes else f"FAILED (exit {code})"
    if code == PYTEST_NO_TESTS and "pytest" in title: verdict = "FAILED: pytest collected no tests (is tests/ missing?)"
    print(f"=== {title}: {verdict} in {time.monotonic() - start:.0f}s", flush=True)
    return code in ok_codes


def main() -> int:
    shared = ROOT.parent / "shared" / "data"
    if not os.environ.get("MASKVIZ_DATA") and shared.is_dir():  # a checkout beside the project's shared data folder
        os.environ["MASKVIZ_DATA"] = str(shared)
    no_data = "none: set MASKVIZ_DATA to a folder laid out like shared/data; notebook tests read it"
    print(f"data root: {os.environ.get('MASKVIZ_DATA') or no_data}")
    results = [
        step("export check", [PY, "tools/check_export.py"]),
        step("README check", [PY, "tools/render_readme.py", "--check"]),
        step("lint", [PY, "tools/lint.py"]),
        step("notebook tests", [BIN / "nbdev-test", "--n-workers", "2"]),
        step("docs build", [PY, "tools/build_docs.py", "--out", SITE]),
        step("pytest", [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider"], env={"MASKVIZ_DOCS_DIR": str(SITE)}),
    ]
    passed = sum(results)
    print(f"checks: {passed} passed, {len(results) - passed} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
