"The `maskviz` console script as a user runs it: a real subprocess."
import json, subprocess, sys
from pathlib import Path

import pytest

MASKVIZ = Path(sys.executable).parent / "maskviz"


def run(*args, cwd=None):
    return subprocess.run([str(MASKVIZ), *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("command", [[], ["schedules"], ["pretrain"], ["eval-blimp"], ["finetune-glue"], ["demo"], ["report"]])
def test_help_on_every_command(command):
    out = run(*command, "--help")
    assert out.returncode == 0 and out.stdout.startswith("usage: maskviz")


HEAVY = ("torch", "transformers", "datasets", "ipywidgets", "anywidget", "plotly", "spacy", "sklearn")


def test_help_and_config_errors_load_no_heavy_library(tmp_path):
    "`maskviz --help`, and a config error of `maskviz pretrain`, come back before torch or transformers load."
    (tmp_path / "c.yaml").write_text("steps: 0\n")
    code = ("import sys\nfrom maskviz.cli import main\n"
            f"for argv in (['--help'], ['pretrain', '--help'], ['pretrain', {str(tmp_path / 'c.yaml')!r}]):\n"
            "    try: main(argv)\n"
            "    except SystemExit: pass\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, input="")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert "steps must be a positive integer, got 0" in out.stdout + out.stderr


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


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, shared_data):
    "A 4-step run trained through `maskviz pretrain` with a YAML config and overrides."
    work = tmp_path_factory.mktemp("cli")
    (work / "c.yaml").write_text(f"model: tiny\nhidden_size: 64\ncorpus: wikitext-2\nsplit: validation\nmax_lines: 200\n"
                                 f"data_dir: {shared_data}\nvocab_size: 800\nblock_size: 32\nbatch_size: 4\nsteps: 50\n"
                                 f"log_every: 2\nsave_every: 2\noutput_dir: {work / 'run'}\n")
    out = run("pretrain", str(work / "c.yaml"), "--steps", "4", "--schedule", "linear(0.4,0.2)", "--progress_bar", "false")
    assert out.returncode == 0, out.stderr
    assert "step 4: loss" in out.stdout
    return work


def test_pretrain_records_and_resume(tiny_run):
    run_dir = tiny_run / "run"
    assert json.loads((run_dir / "config.json").read_text())["config"]["steps"] == 4
    assert [json.loads(l)["step"] for l in (run_dir / "metrics.jsonl").read_text().splitlines()] == [2, 4]
    again = run("pretrain", str(run_dir), "--progress_bar", "false")  # a run folder: its own config, already done
    assert again.returncode == 0, again.stderr
    assert "run already finished at step 4" in again.stderr
    assert [json.loads(l)["step"] for l in (run_dir / "metrics.jsonl").read_text().splitlines()] == [2, 4]


def test_eval_blimp_on_a_run_and_a_checkpoint(tiny_run):
    out = run("eval-blimp", str(tiny_run / "run"), "--paradigms", "anaphor_number_agreement", "--limit", "4", "--steps", "4", "--quiet")
    assert out.returncode == 0, out.stderr
    recs = [json.loads(l) for l in (tiny_run / "run" / "evals.jsonl").read_text().splitlines()]
    assert {(r["step"], r["suite"]) for r in recs} == {(4, "blimp")}
    csv = tiny_run / "pairs.csv"
    out = run("eval-blimp", str(tiny_run / "run" / "checkpoints" / "checkpoint-2"), "--paradigms", "anaphor_number_agreement",
              "--limit", "4", "--variant", "within_word_l2r", "--out", str(csv), "--quiet")
    assert out.returncode == 0, out.stderr
    assert "overall" in out.stdout and csv.read_text().startswith("level,name,accuracy")


@pytest.mark.parametrize("args, message", [
    (["pretrain", "{work}/c.yaml", "--stpes", "3"], "unknown config key(s) 'stpes'; did you mean 'steps'?"),
    (["pretrain", "{work}/c.yaml", "--batch_size", "zero"], "batch_size must be a positive integer, got 'zero'"),
    (["pretrain", "{work}/missing.yaml"], "no config file at"),
    (["pretrain", "{work}/c.yaml", "--eval_suites", "squad"], "eval_suites must be a list of suites from blimp, mlm, glue"),
    (["eval-blimp", "{work}/nothing-here"], "is neither a run folder"),
    (["eval-blimp", "{work}/run", "--steps", "3"], "no checkpoint for step 3"),
    (["finetune-glue", "{work}/run", "--tasks", "squad"], "unknown GLUE task 'squad'"),
])
def test_user_errors_exit_2_in_one_line(tiny_run, args, message):
    out = run(*[a.format(work=tiny_run) for a in args])
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert message in out.stderr and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_report_is_one_page_that_draws_offline(tiny_run, browser):
    "`maskviz report` writes one HTML file whose every figure draws in Chromium with no error and no request off the page."
    page_file = tiny_run / "report.html"
    out = run("report", str(tiny_run / "run"), "--out", str(page_file), "--title", "tiny")
    assert out.returncode == 0, out.stderr
    assert f"wrote {page_file}" in out.stdout and "4/4" in out.stdout  # the summary table: steps done of steps
    html = page_file.read_text()
    assert "<script src=" not in html and "What the policies mask" in html
    figures = html.count('class="plotly-graph-div"')
    assert figures >= 5  # schedules, training, and the POS/Zipf/rank figures of the mask statistics
    page = browser.new_page()
    problems = []
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: not r.url.startswith(("file:", "data:", "blob:")) and problems.append(f"off-page request: {r.url}"))
    page.goto(page_file.as_uri())
    page.wait_for_function("n => document.querySelectorAll('.js-plotly-plot svg.main-svg').length >= n", arg=figures, timeout=20_000)
    page.close()
    assert not problems, problems


@pytest.mark.parametrize("args, message", [
    (["report", "{work}/nothing-here"], "nothing-here does not exist"),
    (["report", "{work}/run/tokenizer"], "tokenizer is not a run folder"),
    (["report", "{work}/run", "--out", "{work}/report.pdf"], "--out must name an .html file"),
])
def test_report_errors(tiny_run, args, message):
    out = run(*[a.format(work=tiny_run) for a in args])
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr
