"""Build the HTML docs site offline from the notebooks: `python tools/build_docs.py [--out DIR]` (default `_site/`).

nbdev's own `nbdev-docs` needs Quarto, which cannot be installed here. This does the same job with Sphinx:
1. nbdev adds a `show_doc` cell after each exported definition (`add_show_docs`).
2. nbclient executes each notebook once, in its own folder, with plotly emitting static HTML. Cells that
   `nbdev-test` skips (`tst_flags` such as `slow` and `gpu`, `eval: false`, `skip_exec`) are not run and keep
   their saved outputs.
3. The rest of nbdev's doc processors run on the executed notebook (title and summary from the first markdown
   cell, `hide`/`export` cells dropped, backticked names linked), and the result is adapted to myst-nb and
   staged in `_proc/`: widgets become a note, plotly figures load the site's copy of plotly.js.
4. Sphinx + myst-nb + furo (`docs/conf.py`) renders `_proc/` to HTML with warnings as errors, and every link
   between the pages is checked.
"""
from __future__ import annotations

import argparse, html, os, posixpath, re, shutil, subprocess, sys, tempfile, time, traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from urllib.parse import unquote, urljoin

import nbformat, plotly.io, yaml
from docutils.nodes import make_id
from fastcore.nbio import dict2nb, mk_cell, nb2str, read_nb
from fastcore.xtras import str2bool
from nbclient import NotebookClient
from nbdev.config import get_config, nbpath2html
from nbdev.frontmatter import nb_frontmatter
from nbdev.process import NBProcessor
from nbdev.processors import FilterDefaults, add_show_docs, exec_show_docs, insert_warning
from nbdev.test import _skip_cell
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / "_proc"  # Sphinx source folder: the processed, executed notebooks
PLOTLY_RENDERER = "plotly_mimetype+notebook"  # a text/html output that works in a static page
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
SHOW_DOC = "maskviz_show_doc"  # metadata flag of the cells add_show_docs inserted


class NotebookError(Exception): "A notebook failed to build; the message names it."


def rel(p:Path) -> str:
    "`p` as written in messages: relative to the project when inside it."
    p = Path(p).resolve()
    return p.relative_to(ROOT).as_posix() if p.is_relative_to(ROOT) else str(p)


def find_notebooks(nbs:Path) -> list[Path]:
    "The site's notebooks in sidebar order: index, the numbered notebooks in order, then tutorials."
    visible = lambda folder: sorted(p.resolve() for p in folder.glob("*.ipynb") if not p.name.startswith(("_", ".")))
    return sorted(visible(nbs), key=lambda p: p.name != "index.ipynb") + visible(nbs / "tutorials")


def page_name(nb:Path, nbs:Path) -> str:
    "The page nbdev makes of `nb`: its path without the number prefix, e.g. `schedules` for `00_schedules.ipynb`."
    return nbpath2html(nb.relative_to(nbs)).with_suffix("").as_posix()


# ---- 1. show_doc cells ----------------------------------------------------------------------------------

def with_show_docs(src:Path, skip_flags:list[str]) -> tuple[nbformat.NotebookNode, list]:
    "`src` with nbdev's `show_doc` cells added, cells `nbdev-test` skips tagged `skip-execution`; each cell's origin."
    nb = read_nb(src)
    for i, c in enumerate(nb.cells): c.src_idx_ = i
    if not str2bool(nb_frontmatter(nb).get("skip_showdoc", False)):
        NBProcessor(nb=nb, procs=[add_show_docs], rm_directives=False).process()
    imp = mk_cell("#| hide\nfrom nbdev.showdoc import show_doc")
    imp.directives_ = imp.directives
    nb.cells.insert(0, imp)
    skip = _skip_cell(nb, skip_flags)
    origin = []
    for c in nb.cells:
        if c.pop("has_sd", False): c.metadata[SHOW_DOC] = True
        if c.cell_type == "code" and skip(c): c.metadata.setdefault("tags", []).append("skip-execution")
        origin.append(getattr(c, "src_idx_", None))
    return nbformat.reads(nb2str(nb), as_version=4), origin


# ---- 2. execution ---------------------------------------------------------------------------------------

_ansi = re.compile(r"\x1b\[[0-9;]*m")

def execute(nb:nbformat.NotebookNode, src:Path, origin:list, timeout:int):
    "Run `nb` in `src`'s folder; a failing cell raises naming the notebook and the cell."
    encrypt = Config(KernelManager={"transport_encryption": "auto"})  # else the kernel warns about plain TCP
    client = NotebookClient(nb, kernel_name="python3", timeout=timeout, store_widget_state=False, config=encrypt,
                            resources={"metadata": {"path": str(src.parent)}})
    try: client.execute()
    except Exception as e:
        i = next((i for i, c in enumerate(nb.cells)
                  if any(o.output_type == "error" for o in c.get("outputs", []))), None)
        where = "while running"
        if i is not None:
            prev = next((o for o in reversed(origin[:i + 1]) if o is not None), None)
            where = (f"cell {origin[i]} (counting from 0)" if origin[i] is not None
                     else f"the show_doc cell nbdev added after cell {prev} (counting from 0)")
            where += f":\n{nb.cells[i].source}"
        raise NotebookError(f"{rel(src)}: {where}\n{type(e).__name__}: {_ansi.sub('', str(e))}") from None


# ---- 3. outputs a static page can show -----------------------------------------------------------------

_mathjax_cdn = re.compile(r'<script src="https://cdnjs\.cloudflare\.com/ajax/libs/mathjax/[^"]*"></script>')

def widget_note(src:Path) -> dict:
    "The output shown in place of a live widget."
    msg = f"Run <code>{html.escape(rel(src))}</code> in JupyterLab to use it."
    return nbformat.v4.new_output("display_data", data={
        "text/html": f'<div class="admonition note"><p class="admonition-title">Interactive widget</p>'
                     f'<p>{msg}</p></div>',
        "text/plain": "Interactive widget: " + re.sub("<[^>]+>", "", msg)})

_progress_bar = re.compile(r"\d+%\|")  # tqdm's text: "Map:  40%|####      | 4/10 [...]"

def is_progress_bar(o) -> bool:
    "Is `o` a tqdm progress bar (a widget in Jupyter)? Pages and the README leave them out."
    data = o.get("data", {})
    return WIDGET_MIME in data and bool(_progress_bar.search(str(data.get("text/plain", ""))))


def static_outputs(cell, src:Path) -> list:
    "`cell`'s outputs: no progress bars, widgets replaced by a note, plotly figures stripped of what fails offline."
    outs = []
    for o in cell.get("outputs", []):
        data = o.get("data", {})
        if is_progress_bar(o): continue
        if WIDGET_MIME in data: o = widget_note(src)
        elif PLOTLY_MIME in data and "plotly-graph-div" not in data.get("text/html", ""):
            # a figure saved with plotly's JSON only (JupyterLab's default renderer), e.g. by a cell not run here
            data["text/html"] = plotly.io.to_html(data.pop(PLOTLY_MIME), include_plotlyjs=False, full_html=False,
                                                  validate=False)
        elif "text/html" in data:
            h = data["text/html"]
            # 5 MB of inline plotly.js; see load_plotly_js
            if "window.PlotlyConfig" in h and "plotly-graph-div" not in h: continue
            if "plotly-graph-div" in h:
                data["text/html"] = _mathjax_cdn.sub("", h)  # plotly adds MathJax from a CDN to every figure
                data.pop(PLOTLY_MIME, None)
        outs.append(o)
    return outs


# ---- 4. nbdev's doc processors, then myst-nb form ------------------------------------------------------

def nbdev_process(nb, src:Path):
    "nbdev's doc processors (as `nbdev-docs` runs them), less adding and executing show_doc cells."
    nb = dict2nb(nbformat.from_dict(nb) if isinstance(nb, dict) else nb)
    nb.path_ = str(src)
    for c in nb.cells:
        if c.metadata.get(SHOW_DOC): c.has_sd = True  # lets mv_exports put `exports` source below its docs
    done = (add_show_docs, exec_show_docs, insert_warning)
    NBProcessor(nb=nb, procs=[p for p in FilterDefaults().procs() if p not in done], rm_directives="quarto").process()
    for c in nb.cells: c.pop("has_sd", None)
    return nb


def show_doc_markdown(cell) -> str | None:
    "The markdown `show_doc` printed, without the rule and the source link that Quarto floats beside the heading."
    md = next(("".join(o["data"]["text/markdown"]) for o in cell.get("outputs", [])
               if "text/markdown" in o.get("data", {})), None)
    if md is None: return None
    md = re.sub(r"\A\s*---\s*\n", "", md)
    src = re.search(r'^\[source\]\((\S+)\)\{[^}\n]*\}\s*$', md, flags=re.M)
    if src:
        keep = src[1].startswith(("http://", "https://"))  # without a git_url nbdev writes a dead /blob/... link
        link = f'<a href="{html.escape(src[1])}" style="float:right; font-size:smaller">source</a>' if keep else ""
        md = md[:src.start()] + link + md[src.end():]
    return md.strip() + "\n"


def load_plotly_js(cells:list, page:str):
    "Load the site's one copy of plotly.js (conf.py ships it) just before the page's first figure draws."
    for c in cells:
        for o in c.get("outputs", []):
            h = o.get("data", {}).get("text/html", "")
            if "plotly-graph-div" in h:
                js = posixpath.relpath("_static/plotly.min.js", posixpath.dirname(page) or ".")
                o.data["text/html"] = f'<script src="{js}"></script>\n{h}'
                return


_option = re.compile(r"^#\|\s*([\w-]+)\s*:\s*(.*?)\s*$")

def to_myst(nb, page:str) -> nbformat.NotebookNode:
    "The nbdev-processed `nb` in the form myst-nb renders: title cell, cell tags, show_doc as markdown."
    cells = []
    for c in nb.cells:
        source = c.source if isinstance(c.source, str) else "".join(c.source)
        if c.cell_type == "raw" and source.startswith("---"):
            fm = yaml.safe_load(source.strip().strip("-")) or {}
            summary = f"\n\n{fm['description']}" if fm.get("description") else ""
            cells.append(nbformat.v4.new_markdown_cell(f"# {fm.get('title') or Path(page).name}{summary}"))
        elif c.cell_type == "markdown":
            new = nbformat.v4.new_markdown_cell(source)
            if c.get("attachments"): new.attachments = c.attachments
            cells.append(new)
        elif c.cell_type == "code":
            lines = source.splitlines()
            opts = {}
            while lines and (m := _option.match(lines[0])): opts[m[1]] = m[2].strip("\"'"); lines.pop(0)
            if opts.get("include") == "false": continue
            if c.metadata.get(SHOW_DOC) or re.match(r"show_doc\(", "\n".join(lines)):
                if md := show_doc_markdown(c): cells.append(nbformat.v4.new_markdown_cell(md))
                continue
            tags = [t for t in c.metadata.get("tags", []) if t != "skip-execution"]
            if opts.get("echo") == "false": tags.append("remove-input")
            if opts.get("output") == "false": tags.append("remove-output")
            if opts.get("code-fold") in ("true", "show"): tags.append("hide-input")
            new = nbformat.v4.new_code_cell("\n".join(lines), outputs=c.get("outputs", []),
                                            execution_count=c.get("execution_count"))
            if tags: new.metadata["tags"] = tags
            cells.append(new)
    load_plotly_js(cells, page)
    meta = {k: v for k, v in nb.metadata.items() if k in ("kernelspec", "language_info")}
    return nbformat.v4.new_notebook(cells=cells, metadata=meta)


def build_page(src:Path, page:str, skip_flags:list[str], timeout:int) -> float:
    "Process, execute and stage one notebook as `_proc/{page}.ipynb`; returns the seconds it took."
    start = time.perf_counter()
    try:
        nb, origin = with_show_docs(src, skip_flags)
        execute(nb, src, origin, timeout)
        for c in nb.cells:
            if c.cell_type == "code": c.outputs = static_outputs(c, src)
        staged = to_myst(nbdev_process(nb, src), page)
    except NotebookError: raise
    except Exception as e:
        raise NotebookError(f"{rel(src)}: {type(e).__name__}: {e}\n{traceback.format_exc()}") from None
    dst = STAGE / f"{page}.ipynb"
    dst.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(staged, dst)
    return time.perf_counter() - start


# ---- 5. links between pages, the sidebar ---------------------------------------------------------------

_md_link = re.compile(r"\[([^\]\n]*)\]\(([^)\s]+)\)")
_heading = re.compile(r"^#{1,6}\s+(.+?)\s*$", flags=re.M)

class Links:
    "Rewrites the staged pages' links to each other: nbdev's links to documented names and links to notebooks."
    def __init__(self, names:dict[Path, str]):
        cfg = get_config()
        self.names = names  # notebook path -> page
        # nbdev's doc links start so
        self.base = urljoin((cfg.get("doc_host") or "") + "/", cfg.get("doc_baseurl") or "/")
        self.ids = {}  # page -> ids of its headings, as docutils makes them
        for page in names.values():
            md = "\n".join(c.source for c in nbformat.read(STAGE / f"{page}.ipynb", 4).cells
                           if c.cell_type == "markdown")
            self.ids[page] = {make_id(re.sub(r"[`*\\]", "", t)) for t in _heading.findall(md)}

    def _nbdev_link(self, text:str, url:str, here:str) -> str:
        "nbdev's link to a name: to its show_doc heading (or its class's), else the name unlinked."
        target, _, sym = url[len(self.base):].partition("#")
        page = target.removesuffix(".html")
        code = re.fullmatch(r"`([^`]+)`", text)
        label = (f'<code class="docutils literal notranslate"><span class="pre">{html.escape(code[1])}</span></code>'
                 if code else html.escape(text))
        if page not in self.ids: return text
        anchor = (next((a for a in (make_id(sym), make_id(sym.split(".")[0])) if a in self.ids[page]), None)
                  if sym else "")
        if anchor is None: return text
        href = posixpath.relpath(f"{page}.html", here) + (f"#{anchor}" if anchor else "")
        # raw HTML: Sphinx would try to resolve a markdown link
        return f'<a class="reference internal" href="{html.escape(href)}">{label}</a>'

    def _link(self, m:re.Match, page:str, src:Path) -> str:
        text, url = m.groups()
        here = posixpath.dirname(page) or "."
        if url.startswith(self.base) and ".html" in url and "://" not in url[len(self.base):]:
            return self._nbdev_link(text, url, here)
        path, hash_, anchor = url.partition("#")
        target = (self.names.get((src.parent / unquote(path)).resolve())
                  if path.endswith(".ipynb") and "://" not in path else None)
        return f"[{text}]({posixpath.relpath(target, here)}.ipynb{hash_}{anchor})" if target else m.group(0)

    def rewrite(self, page:str, src:Path, extra:str=""):
        "Rewrite the links of staged `page` (made from `src`), adding markdown `extra` at the end."
        path = STAGE / f"{page}.ipynb"
        nb = nbformat.read(path, 4)
        for c in nb.cells:
            if c.cell_type == "markdown": c.source = _md_link.sub(lambda m: self._link(m, page, src), c.source)
        if extra: nb.cells.append(nbformat.v4.new_markdown_cell(extra))
        nbformat.write(nb, path)


def toctree(pages:list[str]) -> str:
    "The index's hidden toctrees, which furo shows as the sidebar: home, API pages in order, tutorials."
    api = [p for p in pages if p != "index" and not p.startswith("tutorials/")]
    tutorials = [p for p in pages if p.startswith("tutorials/")]
    tree = "```{toctree}\n:hidden:\n\nself\n" + "\n".join(api) + "\n```\n"
    if tutorials: tree += "\n```{toctree}\n:hidden:\n:caption: Tutorials\n\n" + "\n".join(tutorials) + "\n```\n"
    return tree


def broken_links(site:Path) -> list[str]:
    "Links between the site's pages whose file or `#id` does not exist."
    pages = {p: p.read_text(encoding="utf-8") for p in site.rglob("*.html")}
    ids = {p: set(re.findall(r'\sid="([^"]+)"', t)) for p, t in pages.items()}
    bad = []
    for p, text in pages.items():
        for href in map(html.unescape, re.findall(r'\shref="([^"]*)"', text)):
            if re.match(r"[a-zA-Z][\w+.-]*:|//", href) or href in ("", "#"): continue
            path, _, anchor = href.partition("#")
            target = (p.parent / unquote(path.partition("?")[0])).resolve() if path else p
            if target.is_dir(): target = target / "index.html"
            missing_anchor = anchor and target.suffix == ".html" and unquote(anchor) not in ids.get(target, ())
            if not target.exists() or missing_anchor:
                bad.append(f"{p.relative_to(site)}: {href}")
    return sorted(set(bad))


# ---- the build -------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "_site", help="folder for the HTML site (default: _site/)")
    ap.add_argument("--nbs", type=Path, help="notebook folder (default: nbdev's nbs_path)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count(), help="notebooks executed at once (default: CPU count)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds one cell may run (default: 600)")
    args = ap.parse_args(argv)
    fail = lambda msg: print(f"error: {msg}", file=sys.stderr) or 1
    out = args.out.resolve()
    if out.exists() and any(out.iterdir()) and not (out / ".buildinfo").exists():
        return fail(f"{out} is not empty and is not a docs build; choose another --out")
    os.chdir(ROOT)  # nbdev's processors read the project config from the working folder
    os.environ["PLOTLY_RENDERER"] = PLOTLY_RENDERER  # inherited by every kernel

    cfg = get_config()
    nbs = (args.nbs or cfg.path("nbs_path")).resolve()
    notebooks = find_notebooks(nbs)
    if nbs / "index.ipynb" not in notebooks:
        return fail(f"{rel(nbs)}/index.ipynb is missing; it is the site's home page")
    names = {p: page_name(p, nbs) for p in notebooks}
    if clash := sorted({n for n in names.values() if list(names.values()).count(n) > 1}):
        return fail(f"several notebooks make the page(s) {clash}; rename one of them")
    skip_flags = str(cfg.get("tst_flags", "")).split()

    total = time.perf_counter()
    shutil.rmtree(STAGE, ignore_errors=True)
    STAGE.mkdir()
    jobs = max(1, min(args.jobs, len(notebooks)))
    print(f"executing {len(notebooks)} notebooks, {jobs} at a time", flush=True)
    failed = []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(build_page, p, names[p], skip_flags, args.timeout): p for p in notebooks}
        for n, fut in enumerate(as_completed(futures), 1):
            p = futures[fut]
            try: print(f"  [{n}/{len(futures)}] {rel(p)} -> {names[p]}.html  {fut.result():.1f}s", flush=True)
            except Exception as e:
                failed.append(p)
                print(f"  [{n}/{len(futures)}] FAILED {e}", file=sys.stderr, flush=True)
    if failed: return fail(f"{len(failed)} notebook(s) failed: {', '.join(map(rel, failed))}")

    links = Links(names)
    for p, page in names.items(): links.rewrite(page, p, extra=toctree(list(names.values())) if page == "index" else "")

    print(f"rendering HTML into {out}", flush=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:  # myst-nb writes a jupyter_execute/ folder beside the HTML folder
        cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q", "-E",
               "-c", str(ROOT / "docs"), "-d", f"{tmp}/doctrees", str(STAGE), f"{tmp}/html"]
        if subprocess.run(cmd).returncode:
            made = "\n".join(f"  _proc/{page}.ipynb <- {rel(p)}" for p, page in names.items())
            return fail("Sphinx failed (warnings count as errors); see the messages above. "
                        f"They name pages in _proc/, made from:\n{made}")
        shutil.rmtree(out, ignore_errors=True)
        shutil.move(f"{tmp}/html", out)
    if bad := broken_links(out): return fail("broken links between pages:\n  " + "\n  ".join(bad))
    print(f"  sphinx {time.perf_counter() - start:.1f}s; total {time.perf_counter() - total:.1f}s; "
          f"open {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
