"""Where the η² truncation holds (§5.2): the regime η·t·σ, exactly on a quadratic and measured on a model.

Eq. 6–9 keep the η² term of the expansion of SGD around w₀ because η ≪ 1. But the order-k term is a sum of
C(t, k) products of k − 1 Hessians with a gradient, of size about σ^{k−1}‖g‖, so successive orders shrink only
while η·t·σ ≪ 1 (:func:`unrolling_lib.unlearning_error.eta_t_sigma`).

**The quadratic, exactly.** One coordinate; every batch has curvature λ and gradient g at w₀,
L(w) = g·(w − w₀) + λ/2·(w − w₀)². SGD is linear, Δ_{s+1} = (1 − ηλ)·Δ_s − η·g with Δ_s = w_s − w₀, so

    Δ_t = −(g/λ)·(1 − (1 − ηλ)^t) = −η·g·Σ_{k=1}^{t} C(t, k)·(−ηλ)^{k−1}        (binomial theorem),

and the order-k term of Eq. 4–5 is exactly −η·g·C(t, k)·(−ηλ)^{k−1}. The first-order part is −η·t·g, so
the exact remainder (every order above the first) is

    R_t = Δ_t + η·t·g = g·(η·t − (1 − (1 − ηλ)^t)/λ),

while Eq. 6's η² term is η²·c_t = η²·λ·g·t(t − 1)/2. They agree while η·t·λ ≪ 1. Once η·t·λ ≫ 1 (with
ηλ < 1) R_t → g·(η·t − 1/λ) grows like t and the η² term like t², so the η² term overestimates by about
η·t·λ/2: at η = 0.01, λ = 22, t = 400 it is 175.6·g against the exact 3.95·g.

**Forgetting x̂₁ on the quadratic.** With a common curvature and batch gradients g_s, w_t = w₀ − η·Σ_s
(1 − ηλ)^{t−1−s}·g_s. M′ skips step 0 and every later batch reaches it with the same power of (1 − ηλ), so
w_t − w′_t = −η·(1 − ηλ)^{t−1}·g₀, and single-gradient unlearning (adding back η·g₀) leaves

    v_t = η·|g₀|·(1 − (1 − ηλ)^{t−1}),

whose η² part is η²·λ·|g₀|·(t − 1). Curvature makes SGD forget its early steps: v saturates at η·|g₀| while
the η² prediction, and e (Eq. 9), keep growing.

:func:`quadratic_regime` tabulates these closed forms; :func:`regime_table` measures the same columns on a
model (real SGD against the first-order path and Eq. 6, retraining without step 0 against single-gradient
unlearning), so the two can be drawn against η·t·σ on one axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.special import comb

from ...unlearning_error import eta_t_sigma, unlearning_error
from ...validation import ParameterError, check_int, check_ints, check_number, check_numbers
from .problem import ExpansionProblem, eta2_coefficients, first_order_path, gradients_at_w0, hvp_at_w0, sgd_path

__all__ = [
    "REGIME_COLUMNS",
    "quadratic_order_term",
    "quadratic_regime",
    "quadratic_remainder",
    "quadratic_verification_error",
    "quadratic_weight_change",
    "regime_table",
]

REGIME_COLUMNS = ("model", "lr", "sigma", "t", "eta_t_sigma", "remainder", "eta2_term", "eta2_over_remainder",
                  "v", "v_eta2", "v_limit", "e", "e_over_v")


def _check(lr: Any, curvature: Any) -> tuple[float, float]:
    return check_number("lr", lr), check_number("curvature", curvature)


def _forgotten(x: float, steps: np.ndarray) -> np.ndarray:
    """1 − (1 − x)^steps, accurate for small x·steps (expm1/log1p) and exact for x ≥ 1 (powers)."""
    if x < 1:
        return -np.expm1(steps * np.log1p(-x))
    return 1 - np.power(1 - x, steps)


def _steps(steps: Any, low: int) -> np.ndarray:
    if isinstance(steps, (list, tuple, np.ndarray)):
        return np.asarray(check_ints("steps", steps, low), dtype=np.float64)
    return np.float64(check_int("steps", steps, low))


def quadratic_weight_change(lr: float, steps: Any, curvature: float, g: float = 1.0) -> Any:
    """Δ_t = w_t − w₀ = −(g/λ)·(1 − (1 − ηλ)^t) after t SGD steps on the one-dimensional quadratic (module
    docstring). ``steps``: an int or a list of ints (then an array)."""
    lr, lam = _check(lr, curvature)
    return -(g / lam) * _forgotten(lr * lam, _steps(steps, 0))


def quadratic_remainder(lr: float, steps: Any, curvature: float, g: float = 1.0) -> Any:
    """R_t = Δ_t + η·t·g = g·(η·t − (1 − (1 − ηλ)^t)/λ): everything the first-order approximation misses."""
    t = _steps(steps, 0)
    return quadratic_weight_change(lr, steps, curvature, g) + lr * t * g


def quadratic_order_term(lr: float, steps: int, curvature: float, order: int, g: float = 1.0) -> float:
    """The order-k term of Eq. 4–5 on the quadratic: −η·g·C(t, k)·(−ηλ)^{k−1} (0 for k > t). Order 2 is
    Eq. 6's η²·c_t = η²·λ·g·t(t − 1)/2."""
    lr, lam = _check(lr, curvature)
    t, k = check_int("steps", steps, 0), check_int("order", order, 1)
    return float(-lr * g * comb(t, k, exact=True) * (-lr * lam) ** (k - 1))


def quadratic_verification_error(lr: float, steps: Any, curvature: float, g: float = 1.0) -> Any:
    """v_t = η·|g₀|·(1 − (1 − ηλ)^{t−1}): single-gradient unlearning of step 0 against retraining without it
    (module docstring), for any gradients of the other batches."""
    lr, lam = _check(lr, curvature)
    return lr * abs(g) * _forgotten(lr * lam, _steps(steps, 1) - 1)


def quadratic_regime(lr: float, curvature: float, steps: Sequence[int], g: float = 1.0) -> pd.DataFrame:
    """The columns of :data:`REGIME_COLUMNS` in closed form on the quadratic (every batch with gradient ``g``
    and curvature λ = ``curvature``, which is σ): the exact remainder beside the η² term, the exact v beside
    its η² part η²·λ·|g|·(t − 1) and its limit ``v_limit`` = η·|g|, and e (Eq. 9) with ‖w_t − w₀‖ = |Δ_t|
    and σ_avg = λ. ``model`` is ``"quadratic"``; ``steps`` are the t values (each ≥ 2)."""
    lr, lam = _check(lr, curvature)
    g = check_number("g", abs(g))  # the sign of g only flips every term
    t = _steps(list(steps), 2)
    remainder = np.abs(quadratic_remainder(lr, t.astype(int).tolist(), lam, g))
    eta2 = lr**2 * lam * g * t * (t - 1) / 2
    v = quadratic_verification_error(lr, t.astype(int).tolist(), lam, g)
    v_eta2 = lr**2 * lam * g * (t - 1)
    change = np.abs(quadratic_weight_change(lr, t.astype(int).tolist(), lam, g))
    e = lr**2 * (change / t) * lam * t * (t - 1) / 2
    return _frame("quadratic", lr, lam, t, remainder, eta2, v, v_eta2, lr * g, e)


def _frame(model: str, lr: float, sigma: float, t: np.ndarray, remainder: np.ndarray, eta2: np.ndarray,
           v: np.ndarray, v_eta2: np.ndarray, v_limit: float, e: np.ndarray) -> pd.DataFrame:
    with np.errstate(divide="ignore", invalid="ignore"):
        frame = pd.DataFrame({
            "model": model, "lr": lr, "sigma": sigma, "t": t.astype(int), "eta_t_sigma": eta_t_sigma(lr, t, sigma),
            "remainder": remainder, "eta2_term": eta2, "eta2_over_remainder": eta2 / remainder, "v": v,
            "v_eta2": v_eta2, "v_limit": v_limit, "e": e, "e_over_v": e / v})
    return frame[list(REGIME_COLUMNS)]


@torch.no_grad()
def _norms(vectors: torch.Tensor) -> np.ndarray:
    return vectors.norm(dim=-1).numpy()


def regime_table(problem: ExpansionProblem, lrs: Sequence[float], sigma: float) -> pd.DataFrame:
    """:data:`REGIME_COLUMNS` measured on ``problem`` for each learning rate of ``lrs``, one row per η and
    t = 2 … its steps.

    ``remainder`` = ‖w_t − (w₀ − η·Σ_{s<t} g_s)‖ (real SGD against first order), ``eta2_term`` = ‖η²·c_t‖
    (Eq. 6), ``v`` = ‖w_t + η·g₀ − w′_t‖ (forgetting step 0 by single-gradient unlearning, against SGD on the
    order without it), ``v_eta2`` = η²·‖Σ_{i=1}^{t−1} H_i·g₀‖ (the terms of Eq. 6 that hold x̂₀), ``e`` (Eq. 9
    with ``sigma`` as σ_avg, e.g. the mean σ of the problem's batches at w₀), ``eta_t_sigma`` = η·t·σ and
    ``v_limit`` = η·‖g₀‖, the size of the single-gradient step (where v saturates on a quadratic). Costs two
    HVPs per step (shared by every η) and three SGD runs (all η at once).
    """
    lrs, sigma = check_numbers("lrs", lrs, distinct=True), check_number("sigma", sigma)
    if problem.steps < 2:
        raise ParameterError(f"problem has {problem.steps} step; the regime needs at least 2")
    grads = gradients_at_w0(problem)
    real = sgd_path(problem, lrs)
    first = first_order_path(problem, lrs, grads)
    retrained = sgd_path(problem, lrs, unlearn_step=0)  # row r: after the batches 1 … r
    c = _norms(eta2_coefficients(problem, grads)[2:])
    with_first = torch.stack([hvp_at_w0(problem, i, grads[0]) for i in range(1, problem.steps)]).cumsum(0)
    held = _norms(with_first[: problem.steps - 1])
    t = np.arange(2, problem.steps + 1)
    frames = []
    for k, lr in enumerate(lrs):
        change = _norms(real[k, 2:] - problem.w0)
        e = np.array([unlearning_error(lr, int(s), float(d), sigma) for s, d in zip(t, change, strict=True)])
        frames.append(_frame(problem.name, lr, sigma, t.astype(np.float64), _norms(real[k, 2:] - first[k, 2:]),
                             lr**2 * c, _norms(real[k, 2:] + lr * grads[0] - retrained[k, 1:]), lr**2 * held,
                             lr * float(grads[0].norm()), e))
    return pd.concat(frames, ignore_index=True)
