"""Plotly figures that render in a live notebook *and* in the static, offline book.

While the book is being built (``UNROLLING_BOOK_BUILD=1``, set by ``make book``) every ``fig.show()``
emits plotly's JSON for Jupyter *and* a ``text/html`` fragment that neither embeds plotly.js nor pulls
MathJax from a CDN: the book serves plotly.js from its own ``_static/`` and MathJax from its own files.
In a live Jupyter, VS Code or Colab session nothing is changed: plotly's own default renderer stays.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.io.base_renderers import MimetypeRenderer

BOOK_BUILD_ENV = "UNROLLING_BOOK_BUILD"
RENDERER_NAME = "unrolling_book"

__all__ = ["BOOK_BUILD_ENV", "BookRenderer", "in_book_build", "use_book_renderer", "frames_slider"]


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


def frames_slider(
    frames: list[go.Frame],
    labels: list[str],
    *,
    prefix: str = "",
    active: int = 0,
) -> list[dict[str, Any]]:
    """A plotly slider over precomputed frames: works in the static book with no kernel."""
    if len(frames) != len(labels):
        raise ValueError(f"labels has {len(labels)} entries; frames has {len(frames)}")
    steps = [
        {
            "method": "animate",
            "label": label,
            "args": [[frame.name], {"mode": "immediate", "frame": {"duration": 0, "redraw": True},
                                    "transition": {"duration": 0}}],
        }
        for frame, label in zip(frames, labels, strict=True)
    ]
    return [{"active": active, "currentvalue": {"prefix": prefix}, "pad": {"t": 40}, "steps": steps}]


def verification_figure(df: Any) -> go.Figure:
    """§8.3 (Figures 9 and 11): unlearning error e against verification error v, one trace per γ over t."""
    fig = go.Figure()
    for gamma, rows in df.groupby("gamma", sort=True):
        fig.add_trace(go.Scatter(
            x=rows["e"], y=rows["v"], mode="lines+markers", name=f"γ = {gamma:g}",
            marker={"size": 7}, customdata=rows[["t", "weight_change", "sigma_avg"]].to_numpy(),
            hovertemplate="t=%{customdata[0]}<br>e=%{x:.4g}<br>v=%{y:.4g}<br>‖Δw‖=%{customdata[1]:.3g}"
                          "<br>σ_avg=%{customdata[2]:.3g}<extra>γ = " + f"{gamma:g}</extra>",
        ))
    fig.update_layout(title="Unlearning error (Eq. 9) vs verification error, along t and across γ",
                      xaxis_title="unlearning error e", yaxis_title="verification error v = ‖w′ − w″‖₂",
                      template="plotly_white", height=460, legend_title="SD strength")
    return fig


def components_figure(df: Any, columns: tuple[str, ...] = ("e", "v", "weight_change", "sigma_avg")) -> go.Figure:
    """The pieces of Eq. 9 over fine-tuning steps t, one panel per quantity and one line per γ (§8.2)."""
    from plotly.subplots import make_subplots

    titles = {"e": "unlearning error e", "v": "verification error v", "weight_change": "‖w_t − w₀‖₂",
              "sigma_avg": "σ_avg", "accuracy": "test accuracy"}
    ncols = 2
    nrows = -(-len(columns) // ncols)
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=[titles.get(c, c) for c in columns],
                        vertical_spacing=0.16, horizontal_spacing=0.1)
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
    for k, (gamma, rows) in enumerate(df.groupby("gamma", sort=True)):
        for i, name in enumerate(columns):
            row, col = divmod(i, ncols)
            fig.add_trace(go.Scatter(x=rows["t"], y=rows[name], mode="lines", name=f"γ = {gamma:g}",
                                     legendgroup=str(gamma), showlegend=i == 0,
                                     line={"color": colors[k % len(colors)]}), row=row + 1, col=col + 1)
            fig.update_xaxes(title_text="t", row=row + 1, col=col + 1)
    fig.update_layout(template="plotly_white", height=300 * nrows + 80, margin={"t": 60})
    return fig


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
