"""Fixtures for the browser tests: the built site served on 127.0.0.1, Debian's chromium, and one
visit per page whose observations every per-page check reads.

The site is ``_build/html`` (override with ``TOYMODEL_SITE_DIR``). Without a built site the tests
skip, unless ``TOYMODEL_REQUIRE_SITE=1`` (``make browser`` sets it), where they fail.
Every request that leaves 127.0.0.1 is blocked and recorded, so a page that would need the
internet fails its checks instead of waiting.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("TOYMODEL_SITE_DIR", ROOT / "_build" / "html"))
SCREENSHOTS = Path(os.environ.get("TOYMODEL_SCREENSHOTS", ROOT / "_build" / "screenshots"))
REQUIRE_SITE = os.environ.get("TOYMODEL_REQUIRE_SITE") == "1"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 800}
SKIP_DIRS = {"_static", "_sources", "_images", "_downloads", "_sphinx_design_static"}


def built_pages() -> list[str]:
    """Every HTML page of the built site, as paths relative to its root (sorted)."""
    if not (SITE / "index.html").is_file():
        return []
    pages = []
    for path in SITE.rglob("*.html"):
        rel = path.relative_to(SITE)
        if rel.parts[0] in SKIP_DIRS:
            continue
        if rel.name == "index.html" and len(rel.parts) == 1:
            # the root index only redirects to the first page
            continue
        pages.append(rel.as_posix())
    return sorted(pages)


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _unavailable(message: str):
    if REQUIRE_SITE:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output readable
        pass


@pytest.fixture(scope="session")
def base_url():
    """``http://127.0.0.1:<port>/`` serving the built site; stopped after the session."""
    if not built_pages():
        _unavailable(f"no built site at {SITE}: run `make book` (or `make test`) first")
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser():
    executable = chromium_path()
    if executable is None:
        _unavailable("Debian's chromium is not installed: `sudo apt-get install chromium` "
                     "(or set CHROMIUM=/path/to/chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@dataclass
class PageLog:
    """What a page did while it loaded: errors, failed requests, blocked outside requests."""

    console_errors: list = field(default_factory=list)
    page_errors: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    outside: list = field(default_factory=list)


def open_page(browser, base_url: str, path: str, viewport=DESKTOP):
    """A new page at ``base_url + path`` with outside requests blocked; returns ``(page, log)``.

    Waits for the load event and, where MathJax runs, for its first typesetting pass.
    """
    log = PageLog()
    context = browser.new_context(viewport=viewport, service_workers="block")
    host = urlsplit(base_url).netloc

    def route(r):
        if urlsplit(r.request.url).netloc == host:
            r.continue_()
        else:
            log.outside.append(r.request.url)
            r.abort("blockedbyclient")

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and log.console_errors.append(
        f"{m.text} ({m.location.get('url', '')}:{m.location.get('lineNumber', '')})"))
    page.on("pageerror", lambda e: log.page_errors.append(str(e)))
    page.on("requestfailed", lambda r: urlsplit(r.url).netloc == host and log.failed.append(
        f"{r.url}: {r.failure}"))
    page.on("response", lambda r: r.status >= 400 and log.failed.append(
        f"{r.url}: HTTP {r.status} (asked for by {r.request.headers.get('referer')})"))
    page.goto(base_url + path, wait_until="load", timeout=60_000)
    wait_for_math(page)
    return page, log


def wait_for_math(page) -> None:
    page.wait_for_function(
        "() => !document.querySelector('.math') || "
        "(window.MathJax && MathJax.startup && MathJax.startup.promise)",
        timeout=30_000,
    )
    page.evaluate(
        "() => window.MathJax && MathJax.startup && MathJax.startup.promise "
        "? MathJax.startup.promise.then(() => true) : true"
    )
