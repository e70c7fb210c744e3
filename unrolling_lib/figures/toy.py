"""Figures of §6.2: the toy classifier's loss landscape (Figure 6, Eq. 11), its negative gradient field
(Figure 5), and the SGD training demonstration against the Eq. 12 minimum-norm update.

The numbers come from :mod:`unrolling_lib.theory.toy`. The static book gets plotly sliders over precomputed
γ frames with buttons for the two SD scalings (``*_slider``); a live kernel gets ipywidgets that redraw one
figure (:func:`live_sliders`). The two-scaling figures show ``first_scaling`` first and active: by default the
chapter's, ``"equation"`` (Eq. 10 as printed, the scaling the paper's §6.2 analysis is stated for).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..losses import DEFAULT_SCALING, check_scaling
from ..theory.toy import (
    SD_COEFFICIENT,
    SLIDER_GAMMAS,
    ToyTraining,
    check_gamma_grid,
    gradient_field,
    gradient_flip,
    landscape,
    min_norm_squared,
    ordered_scalings,
    toy_sd_minimum,
)
from ..validation import check_choice, check_number
from .common import TEMPLATE, active_last, f32, frames_slider, sequential_colors
from .live import live_figure

__all__ = [
    "SCALING_LABELS", "field_figure", "field_slider", "landscape_figure", "landscape_slider", "live_sliders",
    "trajectory_figure", "weight_change_figure",
]

SCALING_LABELS = {"equation": "Eq. 10 (population std)", "code": "released code (unbiased std / C)"}
_ARROW_UP, _ARROW_DOWN = "#1f77b4", "#d62728"


# ---------------------------------------------------------------------------------------------- pieces
def _minimum_line(d_star: float, extent: float) -> tuple[list[float], list[float]]:
    """The line of minima a − b = d* clipped to the square [−extent, extent]² (empty if it misses it)."""
    if not math.isfinite(d_star) or abs(d_star) >= 2 * extent:
        return [], []
    lo, hi = max(-extent, -extent + d_star), min(extent, extent + d_star)
    return [round(lo, 4), round(hi, 4)], [round(lo - d_star, 4), round(hi - d_star, 4)]


def _describe(d_star: float) -> str:
    return "no minimum (a − b → ∞)" if not math.isfinite(d_star) else f"a − b = {d_star:.3g}"


def _diagonal(extent: float) -> go.Scatter:
    return go.Scatter(x=[-extent, extent], y=[-extent, extent], mode="lines", name="a = b",
                      line={"color": "black", "width": 2}, hoverinfo="skip")


def _landscape_traces(gamma: float, scaling: str, grid: int, extent: float, visible: bool = True) -> list[Any]:
    """Heatmap of Eq. 11, the line of minima and the minimiser nearest the origin (a = −b = d*/2)."""
    a, b, z = landscape(gamma, scaling, grid=grid, extent=extent)
    d_star = float(toy_sd_minimum(gamma, scaling=scaling))
    lx, ly = _minimum_line(d_star, extent)
    px, py = ([round(d_star / 2, 4)], [round(-d_star / 2, 4)]) if lx else ([], [])
    return [
        go.Heatmap(x=f32(a), y=f32(b), z=f32(z), colorscale="Viridis", visible=visible,
                   colorbar={"title": {"text": "L_SD"}, "len": 0.8},
                   hovertemplate="a=%{x:.2f}<br>b=%{y:.2f}<br>L=%{z:.3f}<extra></extra>"),
        go.Scatter(x=lx, y=ly, mode="lines", name="minimum: " + _describe(d_star), visible=visible,
                   line={"color": "white", "dash": "dash", "width": 2}, hoverinfo="name"),
        go.Scatter(x=px, y=py, mode="markers", name="minimiser nearest (0, 0)", visible=visible,
                   marker={"symbol": "star", "size": 15, "color": "#ff7f0e", "line": {"color": "black", "width": 1}}),
    ]


def _field_traces(gamma: float, scaling: str, arrows: int, extent: float, visible: bool = True,
                  top: float = 2.0) -> list[Any]:
    """Arrows of −∇L (length by magnitude, blue where a − b grows, red where it shrinks) and where they flip.

    Each arrow is two markers at its grid point: an arrowhead, and a line trailing it by half its length
    (``standoff``), so a frame carries a few bytes per arrow instead of line coordinates.
    """
    f = gradient_field(gamma, scaling, arrows=arrows, extent=extent)
    up = (f["slope"] < 0).to_numpy()  # −∇L points to larger a − b
    angle = np.where(up, 135, -45).astype(np.int16)  # degrees clockwise from ↑: 135 is ↘, −45 is ↖
    length = np.round(3 + 19 * np.minimum(np.abs(f["slope"].to_numpy()) / top, 1.0)).astype(np.uint8)
    colors = {"cmin": 0, "cmax": 1, "colorscale": [[0, _ARROW_DOWN], [1, _ARROW_UP]]}
    common = {"x": f32(f["a"]), "y": f32(f["b"]), "mode": "markers", "visible": visible, "hoverinfo": "skip",
              "showlegend": False}
    flip = gradient_flip(gamma, scaling)
    lx, ly = _minimum_line(flip, extent)
    return [
        go.Scatter(**common, name="−∇L (shaft)", marker={"symbol": "line-ns", "angle": angle, "size": length,
                                                         "standoff": length // 2,
                                                         "line": {"width": 2, "color": up.astype(np.uint8),
                                                                  **colors}}),
        go.Scatter(**common, name="−∇L", marker={"symbol": "arrow", "angle": angle, "size": 9, "line": {"width": 0},
                                                 "color": up.astype(np.uint8), **colors}),
        go.Scatter(x=lx, y=ly, mode="lines", name="flip: " + _describe(flip), visible=visible,
                   line={"color": "#2ca02c", "dash": "dash", "width": 3}, hoverinfo="name"),
    ]


def _square_layout(fig: go.Figure, title: str, extent: float) -> go.Figure:
    fig.update_layout(title={"text": title}, height=620, width=None, template=TEMPLATE,
                      margin={"t": 110, "l": 60, "r": 20, "b": 40},
                      legend={"x": 0.01, "y": 0.99, "xanchor": "left", "yanchor": "top",
                              "bgcolor": "rgba(255,255,255,0.85)", "bordercolor": "#bbb", "borderwidth": 1})
    fig.update_xaxes(title_text="a = out₁ (logit of the true class)", range=[-extent, extent], constrain="domain")
    fig.update_yaxes(title_text="b = out₂", range=[-extent, extent], scaleanchor="x", scaleratio=1,
                     constrain="domain")
    return fig


def _title(kind: str, gamma: float, scalings: Sequence[str]) -> str:
    """The figure's title at γ, with the minimum (or flip) of each of ``scalings``, in that order."""
    if kind == "landscape":
        head = f"Figure 6 · SD loss landscape, γ = {gamma:g}"
        what, find = "minimum", lambda s: float(toy_sd_minimum(gamma, scaling=s))
    else:
        head = f"Figure 5 · negative gradient field, γ = {gamma:g}"
        what, find = "flip", lambda s: gradient_flip(gamma, s)
    parts = [f"{s}: {_describe(find(s))}" for s in scalings]
    return f"{head}<br><sup>{what} at " + " · ".join(parts) + "</sup>"


def _changing(trace: Any) -> Any:
    """Only what changes with γ (plotly merges a frame into the trace): keeps the page light.

    Visibility is left out on purpose: it belongs to the scaling buttons, not to the frames.
    """
    if isinstance(trace, go.Heatmap):
        return go.Heatmap(z=trace.z)
    marker = trace.marker
    if marker.symbol == "arrow":
        return go.Scatter(marker={"angle": marker.angle, "color": marker.color})
    if marker.symbol == "line-ns":
        return go.Scatter(marker={"angle": marker.angle, "size": marker.size, "standoff": marker.standoff,
                                  "line": {"color": marker.line.color}})
    return go.Scatter(x=trace.x, y=trace.y, name=trace.name)


# ---------------------------------------------------------------------------- Figures 5 and 6, one γ
def landscape_figure(gamma: float, scaling: str = DEFAULT_SCALING, *, grid: int = 41,
                     extent: float = 4.0) -> go.Figure:
    """Figure 6 at one γ and scaling (the live-widget version)."""
    fig = go.Figure([_diagonal(extent), *_landscape_traces(gamma, scaling, grid, extent)])
    return _square_layout(fig, _title("landscape", gamma, (scaling,)), extent)


def field_figure(gamma: float, scaling: str = DEFAULT_SCALING, *, arrows: int = 15, extent: float = 4.0) -> go.Figure:
    """Figure 5 at one γ and scaling (the live-widget version)."""
    fig = go.Figure([_diagonal(extent), *_field_traces(gamma, scaling, arrows, extent)])
    return _square_layout(fig, _title("field", gamma, (scaling,)), extent)


# ------------------------------------------------------------------- Figures 5 and 6, sliders over γ
def _slider_figure(kind: str, make: Callable[[float, str, bool], list[Any]], gammas: list[float],
                   extent: float, active_gamma: float, first_scaling: str) -> go.Figure:
    """Traces for both scalings at every γ: a slider over frames picks γ, buttons pick the scaling shown."""
    scalings = ordered_scalings(first_scaling)  # trace and button order: first_scaling's, visible on load
    active = int(np.argmin([abs(g - active_gamma) for g in gammas]))
    per = len(make(gammas[active], scalings[0], True))
    base = [_diagonal(extent)]
    for i, s in enumerate(scalings):
        base += make(gammas[active], s, i == 0)
    frames = [go.Frame(name=f"γ={g:g}", data=[_changing(t) for s in scalings for t in make(g, s, True)],
                       traces=list(range(1, 1 + per * len(scalings))),
                       layout={"title": {"text": _title(kind, g, scalings)}})
              for g in gammas]
    sliders = frames_slider(frames, [f"{g:g}" for g in gammas], prefix="γ = ", active=active)
    fig = go.Figure(base, frames=active_last(frames, active))
    buttons = [{"label": SCALING_LABELS[s], "method": "restyle",
                "args": [{"visible": [True] + [j // per == i for j in range(per * len(scalings))]}]}
               for i, s in enumerate(scalings)]
    fig.update_layout(sliders=sliders, updatemenus=[{"type": "buttons", "direction": "right", "buttons": buttons,
                                                     "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom",
                                                     "pad": {"b": 8}, "showactive": True, "active": 0}])
    _square_layout(fig, _title(kind, gammas[active], scalings), extent)
    fig.update_layout(height=760, margin={"t": 150})
    return fig


def landscape_slider(gammas: Sequence[float] = SLIDER_GAMMAS, *, grid: int = 41, extent: float = 4.0,
                     active_gamma: float = 0.5, first_scaling: str = DEFAULT_SCALING) -> go.Figure:
    """Figure 6 with a γ slider over precomputed frames and a toggle between the two SD scalings."""
    gammas = check_gamma_grid("gammas", gammas)  # one frame per γ
    return _slider_figure("landscape", lambda g, s, v: _landscape_traces(g, s, grid, extent, v), gammas, extent,
                          active_gamma, first_scaling)


def field_slider(gammas: Sequence[float] = SLIDER_GAMMAS, *, arrows: int = 15, extent: float = 4.0,
                 active_gamma: float = 0.5, first_scaling: str = DEFAULT_SCALING) -> go.Figure:
    """Figure 5 with a γ slider over precomputed frames and a toggle between the two SD scalings."""
    gammas = check_gamma_grid("gammas", gammas)  # one frame per γ
    # One length scale for the arrows of both scalings: the steepest slope either reaches, 1 + γ·max c.
    top = 1.0 + max(gammas) * max(SD_COEFFICIENT.values())
    return _slider_figure("field", lambda g, s, v: _field_traces(g, s, arrows, extent, v, top), gammas, extent,
                          active_gamma, first_scaling)


# ------------------------------------------------------------------------------ training demonstration
def _thin(df: pd.DataFrame, points: int = 80) -> pd.DataFrame:
    """At most ``points`` rows, evenly spaced in steps, always keeping the first and the last."""
    idx = np.unique(np.linspace(0, len(df) - 1, min(points, len(df))).round().astype(int))
    return df.iloc[idx]


def _trajectory_traces(run: ToyTraining, gamma: float, grid: int, extent: float) -> list[Any]:
    t = _thin(run.trajectories[run.trajectories["gamma"] == gamma])
    heat, line, _ = _landscape_traces(gamma, run.scaling, grid, extent)
    last = t.iloc[-1]
    return [
        heat, line,
        go.Scatter(x=f32(t["a"]), y=f32(t["b"]), mode="lines+markers", name="SGD trajectory",
                   marker={"size": 6, "color": "white", "line": {"width": 1, "color": "black"}},
                   line={"color": "white", "width": 1.5},
                   customdata=t["step"].to_numpy(np.int32),
                   hovertemplate="step %{customdata}<br>a=%{x:.3f}<br>b=%{y:.3f}<extra></extra>"),
        go.Scatter(x=[round(float(last["a"]), 4)], y=[round(float(last["b"]), 4)], mode="markers",
                   name=f"after {run.steps} steps", marker={"symbol": "x", "size": 13, "color": "#ff7f0e"}),
    ]


def _trajectory_title(run: ToyTraining, gamma: float) -> str:
    row = run.final.set_index("gamma").loc[gamma]
    return (f"SGD from constant weights ({run.scaling} scaling), γ = {gamma:g}<br><sup>after {run.steps} steps: "
            f"a − b = {row['d']:.3g}, ‖w_t − w₀‖ = {row['weight_change']:.3g}; minimum at "
            f"{_describe(row['d_star'])}</sup>")


def trajectory_figure(run: ToyTraining, *, grid: int = 41, extent: float = 2.5) -> go.Figure:
    """The SGD trajectory in the (a, b) plane over the landscape of its γ, with a slider over the trained γ."""
    gammas = sorted(run.final["gamma"])
    frames = [go.Frame(name=f"γ={g:g}", data=[_changing(t) for t in _trajectory_traces(run, g, grid, extent)],
                       traces=[1, 2, 3, 4],
                       layout={"title": {"text": _trajectory_title(run, g)}}) for g in gammas]
    active = len(gammas) // 2
    sliders = frames_slider(frames, [f"{g:g}" for g in gammas], prefix="γ = ", active=active)
    fig = go.Figure([_diagonal(extent), *_trajectory_traces(run, gammas[active], grid, extent)],
                    frames=active_last(frames, active))
    fig.update_layout(sliders=sliders)
    return _square_layout(fig, _trajectory_title(run, gammas[active]), extent)


def weight_change_figure(run: ToyTraining) -> go.Figure:
    """‖w_t − w₀‖ against γ (with the Eq. 12 distance to the minimum) and against the step, per γ."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=(f"after {run.steps} steps, against γ", "against the step t"))
    fin = run.final.sort_values("gamma")
    fig.add_trace(go.Scatter(x=fin["gamma"], y=fin["weight_change"], mode="lines+markers", name="SGD: ‖w_t − w₀‖",
                             marker={"size": 9, "color": "#1f77b4"}), row=1, col=1)
    curve = np.linspace(max(0.05, fin["gamma"].min()), max(2.0, fin["gamma"].max()), 60)
    theory_size = [math.sqrt(min_norm_squared(run.x, float(toy_sd_minimum(g, scaling=run.scaling))))
                   for g in curve]
    fig.add_trace(go.Scatter(x=np.round(curve, 3), y=np.round(theory_size, 4), mode="lines",
                             name="Eq. 12: smallest change reaching the minimum", line={"dash": "dash",
                                                                                       "color": "#7f7f7f"}),
                  row=1, col=1)
    for color, g in zip(sequential_colors(len(fin)), fin["gamma"], strict=True):
        t = _thin(run.trajectories[run.trajectories["gamma"] == g], 120)
        fig.add_trace(go.Scatter(x=t["step"].to_numpy(np.int32), y=f32(t["weight_change"]), mode="lines",
                                 name=f"γ = {g:g}", line={"color": color}), row=1, col=2)
    top = float(fin["weight_change"].max()) * 1.6
    fig.update_yaxes(title_text="‖w_t − w₀‖₂", range=[0, top], row=1, col=1)
    fig.update_yaxes(title_text="‖w_t − w₀‖₂", row=1, col=2)
    fig.update_xaxes(title_text="γ", row=1, col=1)
    fig.update_xaxes(title_text="SGD step t", row=1, col=2)
    fig.update_layout(template=TEMPLATE, height=460, title="How far SGD moves the weights (§6.2)",
                      legend={"font": {"size": 11}})
    return fig


# ------------------------------------------------------------------------------------------ live widget
def live_sliders(kind: str = "landscape", *, gamma: float = 0.5, scaling: str = DEFAULT_SCALING, grid: int = 41,
                 arrows: int = 15, extent: float = 4.0, gamma_max: float = 3.0) -> Any:
    """ipywidgets for a live kernel: a γ slider and a scaling toggle that redraw Figure 6 or Figure 5.

    ``scaling`` is the one drawn first (and the toggle's leftmost button). The returned box holds the figure
    last drawn in ``box.figure`` (for tests). Needs a kernel to react; the static book uses
    :func:`landscape_slider` / :func:`field_slider` instead.
    """
    import ipywidgets as widgets

    builders = {"landscape": lambda g, s: landscape_figure(g, s, grid=grid, extent=extent),
                "field": lambda g, s: field_figure(g, s, arrows=arrows, extent=extent)}
    check_choice("kind", kind, tuple(builders))
    check_scaling(scaling)
    gamma = check_number("gamma", gamma, inclusive=True)
    gamma_max = check_number("gamma_max", gamma_max)
    slider = widgets.FloatSlider(value=gamma, min=0.0, max=gamma_max, step=0.01, description="γ",
                                 continuous_update=False, readout_format=".2f")
    toggle = widgets.ToggleButtons(options=[(SCALING_LABELS[s], s) for s in ordered_scalings(scaling)],
                                   value=scaling, description="SD term")
    return live_figure([slider, toggle], lambda: builders[kind](slider.value, toggle.value))
