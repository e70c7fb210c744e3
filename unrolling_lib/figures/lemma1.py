"""Figures of §4.1: Lemma 1 (Eq. 2) and Corollary 1 (Eq. 3) against their bounds, and the densities P, P′, P″.

The numbers come from :func:`unrolling_lib.theory.lemma1.lemma1_table` and
:func:`unrolling_lib.theory.weight_densities.density_curves`; this module only draws them.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..theory.weight_densities import DensityCurves
from ..validation import ParameterError
from .common import COLORS, active_last, f32, frames_slider

__all__ = ["lemma1_density_figure", "lemma1_figure"]


def lemma1_figure(table: pd.DataFrame) -> go.Figure:
    """Left: ‖P − P′‖∞ against L·d (log-log, with the line of equality). Right: tightness against s (§4.1).

    ``table`` is a :func:`~unrolling_lib.theory.lemma1.lemma1_table`.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("‖P − P′‖∞ against the bound L·d",
                                                        "tightness ‖P − P′‖∞ / (L·d)"))
    top = float(max(table["bound"].max(), table["bound_unlearned"].max()))
    low = float(min(table["sup_norm"].min(), table["sup_norm_unlearned"].min()))
    fig.add_trace(go.Scatter(x=[low, top], y=[low, top], mode="lines", name="equality (bound tight)",
                             line={"color": "black", "dash": "dash"}), row=1, col=1)
    for (n, m), g in table.groupby(["n", "m"]):
        label = f"n={n}, m={m} ({int(g['orderings'].iloc[0])} orderings)"
        hover = "s=%{customdata:.3g}<br>L·d=%{x:.3g}<br>sup=%{y:.3g}<extra>" + label + "</extra>"
        fig.add_trace(go.Scatter(x=g["bound"], y=g["sup_norm"], mode="markers", name=label, legendgroup=label,
                                 customdata=g["noise_scale"], hovertemplate=hover,
                                 marker={"size": 9}), row=1, col=1)
        fig.add_trace(go.Scatter(x=g["noise_scale"], y=g["ratio"], mode="lines+markers", name=label,
                                 legendgroup=label, showlegend=False), row=1, col=2)
    fig.add_trace(go.Scatter(x=table["bound_unlearned"], y=table["sup_norm_unlearned"], mode="markers",
                             name="after unlearning: ‖P″ − P′‖∞ vs L·v",
                             marker={"symbol": "x", "size": 8, "color": "grey"}), row=1, col=1)
    fig.update_xaxes(type="log", title_text="L·d (or L·v)", row=1, col=1)
    fig.update_yaxes(type="log", title_text="sup-norm", row=1, col=1)
    fig.update_xaxes(type="log", title_text="noise scale s", row=1, col=2)
    fig.update_yaxes(title_text="ratio (1 = tight)", range=[0, 1.05], row=1, col=2)
    fig.update_layout(height=560, legend={"orientation": "h", "y": -0.22})
    return fig


def _frame(c: DensityCurves) -> go.Frame:
    grid = f32(c.grid)
    gap = c.gap
    data = [go.Scatter(x=grid, y=f32(c.full), name="P (trained on D)", line={"color": COLORS[0]}),
            go.Scatter(x=grid, y=f32(c.retrained), name="P′ (retrained on D′)", line={"color": COLORS[3]}),
            go.Scatter(x=grid, y=f32(c.unlearned), name="P″ (single-gradient unlearning)",
                       line={"color": COLORS[2], "dash": "dot"}),
            go.Scatter(x=grid, y=f32(gap), name="|P − P′|", line={"color": "black"}, yaxis="y2"),
            go.Scatter(x=[c.grid[0], c.grid[-1]], y=[c.bound] * 2, name="L·d", yaxis="y2",
                       line={"color": "black", "dash": "dash"})]
    s = c.noise_scale
    title = f"n={c.n}, m={c.m}: s = {s:g}, sup|P − P′| = {gap.max():.3g}, L·d = {c.bound:.3g}"
    # plotly does not rescale axes while animating between frames: every frame carries its ranges
    top, top2 = 1.05 * max(c.full.max(), c.retrained.max(), c.unlearned.max()), 1.1 * max(c.bound, gap.max())
    return go.Frame(name=f"s={s:g}", data=data, layout={
        "title": {"text": title}, "xaxis": {"range": [c.grid[0], c.grid[-1]]}, "yaxis": {"range": [0, top]},
        "yaxis2": {"range": [0, top2]}})


def lemma1_density_figure(curves: Sequence[DensityCurves]) -> go.Figure:
    """P, P′ and P″ (1-D) with |P − P′| against L·d, a slider over the noise scale s (precomputed frames).

    ``curves`` come from :func:`~unrolling_lib.theory.weight_densities.density_curves`, one per noise scale; the
    slider starts at the middle one.
    """
    curves = list(curves)
    if not curves or not all(isinstance(c, DensityCurves) for c in curves):
        raise ParameterError("curves must be a non-empty list of DensityCurves "
                             "(from weight_densities.density_curves)")
    frames = [_frame(c) for c in curves]
    labels = [f"{c.noise_scale:g}" for c in curves]
    active = len(frames) // 2
    sliders = frames_slider(frames, labels, prefix="noise scale s = ", active=active)
    fig = go.Figure(data=frames[active].data, frames=active_last(frames, active))
    fig.update_layout(sliders=sliders, title={"text": frames[active].layout.title.text, "y": 0.98, "yanchor": "top"},
                      height=600, margin={"t": 140},
                      xaxis={"title": "final weight w", "range": list(frames[active].layout.xaxis.range)},
                      yaxis={"title": "density", "range": list(frames[active].layout.yaxis.range)},
                      yaxis2={"title": "|P − P′| and L·d", "overlaying": "y", "side": "right",
                              "range": list(frames[active].layout.yaxis2.range), "showgrid": False},
                      legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"})
    return fig
