"""Lint the exported modules, tools/ and benchmarks/ with ruff (its rules are in pyproject.toml).

One long line is not ours to fix: nbdev writes each module's `__all__` itself, wrapping the names at 120 characters
and then putting `__all__ = [` in front, so its first line can reach 131. pyproject.toml lets ruff's E501 allow that
much (so a plain `ruff check` passes too), and this script holds every other line to ruff's `line-length` (120).
Exits 1 on any finding.
"""
import json, subprocess, sys, tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["maskviz", "tools", "benchmarks"]


def generated_all_lines(path: Path) -> set[int]:
    "The line numbers (1-based) of nbdev's generated `__all__` assignment in `path`."
    lines, out, inside = path.read_text(encoding="utf-8").splitlines(), set(), False
    for i, line in enumerate(lines, 1):
        if line.startswith("__all__ = ["): inside = True
        if inside:
            out.add(i)
            if line.rstrip().endswith("]"): inside = False
    return out


def main() -> int:
    ruff = Path(sys.executable).parent / "ruff"
    run = subprocess.run([str(ruff), "check", "--output-format", "json", *PATHS], cwd=ROOT, capture_output=True,
                         text=True)
    if run.returncode not in (0, 1):
        print(run.stdout, run.stderr)
        return 1
    kept = [(Path(f["filename"]), f["location"]["row"], f["location"]["column"], f"{f['code']} {f['message']}")
            for f in json.loads(run.stdout or "[]")]
    limit = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["ruff"]["line-length"]
    left_out = 0
    for path in sorted(p for d in PATHS for p in (ROOT / d).rglob("*.py") if p.name != "_modidx.py"):
        generated = generated_all_lines(path)
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if len(line) <= limit: continue
            if i in generated: left_out += 1
            elif not any(k[:2] == (path, i) for k in kept):
                kept.append((path, i, limit + 1, f"E501 Line too long ({len(line)} > {limit})"))
    for path, row, col, text in sorted(kept):
        print(f"{path.relative_to(ROOT)}:{row}:{col}: {text}")
    print(f"ruff: {len(kept)} finding(s) in {', '.join(PATHS)} "
          f"({left_out} long line(s) in nbdev's generated __all__ left out)")
    return 1 if kept else 0


if __name__ == "__main__":
    sys.exit(main())
