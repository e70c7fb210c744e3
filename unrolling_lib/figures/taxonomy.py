"""Figure 1 of §3: the taxonomy of approximate unlearning as an interactive map.

The placed works come from :func:`unrolling_lib.theory.taxonomy.works`; this module only draws them.
"""

from __future__ import annotations

import textwrap

import pandas as pd
import plotly.graph_objects as go

from ..theory.taxonomy import METHODS, METRICS, works
from .common import COLORS, TEMPLATE

__all__ = ["taxonomy_figure"]

_OURS = "thudi2022unrolling"  # the paper itself, drawn in red


def _offsets(df: pd.DataFrame) -> pd.Series:
    """Spread works that share a cell vertically so none hides another."""
    rank = df.groupby(["method", "metric"]).cumcount()
    size = df.groupby(["method", "metric"])["work"].transform("size")
    return (rank - (size - 1) / 2) * 0.3


def taxonomy_figure(df: pd.DataFrame | None = None) -> go.Figure:
    """Figure 1 (§3) as an interactive scatter: hover a work for its citation and a one-sentence explanation.

    ``df`` has the columns of :func:`~unrolling_lib.theory.taxonomy.works` (its result by default).
    """
    df = works() if df is None else df
    x = df["method"].map(METHODS.index)
    y = df["metric"].map(METRICS.index) + _offsets(df)
    colors = [COLORS[3] if key == _OURS else COLORS[0] for key in df["cite"]]
    hover = [f"<b>{w}</b> [{c}]<br>{'<br>'.join(textwrap.wrap(e, 60))}" for w, c, e in
             zip(df["work"], df["cite"], df["explanation"], strict=True)]
    short = df["work"].str.replace(r" \(.*\)$", "", regex=True)
    fig = go.Figure(go.Scatter(
        x=x, y=y, mode="markers+text", text=short, textposition="middle right", textfont={"size": 11},
        marker={"size": 13, "color": colors, "line": {"width": 1, "color": "white"}},
        hovertext=hover, hoverinfo="text",
    ))
    fig.update_layout(
        title="Taxonomy of approximate unlearning (§3, Figure 1)",
        xaxis={"title": "what the method changes to unlearn", "tickmode": "array",
               "tickvals": list(range(len(METHODS))), "ticktext": [m.replace(" ", "<br>", 1) for m in METHODS],
               "range": [-0.3, len(METHODS) - 0.1]},
        yaxis={"title": "how unlearning is measured", "tickmode": "array", "tickvals": list(range(len(METRICS))),
               "ticktext": [textwrap.fill(m, 18).replace("\n", "<br>") for m in METRICS],
               "range": [-0.5, len(METRICS) - 0.5]},
        height=520, margin={"l": 140, "r": 10, "t": 60, "b": 70}, showlegend=False, template=TEMPLATE,
    )
    return fig
