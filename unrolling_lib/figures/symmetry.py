"""Figure of §4.2: output difference against weight difference, towards the retrained M′ and the permuted π(M).

The walks come from :func:`unrolling_lib.theory.symmetry.interpolation_paths` (two interpolation tables);
this module only draws them.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .common import COLORS

__all__ = ["symmetry_figure"]


def symmetry_figure(near: pd.DataFrame, permuted_path: pd.DataFrame, v_permuted: float) -> go.Figure:
    """Left: output vs weight difference towards M′ (log-log) with the linear bound. Right: the path M → π(M),
    whose verification error is ``v_permuted`` (§4.2)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "towards the retrained M′", f"towards the permuted π(M), v = {v_permuted:.3g}"))
    limit = float(near["limit"].iloc[0])
    fig.add_trace(go.Scatter(x=near["weight_difference"], y=near["output_difference"], mode="lines+markers",
                             name="max over the data ‖M_w(α)(x) − M(x)‖₂"), row=1, col=1)
    fig.add_trace(go.Scatter(x=near["weight_difference"], y=limit * near["weight_difference"], mode="lines",
                             name=f"linear: {limit:.3g} · weight difference (α → 0 slope)",
                             line={"dash": "dash", "color": "black"}), row=1, col=1)
    fig.add_trace(go.Scatter(x=permuted_path["alpha"], y=permuted_path["output_difference"], mode="lines+markers",
                             name="along w + α(π(w) − w)", line={"color": COLORS[3]}), row=1, col=2)
    fig.update_xaxes(type="log", title_text="weight difference α‖w′ − w‖₂", row=1, col=1)
    fig.update_yaxes(type="log", title_text="max output difference", row=1, col=1)
    fig.update_xaxes(title_text="α (0 = M, 1 = π(M))", row=1, col=2)
    fig.update_yaxes(title_text="max output difference", row=1, col=2)
    fig.update_layout(height=500, legend={"orientation": "h", "y": -0.25})
    return fig
