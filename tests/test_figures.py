"Figures (maskviz.figures) draw without any widget library; the dashboards pass their settings on to them."
import subprocess, sys

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
