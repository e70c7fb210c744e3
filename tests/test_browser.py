"""The built book in a real browser: every page in ``_toc.yml``, as a reader at a 1280-pixel window sees it.

Headless Chromium (Debian's ``chromium``, driven by ``playwright``; see ``browser_support``) opens each page
from a local HTTP server once; the tests below read what it recorded. A full-page screenshot of each page
is left in ``_build/screenshots/``.

Without Chromium or without a build these tests skip with one line; under ``CI=true`` they fail instead,
since CI installs Chromium and builds the book. tests/test_chapter_code_width.py keeps the chapters' code
lines within the width measured here without a browser, so a long line fails before the book is rebuilt.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
from browser_support import CODE_LINE_LIMIT, VIEWPORT, launch, missing_browser, serve, visit, width_exemption

from unrolling_lib.book import chapters as book

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")

# TeX that MathJax left as text: delimiters, environments, control words (prose has no backslashes otherwise).
RAW_TEX = re.compile(r"\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{|\\end\{|\\[A-Za-z]{2,}")

ENTRIES = book.toc_entries(ROOT)
PAGES = [entry.relative_to(ROOT).with_suffix("").as_posix() for entry in ENTRIES]
CHAPTERS = [entry.relative_to(ROOT).with_suffix("").as_posix() for entry in ENTRIES if entry.suffix == ".ipynb"]
BIBLIOGRAPHY = next((entry.relative_to(ROOT).with_suffix("").as_posix() for entry in ENTRIES
                     if entry.suffix == ".md" and "{bibliography}" in entry.read_text(encoding="utf-8")), None)


# One reason for the whole module when it cannot run: a reader's machine skips it, CI (CI=true) fails on it.
CANNOT_RUN = missing_browser() or (None if (HTML / "index.html").exists()
                                   else "the book is not built: run `make book`")
if CANNOT_RUN and not IN_CI:
    pytest.skip(CANNOT_RUN, allow_module_level=True)


@pytest.fixture(scope="module")
def reports():
    """Visit each page once, on first use; returns ``get(page) -> PageReport``."""
    if CANNOT_RUN:
        pytest.fail(f"{CANNOT_RUN} (CI is set: the browser tests must run here)", pytrace=False)
    from playwright.sync_api import sync_playwright

    seen = {}
    with serve(HTML) as base, sync_playwright() as playwright:
        browser = launch(playwright)

        def get(page: str):
            if page not in seen:  # a page that fails to load fails each test once, not after a wait each
                try:
                    seen[page] = visit(browser, base, page, screenshot=SCREENSHOTS / f"{Path(page).name}.png")
                except Exception as error:  # reported by every test that reads the page
                    seen[page] = error
            if isinstance(seen[page], Exception):
                pytest.fail(f"{page} could not be opened: {seen[page]}", pytrace=False)
            return seen[page]

        try:
            yield get
        finally:
            browser.close()


@pytest.mark.parametrize("page", PAGES)
def test_no_request_leaves_the_local_server(reports, page):
    report = reports(page)
    assert report.local_requests > 0, "the route saw no request: the interception is not working"
    assert report.external_requests == [], f"{page} asked for {len(report.external_requests)} outside url(s)"
    assert report.failed_requests == [], f"{page}: local requests that failed"


@pytest.mark.parametrize("page", PAGES)
def test_no_javascript_or_console_errors(reports, page):
    report = reports(page)
    assert report.load_problems == []
    assert report.console_errors == [], f"{page}: beyond the theme's two known messages"


@pytest.mark.parametrize("page", PAGES)
def test_every_figure_draws_its_data(reports, page):
    report = reports(page)
    in_html = (HTML / f"{page}.html").read_text(encoding="utf-8").count('class="plotly-graph-div"')
    assert len(report.figures) == in_html, f"{page}: {in_html} figure divs in the HTML, {len(report.figures)} live"
    for fig in report.figures:
        where = f"{page}, figure {fig['index'] + 1} ({fig['title'] or fig['id']})"
        assert fig["svg"], f"{where}: plotly drew no SVG"
        assert fig["traces"], f"{where}: no visible trace"
        assert fig["drawn"] > 0, f"{where}: the SVG holds no marks, lines or images"
        if "heatmap" in fig["traces"]:
            assert fig["heatmaps"] > 0, f"{where}: a heatmap trace drew no image"


@pytest.mark.parametrize("page", PAGES)
def test_every_slider_changes_its_figure(reports, page):
    for moved in reports(page).sliders:
        where = f"{page}, figure {moved['figure'] + 1}, slider {moved['slider'] + 1}"
        assert moved["clicked"] and not moved["problem"], f"{where}: {moved['problem']}"
        before, after = moved["before"], moved["after"]
        assert after["sliders"] != before["sliders"], f"{where}: still at {before['sliders']}"
        assert after["geometry"] != before["geometry"], f"{where}: moved to {after['sliders']}, figure unchanged"


def test_toy_gamma_slider_changes_the_heatmap(reports):
    page = "book/toy_classifier"
    report = reports(page)
    heat = [m for m in report.sliders if report.figures[m["figure"]]["heatmaps"]]
    assert heat, f"{page}: no slider figure with a heatmap"
    for moved in heat:
        before, after = moved["before"], moved["after"]
        assert before["sliders"] != after["sliders"], moved["problem"]
        assert before["heatmaps"] and after["heatmaps"] != before["heatmaps"], (
            f"{page}: γ {before['sliders']} → {after['sliders']} left the heatmap as it was")


@pytest.mark.parametrize("page", PAGES)
def test_math_renders(reports, page):
    report = reports(page)
    math = report.math
    assert math["unrendered"] == [], f"{page}: equations MathJax did not typeset"
    assert math["errors"] == [], f"{page}: TeX errors"
    if math["elements"]:
        assert math["rendered"] >= math["elements"], f"{page}: {math}"
    raw = sorted({report.prose[max(0, m.start() - 30): m.end() + 30] for m in RAW_TEX.finditer(report.prose)})
    assert raw == [], f"{page}: TeX left as text in the prose"


@pytest.mark.parametrize("page", CHAPTERS)
def test_colab_and_repository_links_follow_the_config(reports, page):
    repo = book.repository(ROOT)
    expected = book.colab_url(repo, f"{page}.ipynb")
    links = reports(page).colab_links
    assert [link["href"] for link in links if link["href"] != expected] == [], f"{page}: expected {expected}"
    assert any(link["in_text"] for link in links), f"{page}: no Open in Colab link in the text"
    assert any(not link["in_text"] for link in links), f"{page}: no Colab launch button"
    repository = reports(page).repository_links
    assert repository and all(href.rstrip("/") == repo.url.rstrip("/") for href in repository), repository


@pytest.mark.parametrize("page", PAGES)
def test_citations_link_into_the_bibliography(reports, page):
    assert BIBLIOGRAPHY, "no page in _toc.yml holds the {bibliography} directive"
    report = reports(page)
    bibliography = reports(BIBLIOGRAPHY)
    entries = set(bibliography.bibliography_ids)
    assert entries, f"{BIBLIOGRAPHY} lists no entries"
    bib_path = urlparse(bibliography.url).path
    for href in report.citations:
        url = urlparse(href)
        assert url.path == bib_path and url.fragment in entries, f"{page}: citation {href} misses the bibliography"
    if page in CHAPTERS:
        assert report.citations, f"{page} cites nothing (every chapter cites the paper it reproduces)"
    assert "{cite" not in report.prose, f"{page}: a citation role left as text"


@pytest.mark.parametrize("page", PAGES)
def test_code_cells_fit_the_text_column(reports, page):
    too_wide = []
    for cell in reports(page).code_cells:
        if width_exemption(cell["text"], ROOT):
            continue
        if cell["scroll_width"] > cell["client_width"] + 1:
            longest = max(cell["text"].splitlines(), key=len)
            too_wide.append(f"{len(longest)} chars (fit: {cell['chars_that_fit']:.0f}): {longest.strip()[:60]}")
    assert not too_wide, (f"{page}: code cells scroll sideways at a {VIEWPORT['width']} px window:\n"
                          + "\n".join(too_wide))


def test_code_line_limit_matches_the_column(reports):
    fits = [cell["chars_that_fit"] for page in PAGES for cell in reports(page).code_cells]
    assert fits, "no code cell on any page"
    assert CODE_LINE_LIMIT <= min(fits), (
        f"CODE_LINE_LIMIT is {CODE_LINE_LIMIT} but only {min(fits):.1f} characters fit a code cell")


@pytest.mark.parametrize("page", PAGES)
def test_full_page_screenshot_is_saved(reports, page):
    shot = reports(page).screenshot
    assert shot is not None and shot.is_file()
    head = shot.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    assert width == VIEWPORT["width"] and height >= VIEWPORT["height"], (width, height)
