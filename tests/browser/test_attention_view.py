"""The attention view (toymodel.views.attention) on the built site, driven as a reader drives it.

On every page that has a view: point at a token with the mouse, Tab to the tokens and move with
the arrow keys, switch heads with the thumbnails and the menu, and after each step compare what
the view shows (the weight written under each token, its ``data-weight``, the live region's text)
with the pattern the package computes for that head and destination. Then axe (0 serious or
critical violations after the view has been used), no outside request, and no sideways scroll at
375 px.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from .conftest import PHONE, SCREENSHOTS, SITE, built_pages, open_page

PAGES = built_pages()
VIEW_PAGES = [p for p in PAGES if 'class="tmav"' in (SITE / p).read_text(encoding="utf-8")]
LESSONS = {"notebooks/01_worked_example.html", "notebooks/02_one_layer_model.html",
           "notebooks/04_two_layers.html", "notebooks/05_language_one_layer.html"}
TOL = 2e-4  # the site was built on this machine; leave room for a last-digit flip anyway

_STATE = """(el) => ({
  ready: el.getAttribute('data-ready'), head: Number(el.dataset.head), dest: Number(el.dataset.dest),
  weights: Array.from(el.querySelectorAll('.tmav-tok'), (b) => Number(b.dataset.weight)),
  shown: Array.from(el.querySelectorAll('.tmav-tok .tmav-w'), (s) => s.textContent),
  current: Array.from(el.querySelectorAll('.tmav-tok'), (b) => b.getAttribute('aria-current')),
  live: el.querySelector('.tmav-live').textContent,
  select: Number(el.querySelector('select.tmav-head').value),
  pressed: Array.from(el.querySelectorAll('.tmav-thumb'), (t) => t.getAttribute('aria-pressed')),
  focused: el.contains(document.activeElement) ? document.activeElement.dataset.pos : null,
})"""


def expected_views() -> dict:
    """The view each lesson page shows, recomputed from the package (``tests/lesson_views.py``)."""
    from lesson_views import lesson_views

    return {f"notebooks/{stem}.html": view for stem, view in lesson_views().items()}


def check(view, expected, head: int, dest: int, decimals: int) -> dict:
    """What ``view`` shows equals ``expected``'s pattern for ``head`` and ``dest``."""
    state = view.evaluate(_STATE)
    assert state["ready"] == "1", "the view's script did not run"
    assert (state["head"], state["dest"], state["select"]) == (head, dest, head)
    assert state["pressed"] == ["true" if h == head else "false" for h in range(expected.n_heads)]
    assert state["current"] == ["true" if j == dest else None for j in range(expected.n_pos)]
    want = expected.patterns[head, dest]
    np.testing.assert_allclose(state["weights"], want, atol=TOL)
    for j, text in enumerate(state["shown"]):
        if expected.causal and j > dest:
            assert text == "\u2013", f"token {j} after destination {dest} shows {text!r}"
        else:
            assert abs(float(text) - want[j]) <= 0.5 * 10**-decimals + TOL, (j, text, want[j])
            assert re.fullmatch(rf"\d\.\d{{{decimals}}}", text), text
    # the text alternative: head, destination, then the top sources with their weights
    live = state["live"]
    assert live.startswith(f"{expected.head_names[head]}, from token '"), live
    assert f"(position {dest}): top sources " in live, live
    listed = [(int(p), float(w)) for p, w in re.findall(r"\(position (\d+)\) (\d\.\d+)", live)]
    top = expected.top_sources(head, dest)
    assert [p for p, _ in listed] == [p for p, _ in top], (live, top)
    for p, w in listed:
        assert abs(w - want[p]) <= 0.5 * 10**-decimals + TOL, (live, p, want[p])
    return state


def test_the_lessons_have_a_view():
    if not PAGES:
        pytest.skip("no built site")
    assert LESSONS <= set(VIEW_PAGES), f"pages with an attention view: {VIEW_PAGES}"


@pytest.mark.parametrize("path", VIEW_PAGES)
def test_view_by_mouse_and_keyboard_shows_the_packages_numbers(browser, base_url, path):
    from axe_playwright_python.sync_playwright import Axe

    if path not in expected_views():
        pytest.fail(f"{path} has an attention view this test does not know: add it to "
                    "expected_views()")
    expected = expected_views()[path]
    page, log = open_page(browser, base_url, path)
    try:
        view = page.locator(".tmav").first
        view.scroll_into_view_if_needed()
        decimals = int(view.evaluate(
            "(el) => JSON.parse(el.querySelector('.tmav-data').textContent).decimals"))
        n, h0 = expected.n_pos, int(view.get_attribute("data-head"))  # the lesson picks it
        chips = view.locator(".tmav-tok")
        check(view, expected, h0, n - 1, decimals)  # as the page opens

        # mouse: point at a token in the middle, then at the first one
        for j in (n // 2, 0):
            chips.nth(j).hover()
            check(view, expected, h0, j, decimals)

        # keyboard: Tab from the head menu onto the tokens, then the arrow keys, End and Home
        page.mouse.move(0, 0)
        view.locator("select.tmav-head").focus()
        page.keyboard.press("Tab")
        assert check(view, expected, h0, 0, decimals)["focused"] == "0"
        page.keyboard.press("ArrowRight")
        assert check(view, expected, h0, 1, decimals)["focused"] == "1"
        page.keyboard.press("ArrowLeft")
        page.keyboard.press("End")
        assert check(view, expected, h0, n - 1, decimals)["focused"] == str(n - 1)
        page.keyboard.press("Home")
        check(view, expected, h0, 0, decimals)
        page.keyboard.press("ArrowRight")

        # heads: click each thumbnail, then pick the first head again from the menu by keyboard
        for h in reversed(range(expected.n_heads)):
            view.locator(".tmav-thumb").nth(h).click()
            check(view, expected, h, 1, decimals)
        view.locator("select.tmav-head").select_option(str(h0))
        check(view, expected, h0, 1, decimals)
        chips.nth(n - 1).hover()
        check(view, expected, h0, n - 1, decimals)

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        stem = path.replace("/", "__").removesuffix(".html")
        view.screenshot(path=str(SCREENSHOTS / f"view-{stem}-desktop.png"))
        axe = Axe().run(page, options={
            "resultTypes": ["violations"], "preload": False,
            "rules": {"label-content-name-mismatch": {"enabled": True}},
        })
        bad = [f"{v['impact']}: {v['id']} ({len(v['nodes'])} nodes: {v['nodes'][0]['target']}) "
               f"{v['help']}" for v in axe.response["violations"]
               if v["impact"] in ("critical", "serious")]
        assert not bad, bad

        page.set_viewport_size(PHONE)
        page.wait_for_timeout(300)
        view.scroll_into_view_if_needed()
        view.screenshot(path=str(SCREENSHOTS / f"view-{stem}-phone.png"))
        widths = view.evaluate("(el) => ({view: el.getBoundingClientRect().right, "
                               "scroll: document.scrollingElement.scrollWidth, "
                               "width: window.innerWidth})")
        assert widths["view"] <= widths["width"] and widths["scroll"] <= widths["width"], widths
        chips.nth(0).click()  # a tap on a phone is a click
        check(view, expected, h0, 0, decimals)

        assert not log.outside, f"requests to other hosts: {log.outside}"
        assert not log.page_errors and not log.console_errors, log.page_errors + log.console_errors
    finally:
        page.context.close()
