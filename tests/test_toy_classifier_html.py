"""The built page of the toy-classifier chapter carries its γ sliders and their frames, and stays light.

Reads ``$UNROLLING_BOOK_HTML`` (default ``<repo>/_build/html``), so a build made elsewhere can be checked.
"""

import json
import os
import re
from pathlib import Path

import pytest

from unrolling_lib.figures.toy import SCALING_LABELS
from unrolling_lib.theory.toy import TOY_DEFAULTS

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("UNROLLING_BOOK_HTML", ROOT / "_build" / "html"))
PAGE = HTML / "book" / "toy_classifier.html"
MAX_BYTES = 1_500_000


def _page() -> str:
    if not PAGE.exists():
        pytest.fail(f"{PAGE} is not built: run `make book` (make test builds it first)")
    return PAGE.read_text(encoding="utf-8")


def _frames(html: str) -> list[list[dict]]:
    """The frames of every figure on the page, as plotly's HTML hands them to ``Plotly.addFrames``."""
    decoder = json.JSONDecoder()
    found = []
    for match in re.finditer(r"Plotly\.addFrames\('[^']+',\s*", html):
        frames, _ = decoder.raw_decode(html, match.end())
        found.append(frames)
    return found


def test_page_carries_sliders_over_frames_for_every_gamma():
    html = _page()
    sizes = sorted(len(f) for f in _frames(html))
    quick = TOY_DEFAULTS["quick"]
    n_slider, n_train = len(quick["slider_gammas"]), len(quick["gammas"])
    assert sizes == sorted([n_slider, n_slider, n_train]), f"frames per figure: {sizes}"
    assert html.count('"sliders"') >= 3
    for frames in _frames(html):
        assert all(f["name"].startswith("γ=") and f["data"] for f in frames)


def test_page_has_the_scaling_toggle_and_no_widget_leftovers():
    html = _page()
    assert html.count('"updatemenus"') >= 2
    for label in SCALING_LABELS.values():
        assert label in html or label.replace("/", "\\u002f") in html, f"no toggle button {label!r}"
    assert "application/vnd.jupyter.widget-view+json" not in html  # ipywidgets only in a live kernel
    assert "Traceback" not in html


def test_page_weight_stays_modest():
    size = PAGE.stat().st_size if PAGE.exists() else len(_page())
    print(f"{PAGE.name}: {size} bytes")
    assert size < MAX_BYTES, f"{PAGE.name} weighs {size} bytes; keep it under {MAX_BYTES}"
