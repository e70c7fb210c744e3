"""The taxonomy of approximate unlearning (§3, Figure 1 of Thudi et al.).

Each prior work is placed by *what it changes to unlearn* (§3.3: logits, weights, the distribution of
weights; or retraining, the exact baseline of §3.1) and by *how its success is measured* (§3.2: ℓ2 distance,
KL divergence, privacy leakage of weight distributions, membership inference; or exactness by construction).
Data only: :func:`unrolling_lib.figures.taxonomy.taxonomy_figure` draws the map.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["METHODS", "METRICS", "SPACE", "works"]

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
     "shows bounds the sup-norm distance between weight densities, under Gaussian noise assumed on the weights."),
]


def works() -> pd.DataFrame:
    """One row per placed work: name, citation key, method (x), metric (y), weight/output space, explanation."""
    df = pd.DataFrame(_WORKS, columns=["work", "cite", "method", "metric", "explanation"])
    df["space"] = df["metric"].map(SPACE)
    return df

