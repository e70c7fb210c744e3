"""The §5 study: single-gradient unlearning against retraining (§5.1), and everything the chapter shows, per model.

:func:`expansion_study` runs the expansion tables, slopes, σ per batch and the unlearning table for each model
(one :class:`ExpansionStudy`); the functions after it reduce a study to what the chapter reads off it: the
regime where the slopes of §5.1 apply (:func:`slope_regime`), which bounds of Eq. 8–9 hold (:func:`bound_summary`)
and the two σ of §5.3 side by side (:func:`sigma_comparison`, :func:`sigma_table`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ...models import MODELS
from ...training import cpu_threads
from ...unlearning_error import unlearning_error
from ...validation import ParameterError, check_choice, check_int, check_keys, check_number, check_numbers
from .bounds import (
    OperatorNormCheck,
    batch_sigmas,
    eq8_ratio_growth,
    expansion_table,
    fit_slopes,
    operator_norm_check,
    sigma_summary,
)
from .problem import ExpansionProblem, build_problem, gradients_at_w0, sgd_path
from .regime import REGIME_COLUMNS, quadratic_regime, regime_table
from .terms import ProductGrid, evaluate_terms, product_grid, symbolic_terms

__all__ = [
    "EXPANSION_DEFAULTS",
    "PIECEWISE_SMOOTH_MODELS",
    "RIGOROUS_RTOL",
    "BoundSummary",
    "ExpansionStudy",
    "SigmaComparison",
    "bound_summary",
    "check_expansion_params",
    "expansion_study",
    "sigma_comparison",
    "sigma_lr",
    "sigma_table",
    "slope_regime",
    "unlearning_table",
]

_QUICK: dict[str, Any] = {
    "models": ["mlp", "smooth_cnn", "small_cnn"],
    "subset": 256,
    "batch_size": 16,
    "steps": 12,
    "lrs": [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2],
    "bound_lrs": [0.01, 0.03, 0.1, 0.3, 1.0],
    "unlearn_step": 4,
    "regime_steps": 200,
    "regime_lrs": [0.01, 0.1],
}
EXPANSION_DEFAULTS: dict[str, dict[str, Any]] = {
    "quick": dict(_QUICK),
    "colab": {**_QUICK, "subset": 1437, "batch_size": 32, "steps": 40, "regime_steps": 400},
    "paper": {**_QUICK, "subset": 1437, "batch_size": 32, "steps": 100, "regime_steps": 1000,
              "lrs": [3e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2]},
    # the same code path in seconds (CI's nbval run): one smooth and the ReLU model, four steps
    "smoke": {**_QUICK, "models": ["mlp", "small_cnn"], "subset": 64, "batch_size": 8, "steps": 4,
              "lrs": [1e-3, 2e-3, 5e-3], "bound_lrs": [0.1, 1.0], "unlearn_step": 1, "regime_steps": 20,
              "regime_lrs": [0.1]},
}

# Models whose loss is only piecewise smooth (ReLU, max-pool): the Taylor expansion of §5 holds up to the
# nearest switch only, so the predicted slopes 2 and 3 are not expected of them.
PIECEWISE_SMOOTH_MODELS = ("small_cnn",)


def check_expansion_params(**params: Any) -> dict[str, Any]:
    """Check the §5 parameters (the keys of :data:`EXPANSION_DEFAULTS`) before any work; return them normalised
    (``models`` as a list, Python ints, learning rates as floats). The one set of rules: :func:`expansion_study`
    applies it, and the chapter's ``setup(..., check=check_expansion_params)`` too. Each model is named once and
    each learning rate given once (one row per model and η); the batch fits the subset (whose upper bound is the
    data's, checked on loading); ``unlearn_step`` is one of the ``steps`` steps."""
    check_keys("§5", params, _QUICK, kind="study")
    q = params
    models = q["models"]
    if isinstance(models, str) or not isinstance(models, Sequence) or not models:
        raise ParameterError(f"models={models!r} is not allowed; name at least one model in a list "
                             "('mlp', 'smooth_cnn', 'small_cnn')")
    names = [check_choice(f"models[{i}]", name, tuple(MODELS)) for i, name in enumerate(models)]
    if len(set(names)) != len(names):
        raise ParameterError(f"models={models!r} is not allowed; name each model once")
    subset = check_int("subset", q["subset"], 1)
    steps = check_int("steps", q["steps"], 2)
    return {
        "models": names,
        "subset": subset,
        "batch_size": check_int("batch_size", q["batch_size"], 1, subset),
        "steps": steps,
        "lrs": check_numbers("lrs", q["lrs"], distinct=True),
        "bound_lrs": check_numbers("bound_lrs", q["bound_lrs"], distinct=True),
        "unlearn_step": check_int("unlearn_step", q["unlearn_step"], 0, steps - 1),
        "regime_steps": check_int("regime_steps", q["regime_steps"], 2),
        "regime_lrs": check_numbers("regime_lrs", q["regime_lrs"], distinct=True),
    }


def unlearning_table(problem: ExpansionProblem, lrs: Sequence[float], unlearn_step: int,
                     sigmas: pd.DataFrame | None = None) -> pd.DataFrame:
    """Single-gradient unlearning of batch x̂_{i*}, i* = ``unlearn_step`` (§5.1), against retraining without it.

    w″ = w_t + η ∇L(w₀; x̂_{i*}) removes exactly the first-sum term of x̂_{i*}; what is left of the
    verification error v = ‖w″ − w′‖ (w′: SGD on the order without step i*) is the difference of the second
    sums, whose η² part is the t − 1 terms of Eq. 6 that contain x̂_{i*}. One row per η; columns ``model``,
    ``lr``, ``t``, ``unlearn_step``, ``unlearned_term_count`` (t − 1), ``v_nothing`` ‖w_t − w′‖ (no
    unlearning), ``v`` (after single-gradient unlearning), ``unlearned_terms`` ‖η² Σ (terms with i*)‖,
    ``v_over_unlearned_terms``, and with ``sigmas`` the unlearning error ``e`` (Eq. 9, σ_avg spectral) and
    ``e_paper_sigma`` (σ_avg of sqrt(λ)).
    """
    lrs = check_numbers("lrs", lrs)
    t = problem.steps
    unlearn_step = check_int("unlearn_step", unlearn_step, 0, t - 1)
    grads = gradients_at_w0(problem)
    real = sgd_path(problem, lrs)[:, -1]
    retrained = sgd_path(problem, lrs, unlearn_step=unlearn_step)[:, -1]
    with_step = [term for term in symbolic_terms(t, 2)[2] if unlearn_step in term]
    step_terms = evaluate_terms(problem, 1.0, with_step, grads)  # (−1)² = 1: the η-free sum
    s = sigma_summary(sigmas, t) if sigmas is not None else None
    rows = []
    for k, lr in enumerate(lrs):
        unlearned = real[k] + lr * grads[unlearn_step]
        v = float((unlearned - retrained[k]).norm())
        row = {"model": problem.name, "lr": lr, "t": t, "unlearn_step": unlearn_step,
               "unlearned_term_count": len(with_step), "v_nothing": float((real[k] - retrained[k]).norm()), "v": v,
               "unlearned_terms": lr**2 * float(step_terms.norm())}
        row["v_over_unlearned_terms"] = v / row["unlearned_terms"]
        if s is not None:
            disp = float((real[k] - problem.w0).norm())
            row["e"] = unlearning_error(lr, t, disp, s.sigma_avg_spectral)
            paper = s.sigma_avg_paper
            row["e_paper_sigma"] = unlearning_error(lr, t, disp, paper) if math.isfinite(paper) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass
class ExpansionStudy:
    """Everything the §5 chapter shows, per model: the problems, σ per batch (``sigmas``, with a ``model``
    column), the expansion tables (``table`` over the slope learning rates ``lrs``, ``bound_table`` over the
    larger ``bound_lrs``), the fitted slopes and the unlearning table for the batch at ``unlearn_step``, all over
    ``steps`` SGD steps. For the first smooth model: ``regime`` (:func:`~.regime.regime_table` over
    ``regime_steps`` steps at each of ``regime_lrs``, σ = its mean σ at w₀, beside the quadratic's closed forms
    at the same η and σ) and ``grid`` (:func:`~.terms.product_grid` of its ``steps`` batches); empty and
    ``None`` without a smooth model."""

    problems: dict[str, ExpansionProblem]
    sigmas: pd.DataFrame
    table: pd.DataFrame
    bound_table: pd.DataFrame
    slopes: pd.DataFrame
    unlearning: pd.DataFrame
    unlearn_step: int
    steps: int
    lrs: list[float]
    bound_lrs: list[float]
    regime: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(REGIME_COLUMNS)))
    grid: ProductGrid | None = None

    @property
    def models(self) -> list[str]:
        """The models of the study, in the order they were run."""
        return list(self.problems)

    @property
    def smooth_models(self) -> list[str]:
        """The models whose loss is smooth (not in :data:`PIECEWISE_SMOOTH_MODELS`): §5.1's slopes apply."""
        return [m for m in self.problems if m not in PIECEWISE_SMOOTH_MODELS]


def expansion_study(models: Sequence[str] = tuple(_QUICK["models"]), *, subset: int = _QUICK["subset"],
                    batch_size: int = _QUICK["batch_size"], steps: int = _QUICK["steps"],
                    lrs: Sequence[float] = tuple(_QUICK["lrs"]),
                    bound_lrs: Sequence[float] = tuple(_QUICK["bound_lrs"]),
                    unlearn_step: int = _QUICK["unlearn_step"], regime_steps: int = _QUICK["regime_steps"],
                    regime_lrs: Sequence[float] = tuple(_QUICK["regime_lrs"]), seed: int = 0,
                    threads: int | None = 1) -> ExpansionStudy:
    """Run :func:`~.bounds.expansion_table`, :func:`~.bounds.fit_slopes` and :func:`unlearning_table` for every
    model (§5.1–5.3). The defaults are the quick profile's (:data:`EXPANSION_DEFAULTS`).

    ``threads``: torch CPU threads inside (one by default: these models are far too small to gain from more,
    and on shared cores extra threads slow every step down; ``None`` leaves the setting alone). Every argument of
    :data:`EXPANSION_DEFAULTS` is checked first, by :func:`check_expansion_params`.
    """
    p = check_expansion_params(models=models, subset=subset, batch_size=batch_size, steps=steps, lrs=lrs,
                               bound_lrs=bound_lrs, unlearn_step=unlearn_step, regime_steps=regime_steps,
                               regime_lrs=regime_lrs)
    steps, lrs, bound_lrs, unlearn_step = p["steps"], p["lrs"], p["bound_lrs"], p["unlearn_step"]
    with cpu_threads(threads):
        problems, sigmas, tables, bounds, unlearning = {}, [], [], [], []
        for name in p["models"]:
            problem = build_problem(name, subset=p["subset"], batch_size=p["batch_size"], steps=steps, seed=seed)
            sig = batch_sigmas(problem)
            problems[name] = problem
            sigmas.append(sig.assign(model=name))
            tables.append(expansion_table(problem, lrs, sig))
            bounds.append(expansion_table(problem, bound_lrs, sig))
            unlearning.append(unlearning_table(problem, sorted({*lrs, *bound_lrs}), unlearn_step, sig))
        sigmas = pd.concat(sigmas, ignore_index=True)
        regime, grid = _regime_and_grid(problems, sigmas, p, seed)
    table = pd.concat(tables, ignore_index=True)
    return ExpansionStudy(problems=problems, sigmas=sigmas, table=table,
                          bound_table=pd.concat(bounds, ignore_index=True), slopes=fit_slopes(table),
                          unlearning=pd.concat(unlearning, ignore_index=True), unlearn_step=unlearn_step,
                          steps=steps, lrs=lrs, bound_lrs=bound_lrs, regime=regime, grid=grid)


def _regime_and_grid(problems: dict[str, ExpansionProblem], sigmas: pd.DataFrame, p: dict[str, Any],
                     seed: int) -> tuple[pd.DataFrame, ProductGrid | None]:
    """The study's ``regime`` and ``grid`` for its first smooth model (see :class:`ExpansionStudy`)."""
    smooth = [m for m in problems if m not in PIECEWISE_SMOOTH_MODELS]
    if not smooth:
        return pd.DataFrame(columns=list(REGIME_COLUMNS)), None
    name = smooth[0]
    sigma = float(sigmas.loc[sigmas["model"] == name, "sigma_spectral"].mean())
    grid = product_grid(problems[name], p["unlearn_step"], sigma_avg=sigma)
    long = build_problem(name, subset=p["subset"], batch_size=p["batch_size"], steps=p["regime_steps"], seed=seed)
    measured = regime_table(long, p["regime_lrs"], sigma)
    g0 = float(gradients_at_w0(long.head(1))[0].norm())
    closed = [quadratic_regime(lr, sigma, list(range(2, p["regime_steps"] + 1)), g=g0) for lr in p["regime_lrs"]]
    return pd.concat([*closed, measured], ignore_index=True), grid


def slope_regime(slopes: pd.DataFrame, models: Sequence[str], *, ratio_max: float = 0.1) -> pd.DataFrame:
    """Where §5.1's slopes are expected: per model, the fits (rows of :func:`~.bounds.fit_slopes`) whose
    ``next_order_ratio`` is at most ``ratio_max``, and the range of their slopes.

    For err = aη^p(1 + ε(η)) a fit is off from p by about ε at the largest η, and for the first-order error ε is
    the next-order ratio; so where it is ≤ 0.1 the slopes should be within about 0.1 of 2 and 3. Columns
    ``model``, ``rows`` (fits selected; 0 means ``lrs`` are too large for this model), ``t_min``, ``t_max``,
    ``first_order_slope_min/max``, ``second_order_slope_min/max`` and ``first_order_deviation`` =
    max |slope − 2|, ``second_order_deviation`` = max |slope − 3| over the selected fits (nan without any).
    """
    ratio_max = check_number("ratio_max", ratio_max)
    out = []
    for model in models:
        rows = slopes[(slopes["model"] == model) & (slopes["next_order_ratio"] <= ratio_max)]
        row: dict[str, Any] = {"model": model, "rows": len(rows),
                               "t_min": rows["t"].min() if len(rows) else pd.NA,
                               "t_max": rows["t"].max() if len(rows) else pd.NA}
        for order, predicted in (("first_order", 2), ("second_order", 3)):
            col = rows[f"{order}_slope"]
            row[f"{order}_slope_min"], row[f"{order}_slope_max"] = col.min(), col.max()
            row[f"{order}_deviation"] = (col - predicted).abs().max()
        out.append(row)
    frame = pd.DataFrame(out)
    return frame.astype({"t_min": "Int64", "t_max": "Int64"}) if len(frame) else frame


# ‖η² c_t‖ and the rigorous bound are two float64 sums of the same products: allow their rounding.
RIGOROUS_RTOL = 1e-12


@dataclass
class BoundSummary:
    """Which bounds of Eq. 8–9 hold (§5.2), over every row with t ≥ 2 of a study's two expansion tables.

    ``rows``: how many; ``rigorous_holds``, ``eq8_holds``, ``eq8_consistent_holds``: in how many of them the
    bound is at least ‖η² c_t‖ (the rigorous one up to :data:`RIGOROUS_RTOL`); ``rigorous_over_min/max/median``:
    the rigorous bound / ‖η² c_t‖; ``eq8_ratio_growth``: per model, the slope in η of printed Eq. 8 / ‖η² c_t‖
    over the slope learning rates at the full t (about 1: the printed bound is short of a factor η).
    ``table``: the bound table's rows at the full t (index kept) with ``model``, ``lr``, ``eta2_term``,
    ``eq8_rigorous``, ``eq8``, ``eq8_consistent``, ``eq9``, ``eq8_ratio`` and ``eq9_ratio`` (each over
    ``eta2_term``), ``eq8_holds``, ``eq8_consistent_holds``.
    """

    rows: int
    rigorous_holds: int
    eq8_holds: int
    eq8_consistent_holds: int
    rigorous_over_min: float
    rigorous_over_max: float
    rigorous_over_median: float
    eq8_ratio_growth: pd.Series
    table: pd.DataFrame


def bound_summary(study: ExpansionStudy) -> BoundSummary:
    """Count where the rigorous bound, printed Eq. 8 and the consistent Eq. 8 hold in ``study`` (§5.2)."""
    both = pd.concat([study.table, study.bound_table], ignore_index=True)
    rows = both[both["t"] >= 2]
    over = rows["eq8_rigorous"] / rows["eta2_term"]
    holds = study.bound_table[study.bound_table["t"] == study.steps]
    eta2 = holds["eta2_term"]
    table = holds[["model", "lr", "eta2_term", "eq8_rigorous", "eq8", "eq8_consistent", "eq9"]].assign(
        eq8_ratio=holds["eq8"] / eta2, eq9_ratio=holds["eq9"] / eta2, eq8_holds=holds["eq8"] >= eta2,
        eq8_consistent_holds=holds["eq8_consistent"] >= eta2)
    return BoundSummary(
        rows=len(rows), rigorous_holds=int((rows["eta2_term"] <= rows["eq8_rigorous"] * (1 + RIGOROUS_RTOL)).sum()),
        eq8_holds=int((rows["eq8"] >= rows["eta2_term"]).sum()),
        eq8_consistent_holds=int((rows["eq8_consistent"] >= rows["eta2_term"]).sum()),
        rigorous_over_min=float(over.min()), rigorous_over_max=float(over.max()),
        rigorous_over_median=float(over.median()), eq8_ratio_growth=eq8_ratio_growth(study.table, study.steps),
        table=table)


def sigma_table(study: ExpansionStudy, lr: float) -> pd.DataFrame:
    """σ in both modes per model (max and mean over the batches, negative top eigenvalues) and what each
    mode makes of Eq. 8 and Eq. 9 at learning rate ``lr`` and the full t, beside the ‖η² c_t‖ they estimate
    (§5.3).

    Columns ``model``, ``negative_top_eigenvalues``, ``sigma_max_spectral``, ``sigma_max_paper``,
    ``sigma_avg_spectral``, ``sigma_avg_paper``, ``eta2_term``, ``eq8``, ``eq8_paper_sigma``, ``eq9``,
    ``eq9_paper_sigma``. ``lr`` must be one of the study's ``bound_lrs``.
    """
    lr = check_number("lr", lr)
    bt, t = study.bound_table, study.steps
    rows = []
    for name, sig in study.sigmas.groupby("model", sort=False):
        s = sigma_summary(sig)
        row = bt[(bt["model"] == name) & np.isclose(bt["lr"], lr) & (bt["t"] == t)]
        if row.empty:
            raise ParameterError(f"lr={lr!r} is not allowed; use one of bound_lrs {sorted(bt['lr'].unique())}")
        r = row.iloc[0]
        rows.append({"model": name, "negative_top_eigenvalues": int((sig["eigenvalue"] < 0).sum()),
                     "sigma_max_spectral": s.sigma_max_spectral, "sigma_max_paper": s.sigma_max_paper,
                     "sigma_avg_spectral": s.sigma_avg_spectral, "sigma_avg_paper": s.sigma_avg_paper,
                     "eta2_term": r["eta2_term"], "eq8": r["eq8"], "eq8_paper_sigma": r["eq8_paper_sigma"],
                     "eq9": r["eq9"], "eq9_paper_sigma": r["eq9_paper_sigma"]})
    return pd.DataFrame(rows)


def sigma_lr(bound_lrs: Sequence[float]) -> float:
    """The learning rate the σ comparison is shown at: 0.1 if it is one of ``bound_lrs`` (where the expansion
    is still fair and Eq. 8 has not caught up yet), else the middle one."""
    bound_lrs = check_numbers("bound_lrs", bound_lrs)
    return 0.1 if 0.1 in bound_lrs else bound_lrs[len(bound_lrs) // 2]


@dataclass
class SigmaComparison:
    """The two σ of §5.3 on a study: ``table`` (:func:`sigma_table` at ``lr``), the operator-norm step of Eq. 8
    checked on ``model``'s batch of largest |λ| (``top_batch``, ``norm_check``), and how many of all
    ``batches`` have a negative top eigenvalue (``negative_eigenvalues``: sqrt(λ) undefined)."""

    model: str
    lr: float
    top_batch: int
    norm_check: OperatorNormCheck
    table: pd.DataFrame
    negative_eigenvalues: int
    batches: int


def sigma_comparison(study: ExpansionStudy, *, model: str | None = None, lr: float | None = None
                     ) -> SigmaComparison:
    """σ as |λ| against sqrt(λ) (§5.3): :func:`sigma_table` at ``lr`` (default :func:`sigma_lr` of the study's
    ``bound_lrs``) and :func:`~.bounds.operator_norm_check` on the batch of ``model`` (default the study's first)
    whose Hessian has the largest |λ|."""
    model = study.models[0] if model is None else model
    if model not in study.problems:
        raise ParameterError(f"model={model!r} is not allowed; choose one of {', '.join(map(repr, study.models))}")
    lr = sigma_lr(study.bound_lrs) if lr is None else check_number("lr", lr)
    table = sigma_table(study, lr)
    sig = study.sigmas[study.sigmas["model"] == model]
    top_batch = int(sig.loc[sig["sigma_spectral"].idxmax(), "batch"])
    return SigmaComparison(model=model, lr=lr, top_batch=top_batch,
                           norm_check=operator_norm_check(study.problems[model], top_batch), table=table,
                           negative_eigenvalues=int((study.sigmas["eigenvalue"] < 0).sum()),
                           batches=len(study.sigmas))
