"""Figures of §8.3 (Figures 9 and 11): e against v, the pieces of Eq. 9 over fine-tuning steps with the regime
η·t·σ, each correlation with its interval over seeds, and plain SGD beside the released fine-tuning.

Every seed of a table is drawn: the first solid, the others thinner in the same colour, so the spread
between seeds is visible wherever a single run would hide it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..metrics import correlation
from .common import COLORS, TEMPLATE, correlation_panels

__all__ = ["across_gamma_figure", "along_t_figure", "components_figure", "correlation_figure", "finetuning_figure",
           "grid_figure", "methods_figure", "regime_start", "reports_figure", "verification_figure"]

_TITLES = {"e": "unlearning error e", "v": "verification error v", "weight_change": "‖w_t − w₀‖₂",
           "sigma_avg": "σ_avg", "eta_t_sigma": "η·t·σ_avg (the expansion needs ≪ 1)", "accuracy": "test accuracy"}


def _runs(df: pd.DataFrame) -> list[tuple[int, float, int, pd.DataFrame]]:
    """(colour index, γ, seed rank, rows sorted by t) for every γ and seed of a table (seed 0 if none)."""
    df = df if "seed" in df else df.assign(seed=0)
    gammas = sorted(df["gamma"].unique())
    seeds = sorted(df["seed"].unique())
    return [(gammas.index(g), g, seeds.index(s), part.sort_values("t"))
            for (g, s), part in df.groupby(["gamma", "seed"], sort=True)]


def _style(k: int, rank: int) -> dict:
    return {"color": COLORS[k % len(COLORS)], "width": 2.5 if rank == 0 else 1, "dash": "solid"}


def regime_start(df: pd.DataFrame) -> float:
    """The fine-tuning step where η·t·σ_avg first reaches 1 (median over the runs' σ_avg): t = 1/(η·σ_avg).
    Past it the η² truncation behind Eq. 9 no longer describes SGD."""
    eta_sigma = (df["eta_t_sigma"] / df["t"]).median()
    return float(1 / eta_sigma) if eta_sigma > 0 else float("nan")


def verification_figure(df: pd.DataFrame) -> go.Figure:
    """§8.3 (Figures 9 and 11): unlearning error e against verification error v, one line per γ (and seed)
    over t; hover gives t, η·t·σ, the weight change and σ_avg."""
    fig = go.Figure()
    df = df if "eta_t_sigma" in df else df.assign(eta_t_sigma=np.nan)
    cols = ["t", "eta_t_sigma", "weight_change", "sigma_avg"]
    for k, gamma, rank, rows in _runs(df):
        seed = int(rows["seed"].iloc[0]) if "seed" in rows else 0
        fig.add_trace(go.Scatter(
            x=rows["e"], y=rows["v"], mode="lines+markers", name=f"γ = {gamma:g}", legendgroup=str(gamma),
            showlegend=rank == 0, line=_style(k, rank), marker={"size": 6 if rank == 0 else 3},
            customdata=rows[cols].to_numpy(),
            hovertemplate="t=%{customdata[0]}<br>η·t·σ=%{customdata[1]:.3g}<br>e=%{x:.4g}<br>v=%{y:.4g}"
                          "<br>‖Δw‖=%{customdata[2]:.3g}<br>σ_avg=%{customdata[3]:.3g}"
                          f"<extra>γ = {gamma:g}, seed {seed}</extra>"))
    regime = ""
    if df["eta_t_sigma"].notna().any():
        regime = (f"<br><sup>η·t·σ from {df['eta_t_sigma'].min():.2g} to {df['eta_t_sigma'].max():.3g}: "
                  "the η² truncation behind e needs it ≪ 1</sup>")
    fig.update_layout(title={"text": "Unlearning error (Eq. 9) against verification error, along t and across γ"
                             + regime},
                      xaxis_title="unlearning error e", yaxis_title="verification error v = ‖w′ − w″‖₂",
                      template=TEMPLATE, height=480, margin={"t": 90}, legend_title="SD strength")
    return fig


def components_figure(df: pd.DataFrame,
                      columns: tuple[str, ...] = ("e", "v", "weight_change", "eta_t_sigma")) -> go.Figure:
    """The pieces of Eq. 9 over fine-tuning steps t, one panel per quantity, one line per γ and seed (§8.3).

    A dotted vertical line marks t = 1/(η·σ_avg), where η·t·σ reaches 1; the η·t·σ panel has a line at 1.
    """
    ncols = 2
    nrows = -(-len(columns) // ncols)
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=[_TITLES.get(c, c) for c in columns],
                        vertical_spacing=0.16, horizontal_spacing=0.1)
    for k, gamma, rank, rows in _runs(df):
        for i, name in enumerate(columns):
            row, col = divmod(i, ncols)
            fig.add_trace(go.Scatter(x=rows["t"], y=rows[name], mode="lines", name=f"γ = {gamma:g}",
                                     legendgroup=str(gamma), showlegend=i == 0 and rank == 0,
                                     line=_style(k, rank)), row=row + 1, col=col + 1)
    start = regime_start(df) if "eta_t_sigma" in df else float("nan")
    for i, name in enumerate(columns):
        row, col = divmod(i, ncols)
        fig.update_xaxes(title_text="t", row=row + 1, col=col + 1)
        if np.isfinite(start):
            fig.add_vline(x=start, line={"dash": "dot", "color": "grey"}, row=row + 1, col=col + 1)
        if name == "eta_t_sigma":
            fig.add_hline(y=1.0, line={"dash": "dot", "color": "grey"}, row=row + 1, col=col + 1)
            fig.update_yaxes(type="log", row=row + 1, col=col + 1)
    note = f"dotted: t = 1/(η·σ_avg) ≈ {start:.3g}, where η·t·σ = 1" if np.isfinite(start) else ""
    fig.update_layout(template=TEMPLATE, height=300 * nrows + 100, margin={"t": 80},
                      title={"text": f"<sup>{note}</sup>" if note else ""})
    return fig


def correlation_figure(summary_table: pd.DataFrame) -> go.Figure:
    """Pearson(e, v) over t and Pearson of their increments, per γ and seed, with 95% intervals (error bars).

    ``summary_table``: :func:`~unrolling_lib.experiments.verification.summarize_verification`'s ``table``.
    The levels of two series that both grow along t correlate almost whatever they are; the increments ask
    whether e's growth follows v's.
    """
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True,
                        subplot_titles=["Pearson(e, v) over t", "Pearson of the increments Δe, Δv"])
    seeds = sorted(summary_table["seed"].unique())
    for rank, seed in enumerate(seeds):
        part = summary_table[summary_table["seed"] == seed].sort_values("gamma")
        x = [f"γ = {g:g}" for g in part["gamma"]]
        for col, (r, low, high) in enumerate((("pearson_e_v_over_t", "pearson_low", "pearson_high"),
                                              ("pearson_increments", "increments_low", "increments_high")), 1):
            fig.add_trace(go.Scatter(
                x=x, y=part[r], mode="markers", name=f"seed {seed}", legendgroup=str(seed), showlegend=col == 1,
                marker={"size": 9, "color": COLORS[rank % len(COLORS)]},
                error_y={"type": "data", "symmetric": False, "array": part[high] - part[r],
                         "arrayminus": part[r] - part[low]},
                customdata=part[["n_t"]].to_numpy(),
                hovertemplate="r=%{y:.3f}<br>n=%{customdata[0]}" + f"<extra>seed {seed}</extra>"), row=1, col=col)
        fig.update_traces(selector={"legendgroup": str(seed)}, offsetgroup=str(rank))
    fig.add_hline(y=0.0, line={"color": "grey", "width": 1})
    fig.update_yaxes(range=[-1.05, 1.05], title_text="Pearson r (95% interval)", row=1, col=1)
    fig.update_layout(template=TEMPLATE, height=420, scattermode="group", legend_title="seed")
    return fig


def finetuning_figure(plain: pd.DataFrame, released: pd.DataFrame) -> go.Figure:
    """v and e over t for plain SGD (solid) and the released fine-tuning (dashed: momentum 0.9, weight decay
    5e-4, x̂₁ every epoch), per γ, from two tables of the same protocol (first seed of each)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["verification error v", "unlearning error e"])
    for dash, label, df in (("solid", "plain SGD", plain), ("dash", "released", released)):
        df = df if "seed" not in df else df[df["seed"] == df["seed"].min()]
        for k, (gamma, rows) in enumerate(df.groupby("gamma", sort=True)):
            rows = rows.sort_values("t")
            for col, name in enumerate(("v", "e"), 1):
                fig.add_trace(go.Scatter(x=rows["t"], y=rows[name], mode="lines", name=f"{label}, γ = {gamma:g}",
                                         legendgroup=f"{label}{gamma}", showlegend=col == 1,
                                         line={"color": COLORS[k % len(COLORS)], "dash": dash}), row=1, col=col)
    start = regime_start(plain) if "eta_t_sigma" in plain else float("nan")
    if np.isfinite(start):
        for col in (1, 2):
            fig.add_vline(x=start, line={"dash": "dot", "color": "grey"}, row=1, col=col)
    fig.update_xaxes(title_text="t")
    fig.update_yaxes(type="log")
    note = f"<sup>dotted: t = 1/(η·σ_avg) ≈ {start:.3g}, where η·t·σ = 1</sup>" if np.isfinite(start) else ""
    fig.update_layout(template=TEMPLATE, height=440, legend={"orientation": "h", "y": -0.25},
                      title={"text": note}, margin={"t": 80})
    return fig


_METHOD_COLUMNS = {"single-gradient at w₀": "v", "single-gradient at w_{N+t}": "v_final", "amnesiac": "v_amnesiac"}


def methods_figure(df: pd.DataFrame) -> go.Figure:
    """v along t for each unlearning method on the same runs (Figures 9 and 15): single-gradient at w₀ (the
    theory), at w_{N+t} (§8.3 as printed) and amnesiac, one panel per method, one line per γ (first seed), the
    noise floor dotted where it is above 0 (a v below it is not signal)."""
    df = df if "seed" not in df else df[df["seed"] == df["seed"].min()]
    fig = make_subplots(rows=1, cols=3, subplot_titles=list(_METHOD_COLUMNS), shared_yaxes=True,
                        horizontal_spacing=0.05)
    for k, (gamma, rows) in enumerate(df.groupby("gamma", sort=True)):
        rows = rows.sort_values("t")
        for col, column in enumerate(_METHOD_COLUMNS.values(), 1):
            fig.add_trace(go.Scatter(x=rows["t"], y=rows[column], mode="lines", name=f"γ = {gamma:g}",
                                     legendgroup=str(gamma), showlegend=col == 1,
                                     line={"color": COLORS[k % len(COLORS)]}), row=1, col=col)
    floor = float(df["noise_floor"].max()) if "noise_floor" in df else float("nan")
    for col in (1, 2, 3):
        _floor_line(fig, floor, row=1, col=col)
    fig.update_xaxes(title_text="t")
    fig.update_yaxes(type="log", title_text="v = ‖w′ − w″‖₂", col=1)
    note = _floor_note(floor)
    fig.update_layout(template=TEMPLATE, height=420, legend_title="SD strength",
                      title={"text": f"Three ways to unlearn x̂₁, on the same runs<br><sup>{note}</sup>"},
                      margin={"t": 90})
    return fig


def _floor_line(fig: go.Figure, floor: float, **where: int) -> None:
    if np.isfinite(floor) and floor > 0:
        fig.add_hline(y=float(floor), line={"dash": "dot", "color": "grey"}, **where)


def _floor_note(floor: float) -> str:
    if not np.isfinite(floor):
        return "noise floor not measured"
    if floor > 0:
        return f"noise floor {floor:.2g} (dotted): a v below it is not signal"
    return "noise floor 0: retraining repeats bit for bit on this device"


def along_t_figure(curves: pd.DataFrame, *, method: str = "v") -> go.Figure:
    """Figures 9 and 15: e against v along the fine-tuning steps of each setting in ``curves`` (rows of a
    :class:`~unrolling_lib.experiments.verification_grid.VerificationGrid`'s ``curves``), one panel per setting,
    the points coloured by t, Pearson with n and its 95% interval in each panel's title, the noise floor
    dotted where it is above 0. ``method``: the v column (``"v"``, ``"v_final"``, ``"v_amnesiac"``)."""
    settings = sorted(curves["setting"].unique())
    titles = []
    for k in settings:
        part = curves[curves["setting"] == k]
        row = part.iloc[0]
        c = correlation(part["e"], part[method]) if len(part) >= 3 else None
        titles.append(f"{row['model']}, N = {row['pretrain_steps']}, γ = {row['gamma']:g}<br>"
                      + (c.describe() if c is not None else f"n = {len(part)}"))
    fig = make_subplots(rows=1, cols=max(len(settings), 1), subplot_titles=titles or [""], horizontal_spacing=0.07)
    t_max = float(curves["t"].max()) if len(curves) else 1.0
    for col, k in enumerate(settings, 1):
        part = curves[curves["setting"] == k].sort_values("t")
        fig.add_trace(go.Scatter(
            x=part["e"], y=part[method], mode="markers+lines", showlegend=False,
            line={"color": "lightgrey", "width": 1},
            marker={"color": part["t"], "colorscale": "Viridis", "cmin": 0, "cmax": t_max, "size": 8,
                    "colorbar": {"title": "t"} if col == len(settings) else None, "showscale": col == len(settings)},
            customdata=part[["t", "eta_t_sigma"]].to_numpy(),
            hovertemplate="t=%{customdata[0]}<br>η·t·σ=%{customdata[1]:.3g}<br>e=%{x:.4g}<br>v=%{y:.4g}"
                          "<extra></extra>"), row=1, col=col)
        _floor_line(fig, float(part["noise_floor"].max()), row=1, col=col)
    floor = float(curves["noise_floor"].max()) if len(curves) else float("nan")
    fig.update_xaxes(title_text="unlearning error e")
    fig.update_yaxes(title_text=f"{method} = ‖w′ − w″‖₂", col=1)
    fig.update_annotations(font_size=12)
    fig.update_layout(template=TEMPLATE, height=430, margin={"t": 110},
                      title={"text": f"e and {method} along t<br><sup>{_floor_note(floor)}</sup>"})
    return fig


def across_gamma_figure(table: pd.DataFrame, *, method: str = "v", by: str = "model") -> go.Figure:
    """Figure 11: e against v at the last t, one point per γ, one panel per value of ``by`` (rows of a
    :class:`~unrolling_lib.experiments.verification_grid.VerificationGrid` table that differ only in γ and
    ``by``), coloured by γ, Pearson with n and its 95% interval in each panel's title."""
    kept = table[~table["diverged"].astype(bool)]
    values = list(dict.fromkeys(kept[by]))
    fig = correlation_panels(kept, by, "e", method, values)
    g_max = float(kept["gamma"].max()) if len(kept) else 1.0
    for col, value in enumerate(values, 1):
        part = kept[kept[by] == value].sort_values("gamma")
        fig.add_trace(go.Scatter(
            x=part["e"], y=part[method], mode="markers+text", text=[f"γ={g:g}" for g in part["gamma"]],
            textposition="top center", showlegend=False,
            marker={"color": part["gamma"], "colorscale": "Bluered_r", "cmin": 0, "cmax": max(g_max, 1e-9),
                    "size": 11, "showscale": col == len(values), "colorbar": {"title": "γ"}},
            hovertemplate="e=%{x:.4g}<br>v=%{y:.4g}<extra>%{text}</extra>"), row=1, col=col)
        _floor_line(fig, float(part["noise_floor"].max()), row=1, col=col)
    fig.update_xaxes(title_text="unlearning error e (last t)")
    fig.update_yaxes(title_text=f"{method} (last t)", col=1)
    fig.update_layout(template=TEMPLATE, height=430,
                      title={"text": f"e against {method} across γ<br><sup>"
                                     f"{_floor_note(float(kept['noise_floor'].max()) if len(kept) else np.nan)}"
                                     "</sup>"}, margin={"t": 125})
    return fig


def grid_figure(table: pd.DataFrame, *, method: str = "v", by: str = "dataset",
                noise_floor: float | None = None) -> go.Figure:
    """Figures 12 and 14: e against v across settings (a :class:`~unrolling_lib.experiments.verification_grid.
    VerificationGrid` table), one panel per value of ``by``, cross-entropy runs (γ = 0) and SD runs (γ > 0) in
    two colours, Pearson with n and its 95% interval in each panel's title; ``method``: the v column (``"v"``,
    ``"v_final"`` or ``"v_amnesiac"``). Diverged settings are left out and counted in the title. The noise
    floor (the table's largest, or ``noise_floor`` when the grid did not measure it) is dotted where it is
    above 0; settings whose x̂₁ is not the first batch are drawn as diamonds."""
    kept = table[~table["diverged"].astype(bool)]
    values = sorted(kept[by].unique())
    fig = correlation_panels(kept, by, "e", method, values)
    later = "unlearn_step" in kept and bool((kept["unlearn_step"] > 0).any())
    for col, value in enumerate(values, 1):
        part = kept[kept[by] == value].sort_values("unlearn_step") if later else kept[kept[by] == value]
        for label, rows, color in (("cross entropy (γ = 0)", part[part["gamma"] == 0], COLORS[0]),
                                   ("SD loss (γ > 0)", part[part["gamma"] > 0], COLORS[1])):
            cols = ["setting", "gamma", "pretrain_steps", "batch_size", "lr", "eta_t_sigma"]
            symbols = np.where(rows["unlearn_step"] > 0, "diamond", "circle") if later else "circle"
            fig.add_trace(go.Scatter(
                x=rows["e"], y=rows[method], mode="markers", name=label, legendgroup=label, showlegend=col == 1,
                marker={"color": color, "size": 9, "symbol": symbols},
                customdata=rows[[c for c in cols if c in rows]].to_numpy(),
                hovertemplate="setting %{customdata[0]}<br>γ=%{customdata[1]:g}, N=%{customdata[2]}, "
                              "batch %{customdata[3]}, η=%{customdata[4]:g}<br>η·t·σ=%{customdata[5]:.3g}"
                              "<br>e=%{x:.4g}<br>v=%{y:.4g}<extra></extra>"), row=1, col=col)
    floor = float(kept["noise_floor"].max()) if noise_floor is None and len(kept) else (
        float(noise_floor) if noise_floor is not None else float("nan"))
    for col in range(1, len(values) + 1):
        _floor_line(fig, floor, row=1, col=col)
    left_out = int(table["diverged"].astype(bool).sum())
    fig.update_xaxes(title_text="unlearning error e (last t)")
    fig.update_yaxes(title_text=f"{method} (last t)", col=1)
    notes = [_floor_note(floor)] + (["◆ x̂₁ halfway through t, ● x̂₁ first"] if later else [])
    fig.update_layout(template=TEMPLATE, height=460, legend={"orientation": "h", "y": -0.25}, margin={"t": 125},
                      title={"text": f"e against {method} across {len(kept)} settings"
                                     + (f" ({left_out} diverged, left out)" if left_out else "")
                                     + f"<br><sup>{'; '.join(notes)}</sup>"})
    return fig


def reports_figure(reports: pd.DataFrame) -> go.Figure:
    """The paper's reported Pearson correlations beside ours (a :func:`~unrolling_lib.experiments.
    verification_grid.paper_reports` table): one row per reported value, the paper's as a black cross, ours
    as a dot with its 95% interval; hover names the setting each was measured on."""
    labels = [f"{r.figure}: {r.paper_setting}" for r in reports.itertuples()][::-1]
    rows = reports.iloc[::-1]
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=rows["pearson"], y=labels, mode="markers", name="measured here (95% interval)",
        marker={"color": COLORS[0], "size": 10},
        error_x={"type": "data", "symmetric": False, "array": rows["high"] - rows["pearson"],
                 "arrayminus": rows["pearson"] - rows["low"]},
        customdata=[[str(m), "–" if pd.isna(n) else str(int(n))] for m, n in zip(rows["measured_setting"], rows["n"],
                                                                                 strict=True)],
        hovertemplate="%{customdata[0]}<br>r=%{x:.3f}, n=%{customdata[1]}<extra></extra>"))
    fig.add_trace(go.Scatter(x=rows["paper"], y=labels, mode="markers", name="the paper",
                             marker={"color": "black", "symbol": "x", "size": 10},
                             hovertemplate="paper: %{x}<extra></extra>"))
    fig.add_vline(x=0.0, line={"color": "grey", "width": 1})
    fig.update_xaxes(range=[-1.05, 1.05], title_text="Pearson(e, v)")
    fig.update_layout(template=TEMPLATE, height=120 + 40 * len(reports), legend={"orientation": "h", "y": -0.2},
                      title={"text": "The paper reports / we measure"}, margin={"l": 20})
    return fig
