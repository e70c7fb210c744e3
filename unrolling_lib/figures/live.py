"""Live widgets: ipywidgets controls that redraw a plotly figure in a running kernel.

The static book cannot run callbacks; there a slider over precomputed frames
(:func:`unrolling_lib.figures.common.frames_slider`) stands in. Chapters open live widgets only where a
frontend can show them, ``if live_session():``: not while the book is built, and not in a headless execution
(the chapter runner and the notebook tests set ``UNROLLING_HEADLESS=1`` for their kernels). Creating a widget
already opens a comm to a frontend; in a kernel that no frontend is attached to, papermill's client was seen
to wait forever for a message after such a cell, so headless runs never create one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import plotly.graph_objects as go

from .render import in_book_build

__all__ = ["HEADLESS_ENV", "live_figure", "live_session"]

HEADLESS_ENV = "UNROLLING_HEADLESS"


def live_session() -> bool:
    """Whether a frontend can show live widgets: False while the book is built or ``UNROLLING_HEADLESS`` is set."""
    return not in_book_build() and os.environ.get(HEADLESS_ENV, "") in ("", "0")


def live_figure(controls: list[Any], draw: Callable[[], go.Figure]) -> Any:
    """ipywidgets for a live kernel: ``controls`` above the figure ``draw()`` returns, redrawn on every change.

    The returned box keeps the last figure in ``box.figure`` (for tests). Without a kernel nothing is
    displayed; the static book uses plotly sliders over precomputed frames instead (:func:`frames_slider`).

    The figure goes into the Output widget as its ``outputs`` state, one assignment per redraw. The widget's
    capture context (``with out: display(fig)``) is not used: it re-routes the kernel's own messages while
    it is open, and with it, executed headless, about half of the runs of the §6.2 chapter lost a message and
    stalled in this cell until the cell timeout.
    """
    import ipywidgets as widgets
    from IPython import get_ipython

    out = widgets.Output()
    box = widgets.VBox([widgets.HBox(controls), out])

    def redraw(*_: Any) -> None:
        box.figure = draw()
        if get_ipython() is None:  # no kernel (e.g. a test): nothing to draw into
            return
        # plotly's rich-display bundle for this kernel's renderer (a Figure's IPython formatter would display it
        # as a side effect instead of returning it)
        out.outputs = ({"output_type": "display_data", "data": box.figure._repr_mimebundle_(), "metadata": {}},)

    for control in controls:
        control.observe(redraw, names="value")
    redraw()
    return box
