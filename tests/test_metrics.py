"""Unlearning error (Eq. 9), verification error / weight change, accuracy and correlations by hand."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from unrolling_lib.metrics import accuracy, pearson, spearman, verification_error
from unrolling_lib.params import flat_weights
from unrolling_lib.unlearning_error import weight_change


def _bn_model() -> nn.Module:
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Linear(2, 1))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1.0)
    return model


def test_verification_error_by_hand_ignores_bn_buffers() -> None:
    a = _bn_model()
    b = copy.deepcopy(a)
    with torch.no_grad():
        b[0].weight[0, 1] += 3.0  # a 3-4-12-… difference: ‖(3, 4, 12)‖ = 13
        b[1].bias[1] -= 4.0
        b[2].weight[0, 0] += 12.0
        b[1].running_mean.fill_(100.0)  # buffers never count
        b[1].running_var.fill_(50.0)
        b[1].num_batches_tracked.fill_(7)
    for x, y in [(a, b), (a.state_dict(), b.state_dict()), (a, b.state_dict()), (a.state_dict(), b),
                 (flat_weights(a), b), (a, flat_weights(b)), (flat_weights(a), flat_weights(b))]:
        assert verification_error(x, y) == pytest.approx(13.0, rel=1e-12)
        assert weight_change(x, y) == pytest.approx(13.0, rel=1e-12)
    assert verification_error(a, a) == 0.0


def test_frozen_parameters_do_not_count_for_modules() -> None:
    a = _bn_model()
    b = copy.deepcopy(a)
    with torch.no_grad():
        b[2].bias += 5.0
        b[2].weight[0, 0] += 1.0
    a[2].bias.requires_grad_(False)
    # Against the module a, only its trainable names count; the state dict of b has the bias too.
    assert verification_error(a, b.state_dict()) == pytest.approx(1.0)
    assert verification_error(a.state_dict(), b.state_dict()) == pytest.approx(math.sqrt(26.0))


def test_flat_weights_order_and_values() -> None:
    model = _bn_model()
    assert torch.equal(flat_weights(model), nn.utils.parameters_to_vector(model.parameters()))
    assert torch.equal(flat_weights(model.state_dict()), flat_weights(model))
    assert flat_weights(model).numel() == 2 * 2 + 2 + 2 + 2 + 2 + 1  # BN buffers left out


def test_distance_mismatch_errors() -> None:
    a = _bn_model()
    with pytest.raises(ValueError, match="same number of weights"):
        verification_error(a, torch.zeros(3))
    with pytest.raises(ValueError, match="same parameter names"):
        verification_error(a.state_dict(), {"x": torch.zeros(1)})
    with pytest.raises(ValueError, match="must both hold"):
        verification_error(a, {"0.weight": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match="nn.Module, a state dict or a flat tensor"):
        verification_error(a, [1.0, 2.0])  # type: ignore[arg-type]


def test_accuracy_by_hand_and_mode_restored() -> None:
    model = nn.Sequential(nn.Linear(3, 3, bias=False), nn.Dropout(0.9))
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(3))
    x = torch.eye(3).repeat(4, 1)  # sample i predicts class i % 3
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 1, 1, 1, 1])  # 9 of 12 right
    model.train()
    assert accuracy(model, (x, y)) == pytest.approx(9 / 12)  # eval mode: dropout off
    assert model.training and model[1].training
    loader = [(x[:5], y[:5]), (x[5:], y[5:])]
    assert accuracy(model, loader, batch_size=2) == pytest.approx(9 / 12)

    class Split:
        pass

    data = Split()
    data.x, data.y = x, y
    assert accuracy(model, data) == pytest.approx(9 / 12)


def test_correlations() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    y = 2 * x + rng.normal(size=50)
    assert pearson(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-12)
    ranks = lambda v: np.argsort(np.argsort(v))  # noqa: E731 (no ties in continuous data)
    assert spearman(x, y) == pytest.approx(np.corrcoef(ranks(x), ranks(y))[0, 1], rel=1e-12)
    assert spearman(x, np.exp(x)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same length"):
        pearson([1, 2, 3], [1, 2])


# --- correlations with their evidence ---------------------------------------------------------------------------


def test_correlation_interval_is_fisher_z_by_hand() -> None:
    from unrolling_lib.metrics import correlation

    rng = np.random.default_rng(1)
    x = rng.normal(size=20)
    y = x + rng.normal(size=20)
    c = correlation(x, y)
    r = np.corrcoef(x, y)[0, 1]
    half = 1.959963984540054 / math.sqrt(20 - 3)
    assert (c.r, c.n) == (pytest.approx(r, rel=1e-12), 20)
    assert c.low == pytest.approx(math.tanh(math.atanh(r) - half), rel=1e-12)
    assert c.high == pytest.approx(math.tanh(math.atanh(r) + half), rel=1e-12)
    scipy_ci = __import__("scipy").stats.pearsonr(x, y).confidence_interval(0.95)  # an independent implementation
    assert (c.low, c.high) == (pytest.approx(scipy_ci.low, rel=1e-10), pytest.approx(scipy_ci.high, rel=1e-10))
    s = correlation(x, y, method="spearman")
    ranks = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    rho = np.corrcoef(*ranks)[0, 1]
    half_s = 1.959963984540054 * math.sqrt(1.06 / 17)
    assert s.r == pytest.approx(rho, rel=1e-12)
    assert (s.low, s.high) == (pytest.approx(math.tanh(math.atanh(rho) - half_s)),
                               pytest.approx(math.tanh(math.atanh(rho) + half_s)))


def test_four_points_cannot_tell_0708_from_096() -> None:
    """The review's example: Pearson 0.708 across four γ values has a 95% interval of about −0.79 to 0.99."""
    from unrolling_lib.metrics import _fisher_interval

    low, high = _fisher_interval(0.708, 4, 0.95, 1.0)
    assert low == pytest.approx(-0.79, abs=0.01) and high == pytest.approx(0.99, abs=0.01)
    assert low < 0.96 < high


def test_correlation_interval_covers_the_true_value_95_percent_of_the_time() -> None:
    from unrolling_lib.metrics import correlation

    rng = np.random.default_rng(2)
    rho, n, reps = 0.6, 25, 2000
    cov = [[1, rho], [rho, 1]]
    hits = 0
    for _ in range(reps):
        xy = rng.multivariate_normal([0, 0], cov, size=n)
        c = correlation(xy[:, 0], xy[:, 1])
        hits += c.low <= rho <= c.high
    assert abs(hits / reps - 0.95) < 0.02  # binomial sd at 2000 reps ≈ 0.005


def test_correlation_edge_cases_and_bad_input() -> None:
    from unrolling_lib.metrics import correlation
    from unrolling_lib.validation import ParameterError

    three = correlation([1, 2, 3], [1, 3, 2])
    assert (three.low, three.high, three.n) == (-1.0, 1.0, 3)  # no interval from three points
    flat = correlation([1, 2, 3, 4], [5, 5, 5, 5])
    assert math.isnan(flat.r) and "undefined" in flat.describe()
    assert correlation([1, 2, 3, 4, 5], [2, 4, 6, 8, 10]).describe() == "Pearson 1.00 (n = 5, 95% CI 1.00 to 1.00)"
    with pytest.raises(ParameterError, match="method="):
        correlation([1, 2, 3], [1, 2, 3], method="kendall")
    with pytest.raises(ParameterError, match="confidence="):
        correlation([1, 2, 3], [1, 2, 3], confidence=1.5)


def test_increments_separate_a_shared_trend_from_shared_steps() -> None:
    """Two series that both grow along t correlate in level whatever their steps do; their increments do not."""
    from unrolling_lib.metrics import correlation, increment_correlation

    rng = np.random.default_rng(3)
    t = np.arange(1, 41, dtype=float)
    a = t + np.cumsum(rng.normal(scale=0.3, size=40))
    b = t ** 2 / 40 + np.cumsum(rng.normal(scale=0.3, size=40))  # the same trend, independent steps
    assert correlation(a, b).r > 0.95
    inc = increment_correlation(a, b)
    assert inc.n == 39 and inc.low < 0 < inc.high
    steps = rng.normal(size=40)
    assert increment_correlation(np.cumsum(steps), np.cumsum(2 * steps + 1)).r == pytest.approx(1.0)
