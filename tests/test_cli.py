"The `maskviz` console script as a user runs it: a real subprocess."
import subprocess, sys
from pathlib import Path

import pytest

MASKVIZ = Path(sys.executable).parent / "maskviz"


def run(*args, cwd=None):
    return subprocess.run([str(MASKVIZ), *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("command", [[], ["schedules"]])
def test_help_on_every_command(command):
    out = run(*command, "--help")
    assert out.returncode == 0 and out.stdout.startswith("usage: maskviz")


def test_no_command_is_a_usage_error():
    out = run()
    assert out.returncode == 2 and "COMMAND" in out.stderr


def test_schedules_writes_a_self_contained_figure(tmp_path):
    out = run("schedules", "linear(0.3, 0.15)", "cosine(0.3,0.15)", "--out", str(tmp_path / "fig.html"))
    assert out.returncode == 0, out.stderr
    assert "linear(0.3, 0.15)" in out.stdout and "1.50x" in out.stdout
    page = (tmp_path / "fig.html").read_text()
    assert page.count("Plotly.newPlot") == 1 and "cosine(0.3, 0.15)" in page
    assert "cdn" not in page.split("Plotly.newPlot")[0][-2000:].lower()  # plotly.js is inlined, not fetched


def test_paper_schedules_by_default():
    out = run("schedules")
    assert out.returncode == 0
    assert [line.split()[0] for line in out.stdout.splitlines()[1:]] == ["constant", "constant", "linear", "cosine", "step", "linear"]


@pytest.mark.parametrize("args, message", [
    (["schedules", "linear(0.3, 1.5)"], "end must be a masking rate in [0, 1], got 1.5"),
    (["schedules", "linaer(0.3, 0.15)"], "unknown schedule family 'linaer'"),
    (["schedules", "--out", "figure.png"], "--out must name an .html file"),
    (["schedules", "--out", "no/such/folder/f.html"], "does not exist"),
    (["schedules", "--steps", "0"], "expected a positive whole number, got '0'"),
])
def test_bad_input_exits_2_with_the_reason(args, message):
    out = run(*args)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
