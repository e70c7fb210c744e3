"""Plotly figures that render in a live notebook *and* in the static, offline book.

While the book is being built (``UNROLLING_BOOK_BUILD=1``, set by ``make book``) every ``fig.show()``
emits plotly's JSON for Jupyter *and* a ``text/html`` fragment that neither embeds plotly.js nor pulls
MathJax from a CDN: the book serves plotly.js from its own ``_static/`` and MathJax from its own files.
In a live Jupyter, VS Code or Colab session nothing is changed: plotly's own default renderer stays.
"""

from __future__ import annotations

import os
from typing import Any

import plotly.io as pio
from plotly.io.base_renderers import MimetypeRenderer

BOOK_BUILD_ENV = "UNROLLING_BOOK_BUILD"
RENDERER_NAME = "unrolling_book"

__all__ = ["BOOK_BUILD_ENV", "RENDERER_NAME", "BookRenderer", "in_book_build", "use_book_renderer"]


class BookRenderer(MimetypeRenderer):
    """Plotly's JSON (for Jupyter) plus an HTML fragment with no plotly.js and no MathJax inside."""

    def to_mimebundle(self, fig_dict: dict[str, Any]) -> dict[str, Any]:
        html = pio.to_html(
            fig_dict,
            include_plotlyjs=False,
            auto_play=False,
            include_mathjax=False,
            full_html=False,
            validate=False,
            config={"responsive": True, "displaylogo": False},
        )
        return {
            "application/vnd.plotly.v1+json": {"data": fig_dict.get("data", []),
                                               "layout": fig_dict.get("layout", {})},
            "text/html": html,
        }


def in_book_build() -> bool:
    """True while ``make book`` executes the chapters."""
    return os.environ.get(BOOK_BUILD_ENV, "") not in ("", "0")


def use_book_renderer(force: bool = False) -> bool:
    """Make the book renderer plotly's default, only during a book build (or when forced)."""
    if not (force or in_book_build()):
        return False
    pio.renderers[RENDERER_NAME] = BookRenderer()
    pio.renderers.default = RENDERER_NAME
    return True
