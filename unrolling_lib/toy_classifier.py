"""The binary toy classifier of §6.2: how SD loss (Eq. 10) shrinks the weight change ‖w_t − w₀‖.

A linear model ``M(x) = w x`` with a 2 × k weight matrix sees one point ``x`` with label 0; its outputs are
``a = w₁·x`` and ``b = w₂·x``. Eq. 11 writes the SD loss as a function of (a, b), and it depends on
``d = a − b`` only. This module computes everything the chapter shows:

- the loss landscape over an (a, b) grid (Figure 6) and its negative gradient field (Figure 5), with the
  value of ``d`` where the field's direction flips;
- the minimum-norm weight update that moves ``d`` by ε (Eq. 12), in closed form and numerically;
- a training demonstration: plain SGD from constant weights (so ``a = b`` exactly) for several γ;
- plotly figures with sliders over precomputed frames (the static book) and ipywidgets (a live kernel).

Two scalings of the SD term (see ``theory.toy_sd_loss``): ``"equation"`` (Eq. 10's population std of the
two logits, ``|a − b| / 2``) and ``"code"`` (the released code's unbiased std divided by the number of
outputs, ``|a − b| / (2√2)``). The SD term is ``γ · theory.SD_COEFFICIENT[scaling] · |a − b|`` in both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from scipy.optimize import brentq, minimize, minimize_scalar
from scipy.special import expit

from . import losses, theory
from .plotting import frames_slider, live_figure
from .profiles import ParameterError, check_int, check_number

__all__ = [
    "SCALINGS", "SLIDER_GAMMAS", "DEFAULTS", "ToyTraining",
    "landscape", "loss_slope", "loss_gradient", "gradient_field", "gradient_flip", "numeric_minimum",
    "minimum_check",
    "min_norm_update", "min_norm_squared", "min_norm_update_numeric", "d_step", "train_toy",
    "landscape_figure", "field_figure", "landscape_slider", "field_slider", "trajectory_figure",
    "weight_change_figure", "live_sliders",
]

SCALINGS = ("equation", "code")
SCALING_LABELS = {"equation": "Eq. 10 (population std)", "code": "released code (unbiased std / C)"}
# γ for the static sliders: [0, 2], finer around 1 (the equation's threshold) and √2 (the code's).
SLIDER_GAMMAS: tuple[float, ...] = (
    0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2,
    1.3, 1.35, 1.4, 1.45, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0,
)

_QUICK: dict[str, Any] = {
    "gammas": [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0],  # training demonstration
    "steps": 400,
    "lr": 0.05,
    "features": 8,  # k: the model is a 2 × k matrix
    "init": 0.1,  # every weight starts at this constant, so a₀ = b₀
    "slider_gammas": list(SLIDER_GAMMAS),
    "grid": 41,  # landscape resolution (grid × grid)
    "arrows": 15,  # gradient-field resolution (arrows × arrows)
    "extent": 4.0,  # a, b ∈ [−extent, extent]
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "quick": dict(_QUICK),
    "colab": dict(_QUICK),
    "paper": {**_QUICK, "gammas": [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.25, 1.5, 2.0], "steps": 2000,
              "grid": 61, "arrows": 21},
}

_ARROW_UP, _ARROW_DOWN = "#1f77b4", "#d62728"


# ----------------------------------------------------------------------------------------------- checks
def _check_scaling(scaling: str) -> None:
    if scaling not in SCALINGS:
        raise ParameterError(f"scaling={scaling!r} is not allowed; choose one of {', '.join(map(repr, SCALINGS))}")


# ------------------------------------------------------------------------------------- Eq. 11 landscape
def axis(grid: int = 41, extent: float = 4.0) -> np.ndarray:
    """The values of a (or b) on a grid: ``grid`` points evenly spaced over [−extent, extent]."""
    check_int("grid", grid, 2)
    check_number("extent", extent)
    return np.linspace(-extent, extent, grid)


def landscape(gamma: float, scaling: str = "equation", *, grid: int = 41,
              extent: float = 4.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eq. 11 over a grid of (a, b) (Figure 6): ``(a, b, L)`` with ``L[i, j] = L_SD(a[j], b[i])``."""
    gamma = check_number("gamma", gamma, inclusive=True)
    _check_scaling(scaling)
    a = axis(grid, extent)
    big_a, big_b = np.meshgrid(a, a)
    return a, a.copy(), np.asarray(theory.toy_sd_loss(big_a, big_b, gamma, scaling=scaling), dtype=float)


def loss_slope(d: np.ndarray | float, gamma: float, scaling: str = "equation") -> np.ndarray:
    """dL/dd of Eq. 11 along d = a − b: ``−1/(1 + e^d) + γ·c·sign(d)`` with c = ``theory.SD_COEFFICIENT[scaling]``.

    At d = 0 the SD term has a kink; there the slope is the subgradient of smallest magnitude,
    ``min(0, γc − 1/2)``, i.e. the direction steepest descent takes.
    """
    gamma = check_number("gamma", gamma, inclusive=True)
    _check_scaling(scaling)
    d = np.asarray(d, dtype=float)
    c = gamma * theory.SD_COEFFICIENT[scaling]
    slope = -expit(-d) + c * np.sign(d)
    return np.where(d == 0, min(0.0, c - 0.5), slope)


def loss_gradient(a: np.ndarray | float, b: np.ndarray | float, gamma: float,
                  scaling: str = "equation") -> tuple[np.ndarray, np.ndarray]:
    """(∂L/∂a, ∂L/∂b) of Eq. 11; since L depends on a − b only, ∂L/∂b = −∂L/∂a."""
    slope = loss_slope(np.asarray(a, dtype=float) - np.asarray(b, dtype=float), gamma, scaling)
    return slope, -slope


def gradient_field(gamma: float, scaling: str = "equation", *, arrows: int = 15,
                   extent: float = 4.0) -> pd.DataFrame:
    """The negative gradient −∇L of Eq. 11 on a grid of arrows (Figure 5): columns a, b, da, db, slope.

    The b-axis is shifted by half a cell so no arrow sits on the kink a = b.
    """
    a = axis(arrows, extent)
    b = a + (a[1] - a[0]) / 2
    big_a, big_b = (m.ravel() for m in np.meshgrid(a, b))
    ga, gb = loss_gradient(big_a, big_b, gamma, scaling)
    return pd.DataFrame({"a": big_a, "b": big_b, "da": -ga, "db": -gb, "slope": ga})


def gradient_flip(gamma: float, scaling: str = "equation", *, extent: float = 40.0, points: int = 801) -> float:
    """Where −∇L flips direction along d = a − b (Figure 5), found numerically; ``inf`` when it never does.

    Scans the slope for a change from negative to non-negative and refines the bracket with Brent's method.
    """
    check_number("extent", extent)
    d = np.linspace(-extent, extent, 2 * (points // 2) + 1)  # odd: d = 0 is on the grid
    s = loss_slope(d, gamma, scaling)
    hits = np.flatnonzero((s[:-1] < 0) & (s[1:] >= 0))
    if not hits.size:
        return math.inf
    i = int(hits[0])
    if s[i + 1] == 0:
        return float(d[i + 1])
    return float(brentq(lambda t: float(loss_slope(t, gamma, scaling)), d[i], d[i + 1], xtol=1e-12))


def numeric_minimum(gamma: float, scaling: str = "equation", *, bound: float = 50.0) -> float:
    """The minimiser of Eq. 11 along d = a − b by a bounded scalar search (an independent check of d*)."""
    gamma = check_number("gamma", gamma, inclusive=True)
    check_number("bound", bound)
    found = minimize_scalar(lambda t: float(theory.toy_sd_loss(t, 0.0, gamma, scaling=scaling)),
                            bounds=(-bound, bound), method="bounded", options={"xatol": 1e-10})
    return float(found.x)


# ------------------------------------------------------------------------------ Eq. 12 minimum-norm update
def _check_x(x: np.ndarray | Sequence[float]) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)) or not np.any(x):
        raise ParameterError(f"x has shape {x.shape}; use a finite, non-zero 1-D vector")
    return x


def min_norm_update(x: np.ndarray | Sequence[float], eps: float) -> tuple[np.ndarray, np.ndarray]:
    """The solution of Eq. 12: ``u₁ = εx / (2‖x‖²)``, ``u₂ = −u₁`` (the smallest change moving a − b by ε)."""
    x = _check_x(x)
    u1 = eps * x / (2.0 * float(x @ x))
    return u1, -u1


def min_norm_squared(x: np.ndarray | Sequence[float], eps: float) -> float:
    """‖u₁‖² + ‖u₂‖² at the solution of Eq. 12: ε² / (2‖x‖²) (the paper prints (ε²/2)‖x‖², a typo)."""
    x = _check_x(x)
    return float(eps) ** 2 / (2.0 * float(x @ x))


def min_norm_update_numeric(x: np.ndarray | Sequence[float], eps: float,
                            method: str = "kkt") -> tuple[np.ndarray, np.ndarray]:
    """Eq. 12 solved numerically: the KKT linear system (``"kkt"``) or SLSQP with an equality constraint."""
    x = _check_x(x)
    k = x.size
    c = np.concatenate([x, -x])  # the constraint (u₁ − u₂)·x = ε is c·u = ε with u = (u₁, u₂)
    if method == "kkt":
        # Stationarity of ‖u‖² + λ(c·u − ε): 2u + λc = 0; feasibility: c·u = ε.
        kkt = np.block([[2.0 * np.eye(2 * k), c[:, None]], [c[None, :], np.zeros((1, 1))]])
        u = np.linalg.solve(kkt, np.concatenate([np.zeros(2 * k), [eps]]))[: 2 * k]
    elif method == "slsqp":
        found = minimize(lambda u: float(u @ u), np.zeros(2 * k), jac=lambda u: 2 * u, method="SLSQP",
                         constraints=[{"type": "eq", "fun": lambda u: c @ u - eps, "jac": lambda u: c}],
                         options={"ftol": 1e-14, "maxiter": 200})
        u = found.x
    else:
        raise ParameterError(f"method={method!r} is not allowed; choose 'kkt' or 'slsqp'")
    return u[:k], u[k:]


# ----------------------------------------------------------------------------- training demonstration
@dataclass
class ToyTraining:
    """Plain SGD on one point from constant weights (§6.2): trajectories, final values and the set-up."""

    trajectories: pd.DataFrame  # step, gamma, a, b, d, loss, grad_norm, weight_change
    final: pd.DataFrame  # one row per γ: the last step, with d* and the Eq. 12 minimum-norm sizes
    x: np.ndarray
    lr: float
    steps: int
    init: float
    scaling: str


def d_step(lr: float, x: np.ndarray, slope: float) -> float:
    """How far one SGD step moves d = a − b: ``lr · 2‖x‖² · |dL/dd|`` (both rows of w move along ±x)."""
    x = _check_x(x)
    return float(lr * 2.0 * float(x @ x) * abs(slope))


def _train_one(x: torch.Tensor, gamma: float, steps: int, lr: float, init: float, scaling: str) -> pd.DataFrame:
    """SGD on (x, label 0) with ``losses.sd_loss``; one row per step (before its update) and one after the last."""
    w = torch.full((2, x.numel()), float(init), dtype=torch.float64, requires_grad=True)
    w0 = w.detach().clone()
    target = torch.zeros(1, dtype=torch.long)
    rows = []
    for step in range(steps + 1):
        logits = (w @ x).unsqueeze(0)
        loss = losses.sd_loss(logits, target, gamma, scaling=scaling)
        (grad,) = torch.autograd.grad(loss, w)
        a, b = (float(v) for v in logits.detach()[0])
        rows.append((step, gamma, a, b, a - b, loss.item(), float(grad.norm()), float((w.detach() - w0).norm())))
        if step < steps:
            with torch.no_grad():
                w -= lr * grad
    return pd.DataFrame(rows, columns=["step", "gamma", "a", "b", "d", "loss", "grad_norm", "weight_change"])


def train_toy(gammas: Sequence[float], *, steps: int = 400, lr: float = 0.05, features: int = 8,
              init: float = 0.1, scaling: str = "equation", seed: int = 0) -> ToyTraining:
    """Train the 2 × k linear model of §6.2 on one point, once per γ, from the same constant weights.

    ``x`` is drawn once from N(0, I/k) with ``seed``. Every run starts at a₀ = b₀ (so the SD term starts at
    its kink) and takes ``steps`` plain SGD steps of size ``lr`` on ``losses.sd_loss``.
    """
    gammas = [check_number("gammas", g, inclusive=True) for g in gammas]
    if not gammas:
        raise ParameterError("gammas=[] is not allowed; give at least one γ ≥ 0")
    check_int("steps", steps, 1)
    check_number("lr", lr)
    check_int("features", features, 1)
    _check_scaling(scaling)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(features, generator=gen, dtype=torch.float64) / math.sqrt(features)
    traj = pd.concat([_train_one(x, g, steps, lr, init, scaling) for g in gammas], ignore_index=True)
    return ToyTraining(traj, _final(traj, x.numpy(), lr, scaling), x.numpy(), float(lr), steps, float(init), scaling)


def _final(traj: pd.DataFrame, x: np.ndarray, lr: float, scaling: str) -> pd.DataFrame:
    """The last step of each run, with d*, the Eq. 12 sizes and one SGD step's reach in d."""
    final = traj[traj["step"] == traj["step"].max()].reset_index(drop=True)
    d0 = traj[traj["step"] == 0].set_index("gamma")["d"]
    final["d_star"] = [float(theory.toy_sd_minimum(g, scaling=scaling)) for g in final["gamma"]]
    final["min_norm_to_final"] = [math.sqrt(min_norm_squared(x, d - d0[g])) for g, d in
                                  zip(final["gamma"], final["d"], strict=True)]
    final["min_norm_to_minimum"] = [math.sqrt(min_norm_squared(x, s - d0[g])) if math.isfinite(s) else math.inf
                                    for g, s in zip(final["gamma"], final["d_star"], strict=True)]
    final["d_step_bound"] = [d_step(lr, x, 1.0 + g * theory.SD_COEFFICIENT[scaling]) for g in final["gamma"]]
    return final


# -------------------------------------------------------------------------------------------- figures
def _f32(values: np.ndarray) -> np.ndarray:
    """Figure data as float32 (plotly ships numpy arrays as compact binary: half the page weight of float64)."""
    return np.asarray(values, dtype=np.float32)


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
    d_star = float(theory.toy_sd_minimum(gamma, scaling=scaling))
    lx, ly = _minimum_line(d_star, extent)
    px, py = ([round(d_star / 2, 4)], [round(-d_star / 2, 4)]) if lx else ([], [])
    return [
        go.Heatmap(x=_f32(a), y=_f32(b), z=_f32(z), colorscale="Viridis", visible=visible,
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
    common = {"x": _f32(f["a"]), "y": _f32(f["b"]), "mode": "markers", "visible": visible, "hoverinfo": "skip",
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
    fig.update_layout(title={"text": title}, height=620, width=None, template="plotly_white",
                      margin={"t": 110, "l": 60, "r": 20, "b": 40},
                      legend={"x": 0.01, "y": 0.99, "xanchor": "left", "yanchor": "top",
                              "bgcolor": "rgba(255,255,255,0.85)", "bordercolor": "#bbb", "borderwidth": 1})
    fig.update_xaxes(title_text="a = out₁ (logit of the true class)", range=[-extent, extent], constrain="domain")
    fig.update_yaxes(title_text="b = out₂", range=[-extent, extent], scaleanchor="x", scaleratio=1,
                     constrain="domain")
    return fig


def _title(kind: str, gamma: float, scaling: str | None = None) -> str:
    if kind == "landscape":
        head = f"Figure 6 · SD loss landscape, γ = {gamma:g}"
        what, find = "minimum", lambda s: float(theory.toy_sd_minimum(gamma, scaling=s))
    else:
        head = f"Figure 5 · negative gradient field, γ = {gamma:g}"
        what, find = "flip", lambda s: gradient_flip(gamma, s)
    shown = [scaling] if scaling else list(SCALINGS)
    parts = [f"{s}: {_describe(find(s))}" for s in shown]
    return f"{head}<br><sup>{what} at " + " · ".join(parts) + "</sup>"


def landscape_figure(gamma: float, scaling: str = "equation", *, grid: int = 41, extent: float = 4.0) -> go.Figure:
    """Figure 6 at one γ and scaling (the live-widget version)."""
    fig = go.Figure([_diagonal(extent), *_landscape_traces(gamma, scaling, grid, extent)])
    return _square_layout(fig, _title("landscape", gamma, scaling), extent)


def field_figure(gamma: float, scaling: str = "equation", *, arrows: int = 15, extent: float = 4.0) -> go.Figure:
    """Figure 5 at one γ and scaling (the live-widget version)."""
    fig = go.Figure([_diagonal(extent), *_field_traces(gamma, scaling, arrows, extent)])
    return _square_layout(fig, _title("field", gamma, scaling), extent)


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


def _slider_figure(kind: str, make: Callable[[float, str, bool], list[Any]], gammas: Sequence[float],
                   extent: float, active_gamma: float) -> go.Figure:
    """Traces for both scalings at every γ: a slider over frames picks γ, buttons pick the scaling shown."""
    gammas = [check_number("gammas", g, inclusive=True) for g in gammas]
    if not gammas:
        raise ParameterError("gammas=[] is not allowed; give at least one γ ≥ 0")
    active = int(np.argmin([abs(g - active_gamma) for g in gammas]))
    per = len(make(gammas[active], SCALINGS[0], True))
    base = [_diagonal(extent)]
    for i, s in enumerate(SCALINGS):
        base += make(gammas[active], s, i == 0)
    frames = [go.Frame(name=f"γ={g:g}", data=[_changing(t) for s in SCALINGS for t in make(g, s, True)],
                       traces=list(range(1, 1 + per * len(SCALINGS))), layout={"title": {"text": _title(kind, g)}})
              for g in gammas]
    labels = [f"{g:g}" for g in gammas]
    sliders = frames_slider(frames, labels, prefix="γ = ", active=active)
    # plotly's HTML auto-plays all frames once on load; put the active frame last so it ends where the slider is.
    frames = frames[:active] + frames[active + 1:] + [frames[active]]
    fig = go.Figure(base, frames=frames)
    buttons = [{"label": SCALING_LABELS[s], "method": "restyle",
                "args": [{"visible": [True] + [j // per == i for j in range(per * len(SCALINGS))]}]}
               for i, s in enumerate(SCALINGS)]
    fig.update_layout(sliders=sliders, updatemenus=[{"type": "buttons", "direction": "right", "buttons": buttons,
                                                     "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom",
                                                     "pad": {"b": 8}, "showactive": True, "active": 0}])
    _square_layout(fig, _title(kind, gammas[active]), extent)
    fig.update_layout(height=760, margin={"t": 150})
    return fig


def landscape_slider(gammas: Sequence[float] = SLIDER_GAMMAS, *, grid: int = 41, extent: float = 4.0,
                     active_gamma: float = 0.5) -> go.Figure:
    """Figure 6 with a γ slider over precomputed frames and a toggle between the two SD scalings."""
    return _slider_figure("landscape", lambda g, s, v: _landscape_traces(g, s, grid, extent, v), gammas, extent,
                          active_gamma)


def field_slider(gammas: Sequence[float] = SLIDER_GAMMAS, *, arrows: int = 15, extent: float = 4.0,
                 active_gamma: float = 0.5) -> go.Figure:
    """Figure 5 with a γ slider over precomputed frames and a toggle between the two SD scalings."""
    top = 1.0 + max(gammas, default=0.0) * theory.SD_COEFFICIENT["equation"]
    return _slider_figure("field", lambda g, s, v: _field_traces(g, s, arrows, extent, v, top), gammas, extent,
                          active_gamma)


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
        go.Scatter(x=_f32(t["a"]), y=_f32(t["b"]), mode="lines+markers", name="SGD trajectory",
                   marker={"size": 6, "color": "white", "line": {"width": 1, "color": "black"}},
                   line={"color": "white", "width": 1.5},
                   customdata=t["step"].to_numpy(np.int32),
                   hovertemplate="step %{customdata}<br>a=%{x:.3f}<br>b=%{y:.3f}<extra></extra>"),
        go.Scatter(x=[round(float(last["a"]), 4)], y=[round(float(last["b"]), 4)], mode="markers",
                   name=f"after {run.steps} steps", marker={"symbol": "x", "size": 13, "color": "#ff7f0e"}),
    ]


def trajectory_figure(run: ToyTraining, *, grid: int = 41, extent: float = 2.5) -> go.Figure:
    """The SGD trajectory in the (a, b) plane over the landscape of its γ, with a slider over the trained γ."""
    gammas = sorted(run.final["gamma"])
    frames = [go.Frame(name=f"γ={g:g}", data=[_changing(t) for t in _trajectory_traces(run, g, grid, extent)],
                       traces=[1, 2, 3, 4],
                       layout={"title": {"text": _trajectory_title(run, g)}}) for g in gammas]
    active = len(gammas) // 2
    sliders = frames_slider(frames, [f"{g:g}" for g in gammas], prefix="γ = ", active=active)
    frames = frames[:active] + frames[active + 1:] + [frames[active]]
    fig = go.Figure([_diagonal(extent), *_trajectory_traces(run, gammas[active], grid, extent)], frames=frames)
    fig.update_layout(sliders=sliders)
    return _square_layout(fig, _trajectory_title(run, gammas[active]), extent)


def _trajectory_title(run: ToyTraining, gamma: float) -> str:
    row = run.final.set_index("gamma").loc[gamma]
    return (f"SGD from constant weights ({run.scaling} scaling), γ = {gamma:g}<br><sup>after {run.steps} steps: "
            f"a − b = {row['d']:.3g}, ‖w_t − w₀‖ = {row['weight_change']:.3g}; minimum at "
            f"{_describe(row['d_star'])}</sup>")


def weight_change_figure(run: ToyTraining) -> go.Figure:
    """‖w_t − w₀‖ against γ (with the Eq. 12 distance to the minimum) and against the step, per γ."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=(f"after {run.steps} steps, against γ", "against the step t"))
    fin = run.final.sort_values("gamma")
    fig.add_trace(go.Scatter(x=fin["gamma"], y=fin["weight_change"], mode="lines+markers", name="SGD: ‖w_t − w₀‖",
                             marker={"size": 9, "color": "#1f77b4"}), row=1, col=1)
    curve = np.linspace(max(0.05, fin["gamma"].min()), max(2.0, fin["gamma"].max()), 60)
    theory_size = [math.sqrt(min_norm_squared(run.x, float(theory.toy_sd_minimum(g, scaling=run.scaling))))
                   for g in curve]
    fig.add_trace(go.Scatter(x=np.round(curve, 3), y=np.round(theory_size, 4), mode="lines",
                             name="Eq. 12: smallest change reaching the minimum", line={"dash": "dash",
                                                                                       "color": "#7f7f7f"}),
                  row=1, col=1)
    colors = _sequential(len(fin))
    for color, g in zip(colors, fin["gamma"], strict=True):
        t = _thin(run.trajectories[run.trajectories["gamma"] == g], 120)
        fig.add_trace(go.Scatter(x=t["step"].to_numpy(np.int32), y=_f32(t["weight_change"]), mode="lines",
                                 name=f"γ = {g:g}", line={"color": color}), row=1, col=2)
    top = float(fin["weight_change"].max()) * 1.6
    fig.update_yaxes(title_text="‖w_t − w₀‖₂", range=[0, top], row=1, col=1)
    fig.update_yaxes(title_text="‖w_t − w₀‖₂", row=1, col=2)
    fig.update_xaxes(title_text="γ", row=1, col=1)
    fig.update_xaxes(title_text="SGD step t", row=1, col=2)
    fig.update_layout(template="plotly_white", height=460, title="How far SGD moves the weights (§6.2)",
                      legend={"font": {"size": 11}})
    return fig


def _sequential(n: int) -> list[str]:
    """``n`` colours from dark to light (plotly's Viridis, sampled)."""
    from plotly.colors import sample_colorscale

    return sample_colorscale("Viridis", [i / max(n - 1, 1) * 0.9 for i in range(n)])


# ------------------------------------------------------------------------------------------ live widget
def live_sliders(kind: str = "landscape", *, gamma: float = 0.5, scaling: str = "equation", grid: int = 41,
                 arrows: int = 15, extent: float = 4.0, gamma_max: float = 3.0) -> Any:
    """ipywidgets for a live kernel: a γ slider and a scaling toggle that redraw Figure 6 or Figure 5.

    The returned box holds the figure last drawn in ``box.figure`` (for tests). Needs a kernel to react;
    the static book uses ``landscape_slider`` / ``field_slider`` instead.
    """
    import ipywidgets as widgets

    builders = {"landscape": lambda g, s: landscape_figure(g, s, grid=grid, extent=extent),
                "field": lambda g, s: field_figure(g, s, arrows=arrows, extent=extent)}
    if kind not in builders:
        raise ParameterError(f"kind={kind!r} is not allowed; choose 'landscape' or 'field'")
    _check_scaling(scaling)
    gamma = check_number("gamma", gamma, inclusive=True)
    slider = widgets.FloatSlider(value=gamma, min=0.0, max=gamma_max, step=0.01, description="γ",
                                 continuous_update=False, readout_format=".2f")
    toggle = widgets.ToggleButtons(options=[(SCALING_LABELS[s], s) for s in SCALINGS], value=scaling,
                                   description="SD term")
    return live_figure([slider, toggle], lambda: builders[kind](slider.value, toggle.value))


def minimum_check(gammas: Sequence[float] = (0.1, 0.5, 0.9, 1.0, 1.2, 1.5, 2.0)) -> pd.DataFrame:
    """The minimum of Eq. 11 along d = a − b three ways, for each scaling and γ: the closed form
    (:func:`unrolling_lib.theory.toy_sd_minimum`), a numeric minimiser and where the slope changes sign."""
    rows = [{"scaling": s, "γ": g, "closed form d*": theory.toy_sd_minimum(g, scaling=s),
             "numeric minimiser": numeric_minimum(g, s), "slope changes sign at": gradient_flip(g, s)}
            for s in SCALINGS for g in gammas]
    return pd.DataFrame(rows)
