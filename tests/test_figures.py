"""Figures (maskviz.figures) draw without any widget library; the dashboards pass their settings on to them; the
figures, the report and the dashboards show text from data (run names, config values, task names, sentences) as the
literal text it is, in Python and in Chromium."""
import subprocess, sys

import pytest

from maskviz.schedules import constant, linear

WIDGETS = ("ipywidgets", "anywidget", "ipykernel", "comm")


def test_figures_and_report_load_no_widget_library():
    code = ("import sys, maskviz.figures, maskviz.report\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(WIDGETS)!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_figure_is_a_plain_plotly_figure():
    import plotly.graph_objects as go
    from maskviz.figures import plot_schedules
    fig = plot_schedules({"decay": linear(0.3, 0.15), "flat": constant(0.2)})
    assert type(fig) is go.Figure and [t.name for t in fig.data] == ["decay · mean 22.5%", "flat · mean 20.0%"]
    assert set(fig.data[1].y) == {0.2}


def test_schedule_explorer_draws_its_reference():
    from maskviz.dashboards import schedule_explorer
    explorer = schedule_explorer("linear", 0.3, 0.15, reference=constant(0.2))
    assert explorer.reference == constant(0.2)
    reference = [t for t in explorer.figure.data if t.name.startswith("reference")]
    assert len(reference) == 1 and set(reference[0].y) == {0.2}
    assert explorer.budget.value.endswith("1.12× the tokens of constant(0.2)")  # 22.5% / 20%


# ---- text from data is shown as text --------------------------------------------------------------------

BAD = "<img src=x onerror=alert(1)>"     # a run folder's name
SCRIPT = "<script>alert(1)</script>"     # a config value, a task name, a sentence
BR = "two<br>lines"                      # a run folder's name in plotly's own markup: a line break unescaped
SHOWN = {BAD: "&lt;img src=x onerror=alert(1)&gt;", SCRIPT: "&lt;script&gt;alert(1)&lt;/script&gt;",
         BR: "two&lt;br&gt;lines"}  # escaped
RAW = ("<img", "<script", BR)


def fake_run(path, schedule, evals=(), **config):
    "A run folder as trainers.pretrain writes it, with a made-up loss every 10 of 100 steps and the given evals."
    from maskviz.config import PretrainConfig
    from maskviz.records import RunDir
    from maskviz.schedules import parse_schedule
    cfg = PretrainConfig(schedule=schedule, steps=100, output_dir=str(path), **config)
    run = RunDir(path).start(cfg.to_dict())
    run.update_config(schedule=parse_schedule(schedule).to_dict(), policy={"policy": cfg.policy}, model=cfg.dims)
    rate = parse_schedule(schedule)
    run.append("metrics", [{"step": s, "progress": (s - 1) / 100, "mask_rate": rate((s - 1) / 100), "loss": 7 - s / 100,
                            "lr": 1e-3} for s in range(10, 101, 10)])
    run.append("evals", list(evals))
    return path


def blimp(step, acc):
    return [{"step": step, "suite": "blimp", "task": task, "metric": "pll_accuracy", "value": acc}
            for task in ("overall", f"phenomenon:{SCRIPT}", "phenomenon:anaphor_agreement")]


def hostile_runs(root):
    "Run folders named BAD and BR, and one whose optimizer (a config value that names its group) and a BLiMP phenomenon are SCRIPT."
    fake_run(root / BAD, "constant(0.15)", blimp(50, 0.6) + blimp(100, 0.7))
    fake_run(root / BR, "constant(0.15)", blimp(50, 0.61) + blimp(100, 0.72), seed=1)
    fake_run(root / "other", "linear(0.3, 0.15)", blimp(50, 0.62) + blimp(100, 0.75), optimizer=SCRIPT)
    return root


def drawn_strings(obj, key=None):
    "Every string of a figure's JSON that plotly.js may draw: all but meta, legendgroup and uid."
    if key in ("meta", "legendgroup", "uid"): return
    if isinstance(obj, str): yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items(): yield from drawn_strings(v, k)
    elif isinstance(obj, list):
        for v in obj: yield from drawn_strings(v, key)


def assert_shown_as_text(fig, *wanted):
    "No raw tag in what plotly draws of `fig`, and each of `wanted` there in its escaped form."
    import json
    strings = list(drawn_strings(json.loads(fig.to_json())))
    assert not [s for s in strings if any(r in s for r in RAW)], [s for s in strings if any(r in s for r in RAW)]
    for w in wanted: assert any(SHOWN[w] in s for s in strings), (w, strings)


def mask_frames():
    "Hand-made frames of mask_profiles: policies BAD and 'random', at rate 0.15."
    import pandas as pd
    policies = [BAD, "random"]
    pos = pd.DataFrame([{"policy": p, "rate": 0.15, "pos": t, "masked": 5, "masked_share": s, "corpus_share": c}
                        for p in policies for t, s, c in (("NOUN", 0.6, 0.5), ("VERB", 0.4, 0.5))])
    zipf = pd.DataFrame([{"policy": p, "rate": r, "rank": k, "frequency": 0.5 / k, "fit": 0.5 / k}
                         for p, r in (("corpus", None), (BAD, 0.15), ("random", 0.15)) for k in (1, 2, 4, 8)])
    rank = pd.DataFrame([{"policy": p, "rate": 0.15, "rank_bin": b, "masked": 3, "masked_share": 0.5, "corpus_share": 0.5}
                         for p in policies for b in ("1-10", "11-100")])
    names = ["corpus", *policies]
    divergence = pd.DataFrame([{"rate": 0.15, "a": a, "b": b, "js_pos": 0.1 * (a != b), "js_rank": 0.2 * (a != b)}
                               for a in names for b in names])
    return {"pos": pos, "zipf": zipf, "rank": rank, "divergence": divergence}


def test_figures_show_names_from_data_as_text(tmp_path):
    "Names, hover texts, titles, tick and subplot labels from runs and evaluations reach plotly escaped; meta keeps the raw name."
    import pandas as pd
    from maskviz.analysis import load_runs, speedup_to_target, trajectory
    from maskviz.figures import (plot_divergence, plot_mask_profiles, plot_pos, plot_rank_bins, plot_schedules,
                                 plot_trajectories, plot_trajectory_grid, plot_training, plot_zipf)
    runs = load_runs(hostile_runs(tmp_path))
    assert runs.configs.run.tolist() == [BAD, "other", BR] and SCRIPT in runs.configs.group.iloc[1]
    assert_shown_as_text(plot_schedules(dict(zip(runs.configs.group, runs.configs.schedule))), SCRIPT)
    assert_shown_as_text(plot_schedules({BAD: "constant(0.15)"}, title="plain"), BAD)
    training = plot_training(runs.metrics)
    assert_shown_as_text(training, BAD, BR)
    assert training.data[0].meta == BAD  # what the tests and dashboards match on stays the raw name
    traj = trajectory(runs, "blimp")
    speed = speedup_to_target(traj, baseline=runs.configs.group.iloc[0])
    assert_shown_as_text(plot_trajectories(traj, rates=runs.metrics, speedup=speed), SCRIPT)
    phen = pd.concat([trajectory(runs, "blimp", t) for t in runs.evals.task.unique() if t.startswith("phenomenon:")])
    grid = plot_trajectory_grid(phen)
    assert_shown_as_text(grid, SCRIPT)
    assert SHOWN[SCRIPT] in [a.text for a in grid.layout.annotations]  # the phenomenon's panel title
    by_run = traj.assign(group=traj.run, task=SCRIPT)  # a task name in the legend, the title and the y axis
    assert_shown_as_text(plot_trajectories(by_run), BAD, BR, SCRIPT)
    frames = mask_frames()
    assert_shown_as_text(plot_pos(frames["pos"], reference=SCRIPT), BAD, SCRIPT)
    assert_shown_as_text(plot_zipf(frames["zipf"]), BAD)
    assert_shown_as_text(plot_rank_bins(frames["rank"]), BAD)
    assert_shown_as_text(plot_mask_profiles(frames), BAD)
    heat = plot_divergence(frames["divergence"])
    assert_shown_as_text(heat, BAD)
    assert list(heat.data[0].x) == ["corpus", SHOWN[BAD], "random"]  # tick labels, and what %{x} shows in the hover


def test_plotly_writes_figure_json_that_cannot_close_its_script():
    import plotly.graph_objects as go
    fig = go.Figure(go.Scatter(x=[1], y=[1], name="</script><script>alert(1)</script>", meta="</script>"))
    div = fig.to_html(full_html=False, include_plotlyjs=False)
    assert div.count("</script>") == 1 and "alert(1)" in div  # the value is there, as \u003c/script\u003e


def test_report_shows_run_names_and_config_values_as_text(tmp_path):
    from maskviz.report import report_html
    page = report_html(hostile_runs(tmp_path / "runs"), title=SCRIPT)
    head, body = page.split("</head>", 1)  # plotly.js itself is in the head
    assert f"<title>{SHOWN[SCRIPT]}</title>" in head and f"<h1>{SHOWN[SCRIPT]}</h1>" in body
    assert "<img" not in body and "<script>alert" not in body
    assert body.count("<script") == body.count('class="plotly-graph-div"')  # no script but each figure's own
    assert f"<td>{SHOWN[BAD]}</td>" in body and f"<td>{SHOWN[BR]}</td>" in body  # the summary table
    assert f"optimizer={SHOWN[SCRIPT]}</td>" in body  # the group a config value names
    assert f"{SHOWN[BAD]}/tokenizer" in body  # the run's path, in the meta line and the mask section's note
    assert f'"name":"{SHOWN[BAD]}"' in body  # the training figure's trace name, in its JSON


@pytest.mark.browser
def test_report_with_hostile_names_runs_no_script_in_chromium(tmp_path, browser):
    "In Chromium the page fires no dialog, holds no <img> and no extra <script>, and shows the names as the text they are."
    from maskviz.report import write_report
    out = write_report(hostile_runs(tmp_path / "runs"), tmp_path / "report.html", title=f"report {SCRIPT}")
    figures = out.read_text().count('class="plotly-graph-div"')
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    dialogs, problems = [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    try:
        page.goto(out.as_uri())
        page.wait_for_function("n => document.querySelectorAll('.js-plotly-plot svg.main-svg').length >= n",
                               arg=figures, timeout=20_000)
        page.wait_for_timeout(300)  # an onerror would fire by now
        dom = page.evaluate("""() => ({img: document.querySelectorAll('img').length,
            scripts: document.querySelectorAll('script').length,
            legend: [...document.querySelectorAll('.legendtext')].map(e => e.textContent),
            annotations: [...document.querySelectorAll('.annotation-text')].map(e => e.textContent)})""")
        body = page.inner_text("body")
        title = page.title()
    finally:
        page.close()
    assert not dialogs and not problems, (dialogs, problems)
    assert dom["img"] == 0 and dom["scripts"] == 1 + figures  # plotly.js and one per figure
    assert BAD in body and BR in body and SCRIPT in body and title == f"report {SCRIPT}"  # the summary table, the mask note, the title
    assert BAD in dom["legend"] and BR in dom["legend"]  # the training figure's legend: the runs' names, literally
    assert any(SCRIPT in t for t in dom["legend"])  # a group that a config value names
    assert SCRIPT in dom["annotations"]  # the phenomenon's panel title in BLiMP by phenomenon


def test_dashboards_show_names_from_data_as_text(tmp_path):
    "The trajectory dashboard's figure and the mask inspector's HTML widgets show what data holds as text."
    from maskviz.dashboards import MaskInspector, _html, trajectory_dashboard
    from maskviz.data import train_wordpiece
    dashboard = trajectory_dashboard(hostile_runs(tmp_path))
    assert dashboard.shown.options == (BAD, "other", BR)  # ipywidgets sets an option's textContent: shown as text
    assert_shown_as_text(dashboard.figure, SCRIPT)
    assert dashboard.runs.configs.group.iloc[1] in [t.meta for t in dashboard.figure.data]  # meta: the raw group
    dashboard.shown.value = ()
    assert dashboard.message.value == "<b>pick at least one run that has this evaluation</b>"
    assert _html(SCRIPT, bold=True) == f"<b>{SHOWN[SCRIPT]}</b>"
    text = f"The cat {SCRIPT} sat on the mat {BAD} today."
    tok = train_wordpiece([text] * 4 + ["the dog sat on the log"] * 4, vocab_size=200, min_frequency=1)
    inspector = MaskInspector(tok, text=text, policy="random", rate=0.5)
    page = inspector.tokens.value
    assert "&lt;" in page and "&gt;" in page and not any(r in page for r in RAW)  # each token's text escaped
    inspector.text.value = " "  # an error message in the widget, escaped as well
    assert inspector.tokens.value.startswith("<b>") and "<img" not in inspector.tokens.value
