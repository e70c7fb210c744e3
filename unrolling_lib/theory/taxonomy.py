"""The taxonomy of approximate unlearning (§3, Figure 1 of Thudi et al.).

Each prior work is placed by *what it changes to unlearn* (§3.3: logits, weights, the distribution of
weights; or retraining, the exact baseline of §3.1) and by *how its success is measured* (§3.2: ℓ2 distance,
KL divergence, privacy leakage of weight distributions, membership inference; or exactness by construction).
"""

from __future__ import annotations

import textwrap

import pandas as pd
import plotly.graph_objects as go

METHODS = ["Retraining (exact)", "Logits", "Weights", "Distribution of weights"]
METRICS = ["Exact by construction", "Membership inference", "Privacy leakage of weight distributions",
           "KL divergence", "ℓ2 distance (verification error)"]
SPACE = {"Exact by construction": "both", "Membership inference": "outputs",
         "Privacy leakage of weight distributions": "weights", "KL divergence": "weights",
         "ℓ2 distance (verification error)": "weights"}

# (work, bibtex key, method, metric, one-sentence explanation in this book's words)
_WORKS = [
    ("Bourtoule et al. (SISA)", "bourtoule2021machine", "Retraining (exact)", "Exact by construction",
     "Shards and slices the data so that forgetting a point retrains only the small constituent model that saw it."),
    ("Baumhauer et al.", "baumhauer2022machine", "Logits", "Membership inference",
     "Appends a linear filtration to a logit-based classifier so its outputs look as if a whole class had never "
     "been trained on."),
    ("Graves et al. (amnesiac)", "graves2021amnesiac", "Weights", "Membership inference",
     "Logs every parameter update during training and subtracts the ones from batches that held the forgotten "
     "point."),
    ("Wu et al. (DeltaGrad)", "wu2020deltagrad", "Weights", "ℓ2 distance (verification error)",
     "Retrains quickly by correcting cached gradients with quasi-Newton updates and reports the weight distance "
     "to a model retrained from scratch."),
    ("Golatkar et al. (scrubbing)", "golatkar2020eternal", "Distribution of weights", "KL divergence",
     "Adds noise shaped by the Fisher information so the weight distribution after scrubbing is close in KL to "
     "that of a retrained model."),
    ("Sekhari et al.", "sekhari2021remember", "Distribution of weights", "Privacy leakage of weight distributions",
     "For convex losses, a Newton step plus calibrated noise gives (ε, δ)-unlearning in a differential-privacy "
     "sense, deleting more points than DP training alone allows."),
    ("Guo et al. (certified removal)", "guo2020certified", "Distribution of weights",
     "Privacy leakage of weight distributions",
     "A Newton update with loss perturbation bounds, by ε, how much the removed point can still be detected from "
     "the weights of linear models."),
    ("Thudi et al. (this paper)", "thudi2022unrolling", "Weights", "ℓ2 distance (verification error)",
     "Single-gradient unlearning adds back η·m·∇L(w₀; x*) and is judged by the verification error, which §4.1 "
     "shows bounds weight-distribution metrics."),
]


def works() -> pd.DataFrame:
    """One row per placed work: name, citation key, method (x), metric (y), weight/output space, explanation."""
    df = pd.DataFrame(_WORKS, columns=["work", "cite", "method", "metric", "explanation"])
    df["space"] = df["metric"].map(SPACE)
    return df


def _offsets(df: pd.DataFrame) -> pd.Series:
    """Spread works that share a cell vertically so none hides another."""
    rank = df.groupby(["method", "metric"]).cumcount()
    size = df.groupby(["method", "metric"])["work"].transform("size")
    return (rank - (size - 1) / 2) * 0.3


def figure(df: pd.DataFrame | None = None) -> go.Figure:
    """Figure 1 as an interactive scatter: hover a work for its citation and a one-sentence explanation."""
    df = works() if df is None else df
    x = df["method"].map(METHODS.index)
    y = df["metric"].map(METRICS.index) + _offsets(df)
    colors = ["#d62728" if key == "thudi2022unrolling" else "#1f77b4" for key in df["cite"]]
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
        height=520, margin={"l": 140, "r": 10, "t": 60, "b": 70}, showlegend=False, template="plotly_white",
    )
    return fig
