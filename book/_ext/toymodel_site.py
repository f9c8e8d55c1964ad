"""A small Sphinx extension that makes the built book self-contained, quiet and accessible.

A Jupyter Book local extension (``_config.yml``: ``sphinx.local_extensions``), kept with the book
and never shipped in the ``toymodel`` wheel. It

* sets ``TOYMODEL_STATIC_SITE=1`` before any notebook runs, so widget cells show a static figure
  (see ``toymodel.views.widgets``) instead of controls that need a kernel;
* serves every asset a page needs from the site itself: MathJax 3 (``npm ci`` puts it in
  ``node_modules/``; ``mathjax_path`` in ``_config.yml`` points at the copy under ``_static``),
  the ``plotly.min.js`` shipped inside the plotly Python package (only on pages with a plotly
  figure), and the book's own CSS, JS, logo and favicon from ``book/assets/``;
* turns the CDN scripts of the ipywidgets manager off (no page loads anything from another host);
* renders ``application/vnd.plotly.v1+json`` outputs offline (:class:`PlotlyMimeRenderer`, added
  to myst-nb's renderers when the extension loads: no entry point, no installation);
* drops duplicate ``<script>`` entries (Sphinx 7.4 writes some inline scripts twice, which throws
  ``Identifier 'THEBE_JS_URL' has already been declared``) and the ARIA role that makes the
  bibliography an invalid list.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

PLOTLY_MIME = "application/vnd.plotly.v1+json"
ASSETS = Path("book") / "assets"  # committed: toymodel.css, toymodel.js, logo, favicon
MATHJAX_SOURCE = Path("node_modules") / "mathjax" / "es5"
MATHJAX_TARGET = "mathjax"  # under _static/
PLOTLY_TARGET = "plotly/plotly.min.js"  # under _static/
PLOTLY_DIV = 'class="plotly-graph-div"'
_CITATION_LIST = re.compile(
    r'<div (?:role="list" class="citation-list"|class="citation-list" role="list")>'
)


# ------------------------------------------------------------------------------------------
# plotly outputs
# ------------------------------------------------------------------------------------------


class PlotlyMimeRenderer:
    """myst-nb mime renderer: a plotly figure output becomes a ``<div>`` drawn by local plotly.js.

    Sliders, buttons and frames keep working on the static page; nothing is fetched.
    """

    mime_priority_overrides = [("html", PLOTLY_MIME, 5), ("dirhtml", PLOTLY_MIME, 5),
                               ("singlehtml", PLOTLY_MIME, 5)]

    @staticmethod
    def handle_mime(renderer, data, inline):
        if data.mime_type != PLOTLY_MIME:
            return None
        from docutils import nodes

        html = figure_html(data.content)
        return [nodes.raw(text=html, format="html", classes=["output", "plotly-output"])]


def figure_html(figure) -> str:
    """The ``<div>`` and inline script drawing ``figure`` (a plotly figure or its JSON dict).

    ``layout.meta`` may hold ``name`` (the div's id: ``plotly-<name>``) and ``alt`` (a text
    alternative, given to the figure's group as its accessible name).
    """
    import html

    import plotly.io as pio

    if not isinstance(figure, dict):
        figure = figure.to_plotly_json()
    layout = figure.get("layout", {})
    meta = layout.get("meta") if isinstance(layout.get("meta"), dict) else {}
    div = pio.to_html(
        figure, include_plotlyjs=False, include_mathjax=False, full_html=False,
        auto_play=False, validate=False, config={"responsive": True, "displaylogo": False},
        div_id=f"plotly-{meta['name']}" if meta.get("name") else None,
    )
    alt = html.escape(meta.get("alt") or "interactive plotly figure", quote=True)
    return f'<div class="plotly-figure" role="group" aria-label="{alt}">{div}</div>'


def _register_mime_renderer() -> None:
    """Add :class:`PlotlyMimeRenderer` to myst-nb's plugins unless its entry point did already."""
    from myst_nb.core import render

    original = render.load_mime_renders
    if getattr(original, "_toymodel", False):
        return

    @lru_cache
    def load_mime_renders():
        plugins = list(original())
        if not any(getattr(p, "__name__", "") == "PlotlyMimeRenderer" for p in plugins):
            plugins.append(PlotlyMimeRenderer)
        return plugins

    load_mime_renders._toymodel = True
    render.load_mime_renders = load_mime_renders


# ------------------------------------------------------------------------------------------
# local assets
# ------------------------------------------------------------------------------------------


def _mathjax_dir(srcdir: Path) -> Path:
    """``node_modules/mathjax/es5`` of the book, running ``npm ci`` once if it is missing."""
    source = srcdir / MATHJAX_SOURCE
    if (source / "tex-chtml.js").is_file():
        return source
    npm = shutil.which("npm")
    if npm is None:
        from sphinx.errors import ExtensionError

        raise ExtensionError(
            f"MathJax 3 is missing ({source}) and npm is not installed: install Node.js/npm "
            "(apt-get install npm) and run `npm ci` in the repository root"
        )
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=srcdir, check=True,
                   capture_output=True, timeout=600)
    return source


def _copy_assets(app, exception) -> None:
    """After a successful HTML build, put MathJax and plotly.js under ``_static``."""
    if exception is not None or app.builder.format != "html":
        return
    import plotly

    static = Path(app.outdir) / "_static"
    target = static / MATHJAX_TARGET
    if not (target / "tex-chtml.js").is_file():
        shutil.copytree(_mathjax_dir(Path(app.srcdir)), target, dirs_exist_ok=True)
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    (static / PLOTLY_TARGET).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(plotly_js, static / PLOTLY_TARGET)


# ------------------------------------------------------------------------------------------
# configuration and page fixes
# ------------------------------------------------------------------------------------------


def _configure(app, config) -> None:
    srcdir = Path(app.srcdir)
    config.html_static_path = [*config.html_static_path, str((srcdir / ASSETS).resolve())]
    if str(config.mathjax_path).startswith("http"):
        config.mathjax_path = f"{MATHJAX_TARGET}/tex-chtml.js"
    # one search box (the sidebar's); the top bar keeps its search icon. Set here, not in
    # _config.yml, where html_theme_options would replace Jupyter Book's own theme options.
    config.html_theme_options.setdefault("navbar_persistent", [])
    # the widget manager's scripts come from a CDN; the static site has no live widgets
    config.nb_ipywidgets_js = {}
    _mathjax_dir(srcdir)  # fail early, before notebooks execute, if MathJax cannot be found


def _page_context(app, pagename, templatename, context, doctree) -> None:
    """Per page: add plotly.js where a figure needs it, drop duplicate scripts, fix ARIA."""
    body = context.get("body", "")
    if PLOTLY_DIV in body:
        app.add_js_file(PLOTLY_TARGET, priority=450)
    scripts = context.get("script_files")
    if scripts is not None:
        seen, unique = set(), []
        for script in scripts:
            key = script.filename or script.attributes.get("body", "")
            if key in seen:
                continue
            seen.add(key)
            unique.append(script)
        scripts[:] = unique
    if str(context.get("sourcename", "")).removesuffix(".txt").endswith(".md"):
        # Colab opens .ipynb files only: a MyST-markdown notebook gets no launch button
        buttons = context.get("header_buttons") or []
        buttons[:] = [b for b in buttons if b.get("label") != "launch-buttons"]
    if body:
        # docutils marks the bibliography as a list whose children are not list items
        context["body"] = _CITATION_LIST.sub('<div class="citation-list">', body)


def _mark_diagrams(app, doctree, docname) -> None:
    """Give figures drawn from ``book/figures/`` the class ``toymodel-diagram`` (full column width,
    so their smallest text stays at least 10 px tall; see ``book/assets/toymodel.css``)."""
    from docutils import nodes

    for figure in doctree.findall(nodes.figure):
        if any("figures/" in image.get("uri", "") for image in figure.findall(nodes.image)):
            figure["classes"].append("toymodel-diagram")


def setup(app):
    os.environ.setdefault("TOYMODEL_STATIC_SITE", "1")
    _register_mime_renderer()
    app.connect("config-inited", _configure, priority=900)
    app.connect("html-page-context", _page_context, priority=900)
    app.connect("doctree-resolved", _mark_diagrams)
    app.connect("build-finished", _copy_assets)
    app.add_css_file("toymodel.css")
    app.add_js_file("toymodel.js", priority=900, defer="defer")
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
