"""Figures of §8.3 (Figures 9 and 11) and the pieces of Eq. 9 over fine-tuning steps."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import COLORS, TEMPLATE

__all__ = ["components_figure", "verification_figure"]


def verification_figure(df: pd.DataFrame) -> go.Figure:
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
                      template=TEMPLATE, height=460, legend_title="SD strength")
    return fig


def components_figure(df: pd.DataFrame,
                      columns: tuple[str, ...] = ("e", "v", "weight_change", "sigma_avg")) -> go.Figure:
    """The pieces of Eq. 9 over fine-tuning steps t, one panel per quantity and one line per γ (§8.2)."""
    titles = {"e": "unlearning error e", "v": "verification error v", "weight_change": "‖w_t − w₀‖₂",
              "sigma_avg": "σ_avg", "accuracy": "test accuracy"}
    ncols = 2
    nrows = -(-len(columns) // ncols)
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=[titles.get(c, c) for c in columns],
                        vertical_spacing=0.16, horizontal_spacing=0.1)
    for k, (gamma, rows) in enumerate(df.groupby("gamma", sort=True)):
        for i, name in enumerate(columns):
            row, col = divmod(i, ncols)
            fig.add_trace(go.Scatter(x=rows["t"], y=rows[name], mode="lines", name=f"γ = {gamma:g}",
                                     legendgroup=str(gamma), showlegend=i == 0,
                                     line={"color": COLORS[k % len(COLORS)]}), row=row + 1, col=col + 1)
            fig.update_xaxes(title_text="t", row=row + 1, col=col + 1)
    fig.update_layout(template=TEMPLATE, height=300 * nrows + 80, margin={"t": 60})
    return fig


