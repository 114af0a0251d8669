"""The comparison dashboard (maskviz.dashboards.comparison_dashboard) on synthetic sweeps with known answers."""
import tempfile
from pathlib import Path

import fastcore.test as ft

from maskviz.dashboards import comparison_dashboard


def test_comparison_dashboard():
    from maskviz.compare import synthetic_runs
    seeded = synthetic_runs(Path(tempfile.mkdtemp())/"cmp",
                            {"constant(0.15)": {s: {0: 9.0, 100: 3.0 + 0.05 * s, 200: 2.0 + 0.05 * s} for s in range(3)},
                             "constant(0.3)": {s: {0: 9.0, 100: 2.5 + 0.05 * s, 200: 1.8 + 0.05 * s} for s in range(3)}})
    dash = comparison_dashboard(seeded)
    ft.test_eq(dash.baseline.value, "constant(0.15)")
    ft.test_eq(list(dash.bars.data[0].text), ["", "*"])
    assert "better than the baseline" in dash.table.value and len(dash.speed.data) >= 1
    dash.baseline.value = "constant(0.3)"  # the other way round: the one-sided test asks "better?", and it is not
    assert "no significant difference" in dash.table.value
    one = synthetic_runs(Path(tempfile.mkdtemp())/"one", {"constant(0.15)": {0: {10: 1.0}}})
    ft.test_fail(lambda: comparison_dashboard(one),
              contains="the runs form one group")
