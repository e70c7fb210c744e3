"""Expanding SGD around w₀ (§5.1–5.3): Eq. 4–9, measured on small models.

t steps of plain SGD from w₀ over the batches x̂₀ … x̂_{t−1} give w_t. With g_i = ∇L(w₀; x̂_i) and
H_i = ∇²L(w₀; x̂_i), all taken at the *initial* weights, the paper writes (Eq. 4–5)

    w_t ≈ w₀ − η Σ_{i<t} g_i + Σ_{i=1}^{t−1} f(i),    f(i) = −η H_i ( −η Σ_{j<i} g_j + Σ_{j<i} f(j) ),  f(0) = 0.

The recursion is SGD on the second-order Taylor model of every batch's loss around w₀: with
Δ_i = −η Σ_{j<i} g_j + Σ_{j<i} f(j) (the approximate w_i − w₀), Δ_{i+1} = Δ_i − η (g_i + H_i Δ_i). So its
error against real SGD comes from third and higher derivatives only and is O(η³); the first-order
approximation w₀ − η Σ g_i drops Σ f(i) = η² c_t + O(η³) and errs by O(η²). The η² part is Eq. 6,

    η² c_t = η² Σ_{i=1}^{t−1} H_i Σ_{j<i} g_j,

bounded in Eq. 8 by η² · ‖w_t − w₀‖/t · σ · t(t−1)/2 with σ = max_i σ_i, σ_i the largest singular value of
H_i (|λ|max, :func:`unrolling_lib.hessian.sigma` mode "spectral"; the released code used sqrt(λmax),
mode "paper"); Eq. 9 replaces σ by the average σ_avg and calls the result the unlearning error e.

Two things the printed derivation glosses over, both measured here rather than assumed:

- From Eq. 6 to Eq. 7 the partial sum of *gradients* Σ_{j<i} g_j is replaced by the *weight change*
  i(w_t − w₀)/t; but w_t − w₀ ≈ −η Σ_j g_j, so the consistent substitution is i(w₀ − w_t)/(η t). Eq. 8 as
  printed is therefore η times the bound the same steps give (``eq8_consistent``); for small η its right
  side shrinks like η³ while ‖η² c_t‖ shrinks like η², so it must fail for small enough η.
- The rigorous bound the steps rest on is ‖η² c_t‖ ≤ η² Σ_i σ_i ‖Σ_{j<i} g_j‖ (triangle inequality and
  the operator norm) — ``eq8_rigorous``, which always holds.

Gradients and Hessian-vector products use ``torch.func`` on the flat parameter vector: ``grad`` for g_i and
real SGD, ``jvp`` of ``grad`` (forward-over-reverse) for H_i·v, and ``vmap`` to advance every learning rate
at once. Use float64 so that rounding does not flatten the η³ slope at small η.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots
from torch import nn
from torch.func import functional_call, grad, jvp, vmap

from ..data import BatchOrder, batch_tensors, load_digits_dataset
from ..hessian import sigma as sigma_of
from ..hessian import top_eigenvalue
from ..metrics import unlearning_error
from ..models import build_model
from ..plotting import frames_slider, live_figure
from ..profiles import ParameterError
from ..training import cpu_threads

__all__ = [
    "eq8_ratio_growth",
    "EXPANSION_DEFAULTS",
    "ExpansionProblem",
    "ExpansionStudy",
    "batch_sigmas",
    "bound_figure",
    "build_problem",
    "count_terms_with",
    "eta2_coefficients",
    "evaluate_terms",
    "expansion_study",
    "expansion_table",
    "first_order_path",
    "fit_slopes",
    "gradients_at_w0",
    "hvp_at_w0",
    "live_explorer",
    "operator_norm_check",
    "problem_from",
    "quiet_jvp",
    "second_order_path",
    "sgd_path",
    "sigma_summary",
    "sigma_table",
    "slope_figure",
    "symbolic_check",
    "symbolic_terms",
    "term_count_table",
    "unlearning_figure",
    "unlearning_table",
]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_QUICK: dict[str, Any] = {
    "models": ["mlp", "smooth_cnn", "small_cnn"],
    "subset": 256,
    "batch_size": 16,
    "steps": 12,
    "lrs": [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2],
    "bound_lrs": [0.01, 0.03, 0.1, 0.3, 1.0],
    "x_star_step": 4,
}
EXPANSION_DEFAULTS: dict[str, dict[str, Any]] = {
    "quick": dict(_QUICK),
    "colab": {**_QUICK, "subset": 1437, "batch_size": 32, "steps": 40},
    "paper": {**_QUICK, "subset": 1437, "batch_size": 32, "steps": 100,
              "lrs": [3e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2]},
}


# --------------------------------------------------------------------------------------------- checks
def _check_lrs(lrs: Any) -> list[float]:
    ok = isinstance(lrs, (list, tuple, np.ndarray)) and len(lrs) > 0
    vals = [float(v) for v in lrs] if ok else []
    if not ok or not all(math.isfinite(v) and v > 0 for v in vals):
        raise ParameterError(f"lrs={lrs!r} is not allowed; use a non-empty list of numbers > 0")
    return vals


def _check_steps(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= int(value) <= high:
        raise ParameterError(f"{name}={value!r} is not allowed; use an int in [{low}, {high}]")
    return int(value)


# -------------------------------------------------------------------------------------------- problem
@dataclass
class ExpansionProblem:
    """A model at w₀, a loss and the batches x̂₀ … x̂_{t−1} of a fixed order (float64 throughout).

    ``loss(w, i)`` is the mean loss of batch i at the flat weights w (a pure function, for ``torch.func``).
    """

    model: nn.Module
    w0: torch.Tensor
    batches: list[tuple[torch.Tensor, torch.Tensor]]
    loss_fn: LossFn
    name: str = "model"

    @property
    def steps(self) -> int:
        """t, the number of batches (SGD steps) of the order."""
        return len(self.batches)

    def params(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """The flat vector as the model's named parameters (views, differentiable)."""
        out, offset = {}, 0
        for name, p in self.model.named_parameters():
            out[name] = flat[offset:offset + p.numel()].view_as(p)
            offset += p.numel()
        return out

    def loss_on(self, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """L(w; (x, y)) at flat weights ``flat``."""
        return self.loss_fn(functional_call(self.model, self.params(flat), (x,)), y)

    def module_at(self, flat: torch.Tensor) -> nn.Module:
        """A copy of the model holding the flat weights ``flat`` (e.g. for ``hessian.top_eigenvalue``)."""
        model = copy.deepcopy(self.model)
        with torch.no_grad():
            for p, v in zip(model.parameters(), self.params(flat.detach()).values(), strict=True):
                p.copy_(v)
        return model


def problem_from(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]], loss_fn: LossFn, *,
                 name: str = "model") -> ExpansionProblem:
    """Wrap a model (its current weights are w₀) and explicit batches; everything is cast to float64."""
    if not batches:
        raise ParameterError("batches must hold at least one (inputs, targets) pair")
    model = copy.deepcopy(model).to(torch.float64)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            raise ParameterError("model has BatchNorm; the expansion needs a loss that is a function of w alone")
    w0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    cast = [(x.to(torch.float64), y if not y.is_floating_point() else y.to(torch.float64)) for x, y in batches]
    return ExpansionProblem(model=model, w0=w0, batches=cast, loss_fn=loss_fn, name=name)


def build_problem(model: str = "mlp", *, subset: int = 256, batch_size: int = 16, steps: int = 12, seed: int = 0,
                  **model_kwargs: Any) -> ExpansionProblem:
    """A model from :func:`unrolling_lib.models.build_model` at its seeded initialisation (w₀), cross entropy,
    and the first ``steps`` batches of a seeded :class:`~unrolling_lib.data.BatchOrder` over ``subset`` digits.

    ``"mlp"`` is 64→32→10 with tanh (smooth); ``"smooth_cnn"`` is :class:`unrolling_lib.models.SmoothCNN`;
    ``"small_cnn"`` is the tiny ReLU CNN of the quick profile (piecewise smooth: its Taylor expansion only holds
    until a ReLU or a max-pool switches, which on digits happens within steps of ~1e-4).
    """
    data = load_digits_dataset(subset=subset, seed=seed, dtype=torch.float64)
    order = BatchOrder(len(data), batch_size, steps=steps, seed=seed)
    net = build_model(model, 10, seed=seed, **model_kwargs)
    batches = [batch_tensors(data, order[i]) for i in range(steps)]
    return problem_from(net, batches, F.cross_entropy, name=model)


# -------------------------------------------------------------------------------- gradients and HVPs
def gradients_at_w0(problem: ExpansionProblem) -> torch.Tensor:
    """g_i = ∇L(w₀; x̂_i) for every batch, shape (t, p): the terms of the first sum of Eq. 4."""
    g = grad(problem.loss_on)
    return torch.stack([g(problem.w0, x, y).detach() for x, y in problem.batches])


def hvp_at_w0(problem: ExpansionProblem, i: int, vectors: torch.Tensor) -> torch.Tensor:
    """H_i · v at w₀ for each row v of ``vectors`` (k, p) or a single vector (p,): ``jvp`` of ``grad``."""
    x, y = problem.batches[i]
    g = grad(problem.loss_on)

    def one(v: torch.Tensor) -> torch.Tensor:
        return jvp(lambda w: g(w, x, y), (problem.w0,), (v,))[1]

    with quiet_jvp():
        if vectors.dim() == 1:
            return one(vectors).detach()
        return vmap(one)(vectors).detach()


@contextmanager
def quiet_jvp() -> Iterator[None]:
    """Silence the FutureWarning torch itself emits (``torch.jit.script`` is deprecated) the first time ``jvp``
    loads its decompositions; every other warning passes."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)
        yield


def sgd_path(problem: ExpansionProblem, lrs: Sequence[float], *, skip: int | None = None) -> torch.Tensor:
    """Real SGD from w₀ for every η at once: shape (len(lrs), t+1, p), entry [k, s] = w_s for lrs[k].

    ``skip`` leaves that step out (the order without x̂_skip, §8.3's retrained M′); the path then has t
    entries after w₀ (the skipped step repeats nothing: row s is the weights after the s-th *taken* step).
    """
    lrs_t = torch.tensor(_check_lrs(lrs), dtype=torch.float64)
    g = vmap(grad(problem.loss_on), in_dims=(0, None, None))
    w = problem.w0.expand(len(lrs_t), -1).clone()
    path = [w]
    for i, (x, y) in enumerate(problem.batches):
        if i == skip:
            continue
        w = w - lrs_t[:, None] * g(w, x, y).detach()
        path.append(w)
    return torch.stack(path, dim=1)


def first_order_path(problem: ExpansionProblem, lrs: Sequence[float], grads: torch.Tensor) -> torch.Tensor:
    """w₀ − η Σ_{i<s} g_i for every s ≤ t and every η: shape (len(lrs), t+1, p)."""
    lrs_t = torch.tensor(_check_lrs(lrs), dtype=torch.float64)
    csum = torch.cat([torch.zeros_like(grads[:1]), grads.cumsum(0)])
    return problem.w0 - lrs_t[:, None, None] * csum[None]


def second_order_path(problem: ExpansionProblem, lrs: Sequence[float], grads: torch.Tensor,
                      *, return_f: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Eq. 4 with the recursion of Eq. 5 for every s ≤ t and every η: shape (len(lrs), t+1, p).

    f(0) = 0 and f(i) = −η H_i (−η Σ_{j<i} g_j + Σ_{j<i} f(j)); the approximation after s steps is
    w₀ − η Σ_{i<s} g_i + Σ_{i=1}^{s−1} f(i). With ``return_f`` also returns f, shape (len(lrs), t, p).
    One batched Hessian-vector product per step (all η together).
    """
    lrs_t = torch.tensor(_check_lrs(lrs), dtype=torch.float64)[:, None]
    t, p = grads.shape
    f = torch.zeros(len(lrs_t), t, p, dtype=torch.float64)
    g_sum = torch.zeros(p, dtype=torch.float64)
    f_sum = torch.zeros(len(lrs_t), p, dtype=torch.float64)
    for i in range(t):
        if i > 0:
            f[:, i] = -lrs_t * hvp_at_w0(problem, i, -lrs_t * g_sum + f_sum)
        g_sum = g_sum + grads[i]
        f_sum = f_sum + f[:, i]
    # after s steps: the gradients of steps < s and f(i) for 1 ≤ i ≤ s − 1
    zeros = torch.zeros(len(lrs_t), 1, p, dtype=torch.float64)
    f_cum = torch.cat([zeros, f.cumsum(1)], dim=1)
    path = first_order_path(problem, lrs_t[:, 0].tolist(), grads) + f_cum
    return (path, f) if return_f else path


def eta2_coefficients(problem: ExpansionProblem, grads: torch.Tensor) -> torch.Tensor:
    """c_s = Σ_{i=1}^{s−1} H_i Σ_{j<i} g_j for every s ≤ t (Eq. 6 without η²): shape (t+1, p).

    Independent of η: one Hessian-vector product per batch.
    """
    t, p = grads.shape
    terms = torch.zeros(t, p, dtype=torch.float64)
    partial = grads.cumsum(0)
    for i in range(1, t):
        terms[i] = hvp_at_w0(problem, i, partial[i - 1])
    return torch.cat([torch.zeros(1, p, dtype=torch.float64), terms.cumsum(0)])


# ------------------------------------------------------------------------------------------------ σ
def batch_sigmas(problem: ExpansionProblem, *, tol: float = 1e-4, max_iter: int = 200) -> pd.DataFrame:
    """The Hessian's eigenvalue of largest magnitude λ_i at w₀ for every batch, and σ_i in both modes.

    Columns: ``batch``, ``eigenvalue`` (signed, :func:`unrolling_lib.hessian.top_eigenvalue`),
    ``sigma_spectral`` = |λ_i| (the spectral norm: what Eq. 8's operator-norm step needs) and
    ``sigma_paper`` = sqrt(λ_i) (what the released code computed; nan if λ_i < 0), ``hvps`` used.
    """
    model = problem.module_at(problem.w0)
    rows, init = [], None
    for i, (x, y) in enumerate(problem.batches):
        res = top_eigenvalue(model, problem.loss_fn, x, y, tol=tol, max_iter=max_iter, init=init, seed=i)
        init = res
        rows.append({"batch": i, "eigenvalue": res.value, "sigma_spectral": sigma_of(res, "spectral"),
                     "sigma_paper": sigma_of(res, "paper") if res.value >= 0 else math.nan,
                     "hvps": res.hvp_count})
    return pd.DataFrame(rows)


def operator_norm_check(problem: ExpansionProblem, batch: int, *, tol: float = 1e-6) -> dict[str, float]:
    """What Eq. 8's step ‖H_i v̂‖ ≤ σ_i needs, on one batch: ‖H_i v̂‖ along the top eigenvector v̂ (the largest
    ‖H_i v‖ over unit v), beside |λ| (the spectral norm) and sqrt(λ) (the released code's σ)."""
    batch = _check_steps("batch", batch, 0, problem.steps - 1)
    x, y = problem.batches[batch]
    res = top_eigenvalue(problem.module_at(problem.w0), problem.loss_fn, x, y, tol=tol, max_iter=300)
    v = res.vector.to(torch.float64)
    return {"batch": batch, "‖H v̂‖": float(hvp_at_w0(problem, batch, v / v.norm()).norm()),
            "|λ| (spectral)": abs(res.value), "sqrt(λ) (released code)": math.sqrt(res.value) if res.value >= 0
            else math.nan}


def sigma_summary(sigmas: pd.DataFrame, steps: int | None = None) -> dict[str, float]:
    """σ = max_{1≤i≤t−1} σ_i (Eq. 8) and σ_avg = mean_{i<t} σ_i (Eq. 9), in both modes.

    In ``"paper"`` mode a batch whose top eigenvalue is negative has no sqrt(λ) (nan); it is left out of the
    max and the mean, as a sweep that skips a failed σ sample would.
    """
    t = len(sigmas) if steps is None else steps
    head = sigmas.iloc[:t]
    inner = head.iloc[1:t] if t > 1 else head.iloc[:0]
    out = {}
    for mode in ("spectral", "paper"):
        col = f"sigma_{mode}"
        out[f"sigma_max_{mode}"] = float(inner[col].max()) if len(inner) else 0.0
        out[f"sigma_avg_{mode}"] = float(head[col].mean())
    return out


# -------------------------------------------------------------------------------------------- the table
def expansion_table(problem: ExpansionProblem, lrs: Sequence[float], sigmas: pd.DataFrame | None = None
                    ) -> pd.DataFrame:
    """Real SGD against its expansion for every η in ``lrs`` and every t ≤ the problem's steps.

    Columns: ``model``, ``lr``, ``t``; ``displacement`` ‖w_t − w₀‖; ``first_order_error`` ‖w_t − (w₀ − η Σ g)‖;
    ``second_order_error`` ‖w_t − Eq. 4–5‖; ``eq6_error`` ‖w_t − (w₀ − η Σ g + η² c_t)‖; ``eta2_term``
    ‖η² c_t‖ (Eq. 6); with ``sigmas`` (from :func:`batch_sigmas`) also ``eq8`` (as printed, σ = max |λ|),
    ``eq8_paper_sigma`` (σ = max sqrt(λ)), ``eq8_consistent`` (η instead of η²), ``eq8_rigorous``
    (η² Σ σ_i ‖Σ_{j<i} g_j‖), and ``eq9`` / ``eq9_paper_sigma`` (unlearning error with σ_avg).
    """
    lrs = _check_lrs(lrs)
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


def _bounds(lr: float, t: int, disp: float, sigmas: pd.DataFrame, partial_norms: torch.Tensor) -> dict[str, float]:
    """Eq. 8 (printed, paper σ, consistent, rigorous) and Eq. 9 (both σ modes) for one (η, t)."""
    s = sigma_summary(sigmas, t)
    pairs = t * (t - 1) / 2
    spectral = sigmas["sigma_spectral"].to_numpy()[:t]
    rigorous = lr**2 * float(sum(spectral[i] * float(partial_norms[i]) for i in range(1, t)))
    paper_avg = s["sigma_avg_paper"]
    return {
        "eq8": lr**2 * disp / t * s["sigma_max_spectral"] * pairs,
        "eq8_paper_sigma": lr**2 * disp / t * s["sigma_max_paper"] * pairs,
        "eq8_consistent": lr * disp / t * s["sigma_max_spectral"] * pairs,
        "eq8_rigorous": rigorous,
        "eq9": unlearning_error(lr, t, disp, s["sigma_avg_spectral"]),
        "eq9_paper_sigma": unlearning_error(lr, t, disp, paper_avg) if math.isfinite(paper_avg) else math.nan,
    }


def fit_slopes(table: pd.DataFrame, columns: Sequence[str] = ("first_order_error", "second_order_error"),
               *, lr_max: float | None = None) -> pd.DataFrame:
    """Log-log slope of each error column against η (``numpy.polyfit`` of degree 1), per model and t.

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
    bound is short of a factor η (it then fails as η → 0), about 0 for a bound of the right order."""
    ratio = table.assign(eq8_ratio_error=table["eq8"] / table["eta2_term"])
    slopes = fit_slopes(ratio, ("eq8_ratio_error",))
    return slopes[slopes["t"] == t].set_index("model")["eq8_ratio_slope"]


# ------------------------------------------------------------------------------------- counting terms
def symbolic_terms(t: int, max_order: int = 2) -> dict[int, list[tuple[int, ...]]]:
    """Run the recursion of Eq. 4–5 on symbols: every term of w_t − w₀ up to order η^``max_order``.

    A term is a tuple (i₁, …, i_{k−1}, j) standing for (−η)^k H_{i₁} ⋯ H_{i_{k−1}} g_j: the batch indices it
    involves, Hessians first. The first sum of Eq. 4 gives the terms (j,); f(i) prepends i to every term of
    Δ_i = −η Σ_{j<i} g_j + Σ_{j<i} f(j). Returns {order k: terms}; order 2 is Eq. 6.
    """
    t = _check_steps("t", t, 1, 10_000)
    max_order = _check_steps("max_order", max_order, 1, 64)
    f: list[list[tuple[int, ...]]] = [[] for _ in range(t)]
    for i in range(1, t):
        delta = [(j,) for j in range(i)] + [term for j in range(i) for term in f[j]]
        f[i] = [(i, *term) for term in delta if len(term) < max_order]
    by_order: dict[int, list[tuple[int, ...]]] = {k: [] for k in range(1, max_order + 1)}
    for term in [(j,) for j in range(t)] + [term for i in range(1, t) for term in f[i]]:
        by_order[len(term)].append(term)
    return by_order


def count_terms_with(terms: Sequence[tuple[int, ...]], batch: int | Sequence[int]) -> int:
    """How many terms involve batch index ``batch`` (or any of several indices: x* in more than one batch)."""
    wanted = {batch} if isinstance(batch, (int, np.integer)) else set(batch)
    return sum(1 for term in terms if wanted & set(term))


def term_count_table(steps: Sequence[int], max_order: int = 3) -> pd.DataFrame:
    """For every t in ``steps`` and every first index i* < t: terms of each order containing x̂_{i*}.

    Columns ``order_k`` count the terms with i* at order η^k (order 2: the paper's t − 1; order k in general:
    C(t−1, k−1)), ``paper_count`` = t − 1, ``total_order_2`` = t(t−1)/2.
    """
    rows = []
    for t in steps:
        terms = symbolic_terms(t, max_order)
        for i_star in range(t):
            row = {"t": t, "i_star": i_star, "paper_count": t - 1, "total_order_2": len(terms.get(2, []))}
            for k in range(1, max_order + 1):
                row[f"order_{k}"] = count_terms_with(terms[k], i_star)
            rows.append(row)
    return pd.DataFrame(rows)


def evaluate_terms(problem: ExpansionProblem, lr: float, terms: Sequence[tuple[int, ...]],
                   grads: torch.Tensor | None = None) -> torch.Tensor:
    """Σ over ``terms`` of (−η)^k H_{i₁} ⋯ H_{i_{k−1}} g_j, numerically (flat vector).

    Ties the symbolic bookkeeping to the numbers: the order-2 terms sum to η² c_t, and all orders to the
    recursion's Σ f(i).
    """
    grads = gradients_at_w0(problem) if grads is None else grads
    total = torch.zeros_like(problem.w0)
    for term in terms:
        v = grads[term[-1]]
        for i in reversed(term[:-1]):
            v = hvp_at_w0(problem, i, v)
        total = total + (-lr) ** len(term) * v
    return total


def symbolic_check(problem: ExpansionProblem, steps: int | None = None) -> dict[str, float]:
    """Evaluate the order-2 symbolic terms of the first ``steps`` batches (default all, at most 16) term by term
    and compare them with c_t from :func:`eta2_coefficients`: the bookkeeping and the numbers are one recursion.

    Returns the number of terms, ‖c_t‖ and the relative difference of the two computations.
    """
    steps = min(problem.steps, 16) if steps is None else _check_steps("steps", steps, 2, problem.steps)
    sub = ExpansionProblem(problem.model, problem.w0, problem.batches[:steps], problem.loss_fn, problem.name)
    grads = gradients_at_w0(sub)
    terms = symbolic_terms(steps, 2)[2]
    by_terms = evaluate_terms(sub, 1.0, terms, grads)
    direct = eta2_coefficients(sub, grads)[-1]
    return {"t": steps, "terms": len(terms), "‖c_t‖": float(direct.norm()),
            "relative difference": float((by_terms - direct).norm() / direct.norm())}


# ------------------------------------------------------------------------------------------- unlearning
def unlearning_table(problem: ExpansionProblem, lrs: Sequence[float], i_star: int,
                     sigmas: pd.DataFrame | None = None) -> pd.DataFrame:
    """Single-gradient unlearning of batch x̂_{i*} (§5.1) against retraining without it, for every η.

    w″ = w_t + η ∇L(w₀; x̂_{i*}) removes exactly the first-sum term of x̂_{i*}; what is left of the
    verification error v = ‖w″ − w′‖ (w′: SGD on the order without step i*) is the difference of the second
    sums, whose η² part is the t − 1 terms of Eq. 6 that contain x̂_{i*}. Columns: ``v_nothing`` ‖w_t − w′‖
    (no unlearning), ``v`` (after single-gradient unlearning), ``x_star_terms`` ‖η² Σ (terms with i*)‖,
    ``v / x_star_terms``, and with ``sigmas`` the unlearning error ``e`` (Eq. 9, σ_avg spectral) and
    ``e_paper_sigma``.
    """
    lrs = _check_lrs(lrs)
    t = problem.steps
    i_star = _check_steps("i_star", i_star, 0, t - 1)
    grads = gradients_at_w0(problem)
    real = sgd_path(problem, lrs)[:, -1]
    retrained = sgd_path(problem, lrs, skip=i_star)[:, -1]
    with_star = [term for term in symbolic_terms(t, 2)[2] if i_star in term]
    x_terms = evaluate_terms(problem, 1.0, with_star, grads)  # (−1)² = 1: the η-free sum
    rows = []
    for k, lr in enumerate(lrs):
        unlearned = real[k] + lr * grads[i_star]
        v = float((unlearned - retrained[k]).norm())
        row = {"model": problem.name, "lr": lr, "t": t, "i_star": i_star, "x_star_term_count": len(with_star),
               "v_nothing": float((real[k] - retrained[k]).norm()), "v": v,
               "x_star_terms": lr**2 * float(x_terms.norm())}
        row["v / x_star_terms"] = v / row["x_star_terms"]
        if sigmas is not None:
            s = sigma_summary(sigmas, t)
            disp = float((real[k] - problem.w0).norm())
            row["e"] = unlearning_error(lr, t, disp, s["sigma_avg_spectral"])
            paper = s["sigma_avg_paper"]
            row["e_paper_sigma"] = unlearning_error(lr, t, disp, paper) if math.isfinite(paper) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------- the study
@dataclass
class ExpansionStudy:
    """Everything the §5 chapter shows, per model: the problems, σ per batch, the expansion tables (``table``
    over the slope learning rates, ``bound_table`` over larger ones), the fitted slopes and the unlearning
    table for the batch at step ``x_star_step``."""

    problems: dict[str, ExpansionProblem]
    sigmas: pd.DataFrame
    table: pd.DataFrame
    bound_table: pd.DataFrame
    slopes: pd.DataFrame
    unlearning: pd.DataFrame
    x_star_step: int


def expansion_study(models: Sequence[str], *, subset: int, batch_size: int, steps: int, lrs: Sequence[float],
                    bound_lrs: Sequence[float], x_star_step: int, seed: int = 0, threads: int | None = 1
                    ) -> ExpansionStudy:
    """Run :func:`expansion_table`, :func:`fit_slopes` and :func:`unlearning_table` for every model.

    ``threads``: torch CPU threads inside (one by default: these models are far too small to gain from more,
    and on shared cores extra threads slow every step down; ``None`` leaves the setting alone).
    """
    with cpu_threads(threads):
        return _study(models, subset=subset, batch_size=batch_size, steps=steps, lrs=lrs, bound_lrs=bound_lrs,
                      x_star_step=x_star_step, seed=seed)


def _study(models: Sequence[str], *, subset: int, batch_size: int, steps: int, lrs: Sequence[float],
           bound_lrs: Sequence[float], x_star_step: int, seed: int) -> ExpansionStudy:
    if not models:
        raise ParameterError("models must name at least one model ('mlp', 'smooth_cnn', 'small_cnn')")
    steps = _check_steps("steps", steps, 2, 10_000)
    x_star_step = _check_steps("x_star_step", x_star_step, 0, steps - 1)
    problems, sigmas, tables, bounds, unlearning = {}, [], [], [], []
    for name in models:
        problem = build_problem(name, subset=subset, batch_size=batch_size, steps=steps, seed=seed)
        sig = batch_sigmas(problem)
        problems[name] = problem
        sigmas.append(sig.assign(model=name))
        tables.append(expansion_table(problem, lrs, sig))
        bounds.append(expansion_table(problem, bound_lrs, sig))
        unlearning.append(unlearning_table(problem, sorted({*lrs, *bound_lrs}), x_star_step, sig))
    table = pd.concat(tables, ignore_index=True)
    return ExpansionStudy(problems=problems, sigmas=pd.concat(sigmas, ignore_index=True), table=table,
                          bound_table=pd.concat(bounds, ignore_index=True), slopes=fit_slopes(table),
                          unlearning=pd.concat(unlearning, ignore_index=True), x_star_step=x_star_step)


def sigma_table(study: ExpansionStudy, lr: float) -> pd.DataFrame:
    """σ in both modes per model (max and mean over the batches, negative top eigenvalues) and what each
    mode makes of Eq. 8 and Eq. 9 at learning rate ``lr`` and the full t, beside the ‖η² c_t‖ they estimate."""
    rows = []
    for name, sig in study.sigmas.groupby("model", sort=False):
        s = sigma_summary(sig)
        t = int(study.bound_table["t"].max())
        row = study.bound_table[(study.bound_table["model"] == name) & np.isclose(study.bound_table["lr"], lr)
                                & (study.bound_table["t"] == t)]
        if row.empty:
            raise ParameterError(f"lr={lr!r} is not one of bound_lrs {sorted(study.bound_table['lr'].unique())}")
        r = row.iloc[0]
        rows.append({"model": name, "negative top eigenvalues": int((sig["eigenvalue"] < 0).sum()),
                     "σ max |λ|": s["sigma_max_spectral"], "σ max sqrt(λ)": s["sigma_max_paper"],
                     "σ_avg |λ|": s["sigma_avg_spectral"], "σ_avg sqrt(λ)": s["sigma_avg_paper"],
                     "‖η² c_t‖": r["eta2_term"], "Eq. 8 |λ|": r["eq8"], "Eq. 8 sqrt(λ)": r["eq8_paper_sigma"],
                     "Eq. 9 |λ|": r["eq9"], "Eq. 9 sqrt(λ)": r["eq9_paper_sigma"]})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------- figures
def _reorder(frames: list[go.Frame], active: int) -> list[go.Frame]:
    """plotly's HTML plays every frame once on load: the active one goes last so the page ends on it."""
    return frames[:active] + frames[active + 1:] + [frames[active]]


def _log_range(values: Any, pad: float = 0.25) -> list[float]:
    """A log-axis range (log10 units) around the positive finite ``values``: plotly does not rescale axes when
    it animates between frames, so every frame carries its own range."""
    v = np.asarray([x for x in np.ravel(np.asarray(values, dtype=np.float64)) if np.isfinite(x) and x > 0])
    if v.size == 0:
        return [-1.0, 1.0]
    return [float(np.log10(v.min()) - pad), float(np.log10(v.max()) + pad)]


def _slope_traces(table: pd.DataFrame, t: int) -> list[go.Scatter]:
    g = table[table["t"] == t].sort_values("lr")
    lr = g["lr"].to_numpy()
    first, second = g["first_order_error"].to_numpy(), g["second_order_error"].to_numpy()
    ref2 = first[0] * (lr / lr[0]) ** 2
    ref3 = second[0] * (lr / lr[0]) ** 3
    return [go.Scatter(x=lr, y=first, mode="lines+markers", name="first-order error ‖w_t − (w₀ − ηΣg)‖"),
            go.Scatter(x=lr, y=second, mode="lines+markers", name="second-order error ‖w_t − Eq. 4–5‖"),
            go.Scatter(x=lr, y=ref2, mode="lines", name="slope 2 reference", line={"dash": "dash", "color": "grey"}),
            go.Scatter(x=lr, y=ref3, mode="lines", name="slope 3 reference", line={"dash": "dot", "color": "grey"})]


def slope_figure(table: pd.DataFrame, slopes: pd.DataFrame) -> go.Figure:
    """Log-log errors against η, one panel per model, with a slider over t (precomputed frames)."""
    models = list(dict.fromkeys(table["model"]))
    steps = sorted(int(t) for t in table["t"].unique() if t >= 2)
    fig = make_subplots(rows=1, cols=len(models), subplot_titles=models)
    frames = []

    def traces_at(t: int) -> list[go.Scatter]:
        out = []
        for col, model in enumerate(models):
            for k, tr in enumerate(_slope_traces(table[table["model"] == model], t)):
                tr.update(xaxis=f"x{col + 1 if col else ''}", yaxis=f"y{col + 1 if col else ''}",
                          legendgroup=str(k), showlegend=col == 0,
                          line={**(tr.line.to_plotly_json() if tr.line else {}),
                                "color": tr.line.color or ("#1f77b4", "#d62728")[k % 2]})
                out.append(tr)
        return out

    for t in steps:
        s = slopes[slopes["t"] == t].set_index("model")
        fitted = " · ".join(f"{m} {s.loc[m, 'first_order_slope']:.2f} / {s.loc[m, 'second_order_slope']:.2f}"
                            for m in models if m in s.index)
        title = f"t = {t} steps<br><sup>fitted slopes, first / second order: {fitted}</sup>"
        data = traces_at(t)
        layout: dict[str, Any] = {"title": {"text": title}}
        per = len(data) // len(models)
        for col in range(len(models)):
            ys = [tr.y for tr in data[col * per:(col + 1) * per]]
            layout[f"yaxis{col + 1 if col else ''}"] = {"range": _log_range(np.concatenate(ys)), "type": "log"}
        frames.append(go.Frame(name=f"t={t}", data=data, layout=layout))
    active = len(steps) - 1
    for tr in frames[active].data:
        fig.add_trace(tr)
    fig.frames = _reorder(frames, active)
    fig.update_layout(sliders=frames_slider(frames, [str(t) for t in steps], prefix="t = ", active=active),
                      title=frames[active].layout.title.text, height=600, margin={"t": 110},
                      legend={"orientation": "h", "y": -0.5})
    fig.update_xaxes(type="log", title_text="learning rate η")
    fig.update_yaxes(type="log")
    fig.update_yaxes(title_text="‖error‖₂", row=1, col=1)
    fig.update_layout({k: v for k, v in frames[active].layout.to_plotly_json().items() if k.startswith("yaxis")})
    return fig


def _bound_traces(table: pd.DataFrame, lr: float) -> list[go.Scatter]:
    g = table[np.isclose(table["lr"], lr)].sort_values("t")
    g = g[g["t"] >= 2]
    spec = [("eta2_term", "‖η² c_t‖ (Eq. 6)", {"color": "black", "width": 3}),
            ("eq8_rigorous", "η² Σ σ_i ‖Σ_{j<i} g_j‖ (rigorous)", {"color": "#2ca02c"}),
            ("eq8", "Eq. 8 as printed (σ = max |λ|)", {"color": "#d62728"}),
            ("eq8_consistent", "Eq. 8 with η (consistent substitution)", {"color": "#ff7f0e", "dash": "dash"}),
            ("eq9", "Eq. 9, unlearning error (σ_avg)", {"color": "#9467bd", "dash": "dot"}),
            ("eq8_paper_sigma", "Eq. 8 as printed, σ = sqrt(λ)", {"color": "#8c564b", "dash": "dashdot"})]
    return [go.Scatter(x=g["t"], y=g[col], mode="lines+markers", name=name, line=line) for col, name, line in spec]


def bound_figure(table: pd.DataFrame, model: str | None = None) -> go.Figure:
    """‖η² c_t‖ against the bounds of Eq. 8 and Eq. 9 as t grows, with a slider over η (frames)."""
    model = model or str(table["model"].iloc[0])
    sub = table[table["model"] == model]
    lrs = sorted(sub["lr"].unique())
    frames = []
    for lr in lrs:
        data = _bound_traces(sub, lr)
        frames.append(go.Frame(name=f"η={lr:g}", data=data,
                               layout={"title": {"text": f"{model}: the η² term against its bounds, η = {lr:g}"},
                                       "yaxis": {"range": _log_range(np.concatenate([tr.y for tr in data])),
                                                 "type": "log"}}))
    active = len(lrs) // 2
    fig = go.Figure(data=frames[active].data, frames=_reorder(frames, active))
    fig.update_layout(sliders=frames_slider(frames, [f"{lr:g}" for lr in lrs], prefix="η = ", active=active),
                      title={"text": frames[active].layout.title.text, "y": 0.98, "yanchor": "top"}, height=640,
                      margin={"t": 170}, legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
                      xaxis={"title": "t (SGD steps)"},
                      yaxis={"title": "norm", "type": "log", "range": list(frames[active].layout.yaxis.range)})
    return fig


def unlearning_figure(table: pd.DataFrame) -> go.Figure:
    """Per model, against η: v without unlearning, v after single-gradient unlearning, its η² prediction, e."""
    models = list(dict.fromkeys(table["model"]))
    fig = make_subplots(rows=1, cols=len(models), subplot_titles=models, shared_yaxes=True)
    spec = (("v_nothing", "v, no unlearning: ‖w_t − w′‖", "#7f7f7f", "solid"),
            ("v", "v after single-gradient unlearning", "#1f77b4", "solid"),
            ("x_star_terms", "η² · (the t − 1 terms with x̂_{i*})", "#ff7f0e", "dash"),
            ("e", "unlearning error e (Eq. 9)", "#9467bd", "dot"))
    for col, model in enumerate(models, start=1):
        g = table[table["model"] == model].sort_values("lr")
        for key, name, color, dash in spec:
            if key in g:
                fig.add_trace(go.Scatter(x=g["lr"], y=g[key], mode="lines+markers", name=name, legendgroup=key,
                                         showlegend=col == 1, line={"color": color, "dash": dash}), row=1, col=col)
    fig.update_xaxes(type="log", title_text="learning rate η")
    fig.update_yaxes(type="log")
    fig.update_yaxes(title_text="norm", row=1, col=1)
    fig.update_layout(height=480, legend={"orientation": "h", "y": -0.3})
    return fig


def live_explorer(problem: ExpansionProblem, sigmas: pd.DataFrame, *, lr: float = 0.01) -> Any:
    """ipywidgets for a live kernel: sliders for η (log scale) and t that recompute the expansion.

    Shows, for the chosen (η, t), the norms of the real displacement, both approximation errors, the η²
    term and its bounds as a bar chart. The box keeps the last figure in ``box.figure`` (for tests).
    """
    import ipywidgets as widgets

    eta = widgets.FloatLogSlider(value=lr, base=10, min=-4, max=0, step=0.1, description="η",
                                 continuous_update=False, readout_format=".1e")
    steps = widgets.IntSlider(value=problem.steps, min=2, max=problem.steps, description="t", continuous_update=False)
    cols = ["displacement", "first_order_error", "second_order_error", "eta2_term", "eq8_rigorous", "eq8",
            "eq8_consistent", "eq9"]

    def draw() -> go.Figure:
        sub = ExpansionProblem(problem.model, problem.w0, problem.batches[:steps.value], problem.loss_fn, problem.name)
        row = expansion_table(sub, [eta.value], sigmas).iloc[-1]
        fig = go.Figure(go.Bar(x=cols, y=[row[c] for c in cols]))
        fig.update_layout(yaxis={"type": "log", "title": "norm"},
                          title=f"{problem.name}: η = {eta.value:.2e}, t = {steps.value}")
        return fig

    return live_figure([eta, steps], draw)
