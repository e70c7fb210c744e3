"""Figures of the text experiment: Table 2 beside the paper's (relative to γ = 0, since the scales differ by
orders of magnitude), and the encoder fine-tuned in a Trainer: e along t with σ over all parameters or the
head, and what one σ sample costs in training steps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import COLORS, TEMPLATE

__all__ = ["encoder_figure", "table2_figure"]


def _relative(values: pd.Series, gammas: pd.Series) -> pd.Series:
    base = values[gammas == 0.0]
    return values / float(base.iloc[0]) if len(base) and float(base.iloc[0]) != 0 else values * np.nan


def table2_figure(beside: pd.DataFrame) -> go.Figure:
    """Table 2 (:func:`~unrolling_lib.experiments.text.table2_beside_paper`): e and v as multiples of their value
    at γ = 0 (log scale) and test accuracy in percent, against γ, ours (mean over seeds, bars one standard
    deviation) beside the paper's DistilBERT on IMDB."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=["e / e(γ=0)", "v / v(γ=0)", "test accuracy (%)"],
                        horizontal_spacing=0.08)
    g = beside["gamma"]
    for col, name in enumerate(("e", "v", "accuracy"), 1):
        ours, paper = beside[name], beside[f"{name}_paper"]
        scale = (lambda s: _relative(s, g)) if name != "accuracy" else (lambda s: s)
        spread = beside.get(f"{name}_sd")
        keep = ours.notna()
        bars = None
        if spread is not None:
            base = 1.0 if name == "accuracy" else float(ours[g == 0.0].iloc[0]) if (g == 0.0).any() else np.nan
            bars = {"type": "data", "array": (spread / base)[keep], "visible": True}
        fig.add_trace(go.Scatter(x=g[keep], y=scale(ours)[keep], mode="lines+markers", name="ours",
                                 legendgroup="ours", showlegend=col == 1, error_y=bars,
                                 line={"color": COLORS[0], "width": 2.5}), row=1, col=col)
        keep = paper.notna()
        fig.add_trace(go.Scatter(x=g[keep], y=scale(paper)[keep], mode="lines+markers",
                                 name="paper (DistilBERT, IMDB)", legendgroup="paper", showlegend=col == 1,
                                 line={"color": COLORS[1], "width": 2, "dash": "dash"}), row=1, col=col)
        if name != "accuracy":
            fig.update_yaxes(type="log", row=1, col=col)
    fig.update_xaxes(title_text="γ (code scaling)")
    fig.update_layout(template=TEMPLATE, height=420, title="Table 2: the SD loss on text, relative to cross entropy",
                      legend={"orientation": "h", "y": -0.25})
    return fig


def encoder_figure(df: pd.DataFrame) -> go.Figure:
    """The encoder fine-tuned in a Trainer (:func:`~unrolling_lib.experiments.text.finetune_encoder`): e along t
    per γ and σ choice (left), and each σ sample's seconds in units of one training step (right)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["e along t", "one σ sample, in training steps"],
                        horizontal_spacing=0.12)
    gammas = sorted(df["gamma"].unique())
    for (gamma, over), part in df.groupby(["gamma", "sigma_over"], sort=True):
        k = gammas.index(gamma)
        dash = "solid" if over == "all" else "dot"
        fig.add_trace(go.Scatter(x=part["t"], y=part["e"], mode="lines+markers", name=f"γ={gamma:g}, σ over {over}",
                                 line={"color": COLORS[k % len(COLORS)], "dash": dash}), row=1, col=1)
    cost = df.assign(steps=df["sigma_seconds"] / df["step_seconds"])
    for i, (over, part) in enumerate(cost.groupby("sigma_over", sort=True)):
        fig.add_trace(go.Box(y=part["steps"], name=f"σ over {over}", marker_color=COLORS[(i + 3) % len(COLORS)],
                             boxpoints="all", showlegend=False), row=1, col=2)
    fig.update_xaxes(title_text="Trainer step t", row=1, col=1)
    fig.update_yaxes(title_text="e (Eq. 9)", type="log", row=1, col=1)
    fig.update_yaxes(title_text="seconds / seconds of a step", type="log", row=1, col=2)
    fig.update_layout(template=TEMPLATE, height=420, title="The unlearning error inside a Hugging Face Trainer")
    return fig
