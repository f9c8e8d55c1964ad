"""Every built page, as a reader with no internet meets it in Chromium.

One visit per page (cached for the session) records what the page did; each check below reads that
record, so a failure names the page and the check. Pages are discovered from the build, so new
chapters and lessons are covered without editing this file.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

import pytest
import yaml

from .conftest import PHONE, ROOT, SCREENSHOTS, SITE, built_pages, open_page

PAGES = built_pages()
_VISITS: dict[str, dict] = {}

_COLLECT = r"""() => {
  const internal = (a) => a.href.startsWith(location.origin);
  const main = document.querySelector('main') || document.body;
  return {
    math: Array.from(document.querySelectorAll('span.math, div.math')).map(
      (el) => ({typeset: !!el.querySelector('mjx-container'), text: el.textContent.slice(0, 80)})),
    rawTex: /\\\(|\\\[/.test(main.innerText),
    images: Array.from(document.querySelectorAll('img')).map((img) => ({
      src: img.currentSrc || img.src, alt: img.getAttribute('alt'), complete: img.complete,
      natural: img.naturalWidth, shown: img.getBoundingClientRect().width,
      inArticle: !!img.closest('article'), diagram: !!img.closest('figure.toymodel-diagram')})),
    links: Array.from(document.querySelectorAll('a[href]')).filter(internal).map(
      (a) => ({href: a.href, text: a.textContent.trim().slice(0, 60)})),
    terms: Array.from(document.querySelectorAll('a[href] .std-term')).map(
      (el) => el.closest('a').href),
    cites: Array.from(document.querySelectorAll('a[href*="bibliography.html#"]')).filter(internal).map(
      (a) => a.href),
    colab: Array.from(document.querySelectorAll('a[href*="colab.research.google.com"]')).map(
      (a) => a.href),
  };
}"""


def visit(browser, base_url: str, path: str) -> dict:
    """Open ``path`` once (desktop, then phone width) and record everything the checks need."""
    if path in _VISITS:
        return _VISITS[path]
    from axe_playwright_python.sync_playwright import Axe

    page, log = open_page(browser, base_url, path)
    try:
        record = page.evaluate(_COLLECT)
        shot = SCREENSHOTS / (path.replace("/", "__").removesuffix(".html") + ".png")
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        # no CSSOM preload: axe would re-fetch @import-ed sheets from a wrong (root) URL
        # (label-content-name-mismatch is "experimental" in axe, so it is switched on by hand)
        axe = Axe().run(page, options={
            "resultTypes": ["violations"], "preload": False,
            "rules": {"label-content-name-mismatch": {"enabled": True}},
        })
        record["axe"] = [
            f"{v['impact']}: {v['id']} ({len(v['nodes'])} nodes: "
            f"{v['nodes'][0]['target']}) {v['help']}"
            for v in axe.response["violations"]
            if v["impact"] in ("critical", "serious")
        ]
        page.set_viewport_size(PHONE)
        page.wait_for_timeout(300)
        record["phone"] = page.evaluate(
            "() => ({scroll: document.scrollingElement.scrollWidth, width: window.innerWidth})"
        )
    finally:
        page.context.close()
    record["log"] = log
    _VISITS[path] = record
    return record


@functools.cache
def _ids(path: Path) -> frozenset[str]:
    html = path.read_text(encoding="utf-8")
    return frozenset(re.findall(r'\sid="([^"]+)"', html))


def _resolve(url: str, base_url: str) -> tuple[Path, str]:
    """The built file an internal URL points at, and its fragment."""
    url, fragment = urldefrag(url)
    rel = unquote(urlsplit(url).path)[len(urlsplit(base_url).path):]
    target = SITE / rel
    if rel == "" or rel.endswith("/"):
        target = target / "index.html"
    return target, unquote(fragment)


def _broken(urls, base_url) -> list[str]:
    broken = []
    for url in sorted(set(urls)):
        target, fragment = _resolve(url, base_url)
        if not target.is_file():
            broken.append(f"{url}: no file {target.relative_to(SITE)}")
        elif fragment and target.suffix == ".html" and fragment not in _ids(target):
            broken.append(f"{url}: no element with id {fragment!r}")
    return broken


def _notebook_pages() -> list[str]:
    """Pages built from a committed .ipynb file (the ones Colab can open)."""
    return [p for p in PAGES if (ROOT / p).with_suffix(".ipynb").is_file()]


def test_site_is_built(base_url):
    assert PAGES, f"no pages under {SITE}"
    assert any(p.startswith("book/") for p in PAGES)


@pytest.mark.parametrize("path", PAGES)
def test_no_console_errors(browser, base_url, path):
    log = visit(browser, base_url, path)["log"]
    assert not log.page_errors, log.page_errors
    assert not log.console_errors, log.console_errors


@pytest.mark.parametrize("path", PAGES)
def test_no_failed_or_outside_requests(browser, base_url, path):
    log = visit(browser, base_url, path)["log"]
    assert not log.outside, f"requests to other hosts: {log.outside}"
    assert not log.failed, f"failed requests: {log.failed}"


@pytest.mark.parametrize("path", PAGES)
def test_math_is_typeset(browser, base_url, path):
    record = visit(browser, base_url, path)
    raw = [m["text"] for m in record["math"] if not m["typeset"]]
    assert not raw, f"math left as TeX: {raw[:5]}"
    assert not record["rawTex"], "the page text still shows \\( or \\[ delimiters"


@pytest.mark.parametrize("path", PAGES)
def test_images_load_and_have_alt_text(browser, base_url, path):
    images = visit(browser, base_url, path)["images"]
    not_loaded = [i["src"] for i in images if not i["complete"] or i["natural"] == 0]
    assert not not_loaded, f"images that did not load: {not_loaded}"
    bad_alt = [
        (i["src"], i["alt"]) for i in images
        if not (i["alt"] or "").strip() or re.search(r"_images/|\.(png|jpe?g|svg|gif)$", i["alt"])
    ]
    # the logo is the one decorative image: its alt text is the book's title
    assert not bad_alt, f"images without a real alt text: {bad_alt}"


@functools.cache
def _diagram_min_pt(name: str) -> float:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tools import diagrams

    fig = diagrams.FIGURES[name]()
    try:
        return min(t.get_fontsize() for t in fig.findobj(matplotlib.text.Text)
                   if t.get_visible() and t.get_text().strip())
    finally:
        plt.close(fig)


@pytest.mark.parametrize("path", PAGES)
def test_figure_text_is_at_least_10px(browser, base_url, path):
    """At 1280 px: a diagram's smallest label, scaled as shown, is >= 10 px; any other figure
    is shown at its natural size or across the text column, shrunk by at most 0.72 (what keeps
    a 10 pt label of a 100 dpi matplotlib figure at 10 px; tests/test_plotting_text.py checks
    that the package's figures use 10 pt text at least)."""
    from tools import diagrams

    small = []
    for img in visit(browser, base_url, path)["images"]:
        if not img["inArticle"] or not img["natural"]:
            continue
        name = urlsplit(img["src"]).path.rsplit("/", 1)[-1]
        if name in diagrams.FIGURES:
            assert img["diagram"], f"{name} is not marked as a diagram"
            px = _diagram_min_pt(name) * diagrams.DPI / 72 * img["shown"] / img["natural"]
            if px < 10:
                small.append(f"{name}: smallest label {px:.1f} px")
        elif img["shown"] < min(img["natural"], 672) - 1:
            small.append(f"{name}: shown {img['shown']:.0f} px of {img['natural']} px")
        elif img["shown"] / img["natural"] < 0.72:
            # matplotlib's inline figures are 100 dpi: 10 pt text is 13.9 px before scaling
            small.append(f"{name}: {img['natural']} px wide, shrunk to {img['shown']:.0f} px, "
                         "so its 10 pt text is under 10 px")
    assert not small, small


@pytest.mark.parametrize("path", PAGES)
def test_internal_links_resolve(browser, base_url, path):
    record = visit(browser, base_url, path)
    broken = _broken([link["href"] for link in record["links"]], base_url)
    assert not broken, broken


@pytest.mark.parametrize("path", PAGES)
def test_no_sideways_scroll_on_a_phone(browser, base_url, path):
    phone = visit(browser, base_url, path)["phone"]
    assert phone["scroll"] <= phone["width"], phone


@pytest.mark.parametrize("path", PAGES)
def test_axe_finds_no_serious_violations(browser, base_url, path):
    violations = visit(browser, base_url, path)["axe"]
    assert not violations, "\n".join(violations)


def test_screenshots_saved(browser, base_url):
    for path in PAGES:
        visit(browser, base_url, path)
    shots = sorted(SCREENSHOTS.glob("*.png"))
    assert len(shots) >= len(PAGES)
    assert all(s.stat().st_size > 5_000 for s in shots)


def test_glossary_terms_and_citations_land_on_their_targets(browser, base_url):
    terms, cites = [], []
    for path in PAGES:
        record = visit(browser, base_url, path)
        terms += record["terms"]
        cites += record["cites"]
    assert terms, "no page links a glossary term"
    assert cites, "no page cites a reference"
    broken = _broken(terms + cites, base_url)
    assert not broken, broken
    # and the browser scrolls to them: follow one of each
    for url in (terms[0], cites[0]):
        page, _ = open_page(browser, base_url, url[len(base_url):])
        try:
            fragment = urldefrag(url)[1]
            assert fragment
            box = page.locator(f"[id='{unquote(fragment)}']").first.bounding_box()
            assert box is not None and 0 <= box["y"] < page.viewport_size["height"], (url, box)
        finally:
            page.context.close()


def test_lesson_pages_have_a_colab_button_for_the_configured_repository(browser, base_url):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]["url"].removeprefix("https://github.com/").rstrip("/")
    branch = config["repository"]["branch"]
    lessons = _notebook_pages()
    assert lessons, "no page is built from a notebook"
    for path in lessons:
        colab = visit(browser, base_url, path)["colab"]
        source = Path(path).with_suffix(".ipynb").as_posix()
        expected = f"https://colab.research.google.com/github/{repo}/blob/{branch}/{source}"
        assert expected in colab, f"{path}: expected {expected}, found {colab}"
    # Colab cannot open a markdown page: no other page offers a Colab link to its source
    for path in set(PAGES) - set(lessons):
        colab = visit(browser, base_url, path)["colab"]
        assert not any(url.endswith(".md") for url in colab), (path, colab)
