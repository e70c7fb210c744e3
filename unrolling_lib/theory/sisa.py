"""§8.5: the cost of exact unlearning with SISA against single-gradient unlearning.

SISA (Bourtoule et al.) trains S models on disjoint shards, each in R slices with a checkpoint after every
slice (S·R checkpoints kept); forgetting a point retrains its shard from the checkpoint before the slice that
held it. §8.5 puts its cost at best at 2S/(R+1) of one retraining (its formula, used as printed:
``cost_model="paper"``); single-gradient unlearning (§5.1) costs one gradient, 1/N of a retraining of N steps,
and stores nothing.

Where is SISA cheaper? With the paper's cost, 2S/(R+1) < 1/N exactly when R + 1 > 2SN, so R ≥ 2SN ≥ 2N
(:func:`sisa_cheaper`, :func:`fewest_slices`). §8.5 states a weaker consequence: R or S is at least √N/2 − 1
(:func:`paper_bound`), which this condition implies (2N − 1 ≥ √N/2 − 1 for every N ≥ 1) but which is far from
tight. The cost the design of SISA itself suggests, one shard of N/S steps retrained from a uniformly random
slice, is (R+1)/(2RS) of a retraining (``cost_model="shard"``): cheaper exactly when 2RS > N(R+1), so S > N/2.
Either way the counts of shards or slices must grow with N (N ≈ 100,000 steps in the paper), far beyond the
S ≤ 20, R ≤ 50 that SISA's authors tested.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..validation import ParameterError, check_choice, check_int

__all__ = ["COST_MODELS", "cost_grid", "fewest_slices", "paper_bound", "single_gradient_cost", "sisa_cheaper",
           "sisa_cost", "sisa_storage"]

COST_MODELS = ("paper", "shard")


def _counts(shards: Any, slices: Any) -> tuple[np.ndarray, np.ndarray]:
    s, r = np.asarray(shards), np.asarray(slices)
    for name, v in (("shards", s), ("slices", r)):
        if not np.issubdtype(v.dtype, np.integer) or (v < 1).any():
            raise ParameterError(f"{name}={v.tolist()!r} is not allowed; use integers >= 1")
    return s.astype(np.int64), r.astype(np.int64)


def sisa_cost(shards: Any, slices: Any, *, cost_model: str = "paper") -> Any:
    """SISA's cost of unlearning one point, as a fraction of one full retraining: 2S/(R+1) as §8.5 prints it
    (``"paper"``), or (R+1)/(2RS), one shard retrained from a uniformly random slice (``"shard"``)."""
    cost_model = check_choice("cost_model", cost_model, COST_MODELS)
    s, r = _counts(shards, slices)
    out = 2.0 * s / (r + 1) if cost_model == "paper" else (r + 1) / (2.0 * r * s)
    return float(out) if np.ndim(out) == 0 else out


def sisa_storage(shards: Any, slices: Any) -> Any:
    """Checkpoints SISA keeps: one per shard and slice, S·R (§8.5: O(S·R))."""
    s, r = _counts(shards, slices)
    out = s * r
    return int(out) if np.ndim(out) == 0 else out


def single_gradient_cost(steps: Any) -> Any:
    """Single-gradient unlearning's cost as a fraction of retraining N steps: one gradient, 1/N (§8.5)."""
    n = np.asarray(steps)
    if not np.issubdtype(n.dtype, np.integer) or (n < 1).any():
        raise ParameterError(f"steps={n.tolist()!r} is not allowed; use integers >= 1")
    out = 1.0 / n
    return float(out) if np.ndim(out) == 0 else out


def sisa_cheaper(shards: Any, slices: Any, steps: Any, *, cost_model: str = "paper") -> Any:
    """Whether SISA's cost is below single-gradient unlearning's, decided in integers (no rounding): with the
    paper's cost, R + 1 > 2SN; with the shard cost, 2RS > N(R + 1)."""
    cost_model = check_choice("cost_model", cost_model, COST_MODELS)
    s, r = _counts(shards, slices)
    single_gradient_cost(steps)  # checks steps
    n = np.asarray(steps, dtype=np.int64)
    out = (r + 1 > 2 * s * n) if cost_model == "paper" else (2 * r * s > n * (r + 1))
    return bool(out) if np.ndim(out) == 0 else out


def fewest_slices(shards: int, steps: int) -> int:
    """The fewest slices R with which SISA (the paper's cost, ``shards`` = S) beats one gradient: 2SN."""
    s, n = check_int("shards", shards, 1), check_int("steps", steps, 1)
    return 2 * s * n


def paper_bound(steps: Any) -> Any:
    """§8.5's stated consequence: where SISA is cheaper, R or S is at least √N/2 − 1."""
    n = np.asarray(steps, dtype=np.float64)
    if (n < 1).any():
        raise ParameterError(f"steps={np.asarray(steps).tolist()!r} is not allowed; use integers >= 1")
    out = np.sqrt(n) / 2.0 - 1.0
    return float(out) if np.ndim(out) == 0 else out


def cost_grid(shards: Any, slices: Any, steps: Any, *, cost_model: str = "paper") -> pd.DataFrame:
    """Every combination of ``shards``, ``slices`` and ``steps`` (sequences of ints): SISA's cost, the single
    gradient's, their ratio (below 1: SISA cheaper), ``cheaper`` (decided exactly), the checkpoints stored and
    §8.5's bound √N/2 − 1, one tidy row each."""
    s, r, n = (np.atleast_1d(np.asarray(v)) for v in (shards, slices, steps))
    ss, rr, nn = (a.ravel() for a in np.meshgrid(s, r, n, indexing="ij"))
    sisa = sisa_cost(ss, rr, cost_model=cost_model)
    single = single_gradient_cost(nn)
    return pd.DataFrame({"shards": ss, "slices": rr, "steps": nn, "sisa_cost": sisa, "single_gradient_cost": single,
                         "ratio": sisa / single, "cheaper": sisa_cheaper(ss, rr, nn, cost_model=cost_model),
                         "storage": sisa_storage(ss, rr), "paper_bound": paper_bound(nn)})
