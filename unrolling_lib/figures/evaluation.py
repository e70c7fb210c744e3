"""Figures of §6.1, §8.1 and §8.2: e and its pieces along training per γ or λ, the accuracy each choice
costs, the norms behind the ℓ2 strawman, the influence of N, and the paper's ratios beside ours.

Every builder takes the tidy tables of :mod:`unrolling_lib.experiments.error_curves` and its section
modules and returns a ``go.Figure``. The strength (γ or λ) is in the legend: a click hides a value, a double
click isolates it. With several seeds the first is drawn thick and the others thin in the same colour.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..validation import check_choice
from .common import COLORS, TEMPLATE, sequential_colors

__all__ = ["STRENGTH_LABELS", "curves_figure", "influence_of_n_figure", "norms_figure", "paper_ratio_figure",
           "pieces_figure", "setting_label", "tradeoff_figure", "training_for_less_figure"]

STRENGTH_LABELS = {"gamma": "γ", "l2": "λ"}
_LABELS = {"e": "unlearning error e", "accuracy": "test accuracy", "weight_change": "‖w_t − w₀‖₂",
           "weight_norm": "‖w_t‖₂", "sigma_avg": "σ_avg", "sigma": "σ (each sample)", "eta_t_sigma": "η·t·σ_avg"}
_MODEL_NAMES = {"small_vgg": "small VGG", "small_resnet": "small ResNet", "resnet18": "ResNet-18",
                "vgg19": "VGG-19", "small_cnn": "small CNN"}
_DATA_NAMES = {"digits": "digits", "mnist5k": "MNIST-5k", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
               "synthetic_cifar": "synthetic CIFAR"}


def setting_label(dataset: str, model: str) -> str:
    """A setting's display name: "small ResNet · MNIST-5k"."""
    return f"{_MODEL_NAMES.get(model, model)} · {_DATA_NAMES.get(dataset, dataset)}"


def _settings(df: pd.DataFrame) -> list[tuple[str, str]]:
    return list(dict.fromkeys(zip(df["dataset"], df["model"], strict=True)))


def _grid(n: int) -> tuple[int, int]:
    cols = 1 if n == 1 else 2
    return -(-n // cols), cols


def _colors(values: list[float]) -> dict[float, str]:
    palette = sequential_colors(len(values)) if len(values) > len(COLORS) else list(COLORS)
    return {v: palette[i % len(palette)] for i, v in enumerate(values)}


def _pick_n(df: pd.DataFrame, pretrain_steps: int | None) -> tuple[pd.DataFrame, int]:
    n = int(df["pretrain_steps"].max() if pretrain_steps is None else pretrain_steps)
    return df[df["pretrain_steps"] == n], n


def curves_figure(table: pd.DataFrame, *, strength: str = "gamma", y: str = "e",
                  pretrain_steps: int | None = None) -> go.Figure:
    """Figure 4 / Figure 7: ``y`` (default e) along t, one panel per setting, one line per value of
    ``strength`` (``"gamma"`` or ``"l2"``) and seed, from M_N with N = ``pretrain_steps`` (default the
    largest in the table)."""
    check_choice("strength", strength, tuple(STRENGTH_LABELS))
    df, n = _pick_n(table, pretrain_steps)
    settings = _settings(df)
    rows, cols = _grid(len(settings))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[setting_label(*s) for s in settings],
                        vertical_spacing=0.14, horizontal_spacing=0.1)
    values = sorted(df[strength].unique())
    colors = _colors(values)
    seeds = sorted(df["seed"].unique())
    symbol = STRENGTH_LABELS[strength]
    for i, (dataset, model) in enumerate(settings):
        part = df[(df["dataset"] == dataset) & (df["model"] == model)]
        for (value, seed), run in part.groupby([strength, "seed"], sort=True):
            run = run.sort_values("t")
            first = bool(seed == seeds[0])
            fig.add_trace(go.Scatter(
                x=run["t"], y=run[y], mode="lines", name=f"{symbol} = {value:g}", legendgroup=str(value),
                showlegend=i == 0 and first, line={"color": colors[value], "width": 2.5 if first else 1},
                customdata=run[["accuracy", "eta_t_sigma"]].to_numpy(),
                hovertemplate=f"t=%{{x}}<br>{y}=%{{y:.4g}}<br>accuracy=%{{customdata[0]:.3f}}"
                              f"<br>η·t·σ=%{{customdata[1]:.3g}}<extra>{symbol} = {value:g}, seed {seed}</extra>"),
                row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(title_text="steps t after M_N")
    fig.update_yaxes(title_text=_LABELS.get(y, y), col=1)
    fig.update_layout(title=f"{_LABELS.get(y, y)} along t from M_N (N = {n} steps), per {symbol}",
                      template=TEMPLATE, height=330 * rows + 90, legend_title=f"strength {symbol}")
    return fig


def training_for_less_figure(table: pd.DataFrame) -> go.Figure:
    """Figure 3 and its trade-off: e along t from random initialisation (N = 0, no penalty) beside the test
    accuracy the same t buys, one line per setting (and seed)."""
    df = table[(table["pretrain_steps"] == 0) & (table["gamma"] == 0.0) & (table["l2"] == 0.0)]
    fig = make_subplots(rows=1, cols=2, subplot_titles=["unlearning error e (Eq. 9)", "test accuracy"],
                        horizontal_spacing=0.12)
    seeds = sorted(df["seed"].unique())
    for k, (dataset, model) in enumerate(_settings(df)):
        part = df[(df["dataset"] == dataset) & (df["model"] == model)]
        for seed, run in part.groupby("seed", sort=True):
            run = run.sort_values("t")
            first = bool(seed == seeds[0])
            style = {"color": COLORS[k % len(COLORS)], "width": 2.5 if first else 1}
            for col, y in enumerate(("e", "accuracy"), start=1):
                fig.add_trace(go.Scatter(x=run["t"], y=run[y], mode="lines", name=setting_label(dataset, model),
                                         legendgroup=f"{dataset}/{model}", showlegend=col == 1 and first,
                                         line=style, hovertemplate=f"t=%{{x}}<br>{y}=%{{y:.4g}}<extra>seed {seed}"
                                                                   "</extra>"), row=1, col=col)
    fig.update_xaxes(title_text="training steps t from M₀")
    fig.update_layout(title="Training for less (§6.1, Figure 3): e grows with t, and so does accuracy",
                      template=TEMPLATE, height=420, legend={"orientation": "h", "y": -0.25})
    return fig


def tradeoff_figure(effect: pd.DataFrame, *, strength: str = "gamma") -> go.Figure:
    """What a lower e costs: test accuracy against e at the last t, one marker per strength value, one line
    per setting (an ``effect`` table of :func:`~unrolling_lib.experiments.sd_loss.sd_loss_effect` or
    :func:`~unrolling_lib.experiments.strawmen.l2_effect`; several N or seeds: their mean)."""
    check_choice("strength", strength, tuple(STRENGTH_LABELS))
    symbol = STRENGTH_LABELS[strength]
    fig = go.Figure()
    means = effect.groupby(["dataset", "model", strength], sort=False, as_index=False)[["e", "accuracy"]].mean()
    for k, (dataset, model) in enumerate(_settings(means)):
        part = means[(means["dataset"] == dataset) & (means["model"] == model)].sort_values(strength)
        values = part[strength].tolist()
        ends = {values[0], values[-1]}  # label the weakest and strongest; hover names every point
        fig.add_trace(go.Scatter(
            x=part["e"], y=part["accuracy"], mode="lines+markers+text", name=setting_label(dataset, model),
            text=[f"{symbol}={v:g}" if v in ends else "" for v in values], textposition="top center",
            customdata=[f"{symbol}={v:g}" for v in values],
            line={"color": COLORS[k % len(COLORS)]}, marker={"size": 8},
            hovertemplate="e=%{x:.4g}<br>accuracy=%{y:.3f}<extra>%{customdata}</extra>"))
    fig.update_layout(title=f"The trade-off: accuracy against unlearning error at the last t, per {symbol}",
                      xaxis_title="unlearning error e (log)", yaxis_title="test accuracy", xaxis_type="log",
                      template=TEMPLATE, height=460, legend={"orientation": "h", "y": -0.2})
    return fig


def norms_figure(triangle: pd.DataFrame, sigma: pd.DataFrame | None = None, *, dataset: str, model: str,
                 pretrain_steps: int = 0) -> go.Figure:
    """Figure 16: along t, per λ, ‖w_t‖₂ (what the penalty shrinks), ‖w_t − w₀‖₂ (what e needs small) with
    the triangle bound ‖w_t‖₂ + ‖w₀‖₂ dotted, and σ (each sample) when ``sigma`` is given; one setting."""
    df = triangle[(triangle["dataset"] == dataset) & (triangle["model"] == model)
                  & (triangle["pretrain_steps"] == pretrain_steps)]
    panels = ["‖w_t‖₂", "‖w_t − w₀‖₂; dotted: ‖w_t‖₂ + ‖w₀‖₂"]
    if sigma is not None:
        panels.append("σ")
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=panels, horizontal_spacing=0.08)
    values = sorted(df["l2"].unique())
    colors = _colors(values)
    seed = df["seed"].min()
    for value in values:
        run = df[(df["l2"] == value) & (df["seed"] == seed)].sort_values("t")
        name, group, c = f"λ = {value:g}", str(value), colors[value]
        fig.add_trace(go.Scatter(x=run["t"], y=run["weight_norm"], name=name, legendgroup=group,
                                 line={"color": c}), row=1, col=1)
        fig.add_trace(go.Scatter(x=run["t"], y=run["weight_change"], name=name, legendgroup=group,
                                 showlegend=False, line={"color": c}), row=1, col=2)
        fig.add_trace(go.Scatter(x=run["t"], y=run["bound"], name=name, legendgroup=group, showlegend=False,
                                 line={"color": c, "dash": "dot"}), row=1, col=2)
        if sigma is not None:
            s = sigma[(sigma["dataset"] == dataset) & (sigma["model"] == model) & (sigma["l2"] == value)
                      & (sigma["pretrain_steps"] == pretrain_steps) & (sigma["seed"] == seed)].sort_values("t")
            fig.add_trace(go.Scatter(x=s["t"], y=s["sigma"], name=name, legendgroup=group, showlegend=False,
                                     mode="lines+markers", line={"color": c}), row=1, col=3)
    fig.update_xaxes(title_text="t")
    fig.update_yaxes(type="log", col=2)
    fig.update_layout(title=f"The ℓ2 strawman (Figure 16), {setting_label(dataset, model)}, N = {pretrain_steps}",
                      template=TEMPLATE, height=440, legend={"orientation": "h", "y": -0.22, "title": "strength λ"})
    return fig


def pieces_figure(table: pd.DataFrame, sigma: pd.DataFrame, *, dataset: str, model: str,
                  pretrain_steps: int | None = None) -> go.Figure:
    """Figure 8: σ (each sample), σ_avg and ‖w_t − w₀‖₂ along t, one line per γ (and seed), one setting at
    N = ``pretrain_steps`` (default the largest)."""
    df, n = _pick_n(table[(table["dataset"] == dataset) & (table["model"] == model) & (table["l2"] == 0.0)],
                    pretrain_steps)
    s = sigma[(sigma["dataset"] == dataset) & (sigma["model"] == model) & (sigma["pretrain_steps"] == n)
              & (sigma["l2"] == 0.0)]
    fig = make_subplots(rows=1, cols=3, subplot_titles=["σ (each sample)", "σ_avg", "‖w_t − w₀‖₂"],
                        horizontal_spacing=0.08)
    values = sorted(df["gamma"].unique())
    colors = _colors(values)
    seeds = sorted(df["seed"].unique())
    for (value, seed), run in df.groupby(["gamma", "seed"], sort=True):
        first = bool(seed == seeds[0])
        line = {"color": colors[value], "width": 2.5 if first else 1}
        name, group = f"γ = {value:g}", str(value)
        samples = s[(s["gamma"] == value) & (s["seed"] == seed)].sort_values("t")
        run = run.sort_values("t")
        for col, (x, y) in enumerate(((samples["t"], samples["sigma"]), (run["t"], run["sigma_avg"]),
                                      (run["t"], run["weight_change"])), start=1):
            fig.add_trace(go.Scatter(x=x, y=y, name=name, legendgroup=group, showlegend=col == 1 and first,
                                     line=line, mode="lines", hovertemplate=f"t=%{{x}}<br>%{{y:.4g}}<extra>{name}, "
                                                                            f"seed {seed}</extra>"),
                          row=1, col=col)
    fig.update_xaxes(title_text="t")
    fig.update_layout(title=f"What the SD loss changes (Figure 8), {setting_label(dataset, model)}, N = {n}",
                      template=TEMPLATE, height=420, legend_title="strength γ")
    return fig


def influence_of_n_figure(influence: pd.DataFrame, *, n_label: str = "pre-training steps N",
                          title: str = "How much the SD loss lowers e, against the pre-training N (Table 4 along N)"
                          ) -> go.Figure:
    """Table 4 read along N: the decrease of e relative to γ = 0 against N, one line per γ, one panel per
    setting, with the 95% interval over seeds where there are several. ``n_label``: the x axis (the paper's
    table counts N in epochs)."""
    settings = _settings(influence)
    rows, cols = _grid(len(settings))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[setting_label(*s) for s in settings],
                        horizontal_spacing=0.1)
    values = sorted(influence["gamma"].unique())
    colors = _colors(values)
    for i, (dataset, model) in enumerate(settings):
        part = influence[(influence["dataset"] == dataset) & (influence["model"] == model)]
        for value, run in part.groupby("gamma", sort=True):
            run = run.sort_values("pretrain_steps")
            has = run["high"].notna().all()
            error = {"type": "data", "symmetric": False, "array": run["high"] - run["decrease"],
                     "arrayminus": run["decrease"] - run["low"]} if has else None
            fig.add_trace(go.Scatter(x=run["pretrain_steps"], y=run["decrease"], mode="lines+markers",
                                     name=f"γ = {value:g}", legendgroup=str(value), showlegend=i == 0,
                                     line={"color": colors[value]}, error_y=error,
                                     customdata=run[["n_seeds", "accuracy_drop"]].to_numpy(),
                                     hovertemplate="N=%{x}<br>decrease=%{y:.1%}<br>seeds=%{customdata[0]}"
                                                   "<br>accuracy drop=%{customdata[1]:.3f}<extra></extra>"),
                          row=i // cols + 1, col=i % cols + 1)
    fig.add_hline(y=0, line={"color": "grey", "dash": "dot"})
    fig.update_xaxes(title_text=n_label)
    fig.update_yaxes(title_text="1 − e / e(γ = 0)", tickformat=".0%", col=1)
    fig.update_layout(title=title, template=TEMPLATE, height=380 * rows + 60, legend_title="strength γ")
    return fig


def paper_ratio_figure(beside: pd.DataFrame, *, strength: str = "gamma") -> go.Figure:
    """The scale-free comparison: e / e(strength 0) against the strength, the paper's (dashed) beside ours
    (solid), one colour per model family (a table of
    :func:`~unrolling_lib.experiments.error_curves.paper_beside_ours`)."""
    check_choice("strength", strength, tuple(STRENGTH_LABELS))
    symbol = STRENGTH_LABELS[strength]
    fig = go.Figure()
    families = list(dict.fromkeys(beside["paper_model"]))
    for (dataset, model), part in beside.groupby(["dataset", "model"], sort=False):
        part = part.sort_values(strength)
        k = families.index(part["paper_model"].iloc[0])
        x = part[strength] if strength == "gamma" else np.maximum(part[strength], 1e-6)
        fig.add_trace(go.Scatter(x=x, y=part["e_ratio_ours"], mode="lines+markers",
                                 name=f"ours: {setting_label(dataset, model)}",
                                 line={"color": COLORS[k % len(COLORS)],
                                       "width": 2.5 if dataset == beside["dataset"].iloc[0] else 1.2}))
    for k, family in enumerate(families):
        part = beside[beside["paper_model"] == family].drop_duplicates(strength).sort_values(strength)
        x = part[strength] if strength == "gamma" else np.maximum(part[strength], 1e-6)
        fig.add_trace(go.Scatter(x=x, y=part["e_ratio_paper"], mode="lines+markers",
                                 name=f"paper: {setting_label(part['paper_dataset'].iloc[0], family)}",
                                 line={"color": COLORS[k % len(COLORS)], "dash": "dash"}, marker={"symbol": "x"}))
    fig.add_hline(y=1, line={"color": "grey", "dash": "dot"})
    fig.update_layout(title=f"e relative to {symbol} = 0: the paper's scale beside ours",
                      xaxis_title=f"strength {symbol}" + (" (log; 0 drawn at 1e-6)" if strength == "l2" else ""),
                      yaxis_title=f"e / e({symbol} = 0)", xaxis_type="log" if strength == "l2" else "linear",
                      template=TEMPLATE, height=460, legend={"orientation": "h", "y": -0.25})
    return fig
