"""Checks on the built book (``make book`` builds it; ``make test`` builds it first).

The static HTML must work offline: every script, stylesheet, image and frame comes from the build itself,
plotly.js and MathJax included, and every figure's data is in the page.
"""

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

from unrolling_lib.book import chapters as book

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
CDN_HINTS = ("cdn.", "cdnjs", "jsdelivr", "unpkg", "googleapis", "mathjax.org", "plot.ly")


class Resources(HTMLParser):
    """Collect what a page *loads* (not what it links to): scripts, stylesheets, images, frames."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self._in_script = "src" not in a
            if a.get("src"):
                self.loads.append(a["src"])
        elif tag == "link" and a.get("href") and {"stylesheet", "preload", "icon", "modulepreload"} & set(
                (a.get("rel") or "").split()):
            self.loads.append(a["href"])
        elif tag in {"img", "iframe", "source", "video", "audio", "embed"} and a.get("src"):
            self.loads.append(a["src"])

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.inline_scripts.append(data)


def _pages() -> list[Path]:
    if not (HTML / "index.html").exists():
        pytest.fail("the book is not built: run `make book` (make test builds it first)")
    return sorted(p for p in HTML.rglob("*.html") if "_static" not in p.parts and "mathjax" not in p.parts)


def _parse(page: Path) -> Resources:
    parser = Resources()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def _local_target(page: Path, ref: str) -> Path:
    path = urlparse(urljoin(page.as_uri(), ref)).path
    return Path(path)


def test_every_chapter_has_a_page():
    _pages()
    for source in book.toc_entries(ROOT):
        rel = source.relative_to(ROOT).with_suffix(".html")
        assert (HTML / rel).exists(), f"no built page for {source.name}"


def test_no_page_loads_anything_from_outside_the_build():
    for page in _pages():
        for ref in _parse(page).loads:
            scheme = urlparse(ref).scheme
            assert scheme in ("", "file", "data"), f"{page.relative_to(HTML)} loads {ref} from outside the build"
            if scheme != "data":
                target = _local_target(page, ref)
                assert target.exists(), f"{page.relative_to(HTML)} loads {ref}, which the build lacks"
        text = page.read_text(encoding="utf-8").lower()
        for hint in CDN_HINTS:
            for match in re.finditer(re.escape(hint), text):
                context = text[max(0, match.start() - 80): match.end() + 40]
                assert "src=" not in context and "href=" not in context, (
                    f"{page.relative_to(HTML)} references a CDN: …{context}…")


def test_plotly_and_mathjax_are_served_by_the_build():
    page = HTML / "book" / "intro.html"
    loads = _parse(page).loads
    plotly = [ref for ref in loads if "plotly.min.js" in ref]
    mathjax = [ref for ref in loads if "tex-chtml.js" in ref]
    assert plotly and mathjax, f"intro.html loads {loads}"
    assert _local_target(page, plotly[0]).stat().st_size > 1_000_000  # the real plotly.js bundle
    mj = _local_target(page, mathjax[0])
    assert mj.stat().st_size > 100_000 and (mj.parent / "output" / "chtml" / "fonts").is_dir()


def test_figures_carry_their_data_in_the_page():
    page = HTML / "book" / "taxonomy.html"
    html = page.read_text(encoding="utf-8")
    assert html.count('class="plotly-graph-div"') >= 1
    scripts = "".join(_parse(page).inline_scripts)
    assert "Plotly.newPlot" in scripts
    assert "Thudi et al. (this paper)" in scripts  # the taxonomy figure's points are in the page
    assert "application/vnd.plotly.v1+json" not in html  # no blank JSON-only output


def test_math_is_left_for_mathjax():
    html = (HTML / "book" / "taxonomy.html").read_text(encoding="utf-8")
    assert r"d_{\mathbf{w}}" in html and 'class="math' in html
