"""Figures of §5 (expanding SGD): errors against η with slopes 2 and 3, the η² term against the bounds of
Eq. 8–9, single-gradient unlearning against retraining, where the η² truncation holds (against η·t·σ), the
grid of products H_i·g_j of Eq. 6, and a live explorer for a running kernel.

The η² truncation behind Eq. 6–9 needs η·t·σ ≪ 1 (:func:`unrolling_lib.unlearning_error.eta_t_sigma`); given
the study's σ per batch (``sigmas``), the slope, bound and unlearning figures mark where η·t·σ reaches 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..theory.expansion import ExpansionProblem, ProductGrid, expansion_table
from ..unlearning_error import eta_t_sigma
from .common import COLORS, TEMPLATE, active_last, frames_slider, log_range
from .live import live_figure

__all__ = ["bound_figure", "live_explorer", "product_grid_figure", "regime_figure", "slope_figure",
           "unlearning_figure"]

_REGIME_LINE = {"color": "grey", "dash": "dot", "width": 1.5}  # where η·t·σ = 1
_REGIME_LABEL = "η·t·σ = 1"
_LR_DASHES = ("solid", "dash", "dot", "dashdot", "longdash")  # regime figure: closed forms, one dash per η
_LR_SYMBOLS = ("circle", "diamond", "square", "triangle-up", "cross")  # and measured, one symbol per η


def _mean_sigma(sigmas: pd.DataFrame, model: str) -> float | None:
    """σ of ``model``: the mean σ_spectral of its batches (all rows when ``sigmas`` has no ``model`` column,
    as :func:`~unrolling_lib.theory.expansion.batch_sigmas` returns it); ``None`` if it has no rows."""
    rows = sigmas[sigmas["model"] == model] if "model" in sigmas else sigmas
    return float(rows["sigma_spectral"].mean()) if len(rows) else None


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


def slope_figure(table: pd.DataFrame, slopes: pd.DataFrame, sigmas: pd.DataFrame | None = None) -> go.Figure:
    """§5.1: log-log errors of the first-order and the Eq. 4–5 approximations against η, one panel per model,
    with a slider over t (precomputed frames). ``table`` from ``expansion_table``, ``slopes`` from ``fit_slopes``;
    with ``sigmas`` (σ per batch, a ``model`` column as in the study's) each frame's title also gives η·t·σ at
    the largest η of each model (σ: the mean σ_spectral of its batches)."""
    models = list(dict.fromkeys(table["model"]))
    sigma = {} if sigmas is None else {m: x for m in models if (x := _mean_sigma(sigmas, m)) is not None}
    top_lr = {m: float(table.loc[table["model"] == m, "lr"].max()) for m in sigma}
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
        if sigma:
            regime = " · ".join(f"{m} {eta_t_sigma(top_lr[m], t, sigma[m]):.3g} (η = {top_lr[m]:g})" for m in sigma)
            title += f"<br><sup>η·t·σ at the largest η: {regime}</sup>"
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
                      title=frames[active].layout.title.text, height=600, margin={"t": 130 if sigma else 110},
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


def _regime_trace(lr: float, sigma: float, steps: np.ndarray, yrange: list[float]) -> go.Scatter:
    """A dotted vertical line at t = 1/(η·σ) spanning ``yrange`` (log10 units), as a trace so that it moves
    with the frames (frames replace data, not shapes); empty when that t is outside ``steps``."""
    t_one = 1 / (lr * sigma) if lr * sigma > 0 else np.inf
    inside = steps.size and steps.min() <= t_one <= steps.max()
    x, y = ([t_one, t_one], [10 ** yrange[0], 10 ** yrange[1]]) if inside else ([], [])
    return go.Scatter(x=x, y=y, mode="lines", name=f"{_REGIME_LABEL} (t = 1/(η·σ))", line=_REGIME_LINE,
                      hovertemplate=f"t = 1/(η·σ) = {t_one:.3g}<extra></extra>")


def bound_figure(table: pd.DataFrame, model: str | None = None, sigmas: pd.DataFrame | None = None) -> go.Figure:
    """§5.2: ‖η² c_t‖ (Eq. 6) against the bounds of Eq. 8 and Eq. 9 as t grows, with a slider over η (frames).
    ``table`` from ``expansion_table`` with σ; ``model`` defaults to its first. With ``sigmas`` (σ per batch;
    σ = the mean σ_spectral of ``model``'s batches) each frame also draws a dotted line at t = 1/(η·σ), where
    η·t·σ = 1, when it falls inside the t range, and its title gives η·t·σ at the last t."""
    model = model or str(table["model"].iloc[0])
    sub = table[table["model"] == model]
    lrs = sorted(sub["lr"].unique())
    sigma = None if sigmas is None else _mean_sigma(sigmas, model)
    frames = []
    for lr in lrs:
        data = _bound_traces(sub, lr)
        yrange = log_range(np.concatenate([tr.y for tr in data]))
        title = f"{model}: the η² term against its bounds, η = {lr:g}"
        if sigma is not None:
            steps = np.asarray(data[0].x, dtype=np.float64)
            data.append(_regime_trace(lr, sigma, steps, yrange))
            if steps.size:
                last = int(steps.max())
                title += f" · η·t·σ = {eta_t_sigma(lr, last, sigma):.3g} at t = {last}"
        frames.append(go.Frame(name=f"η={lr:g}", data=data,
                               layout={"title": {"text": title}, "yaxis": {"range": yrange, "type": "log"}}))
    active = len(lrs) // 2
    fig = go.Figure(data=frames[active].data, frames=active_last(frames, active))
    fig.update_layout(sliders=frames_slider(frames, [f"{lr:g}" for lr in lrs], prefix="η = ", active=active),
                      title={"text": frames[active].layout.title.text, "y": 0.98, "yanchor": "top"}, height=640,
                      margin={"t": 170}, legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
                      xaxis={"title": "t (SGD steps)"},
                      yaxis={"title": "norm", "type": "log", "range": list(frames[active].layout.yaxis.range)})
    return fig


def unlearning_figure(table: pd.DataFrame, sigmas: pd.DataFrame | None = None) -> go.Figure:
    """§5.1: per model, against η: v without unlearning, v after single-gradient unlearning, its η² prediction
    (the t − 1 terms of Eq. 6 with the unlearned batch) and e (Eq. 9). ``table`` from ``unlearning_table``.
    With ``sigmas`` (σ per batch, a ``model`` column as in the study's; σ = the mean σ_spectral of each model)
    each panel draws a dotted line at η = 1/(t·σ), where η·t·σ = 1 (the η axis widens to it if needed), and the
    hover gives η·t·σ."""
    models = list(dict.fromkeys(table["model"]))
    fig = make_subplots(rows=1, cols=len(models), subplot_titles=models, shared_yaxes=True)
    spec = (("v_nothing", "v, no unlearning: ‖w_t − w′‖", "#7f7f7f", "solid"),
            ("v", "v after single-gradient unlearning", "#1f77b4", "solid"),
            ("unlearned_terms", "η² · (the t − 1 terms with x̂_{i*})", "#ff7f0e", "dash"),
            ("e", "unlearning error e (Eq. 9)", "#9467bd", "dot"))
    for col, model in enumerate(models, start=1):
        g = table[table["model"] == model].sort_values("lr")
        sigma = None if sigmas is None else _mean_sigma(sigmas, model)
        extra: dict[str, Any] = {}
        if sigma is not None:
            extra = {"customdata": eta_t_sigma(g["lr"].to_numpy(), g["t"].to_numpy(), sigma),
                     "hovertemplate": "η = %{x:.3g}<br>%{y:.3g}<br>η·t·σ = %{customdata:.3g}"}
        for key, name, color, dash in spec:
            if key in g:
                fig.add_trace(go.Scatter(x=g["lr"], y=g[key], mode="lines+markers", name=name, legendgroup=key,
                                         showlegend=col == 1, line={"color": color, "dash": dash}, **extra),
                              row=1, col=col)
        if sigma is not None and len(g):
            lr_one = 1 / (float(g["t"].iloc[0]) * sigma)
            fig.add_vline(x=lr_one, line=_REGIME_LINE, row=1, col=col)
            axis = str(col) if col > 1 else ""
            fig.add_annotation(x=float(np.log10(lr_one)), y=0.99, xref=f"x{axis}", yref=f"y{axis} domain",  # log axis
                               text=_REGIME_LABEL, showarrow=False, xanchor="left", yanchor="top",
                               font={"size": 11, "color": "grey"})
    fig.update_xaxes(type="log", title_text="learning rate η")
    fig.update_yaxes(type="log")
    fig.update_yaxes(title_text="norm", row=1, col=1)
    fig.update_layout(height=480, legend={"orientation": "h", "y": -0.3})
    return fig


def _regime_style(k_source: int, k_lr: int, closed_form: bool) -> dict[str, Any]:
    """One colour per source, and per learning rate a dash (closed forms, lines) or a symbol (measured)."""
    color = COLORS[k_source % len(COLORS)]
    if closed_form:
        return {"mode": "lines", "line": {"color": color, "dash": _LR_DASHES[k_lr % len(_LR_DASHES)], "width": 2}}
    return {"mode": "markers", "marker": {"color": color, "symbol": _LR_SYMBOLS[k_lr % len(_LR_SYMBOLS)], "size": 5}}


def regime_figure(regime: pd.DataFrame) -> go.Figure:
    """§5.2: where the η² truncation holds. Three panels against η·t·σ (log): (a) the η² term of Eq. 6 over
    the exact remainder of the expansion, (b) v and its η² part in units of the single-gradient step
    η‖g₀‖ (``v_limit``, where v saturates), (c) e (Eq. 9) over v; a dotted line at η·t·σ = 1 in each.

    ``regime``: rows of :data:`~unrolling_lib.theory.expansion.REGIME_COLUMNS` (the study's ``regime``): the
    quadratic's closed forms drawn as lines, each measured model as markers; a colour per source, a dash or a
    symbol per η.
    """
    sources = list(dict.fromkeys(regime["model"]))
    lrs = sorted(regime["lr"].unique())
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.07, subplot_titles=(
        "(a) η² term ÷ exact remainder", "(b) v ÷ η‖g₀‖ (faded: η² part)", "(c) e (Eq. 9) ÷ v"))
    hover = "t = %{customdata}<br>η·t·σ = %{x:.3g}<br>%{y:.3g}<extra>%{fullData.name}</extra>"
    for k_source, source in enumerate(sources):
        closed_form = source == "quadratic"
        kind = "closed form" if closed_form else "measured"
        for k_lr, lr in enumerate(lrs):
            g = regime[(regime["model"] == source) & np.isclose(regime["lr"], lr)].sort_values("t")
            if g.empty:
                continue
            name, group = f"{source}, {kind}, η = {lr:g}", f"{source}:{lr:g}"
            style = {**_regime_style(k_source, k_lr, closed_form), "x": g["eta_t_sigma"], "customdata": g["t"],
                     "hovertemplate": hover}
            panels = ((1, g["eta2_over_remainder"], name, group, True),
                      (2, g["v"] / g["v_limit"], name, group, False),
                      (2, g["v_eta2"] / g["v_limit"], f"{name}: η² part of v", f"{group}:eta2", True),
                      (3, g["e_over_v"], name, group, False))
            for col, y, label, legendgroup, showlegend in panels:
                trace = go.Scatter(y=y, name=label, legendgroup=legendgroup, showlegend=showlegend, **style)
                if legendgroup.endswith(":eta2"):  # the η² part: the same style, faded
                    trace.update(opacity=0.45)
                fig.add_trace(trace, row=1, col=col)
    for col in (1, 2, 3):
        fig.add_vline(x=1, line=_REGIME_LINE, row=1, col=col)
    for col in (1, 2):
        fig.add_hline(y=1, line={"color": "black", "width": 1}, row=1, col=col)
    fig.add_annotation(x=0, y=0.99, xref="x", yref="y domain", text=_REGIME_LABEL, showarrow=False,  # log10(1)
                       xanchor="left", yanchor="top", font={"size": 11, "color": "grey"})
    fig.update_xaxes(type="log", title_text="η·t·σ", dtick=1)  # decades only: the panels are narrow
    fig.update_yaxes(type="log", dtick=1)
    fig.update_yaxes(title_text="ratio", row=1, col=1)
    fig.update_layout(template=TEMPLATE, height=480, margin={"t": 50}, font={"size": 11},
                      legend={"orientation": "h", "y": -0.22, "x": 0, "font": {"size": 11}})
    return fig


def product_grid_figure(grid: ProductGrid) -> go.Figure:
    """§5.2: what e bounds against what v is made of. The t × t grid of ‖H_i·g_j‖ (log10, Hessian index i down,
    gradient index j across; only i > j: the t(t − 1)/2 products of c_t in Eq. 6, which e of Eq. 9 bounds) with
    the t − 1 products that hold x̂_{i*} (row i = i* and column j = i*, behind v) outlined. The title gives
    ‖c_t‖, the norm of the outlined sum and Eq. 9 over η² (``grid`` from
    :func:`~unrolling_lib.theory.expansion.product_grid`)."""
    t, star, table = grid.t, grid.unlearn_step, grid.table
    i, j = table["i"].to_numpy(dtype=int), table["j"].to_numpy(dtype=int)
    norm = table["norm"].to_numpy(dtype=np.float64)
    z = np.full((t, t), np.nan)
    z[i, j] = np.log10(np.where(norm > 0, norm, np.nan))  # a zero product has no log: an empty cell
    text = np.full((t, t), "", dtype=object)
    for a, b, n, held in zip(i, j, norm, table["with_unlearned"], strict=True):
        text[a, b] = (f"H_{a}·g_{b}<br>‖H_i·g_j‖ = {n:.3g}<br>"
                      + (f"holds x̂_{star}: behind v" if held else f"without x̂_{star}"))
    fig = go.Figure(go.Heatmap(x=np.arange(t), y=np.arange(t), z=z, text=text.tolist(), colorscale="Viridis",
                               hoverongaps=False, hovertemplate="%{text}<extra></extra>",
                               colorbar={"title": {"text": "log10 ‖H_i·g_j‖"}}))
    marked = table[table["with_unlearned"]]
    for a, b in zip(marked["i"].astype(int), marked["j"].astype(int), strict=True):
        fig.add_shape(type="rect", x0=b - 0.5, x1=b + 0.5, y0=a - 0.5, y1=a + 0.5, name=f"x̂_{star}",
                      line={"color": "#d62728", "width": 2.5}, layer="above")
    norms = (f"‖c_t‖ = {grid.c_norm:.3g} (the η² term over η²) · ‖Σ outlined‖ = {grid.unlearned_norm:.3g}"
             " (v over η², to leading order)")
    ratios = f"‖c_t‖ / ‖Σ outlined‖ = {grid.c_norm / grid.unlearned_norm:.3g}"
    if np.isfinite(grid.eq9_norm):
        norms += f" · Eq. 9 over η² = {grid.eq9_norm:.3g}"
        ratios += f" · Eq. 9 / ‖Σ outlined‖ = {grid.eq9_norm / grid.unlearned_norm:.3g}"
    title = (f"t = {t}: e (Eq. 9) bounds all {t * (t - 1) // 2} products H_i·g_j; v holds the {t - 1} outlined"
             f" (with x̂_{star})<br><sup>{norms}</sup><br><sup>{ratios}</sup>")
    fig.update_layout(template=TEMPLATE, title={"text": title}, height=580, margin={"t": 110},
                      xaxis={"title": "j (gradient g_j)", "dtick": 1 if t <= 20 else None, "constrain": "domain"},
                      yaxis={"title": "i (Hessian H_i)", "autorange": "reversed", "scaleanchor": "x",
                             "dtick": 1 if t <= 20 else None, "constrain": "domain"})
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
