"""Live widgets: ipywidgets controls that redraw a plotly figure in a running kernel.

The static book cannot run callbacks; there a slider over precomputed frames
(:func:`unrolling_lib.figures.common.frames_slider`) stands in. Chapters show live widgets only outside the
book build (``not in_book_build()``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import plotly.graph_objects as go

__all__ = ["live_figure"]


def live_figure(controls: list[Any], draw: Callable[[], go.Figure]) -> Any:
    """ipywidgets for a live kernel: ``controls`` above the figure ``draw()`` returns, redrawn on every change.

    The returned box keeps the last figure in ``box.figure`` (for tests). Without a kernel nothing is
    displayed; the static book uses plotly sliders over precomputed frames instead (:func:`frames_slider`).
    """
    import ipywidgets as widgets
    from IPython import get_ipython
    from IPython.display import display

    out = widgets.Output()
    box = widgets.VBox([widgets.HBox(controls), out])

    def redraw(*_: Any) -> None:
        box.figure = draw()
        if get_ipython() is None:  # no kernel (e.g. a test): nothing to draw into
            return
        with out:
            out.clear_output(wait=True)
            display(box.figure)

    for control in controls:
        control.observe(redraw, names="value")
    redraw()
    return box
