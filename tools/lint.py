"""Lint the exported modules, tools/ and benchmarks/ with ruff (its rules are in pyproject.toml).

One finding is not ours to fix: nbdev writes each module's `__all__` itself, wrapping the list at 120 characters
and then putting `__all__ = ` in front, so its first line can run to 130. Line-length findings inside that generated
`__all__` are dropped; every other finding fails the check. Exits 1 on any finding.
"""
import json, subprocess, sys
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
    findings = json.loads(run.stdout or "[]")
    kept = [f for f in findings
            if not (f["code"] == "E501" and f["location"]["row"] in generated_all_lines(Path(f["filename"])))]
    for f in kept:
        print(f"{Path(f['filename']).relative_to(ROOT)}:{f['location']['row']}:{f['location']['column']}: "
              f"{f['code']} {f['message']}")
    print(f"ruff: {len(kept)} finding(s) in {', '.join(PATHS)} "
          f"({len(findings) - len(kept)} in nbdev's generated __all__ left out)")
    return 1 if kept else 0


if __name__ == "__main__":
    sys.exit(main())
