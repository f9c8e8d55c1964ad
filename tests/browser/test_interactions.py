"""What a reader does on the built site: open dropdowns, search, move the interactive figures."""

from __future__ import annotations

import re

import numpy as np
import pytest

from .conftest import SITE, built_pages, open_page

PAGES = built_pages()
INDEX = "book/interactive.html"  # the index page: links to where each figure lives
# each interactive figure sits in the chapter that discusses it
FIGURE_PAGES = {"worked-example": "book/two_jobs.html", "trained-model": "book/one_layer_model.html"}


_DROPDOWN = re.compile(r'class="(?:[^"]* )?(?:sd-dropdown|toggle)(?: [^"]*)?"')
DROPDOWN_PAGES = [p for p in PAGES if _DROPDOWN.search((SITE / p).read_text(encoding="utf-8"))]


@pytest.mark.parametrize("path", DROPDOWN_PAGES)
def test_dropdown_answers_are_closed_until_clicked(browser, base_url, path):
    page, _ = open_page(browser, base_url, path)
    try:
        details = page.locator("details.sd-dropdown")
        toggles = page.locator(".toggle-hidden")  # sphinx-togglebutton (exercise solutions)
        n_details, n_toggles = details.count(), toggles.count()
        if n_details + n_toggles == 0:
            pytest.skip("no answer dropdown on this page")
        for i in range(n_details):
            item = details.nth(i)
            assert item.get_attribute("open") is None, f"dropdown {i} starts open"
            body = item.locator(".sd-summary-content").first
            assert not body.is_visible()
            item.locator("summary").first.click()
            assert item.get_attribute("open") is not None, f"dropdown {i} did not open"
            assert body.is_visible()
        for i in range(n_toggles):
            item = page.locator(".toggle").nth(i)
            body = item.locator("> :not(.admonition-title):not(button)").first
            assert "toggle-hidden" in item.get_attribute("class"), f"solution {i} starts open"
            assert not body.is_visible(), f"solution {i} shows its answer before a click"
            item.locator("button.toggle-button").first.click()
            body.wait_for(state="visible", timeout=5_000)
    finally:
        page.context.close()


def test_search_finds_the_ov_circuit(browser, base_url):
    page, log = open_page(browser, base_url, "search.html?q=OV+circuit")
    try:
        # Sphinx lists results as it finds them, then writes its summary
        page.wait_for_function(
            "() => /found/i.test(document.querySelector('#search-results .search-summary')"
            "?.textContent || '')", timeout=60_000)
        links = [a.get_attribute("href") for a in page.locator("#search-results ul.search li a").all()]
        assert any("ov_circuit" in (href or "") for href in links), links
        assert not log.outside and not log.console_errors and not log.page_errors
    finally:
        page.context.close()


def test_one_search_box(browser, base_url):
    page, _ = open_page(browser, base_url, "book/intro.html")
    try:
        boxes = page.locator(".search-button-field, input[type=search], form.bd-search")
        visible = [boxes.nth(i) for i in range(boxes.count()) if boxes.nth(i).is_visible()]
        assert len(visible) == 1, f"{len(visible)} search boxes are visible"
    finally:
        page.context.close()


# ------------------------------------------------------------------------------------------
# interactive figures: move the slider with the mouse, read what the figure now shows
# ------------------------------------------------------------------------------------------

_STATE = """(id) => {
  const gd = document.getElementById(id);
  return {active: gd.layout.sliders[0].active,
          data: gd._fullData.map((t) => ({z: t.z ? Array.from(t.z, (r) => Array.from(r)) : null,
                                           y: t.y ? Array.from(t.y) : null})),
          texts: Array.from(gd.querySelectorAll('.cartesianlayer text')).map((t) => t.textContent)};
}"""


def _move_slider(page, div_id: str, step: int, n_steps: int) -> dict:
    """Click the slider rail where step ``step`` of ``n_steps`` sits; return the figure's state.

    plotly places step ``i`` at ``2 + i * (width - 4) / (n - 1)`` px along its rail.
    """
    rail = page.locator(f"#{div_id} .slider-rail-rect").first
    rail.scroll_into_view_if_needed()
    box = rail.bounding_box()
    x = box["x"] + 2 + (box["width"] - 4) * step / (n_steps - 1)
    page.mouse.click(x, box["y"] + box["height"] / 2)
    page.wait_for_function(
        f"() => document.getElementById('{div_id}').layout.sliders[0].active === {step}",
        timeout=10_000,
    )
    page.wait_for_timeout(200)
    return page.evaluate(_STATE, div_id)


def _figure_page(browser, base_url, name):
    path = FIGURE_PAGES[name]
    if path not in PAGES:
        pytest.fail(f"{path} was not built")
    page, log = open_page(browser, base_url, path)
    page.wait_for_selector(f"#plotly-{name} .slider-rail-rect")
    return page, log


@pytest.fixture
def worked_example_page(browser, base_url):
    page, log = _figure_page(browser, base_url, "worked-example")
    yield page, log
    page.context.close()


@pytest.fixture
def trained_model_page(browser, base_url):
    page, log = _figure_page(browser, base_url, "trained-model")
    yield page, log
    page.context.close()


def test_the_index_page_links_to_each_figure_where_it_lives(browser, base_url):
    if INDEX not in PAGES:
        pytest.fail(f"{INDEX} was not built")
    page, log = open_page(browser, base_url, INDEX)
    try:
        assert page.locator(".plotly-graph-div").count() == 0, "the index page draws a figure"
        hrefs = [a.get_attribute("href") or "" for a in page.locator("article a[href]").all()]
        for name, path in FIGURE_PAGES.items():
            target = f"{path.removeprefix('book/')}#{name}-figure"
            assert target in hrefs, (target, hrefs)
        assert not log.console_errors and not log.page_errors and not log.outside
    finally:
        page.context.close()


def test_worked_example_figure_follows_its_slider(worked_example_page):
    from toymodel.views import webfigs

    page, log = worked_example_page
    expected = webfigs.worked_example_data()
    start = page.evaluate(_STATE, "plotly-worked-example")
    k1 = int(np.argmin(np.abs(expected["scales"] - 1.0)))
    assert start["active"] == k1
    np.testing.assert_allclose(start["data"][0]["z"], expected["pattern"][k1], atol=1e-9)
    # at the article's values the figure reads 0.08 / 0.92
    shown = {f"{w:.2f}" for w in expected["pattern"][k1].ravel()}
    assert shown <= set(start["texts"]), (shown, start["texts"])
    n = len(expected["scales"])
    for step in (0, n - 1, k1):
        state = _move_slider(page, "plotly-worked-example", step, n)
        np.testing.assert_allclose(state["data"][0]["z"], expected["pattern"][step], atol=1e-9)
        np.testing.assert_allclose(state["data"][1]["y"], expected["output_A"][step], atol=1e-9)
    assert not log.console_errors and not log.page_errors and not log.outside


def test_trained_model_figure_follows_its_slider(trained_model_page):
    from toymodel.views import webfigs

    page, log = trained_model_page
    expected = webfigs.trained_model_data()
    n = len(expected["tokens"])
    for step in (n - 1, 1, 0):
        state = _move_slider(page, "plotly-trained-model", step, n)
        np.testing.assert_allclose(state["data"][0]["z"], expected["pattern"][step], atol=1e-6)
        np.testing.assert_allclose(state["data"][1]["y"], expected["query_scores"][step][:-1],
                                   rtol=1e-6, atol=1e-4)
        np.testing.assert_allclose(state["data"][2]["y"], expected["ov_logits"][step],
                                   rtol=1e-6, atol=1e-4)
    assert not log.console_errors and not log.page_errors and not log.outside
