# Sphinx config for the docs site. `python tools/build_docs.py` executes and stages the notebooks in _proc/
# and runs Sphinx on them with this folder as the config folder.
import tomllib
from pathlib import Path

import plotly

_meta = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
project = html_title = _meta["name"]
copyright = ", ".join(a["name"] for a in _meta.get("authors", []))
html_theme = "furo"
extensions = ["myst_nb"]
root_doc = "index"
exclude_patterns = ["**/.ipynb_checkpoints"]

nb_execution_mode = "off"  # build_docs.py has executed the notebooks
myst_enable_extensions = ["colon_fence"]  # no dollarmath: math would load MathJax from a CDN, and the site is offline
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]  # show_doc headings are H3, often right under the page's H1

# The site must work offline: plotly figures load this copy of plotly.js (build_docs.py adds the <script>),
# and a favicon of our own stops browsers asking for /favicon.ico.
html_static_path = ["_static", str(Path(plotly.__file__).parent / "package_data" / "plotly.min.js")]
html_favicon = "_static/favicon.svg"
html_css_files = ["custom.css"]
html_copy_source = False  # _sources/ would hold a second copy of every notebook with its outputs
