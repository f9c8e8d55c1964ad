"""The attention view as a notebook output in JupyterLab (no extension installed), in Chromium.

A local JupyterLab server opens a notebook whose one cell displays two views; the test runs the
cell with Shift+Enter, as a reader does, and checks that both views' scripts ran, that they act
independently, that the mouse and the keyboard (Tab, then the arrow keys, which JupyterLab's
command mode must not take) drive them, that they show the package's numbers, and that nothing
was requested from another host. Skips without JupyterLab or Debian's chromium.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

import numpy as np
import pytest

from .conftest import ROOT, SCREENSHOTS

CELL = """from toymodel.views.attention import attention_view
from toymodel.worked_example import run
ex = run()
display(attention_view(ex.tokens, ex.pattern, decimals=4))
attention_view(list("abc"), [[1, 0, 0], [0.5, 0.5, 0], [0.2, 0.3, 0.5]])"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    """``(url of the notebook, folder)`` served by a fresh JupyterLab; stopped afterwards."""
    pytest.importorskip("jupyterlab")
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell(CELL)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, tmp_path / "view.ipynb")
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
               JUPYTER_DATA_DIR=str(tmp_path / "data"), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"))
    log = open(tmp_path / "server.log", "w")  # closed below
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=", "--ServerApp.password=",
         f"--ServerApp.root_dir={tmp_path}", "--LabApp.news_url=",
         "--LabServerApp.announcements_url="],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("JupyterLab did not start:\n"
                                + (tmp_path / "server.log").read_text()[-3000:])
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/lab/tree/view.ipynb", tmp_path
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_view_runs_in_jupyterlab(browser, jupyterlab):
    from toymodel.worked_example import run

    url, _ = jupyterlab
    outside, errors = [], []
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    host = urlsplit(url).netloc

    def route(r):
        if urlsplit(r.request.url).netloc == host:
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort("blockedbyclient")

    context.route("**/*", route)
    page = context.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(url, timeout=120_000)
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=120_000)
        page.wait_for_timeout(1000)
        page.locator(".jp-Cell .cm-content").first.click()
        page.keyboard.press("Shift+Enter")
        page.wait_for_function(
            "() => document.querySelectorAll('.tmav[data-ready=\"1\"]').length === 2",
            timeout=120_000)
        first, second = page.locator(".tmav").nth(0), page.locator(".tmav").nth(1)
        assert first.get_attribute("id") != second.get_attribute("id")
        pattern = run().pattern

        def weights(view):
            return [float(w) for w in view.locator(".tmav-tok").evaluate_all(
                "(bs) => bs.map((b) => b.dataset.weight)")]

        # mouse: point at A in the first view; the second view does not move
        first.locator(".tmav-tok").nth(0).hover()
        assert first.get_attribute("data-dest") == "0"
        np.testing.assert_allclose(weights(first), pattern[0], atol=5e-5)
        assert first.locator(".tmav-tok .tmav-w").nth(1).inner_text() == f"{pattern[0, 1]:.4f}"
        assert second.get_attribute("data-dest") == "2"

        # keyboard: Tab from the head menu onto the tokens, ArrowRight; focus stays in the view
        page.mouse.move(0, 0)
        first.locator("select.tmav-head").focus()
        page.keyboard.press("Tab")
        page.keyboard.press("ArrowRight")
        assert first.get_attribute("data-dest") == "1"
        assert page.evaluate("() => document.activeElement.dataset.pos") == "1"
        np.testing.assert_allclose(weights(first), pattern[1], atol=5e-5)
        assert "top sources 'A' (position 0) " + f"{pattern[1, 0]:.4f}" in (
            first.locator(".tmav-live").inner_text())

        second.locator(".tmav-tok").nth(1).click()
        np.testing.assert_allclose(weights(second), [0.5, 0.5, 0], atol=5e-5)
        assert second.locator(".tmav-tok .tmav-w").nth(2).inner_text() == "\u2013"  # masked

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "view-jupyterlab.png"))
        assert not outside, f"requests to other hosts: {outside}"
        assert not errors, errors
    finally:
        context.close()
