"""What every figure of the book shares: the template, sliders over precomputed frames, axis helpers.

A slider over ``go.Frame`` objects works in the static book with no kernel. plotly's HTML plays every frame
once when the page loads, so :func:`active_last` puts the active frame last: the page then ends on the
frame the slider shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..metrics import correlation
from ..validation import ParameterError

__all__ = ["COLORS", "TEMPLATE", "active_last", "correlation_panels", "f32", "frames_slider", "log_range",
           "sequential_colors"]

TEMPLATE = "plotly_white"
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


def frames_slider(
    frames: list[go.Frame],
    labels: list[str],
    *,
    prefix: str = "",
    active: int = 0,
) -> list[dict[str, Any]]:
    """A plotly slider over precomputed frames: works in the static book with no kernel."""
    if len(frames) != len(labels):
        raise ParameterError(f"labels has {len(labels)} entries; frames has {len(frames)}")
    steps = [
        {
            "method": "animate",
            "label": label,
            "args": [[frame.name], {"mode": "immediate", "frame": {"duration": 0, "redraw": True},
                                    "transition": {"duration": 0}}],
        }
        for frame, label in zip(frames, labels, strict=True)
    ]
    return [{"active": active, "currentvalue": {"prefix": prefix}, "pad": {"t": 40}, "steps": steps}]


def active_last(frames: Sequence[go.Frame], active: int) -> list[go.Frame]:
    """The frames with the active one moved to the end: plotly's HTML plays every frame once on load, so the
    page then ends on the frame the slider shows."""
    frames = list(frames)
    return frames[:active] + frames[active + 1:] + [frames[active]]


def log_range(values: Any, pad: float = 0.25) -> list[float]:
    """A log-axis range (log10 units) around the positive finite ``values``: plotly does not rescale axes when
    it animates between frames, so every frame carries its own range."""
    v = np.asarray([x for x in np.ravel(np.asarray(values, dtype=np.float64)) if np.isfinite(x) and x > 0])
    if v.size == 0:
        return [-1.0, 1.0]
    return [float(np.log10(v.min()) - pad), float(np.log10(v.max()) + pad)]


def f32(values: Any) -> np.ndarray:
    """Figure data as float32: half the page weight, far below what a plot resolves."""
    return np.asarray(values, dtype=np.float32)


def sequential_colors(n: int) -> list[str]:
    """``n`` colours from dark to light (plotly's Viridis, sampled)."""
    from plotly.colors import sample_colorscale

    return sample_colorscale("Viridis", [i / max(n - 1, 1) * 0.9 for i in range(n)])


def correlation_panels(rows: Any, by: str, x: str, y: str, values: Sequence[Any], *,
                       spacing: float = 0.08) -> go.Figure:
    """One subplot per value of column ``by`` of the DataFrame ``rows``, each titled with that value and, on a
    second line (narrow panels side by side), Pearson(``x``, ``y``) over its rows with n and the 95% interval
    (just n below three rows)."""
    titles = []
    for value in values:
        part = rows[rows[by] == value]
        c = correlation(part[x], part[y]) if len(part) >= 3 else None
        titles.append(f"{value}<br>" + (c.describe() if c is not None else f"n = {len(part)}"))
    fig = make_subplots(rows=1, cols=max(len(values), 1), subplot_titles=titles or [""], horizontal_spacing=spacing)
    fig.update_annotations(font_size=12)
    return fig
