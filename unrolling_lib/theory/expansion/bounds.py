"""σ per batch and the bounds of Eq. 8–9 on the η² term of Eq. 6 (§5.2–5.3), measured against real SGD.

Eq. 8 bounds ‖η² c_t‖ by η² · ‖w_t − w₀‖/t · σ · t(t−1)/2 with σ = max_i σ_i, σ_i the largest singular value
of H_i (|λ|max, :func:`unrolling_lib.curvature.sigma` with ``sigma_mode="spectral"``; the released code used
sqrt(λmax), ``sigma_mode="paper"``); Eq. 9 replaces σ by the average σ_avg and calls the result the unlearning
error e. The formulas themselves are those of :mod:`unrolling_lib.unlearning_error`; this module evaluates
them on the expansion problem beside the quantity they bound.

Two things the printed derivation glosses over, both measured here rather than assumed:

- From Eq. 6 to Eq. 7 the partial sum of *gradients* Σ_{j<i} g_j is replaced by the *weight change*
  i(w_t − w₀)/t; but w_t − w₀ ≈ −η Σ_j g_j, so the consistent substitution is i(w₀ − w_t)/(η t). Eq. 8 as
  printed is therefore η times the bound the same steps give (``eq8_consistent``); for small η its right
  side shrinks like η³ while ‖η² c_t‖ shrinks like η², so it must fail for small enough η.
- The rigorous bound the steps rest on is ‖η² c_t‖ ≤ η² Σ_i σ_i ‖Σ_{j<i} g_j‖ (triangle inequality and
  the operator norm) — ``eq8_rigorous``, which always holds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from ...curvature import DEFAULT_SIGMA_MODE, SIGMA_MODES, sigma, top_eigenvalue
from ...unlearning_error import eq8_bound, eq8_consistent_bound, eq8_rigorous_bound, unlearning_error
from ...unlearning_error import sigma_avg as mean_sigma
from ...validation import check_choice, check_int, check_numbers
from .problem import (
    ExpansionProblem,
    eta2_coefficients,
    first_order_path,
    gradients_at_w0,
    hvp_at_w0,
    second_order_path,
    sgd_path,
)

__all__ = [
    "OperatorNormCheck",
    "SigmaSummary",
    "batch_sigmas",
    "eq8_ratio_growth",
    "expansion_table",
    "fit_slopes",
    "operator_norm_check",
    "sigma_summary",
]


def batch_sigmas(problem: ExpansionProblem, *, tol: float = 1e-4, max_iter: int = 200) -> pd.DataFrame:
    """The Hessian's eigenvalue of largest magnitude λ_i at w₀ for every batch, and σ_i in both modes (§5.3).

    Columns: ``batch``, ``eigenvalue`` (signed, :func:`unrolling_lib.curvature.top_eigenvalue`),
    ``sigma_spectral`` = |λ_i| (the spectral norm: what Eq. 8's operator-norm step needs) and
    ``sigma_paper`` = sqrt(λ_i) (what the released code computed; nan if λ_i < 0), ``hvps`` used.
    """
    model = problem.module_at(problem.w0)
    rows, init = [], None
    for i, (x, y) in enumerate(problem.batches):
        res = top_eigenvalue(model, problem.loss_fn, x, y, tol=tol, max_iter=max_iter, init=init, seed=i)
        init = res
        rows.append({"batch": i, "eigenvalue": res.value, "sigma_spectral": sigma(res, sigma_mode="spectral"),
                     # sqrt(λ) of a negative λ is undefined: nan, without curvature.sigma's warning per batch
                     "sigma_paper": sigma(res, sigma_mode="paper") if res.value >= 0 else math.nan,
                     "hvps": res.hvp_count})
    return pd.DataFrame(rows)


@dataclass
class OperatorNormCheck:
    """What Eq. 8's step ‖H_i v̂‖ ≤ σ_i needs, on one batch (§5.3).

    ``hv_norm``: ‖H_i v̂‖ along the unit top eigenvector v̂ (the largest ‖H_i v‖ over unit v); ``eigenvalue``:
    λ, the signed eigenvalue of largest magnitude; ``sigma_spectral``: |λ| (the spectral norm);
    ``sigma_paper``: sqrt(λ), the released code's σ (nan if λ < 0).
    """

    batch: int
    hv_norm: float
    eigenvalue: float
    sigma_spectral: float
    sigma_paper: float


def operator_norm_check(problem: ExpansionProblem, batch: int, *, tol: float = 1e-6) -> OperatorNormCheck:
    """‖H_i v̂‖ along the top eigenvector of batch ``batch``, beside |λ| and sqrt(λ) (the two σ of §5.3)."""
    batch = check_int("batch", batch, 0, problem.steps - 1)
    x, y = problem.batches[batch]
    res = top_eigenvalue(problem.module_at(problem.w0), problem.loss_fn, x, y, tol=tol, max_iter=300)
    v = res.vector.to(torch.float64)
    return OperatorNormCheck(batch=batch, hv_norm=float(hvp_at_w0(problem, batch, v / v.norm()).norm()),
                             eigenvalue=res.value, sigma_spectral=abs(res.value),
                             sigma_paper=math.sqrt(res.value) if res.value >= 0 else math.nan)


@dataclass
class SigmaSummary:
    """σ = max_{1≤i≤t−1} σ_i (Eq. 8) and σ_avg = mean_{i<t} σ_i (Eq. 9), in both σ modes."""

    sigma_max_spectral: float
    sigma_max_paper: float
    sigma_avg_spectral: float
    sigma_avg_paper: float

    def sigma_max(self, sigma_mode: str = DEFAULT_SIGMA_MODE) -> float:
        """σ of Eq. 8 in ``sigma_mode``."""
        return getattr(self, f"sigma_max_{check_choice('sigma_mode', sigma_mode, SIGMA_MODES)}")

    def sigma_avg(self, sigma_mode: str = DEFAULT_SIGMA_MODE) -> float:
        """σ_avg of Eq. 9 in ``sigma_mode``."""
        return getattr(self, f"sigma_avg_{check_choice('sigma_mode', sigma_mode, SIGMA_MODES)}")


def sigma_summary(sigmas: pd.DataFrame, steps: int | None = None) -> SigmaSummary:
    """σ and σ_avg of the first ``steps`` batches (default all) of a :func:`batch_sigmas` table.

    Eq. 8's max runs over the Hessians that enter c_t, H_1 … H_{t−1} (0 for t = 1, where there is none);
    Eq. 9's mean over all t samples (:func:`unrolling_lib.unlearning_error.sigma_avg`). In ``"paper"`` mode a
    batch whose top eigenvalue is negative has no sqrt(λ) (nan); it is left out of the max and the mean, as a
    sweep that skips a failed σ sample would.
    """
    t = len(sigmas) if steps is None else steps
    head = sigmas.iloc[:t]
    inner = head.iloc[1:t] if t > 1 else head.iloc[:0]
    out = {}
    for mode in SIGMA_MODES:
        col = f"sigma_{mode}"
        out[f"sigma_max_{mode}"] = float(inner[col].max()) if len(inner) else 0.0
        out[f"sigma_avg_{mode}"] = mean_sigma(head[col].to_numpy())
    return SigmaSummary(**out)


def expansion_table(problem: ExpansionProblem, lrs: Sequence[float], sigmas: pd.DataFrame | None = None
                    ) -> pd.DataFrame:
    """Real SGD against its expansion for every η in ``lrs`` and every t ≤ the problem's steps (§5.1–5.2).

    Columns: ``model``, ``lr``, ``t``; ``displacement`` ‖w_t − w₀‖; ``first_order_error`` ‖w_t − (w₀ − η Σ g)‖;
    ``second_order_error`` ‖w_t − Eq. 4–5‖; ``eq6_error`` ‖w_t − (w₀ − η Σ g + η² c_t)‖; ``eta2_term``
    ‖η² c_t‖ (Eq. 6); with ``sigmas`` (from :func:`batch_sigmas`) also ``eq8`` (as printed, σ = max |λ|),
    ``eq8_paper_sigma`` (σ = max sqrt(λ)), ``eq8_consistent`` (η instead of η²), ``eq8_rigorous``
    (η² Σ σ_i ‖Σ_{j<i} g_j‖), and ``eq9`` / ``eq9_paper_sigma`` (unlearning error with σ_avg).
    """
    lrs = check_numbers("lrs", lrs)
    grads = gradients_at_w0(problem)
    real = sgd_path(problem, lrs)
    first = first_order_path(problem, lrs, grads)
    second = second_order_path(problem, lrs, grads)
    c = eta2_coefficients(problem, grads)
    partial_norms = torch.cat([torch.zeros(1, dtype=torch.float64), grads.cumsum(0).norm(dim=1)])  # ‖Σ_{j<i} g_j‖
    rows = []
    for k, lr in enumerate(lrs):
        for t in range(1, problem.steps + 1):
            disp = float((real[k, t] - problem.w0).norm())
            row = {"model": problem.name, "lr": lr, "t": t, "displacement": disp,
                   "first_order_error": float((real[k, t] - first[k, t]).norm()),
                   "second_order_error": float((real[k, t] - second[k, t]).norm()),
                   "eq6_error": float((real[k, t] - first[k, t] - lr**2 * c[t]).norm()),
                   "eta2_term": lr**2 * float(c[t].norm())}
            if sigmas is not None:
                row.update(_bounds(lr, t, disp, sigmas, partial_norms))
            rows.append(row)
    return pd.DataFrame(rows)


def _or_nan(bound: Any, lr: float, t: int, disp: float, sig: float) -> float:
    """A bound with σ in the paper's mode: nan where no batch had a sqrt(λ) (all top eigenvalues negative)."""
    return bound(lr, t, disp, sig) if math.isfinite(sig) else math.nan


def _bounds(lr: float, t: int, disp: float, sigmas: pd.DataFrame, partial_norms: torch.Tensor) -> dict[str, float]:
    """Eq. 8 (printed, paper σ, consistent, rigorous) and Eq. 9 (both σ modes) for one (η, t)."""
    s = sigma_summary(sigmas, t)
    return {
        "eq8": eq8_bound(lr, t, disp, s.sigma_max_spectral),
        "eq8_paper_sigma": _or_nan(eq8_bound, lr, t, disp, s.sigma_max_paper),
        "eq8_consistent": eq8_consistent_bound(lr, t, disp, s.sigma_max_spectral),
        "eq8_rigorous": eq8_rigorous_bound(lr, sigmas["sigma_spectral"].to_numpy()[:t], partial_norms[:t].numpy()),
        "eq9": unlearning_error(lr, t, disp, s.sigma_avg_spectral),
        "eq9_paper_sigma": _or_nan(unlearning_error, lr, t, disp, s.sigma_avg_paper),
    }


def fit_slopes(table: pd.DataFrame, columns: Sequence[str] = ("first_order_error", "second_order_error"),
               *, lr_max: float | None = None) -> pd.DataFrame:
    """Log-log slope of each error column against η (``numpy.polyfit`` of degree 1), per model and t (§5.1).

    Only rows with η ≤ ``lr_max`` (all if ``None``) and t ≥ 2 (at t = 1 the first-order formula is exact)
    are fitted. Also reports ``<column>_local_min/max``: the smallest and largest slope between consecutive
    η, which shows how far the fit range is from the asymptotic regime, and ``next_order_ratio``: the largest
    second-order / first-order error over the fitted rows. For err = aη^p(1 + ε(η)) the fitted slope is off
    from p by about ε at the largest η, and for the first-order error ε is exactly that ratio.
    """
    rows = []
    sub = table if lr_max is None else table[table["lr"] <= lr_max]
    for (model, t), g in sub[sub["t"] >= 2].groupby(["model", "t"]):
        g = g.sort_values("lr")
        row: dict[str, Any] = {"model": model, "t": int(t), "lr_min": float(g["lr"].min()),
                               "lr_max": float(g["lr"].max())}
        x = np.log(g["lr"].to_numpy())
        for col in columns:
            y = np.log(g[col].to_numpy())
            row[col.replace("_error", "_slope")] = float(np.polyfit(x, y, 1)[0])
            local = np.diff(y) / np.diff(x)
            row[col.replace("_error", "_local_min")] = float(local.min())
            row[col.replace("_error", "_local_max")] = float(local.max())
        if {"first_order_error", "second_order_error"} <= set(g.columns):
            row["next_order_ratio"] = float((g["second_order_error"] / g["first_order_error"]).max())
        rows.append(row)
    return pd.DataFrame(rows)


def eq8_ratio_growth(table: pd.DataFrame, t: int) -> pd.Series:
    """Per model, the log-log slope in η of (printed Eq. 8) / ‖η² c_t‖ at step ``t``: about 1 when the printed
    bound is short of a factor η (it then fails as η → 0), about 0 for a bound of the right order (§5.2)."""
    ratio = table.assign(eq8_ratio_error=table["eq8"] / table["eta2_term"])
    slopes = fit_slopes(ratio, ("eq8_ratio_error",))
    return slopes[slopes["t"] == t].set_index("model")["eq8_ratio_slope"]
