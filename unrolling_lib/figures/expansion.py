"""Figures of §5 (expanding SGD): errors against η with slopes 2 and 3, the η² term against the bounds of
Eq. 8–9, single-gradient unlearning against retraining, and a live explorer for a running kernel."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..theory.expansion import ExpansionProblem, expansion_table
from .common import active_last, frames_slider, log_range
from .live import live_figure

__all__ = ["bound_figure", "live_explorer", "slope_figure", "unlearning_figure"]


def _slope_traces(table: pd.DataFrame, t: int) -> list[go.Scatter]:
    g = table[table["t"] == t].sort_values("lr")
    lr = g["lr"].to_numpy()
    first, second = g["first_order_error"].to_numpy(), g["second_order_error"].to_numpy()
    ref2 = first[0] * (lr / lr[0]) ** 2
    ref3 = second[0] * (lr / lr[0]) ** 3
    return [go.Scatter(x=lr, y=first, mode="lines+markers", name="first-order error ‖w_t − (w₀ − ηΣg)‖"),
            go.Scatter(x=lr, y=second, mode="lines+markers", name="second-order error ‖w_t − Eq. 4–5‖"),
            go.Scatter(x=lr, y=ref2, mode="lines", name="slope 2 reference", line={"dash": "dash", "color": "grey"}),
            go.Scatter(x=lr, y=ref3, mode="lines", name="slope 3 reference", line={"dash": "dot", "color": "grey"})]


def slope_figure(table: pd.DataFrame, slopes: pd.DataFrame) -> go.Figure:
    """§5.1: log-log errors of the first-order and the Eq. 4–5 approximations against η, one panel per model,
    with a slider over t (precomputed frames). ``table`` from ``expansion_table``, ``slopes`` from ``fit_slopes``."""
    models = list(dict.fromkeys(table["model"]))
    steps = sorted(int(t) for t in table["t"].unique() if t >= 2)
    fig = make_subplots(rows=1, cols=len(models), subplot_titles=models)
    frames = []

    def traces_at(t: int) -> list[go.Scatter]:
        out = []
        for col, model in enumerate(models):
            for k, tr in enumerate(_slope_traces(table[table["model"] == model], t)):
                tr.update(xaxis=f"x{col + 1 if col else ''}", yaxis=f"y{col + 1 if col else ''}",
                          legendgroup=str(k), showlegend=col == 0,
                          line={**(tr.line.to_plotly_json() if tr.line else {}),
                                "color": tr.line.color or ("#1f77b4", "#d62728")[k % 2]})
                out.append(tr)
        return out

    for t in steps:
        s = slopes[slopes["t"] == t].set_index("model")
        fitted = " · ".join(f"{m} {s.loc[m, 'first_order_slope']:.2f} / {s.loc[m, 'second_order_slope']:.2f}"
                            for m in models if m in s.index)
        title = f"t = {t} steps<br><sup>fitted slopes, first / second order: {fitted}</sup>"
        data = traces_at(t)
        layout: dict[str, Any] = {"title": {"text": title}}
        per = len(data) // len(models)
        for col in range(len(models)):
            ys = [tr.y for tr in data[col * per:(col + 1) * per]]
            layout[f"yaxis{col + 1 if col else ''}"] = {"range": log_range(np.concatenate(ys)), "type": "log"}
        frames.append(go.Frame(name=f"t={t}", data=data, layout=layout))
    active = len(steps) - 1
    for tr in frames[active].data:
        fig.add_trace(tr)
    fig.frames = active_last(frames, active)
    fig.update_layout(sliders=frames_slider(frames, [str(t) for t in steps], prefix="t = ", active=active),
                      title=frames[active].layout.title.text, height=600, margin={"t": 110},
                      legend={"orientation": "h", "y": -0.5})
    fig.update_xaxes(type="log", title_text="learning rate η")
    fig.update_yaxes(type="log")
    fig.update_yaxes(title_text="‖error‖₂", row=1, col=1)
    fig.update_layout({k: v for k, v in frames[active].layout.to_plotly_json().items() if k.startswith("yaxis")})
    return fig


def _bound_traces(table: pd.DataFrame, lr: float) -> list[go.Scatter]:
    g = table[np.isclose(table["lr"], lr)].sort_values("t")
    g = g[g["t"] >= 2]
    spec = [("eta2_term", "‖η² c_t‖ (Eq. 6)", {"color": "black", "width": 3}),
            ("eq8_rigorous", "η² Σ σ_i ‖Σ_{j<i} g_j‖ (rigorous)", {"color": "#2ca02c"}),
            ("eq8", "Eq. 8 as printed (σ = max |λ|)", {"color": "#d62728"}),
            ("eq8_consistent", "Eq. 8 with η (consistent substitution)", {"color": "#ff7f0e", "dash": "dash"}),
            ("eq9", "Eq. 9, unlearning error (σ_avg)", {"color": "#9467bd", "dash": "dot"}),
            ("eq8_paper_sigma", "Eq. 8 as printed, σ = sqrt(λ)", {"color": "#8c564b", "dash": "dashdot"})]
    return [go.Scatter(x=g["t"], y=g[col], mode="lines+markers", name=name, line=line) for col, name, line in spec]


def bound_figure(table: pd.DataFrame, model: str | None = None) -> go.Figure:
    """§5.2: ‖η² c_t‖ (Eq. 6) against the bounds of Eq. 8 and Eq. 9 as t grows, with a slider over η (frames).
    ``table`` from ``expansion_table`` with σ; ``model`` defaults to its first."""
    model = model or str(table["model"].iloc[0])
    sub = table[table["model"] == model]
    lrs = sorted(sub["lr"].unique())
    frames = []
    for lr in lrs:
        data = _bound_traces(sub, lr)
        frames.append(go.Frame(name=f"η={lr:g}", data=data,
                               layout={"title": {"text": f"{model}: the η² term against its bounds, η = {lr:g}"},
                                       "yaxis": {"range": log_range(np.concatenate([tr.y for tr in data])),
                                                 "type": "log"}}))
    active = len(lrs) // 2
    fig = go.Figure(data=frames[active].data, frames=active_last(frames, active))
    fig.update_layout(sliders=frames_slider(frames, [f"{lr:g}" for lr in lrs], prefix="η = ", active=active),
                      title={"text": frames[active].layout.title.text, "y": 0.98, "yanchor": "top"}, height=640,
                      margin={"t": 170}, legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
                      xaxis={"title": "t (SGD steps)"},
                      yaxis={"title": "norm", "type": "log", "range": list(frames[active].layout.yaxis.range)})
    return fig


def unlearning_figure(table: pd.DataFrame) -> go.Figure:
    """§5.1: per model, against η: v without unlearning, v after single-gradient unlearning, its η² prediction
    (the t − 1 terms of Eq. 6 with the unlearned batch) and e (Eq. 9). ``table`` from ``unlearning_table``."""
    models = list(dict.fromkeys(table["model"]))
    fig = make_subplots(rows=1, cols=len(models), subplot_titles=models, shared_yaxes=True)
    spec = (("v_nothing", "v, no unlearning: ‖w_t − w′‖", "#7f7f7f", "solid"),
            ("v", "v after single-gradient unlearning", "#1f77b4", "solid"),
            ("unlearned_terms", "η² · (the t − 1 terms with x̂_{i*})", "#ff7f0e", "dash"),
            ("e", "unlearning error e (Eq. 9)", "#9467bd", "dot"))
    for col, model in enumerate(models, start=1):
        g = table[table["model"] == model].sort_values("lr")
        for key, name, color, dash in spec:
            if key in g:
                fig.add_trace(go.Scatter(x=g["lr"], y=g[key], mode="lines+markers", name=name, legendgroup=key,
                                         showlegend=col == 1, line={"color": color, "dash": dash}), row=1, col=col)
    fig.update_xaxes(type="log", title_text="learning rate η")
    fig.update_yaxes(type="log")
    fig.update_yaxes(title_text="norm", row=1, col=1)
    fig.update_layout(height=480, legend={"orientation": "h", "y": -0.3})
    return fig


def live_explorer(problem: ExpansionProblem, sigmas: pd.DataFrame, *, lr: float = 0.01) -> Any:
    """ipywidgets for a live kernel: sliders for η (log scale) and t that recompute the expansion (§5.1–5.2).

    Shows, for the chosen (η, t), the norms of the real displacement, both approximation errors, the η²
    term and its bounds as a bar chart. The box keeps the last figure in ``box.figure`` (for tests).
    """
    import ipywidgets as widgets

    eta = widgets.FloatLogSlider(value=lr, base=10, min=-4, max=0, step=0.1, description="η",
                                 continuous_update=False, readout_format=".1e")
    steps = widgets.IntSlider(value=problem.steps, min=2, max=problem.steps, description="t", continuous_update=False)
    cols = ["displacement", "first_order_error", "second_order_error", "eta2_term", "eq8_rigorous", "eq8",
            "eq8_consistent", "eq9"]

    def draw() -> go.Figure:
        row = expansion_table(problem.head(steps.value), [eta.value], sigmas).iloc[-1]
        fig = go.Figure(go.Bar(x=cols, y=[row[c] for c in cols]))
        fig.update_layout(yaxis={"type": "log", "title": "norm"},
                          title=f"{problem.name}: η = {eta.value:.2e}, t = {steps.value}")
        return fig

    return live_figure([eta, steps], draw)
