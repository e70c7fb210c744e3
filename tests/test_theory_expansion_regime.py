"""The regime of the η² truncation (§5.2): closed forms on a quadratic, checked against plain loops, the
binomial expansion, and the library's own expansion machinery run on the same quadratic."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from unrolling_lib.theory.expansion import problem_from
from unrolling_lib.theory.expansion.regime import (
    REGIME_COLUMNS,
    quadratic_order_term,
    quadratic_regime,
    quadratic_remainder,
    quadratic_verification_error,
    quadratic_weight_change,
    regime_table,
)
from unrolling_lib.unlearning_error import eta_t_sigma
from unrolling_lib.validation import ParameterError

LR, LAM, G = 0.03, 2.5, 0.7


def _loop(lr: float, lam: float, grads: list[float], skip: int | None = None) -> list[float]:
    """Plain SGD on L_s(w) = g_s·w + λ/2·w² from w = 0: the weights after each step (skip: leave out that step)."""
    w, path = 0.0, [0.0]
    for s, g in enumerate(grads):
        if s != skip:
            w -= lr * (g + lam * w)
        path.append(w)
    return path


def test_closed_forms_match_sgd_run_step_by_step() -> None:
    path = _loop(LR, LAM, [G] * 60)
    steps = list(range(61))
    assert np.allclose(quadratic_weight_change(LR, steps, LAM, G), path, rtol=1e-12, atol=1e-15)
    first_order = [-LR * t * G for t in steps]
    assert np.allclose(quadratic_remainder(LR, steps, LAM, G), np.subtract(path, first_order), rtol=1e-10, atol=1e-15)


def test_order_terms_are_the_binomial_expansion_of_sgd() -> None:
    t = 30
    total = sum(quadratic_order_term(LR, t, LAM, k, G) for k in range(1, t + 1))
    assert total == pytest.approx(quadratic_weight_change(LR, t, LAM, G), rel=1e-12)
    assert quadratic_order_term(LR, t, LAM, 1, G) == pytest.approx(-LR * t * G)
    assert quadratic_order_term(LR, t, LAM, 2, G) == pytest.approx(LR**2 * LAM * G * t * (t - 1) / 2)
    assert quadratic_order_term(LR, t, LAM, t + 1, G) == 0.0
    # successive orders shrink by η·λ·(t − k)/(k + 1): below 1 only while η·t·λ is small
    ratio = quadratic_order_term(LR, t, LAM, 3, G) / quadratic_order_term(LR, t, LAM, 2, G)
    assert ratio == pytest.approx(-LR * LAM * (t - 2) / 3)


def test_verification_error_matches_retraining_with_any_other_gradients() -> None:
    rng = np.random.default_rng(0)
    grads = rng.normal(size=40).tolist()
    m, retrained = _loop(LR, LAM, grads), _loop(LR, LAM, grads, skip=0)
    for t in range(1, 41):
        # M′ in lockstep has taken t − 1 batches when M has taken t: its path entry t (step 0 skipped) is that
        v = abs(m[t] + LR * grads[0] - retrained[t])
        assert quadratic_verification_error(LR, t, LAM, grads[0]) == pytest.approx(v, rel=1e-10, abs=1e-15)
    # curvature forgets step 0: v saturates at η|g₀|
    assert quadratic_verification_error(LR, 10_000, LAM, grads[0]) == pytest.approx(LR * abs(grads[0]))


def test_the_reviewers_numbers() -> None:
    """η = 0.01, λ = 22 (the §8.3 chapter's σ_avg), t = 400: the η² term is 44× the exact remainder."""
    assert quadratic_remainder(0.01, 400, 22.0) == pytest.approx(3.9545, abs=1e-4)
    assert quadratic_order_term(0.01, 400, 22.0, 2) == pytest.approx(175.56)
    row = quadratic_regime(0.01, 22.0, [400]).iloc[0]
    assert row["eta_t_sigma"] == pytest.approx(88.0)
    assert row["eta2_over_remainder"] == pytest.approx(44.39, abs=0.01)
    assert eta_t_sigma(0.01, 400, 22.0) == pytest.approx(88.0)


def test_the_truncation_is_accurate_only_while_eta_t_sigma_is_small() -> None:
    table = quadratic_regime(1e-3, 1.0, [2, 10, 100, 1_000, 100_000])
    x, ratio = table["eta_t_sigma"].to_numpy(), table["eta2_over_remainder"].to_numpy()
    small = x < 0.2
    assert np.all(np.abs(ratio[small] - 1) <= x[small])  # the next order is about η·t·σ/3 of this one
    assert ratio[-1] == pytest.approx(x[-1] / 2, rel=0.02)  # far out: the η² term overshoots by η·t·σ/2
    assert np.all(np.diff(ratio) > 0)


class _Scalar(nn.Module):
    """One weight w; the 'logits' are w itself for every sample."""

    def __init__(self, w0: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([w0], dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w.expand(x.shape[0], 1)


def test_regime_table_on_a_quadratic_model_equals_the_closed_forms() -> None:
    """The library's SGD paths, Eq. 6 and HVPs, run on L(w) = λ/2·(w − c)² with ∇L(w₀) = g: same columns."""
    w0, steps = 0.3, 80
    c = w0 - G / LAM

    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (LAM / 2 * (out[:, 0] - y) ** 2).mean()

    batches = [(torch.ones(2, 1), torch.full((2,), c, dtype=torch.float64)) for _ in range(steps)]
    problem = problem_from(_Scalar(w0), batches, loss, name="quadratic")
    measured = regime_table(problem, [LR, 0.2], sigma=LAM)
    assert list(measured.columns) == list(REGIME_COLUMNS)
    for lr in (LR, 0.2):
        got = measured[measured["lr"] == lr].reset_index(drop=True)
        want = quadratic_regime(lr, LAM, list(range(2, steps + 1)), G)
        for col in ("eta_t_sigma", "remainder", "eta2_term", "v", "v_eta2", "v_limit", "e"):
            assert np.allclose(got[col], want[col], rtol=1e-9, atol=1e-14), col


@pytest.mark.parametrize("call, name", [
    (lambda: quadratic_remainder(0.0, 3, 1.0), "lr"),
    (lambda: quadratic_remainder(0.1, 3, -1.0), "curvature"),
    (lambda: quadratic_remainder(0.1, -1, 1.0), "steps"),
    (lambda: quadratic_order_term(0.1, 3, 1.0, 0), "order"),
    (lambda: quadratic_regime(0.1, 1.0, [1, 2]), "steps"),
    (lambda: quadratic_regime(0.1, 1.0, [2], g=0.0), "g"),
    (lambda: eta_t_sigma(0.1, 3, -2.0), "sigma"),
    (lambda: eta_t_sigma(math.nan, 3, 2.0), "lr"),
])
def test_bad_input_names_the_parameter(call, name) -> None:
    with pytest.raises(ParameterError, match=f"^{name}(\\[\\d+\\])?="):
        call()
