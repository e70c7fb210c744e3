"""Figures for §8.5: where SISA would be cheaper than single-gradient unlearning (a calculator)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..theory.sisa import cost_grid, paper_bound, single_gradient_cost, sisa_cost, sisa_storage
from .common import TEMPLATE, active_last, frames_slider
from .live import live_figure

__all__ = ["sisa_calculator_figure", "sisa_live"]


def _heatmap(part: pd.DataFrame) -> go.Heatmap:
    shards = sorted(part["shards"].unique())
    slices = sorted(part["slices"].unique())
    z = np.log10(part.pivot(index="slices", columns="shards", values="ratio").loc[slices, shards].to_numpy())
    storage = part.pivot(index="slices", columns="shards", values="storage").loc[slices, shards].to_numpy()
    return go.Heatmap(x=[str(s) for s in shards], y=[str(r) for r in slices], z=z, zmid=0, zmin=-3, zmax=3,
                      colorscale="RdBu_r", customdata=storage,  # blue: SISA cheaper
                      colorbar={"title": "log₁₀ SISA / one gradient", "len": 0.8},
                      hovertemplate="S=%{x}, R=%{y}<br>log₁₀ cost ratio %{z:.2f}<br>checkpoints %{customdata}"
                                    "<extra></extra>")


def _frame_title(n: int, part: pd.DataFrame, measured: float | None) -> str:
    cheaper = part[part["cheaper"]]
    where = (f"SISA cheaper in {len(cheaper)} of {len(part)} (S, R), all with R ≥ 2SN = {2 * n:,} at S = 1"
             if len(cheaper) else f"SISA never cheaper on this grid: it needs R ≥ 2SN ≥ {2 * n:,}")
    extra = f"; measured here: one gradient = {measured:.2g} of a retraining" if measured is not None else ""
    return (f"N = {n:,} steps: one gradient costs 1/N = {1 / n:.2g} of a retraining{extra}<br><sup>{where}; "
            f"§8.5's bound √N/2 − 1 = {paper_bound(n):.3g}</sup>")


def sisa_calculator_figure(shards: Sequence[int], slices: Sequence[int], steps: Sequence[int], *,
                           cost_model: str = "paper", measured: dict[int, float] | None = None,
                           active: int = 0) -> go.Figure:
    """§8.5 as a map: log₁₀ of SISA's unlearning cost over single-gradient unlearning's, over shards S (x) and
    slices R (y), one frame per number of training steps N (the slider); blue where SISA is cheaper. ``measured``:
    N → the measured ratio of one unlearning gradient to one retraining, shown in the title of its frame."""
    grid = cost_grid(shards, slices, steps, cost_model=cost_model)
    measured = measured or {}
    frames = []
    for n in steps:
        part = grid[grid["steps"] == n]
        frames.append(go.Frame(name=str(n), data=[_heatmap(part)],
                               layout={"title": {"text": _frame_title(n, part, measured.get(n))}}))
    first = frames[active]
    fig = go.Figure(data=first.data, frames=active_last(frames, active))
    fig.update_layout(template=TEMPLATE, height=560, margin={"t": 110},
                      title=first.layout.title, xaxis_title="shards S", yaxis_title="slices R",
                      sliders=frames_slider(frames, [f"{n:,}" for n in steps], prefix="N = ", active=active))
    return fig


def sisa_live(*, shards: int = 10, slices: int = 20, steps: int = 100_000, cost_model: str = "paper") -> Any:
    """ipywidgets calculator for a live kernel: S, R and N sliders (log-scaled), SISA's cost, one gradient's
    cost and the checkpoints stored, redrawn on every change (:func:`~.live.live_figure`)."""
    import ipywidgets as widgets

    s = widgets.IntSlider(value=shards, min=1, max=4096, description="shards S")
    r = widgets.IntSlider(value=slices, min=1, max=1_000_000, description="slices R")
    n = widgets.IntSlider(value=steps, min=1, max=1_000_000, description="steps N")

    def draw() -> go.Figure:
        costs = {"SISA": sisa_cost(s.value, r.value, cost_model=cost_model),
                 "single gradient": single_gradient_cost(n.value)}
        fig = go.Figure(go.Bar(x=list(costs), y=list(costs.values()), text=[f"{v:.3g}" for v in costs.values()]))
        fig.update_yaxes(type="log", title_text="fraction of one retraining")
        fig.update_layout(template=TEMPLATE, height=380,
                          title=f"SISA stores {sisa_storage(s.value, r.value):,} checkpoints; "
                                f"cheaper: {costs['SISA'] < costs['single gradient']}")
        return fig

    return live_figure([s, r, n], draw)
