"The built docs site in headless Chromium: every page draws each of its figures (the schedules figure in full), and no page logs an error or reaches offline."
import functools, http.server, os, re, subprocess, sys, threading
from pathlib import Path

import pytest
from nbdev.config import nbpath2html

from maskviz.schedules import PAPER_SCHEDULES

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
SCHEDULES_PAGE = nbpath2html(Path("00_schedules.ipynb")).name  # the page nbdev names after nbs/00_schedules.ipynb


@pytest.fixture(scope="session")
def docs_site(tmp_path_factory) -> Path:
    "The built site: $MASKVIZ_DOCS_DIR (CI builds it first), else a fresh build with tools/build_docs.py."
    if os.environ.get("MASKVIZ_DOCS_DIR"):
        site = Path(os.environ["MASKVIZ_DOCS_DIR"])
        if not (site / "index.html").exists(): pytest.fail(f"MASKVIZ_DOCS_DIR={site} holds no built site (no index.html)")
        return site
    site = tmp_path_factory.mktemp("site")
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "build_docs.py"), "--out", str(site)],
                         cwd=ROOT, capture_output=True, text=True)
    if run.returncode: pytest.fail(f"tools/build_docs.py failed:\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}")
    return site


@pytest.fixture(scope="session")
def docs_url(docs_site):
    "The site served over HTTP on a free local port."
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(docs_site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def open_page(browser, url:str):
    "A new page at `url`, with the errors it logs and the requests it makes off the local server."
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = []
    page.on("console", lambda m: m.type == "error" and problems.append(f"console error: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    local = url.split("/")[2]
    page.on("request", lambda r: r.url.split("/")[2:3] != [local] and not r.url.startswith(("data:", "blob:"))
            and problems.append(f"off-site request: {r.url}"))
    page.goto(url, wait_until="networkidle")
    return page, problems


def test_schedules_figure_draws(browser, docs_url, tmp_path):
    page, problems = open_page(browser, f"{docs_url}/{SCHEDULES_PAGE}")
    from playwright.sync_api import expect
    figure = page.locator(".plotly-graph-div").last  # the page ends with plot_schedules(PAPER_SCHEDULES)
    expect(figure.locator("svg.main-svg").first).to_be_visible()
    lines = figure.locator("g.trace.scatter")
    expect(lines).to_have_count(len(PAPER_SCHEDULES))
    drawn = lines.locator("path.js-line").evaluate_all("ps => ps.filter(p => (p.getAttribute('d') || '').length > 10).length")
    assert drawn == len(PAPER_SCHEDULES), f"{drawn} of {len(PAPER_SCHEDULES)} schedule lines have a path"
    figure.scroll_into_view_if_needed()
    page.screenshot(path=tmp_path / "schedules.png", full_page=True)
    figure.screenshot(path=tmp_path / "schedules_figure.png")
    print(f"screenshots in {tmp_path}")
    assert not problems, "\n".join(problems)
    page.close()


FIGURE_DIV = re.compile(r'<div id="([^"]+)" class="plotly-graph-div"')  # one per figure the build wrote into a page

# The figures (by div id) that did not draw: no plotly svg, or no traces in it.
UNDRAWN = """ids => ids.filter(id => { const el = document.getElementById(id);
    return !(el && el.querySelector('svg.main-svg') && (el._fullData || []).length > 0); })"""


def test_every_page_loads_cleanly(browser, docs_url, docs_site):
    "Every page draws each figure in it, logs no error and fetches nothing from off the site (it must work offline)."
    from playwright.sync_api import TimeoutError
    problems, held = [], 0
    for html in sorted(docs_site.rglob("*.html")):
        figures = FIGURE_DIV.findall(html.read_text(encoding="utf-8"))
        page, found = open_page(browser, f"{docs_url}/{html.relative_to(docs_site).as_posix()}")
        if figures:
            try: page.wait_for_function(f"ids => ({UNDRAWN})(ids).length === 0", arg=figures, timeout=10_000)
            except TimeoutError: found += [f"figure #{f} did not draw" for f in page.evaluate(UNDRAWN, figures)]
        if (divs := page.locator(".plotly-graph-div").count()) != len(figures):
            found.append(f"{divs} plotly figures on the page, but the HTML holds {len(figures)}")
        held += len(figures)
        problems += [f"{html.relative_to(docs_site)}: {p}" for p in found]
        page.close()
    assert not problems, "\n".join(problems)
    assert held, "no page of the site holds a plotly figure: the build dropped them"
