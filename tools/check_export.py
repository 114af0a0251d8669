"""Check that maskviz/*.py are exactly what `nbdev-export` makes from nbs/.

Exports into a scratch copy (the working tree is left alone) and compares file by file. On a difference it names
the notebook to edit, shows the start of the diff and exits 1.
"""
import difflib, re, shutil, subprocess, sys, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB = "maskviz"
HAND_WRITTEN = {"__init__.py"}  # holds __version__; nbdev only appends to it


def source_notebook(text: str) -> str:
    "The notebook a generated module names in its header, or '?'."
    m = re.search(r"File to edit: \.\./(\S+\.ipynb)", text)
    return m.group(1) if m else "?"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shutil.copy(ROOT / "pyproject.toml", tmp)
        shutil.copytree(ROOT / "nbs", tmp / "nbs")
        (tmp / LIB).mkdir()
        for name in HAND_WRITTEN: shutil.copy(ROOT / LIB / name, tmp / LIB / name)
        export = Path(sys.executable).parent / "nbdev-export"
        run = subprocess.run([str(export)], cwd=tmp, capture_output=True, text=True)
        if run.returncode:
            print(f"nbdev-export failed:\n{run.stdout}{run.stderr}")
            return 1
        made = {p.relative_to(tmp / LIB) for p in (tmp / LIB).rglob("*.py")}
        have = {p.relative_to(ROOT / LIB) for p in (ROOT / LIB).rglob("*.py") if "__pycache__" not in p.parts}
        problems = []
        for rel in sorted(have - made):
            problems.append(f"{LIB}/{rel} is not exported by any notebook: "
                            "move its code into a notebook in nbs/ (or delete it)")
        for rel in sorted(made - have):
            problems.append(f"{LIB}/{rel} is exported by {source_notebook((tmp / LIB / rel).read_text())} "
                            "but not committed: run nbdev-export")
        for rel in sorted(made & have):
            new, old = (tmp / LIB / rel).read_text(), (ROOT / LIB / rel).read_text()
            if new == old: continue
            diff = difflib.unified_diff(old.splitlines(), new.splitlines(), f"{LIB}/{rel} (committed)",
                                        f"{LIB}/{rel} (exported)", lineterm="")
            problems.append(f"{LIB}/{rel} differs from what {source_notebook(new)} exports: "
                            "edit the notebook, not the module, "
                            "then run nbdev-export\n" + "\n".join(list(diff)[:40]))
    for p in problems: print(p)
    if not problems: print(f"{LIB}/ matches what nbs/ exports ({len(made)} modules)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
