"""Open the page in headless Chromium and check every declared figure really rendered."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from search.dashboard._page import make_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _require_browser():
    """Skip where Chromium or Playwright is missing, but fail on CI, where they must be."""
    problem = None
    if not Path(CHROMIUM).exists():
        problem = f"{CHROMIUM} not found (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "playwright not installed (pip install playwright)"
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem)
        pytest.skip(problem)


@pytest.mark.browser
def test_every_declared_figure_renders_without_javascript_errors(full_page, tmp_path):
    _require_browser()
    from playwright.sync_api import sync_playwright

    path, dashboard = full_page
    expected = len(dashboard.figure_names)
    assert expected > 0

    server, url = make_server(path, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    errors: list[str] = []
    outside: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(str(e)))

                def only_localhost(route):
                    # The page must be self-contained: any request off localhost is a bug.
                    if route.request.url.startswith("http://127.0.0.1:"):
                        route.continue_()
                    else:
                        outside.append(route.request.url)
                        route.abort()

                page.route("**/*", only_localhost)
                page.goto(url, wait_until="load")
                declared = int(page.get_attribute("body", "data-figure-count"))
                rendered_js = (
                    "() => Array.from(document.querySelectorAll('.figure .js-plotly-plot'))"
                    ".filter(d => d.querySelector('svg.main-svg, canvas')).length"
                )
                page.wait_for_function(f"({rendered_js})() >= {declared}", timeout=20_000)
                rendered = page.evaluate(rendered_js)
                containers = page.locator(".figure").count()
                # Every figure fits its container (side-by-side figures were once drawn at
                # full page width and clipped).
                overflowing_js = (
                    "() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
                    ".filter(d => d._fullLayout.width > d.getBoundingClientRect().width + 1)"
                    ".map(d => d.id)"
                )
                try:  # plotly resizes asynchronously after the load event
                    page.wait_for_function(f"({overflowing_js})().length == 0", timeout=5_000)
                except Exception:  # noqa: BLE001 - the assertion below names the figures
                    pass
                overflowing = page.evaluate(overflowing_js)
                page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            finally:
                browser.close()
    finally:
        server.shutdown()
        server.server_close()

    assert declared == expected == containers
    assert rendered == declared
    assert errors == []
    assert outside == []
    assert overflowing == []
    assert (tmp_path / "dashboard.png").stat().st_size > 50_000
