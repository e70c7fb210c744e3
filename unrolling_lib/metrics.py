"""How close unlearning came: the verification error (§4.2, §8.3), accuracy, and correlations (§8.3, §8.4).

Correlations are reported the way a reader can weigh them: :func:`correlation` returns the coefficient with
its n and a 95% confidence interval (Fisher's z transform), and :func:`increment_correlation` correlates the
steps of two series instead of their levels — two series that both grow along t correlate strongly whatever
else they share, their increments do not.

Distances between weights are ℓ2 norms over the trainable parameters (:mod:`unrolling_lib.params`). Each
side may be

- an ``nn.Module``: its parameters with ``requires_grad`` (frozen ones and all buffers are left out);
- a state dict (any mapping of names to tensors): every floating-point entry except BatchNorm's buffers
  ``running_mean``, ``running_var`` and ``num_batches_tracked`` (a state dict does not record which
  parameters were frozen, so those count);
- a flat tensor, as from :func:`unrolling_lib.params.flat_weights`.

Two named sides (module or state dict) are matched by name; against a module only the module's
trainable names count. A flat tensor is matched by position, in ``model.parameters()`` order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import nn

from .params import Weights, eval_mode, weight_distance
from .validation import ParameterError, check_choice, check_int, check_number

__all__ = ["CORRELATION_METHODS", "Correlation", "accuracy", "correlation", "increment_correlation", "pearson",
           "spearman", "verification_error"]

CORRELATION_METHODS = ("pearson", "spearman")


def verification_error(a: Weights, b: Weights) -> float:
    """v = ‖w″ − w′‖₂ (§4.2, §8.3): ℓ2 distance between two sets of weights over trainable parameters.

    Typically ``a`` is the unlearned model M″ and ``b`` the model M′ retrained without the data. BatchNorm
    running statistics never count. Computed in float64.
    """
    return weight_distance(a, b)


def _batches(data: Any) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    if hasattr(data, "x") and hasattr(data, "y"):
        return [(data.x, data.y)]
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        return [(data[0], data[1])]
    return data


@torch.no_grad()
def accuracy(model: nn.Module, data: Any, *, batch_size: int = 1024) -> float:
    """Fraction of correct arg-max predictions, in eval mode (the model's modes are restored).

    ``data``: an ``(inputs, targets)`` pair of tensors, an object with ``.x`` and ``.y``, or an iterable of
    ``(inputs, targets)`` batches such as a ``DataLoader``. Inputs are moved to the model's device.
    """
    batch_size = check_int("batch_size", batch_size, 1)
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    correct = total = 0
    with eval_mode(model):
        for x, y in _batches(data):
            for start in range(0, len(y), batch_size):
                xb, yb = x[start:start + batch_size].to(device), y[start:start + batch_size].to(device)
                correct += int((model(xb).argmax(dim=1) == yb).sum())
                total += int(yb.numel())
    if total == 0:
        raise ParameterError("data must hold at least one sample")
    return correct / total


def _pair(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    xa, ya = np.asarray(x, dtype=np.float64).reshape(-1), np.asarray(y, dtype=np.float64).reshape(-1)
    if xa.size != ya.size or xa.size < 2:
        raise ParameterError(f"x and y must have the same length >= 2; got {xa.size} and {ya.size}")
    return xa, ya


def pearson(x: Any, y: Any) -> float:
    """Pearson's correlation coefficient (as reported in §8.3), via ``scipy.stats.pearsonr``."""
    xa, ya = _pair(x, y)
    return float(stats.pearsonr(xa, ya)[0])


def spearman(x: Any, y: Any) -> float:
    """Spearman's rank correlation (as reported in §8.4), via ``scipy.stats.spearmanr``."""
    xa, ya = _pair(x, y)
    return float(stats.spearmanr(xa, ya)[0])


@dataclass(frozen=True)
class Correlation:
    """A correlation coefficient with its evidence: ``r``, the number of pairs ``n``, the ``confidence``
    interval ``[low, high]`` and the two-sided ``pvalue`` against r = 0. ``method``: ``"pearson"`` or
    ``"spearman"``."""

    method: str
    r: float
    n: int
    low: float
    high: float
    pvalue: float
    confidence: float = 0.95

    def describe(self, digits: int = 2) -> str:
        """One line for prose and figure titles: ``Pearson 0.74 (n = 16, 95% CI 0.39 to 0.90)``."""
        name = self.method.capitalize()
        if not math.isfinite(self.r):
            return f"{name} undefined (n = {self.n})"
        level = f"{self.confidence:.0%}"
        return (f"{name} {self.r:.{digits}f} (n = {self.n}, {level} CI {self.low:.{digits}f} to "
                f"{self.high:.{digits}f})")


def _fisher_interval(r: float, n: int, confidence: float, se_scale: float) -> tuple[float, float]:
    """tanh(atanh(r) ± z·√(se_scale/(n − 3))); the whole range [−1, 1] when n ≤ 3 (no interval exists)."""
    if n <= 3 or not math.isfinite(r):
        return -1.0, 1.0
    if abs(r) >= 1.0:
        return r, r
    z = stats.norm.ppf(0.5 + confidence / 2)
    half = z * math.sqrt(se_scale / (n - 3))
    centre = math.atanh(r)
    return math.tanh(centre - half), math.tanh(centre + half)


def correlation(x: Any, y: Any, *, method: str = "pearson", confidence: float = 0.95) -> Correlation:
    """Pearson's or Spearman's correlation of ``x`` and ``y`` with n and a ``confidence`` interval.

    The interval is nominal: it assumes n independent pairs. Points along one training run, or runs that share
    pre-training, are not independent, and their true interval is wider.

    Pearson: ``scipy.stats.pearsonr`` and its Fisher-z interval, tanh(atanh r ± z/√(n − 3)). Spearman:
    ``scipy.stats.spearmanr`` with the Fisher-z interval whose variance is 1.06/(n − 3) (Fieller, Hartley &
    Pearson, 1957). With n ≤ 3 the interval is the whole of [−1, 1]: three points cannot rule anything out.
    A constant series has no correlation: r and the p-value are nan.
    """
    method = check_choice("method", method, CORRELATION_METHODS)
    confidence = check_number("confidence", confidence, high=1.0)
    if confidence >= 1.0:
        raise ParameterError(f"confidence={confidence!r} is not allowed; use a level in (0, 1), e.g. 0.95")
    xa, ya = _pair(x, y)
    n = int(xa.size)
    if np.ptp(xa) == 0 or np.ptp(ya) == 0:
        return Correlation(method, math.nan, n, -1.0, 1.0, math.nan, confidence)
    if method == "pearson":
        result = stats.pearsonr(xa, ya)
        r, pvalue, scale = float(result.statistic), float(result.pvalue), 1.0
    else:
        result = stats.spearmanr(xa, ya)
        r, pvalue, scale = float(result.statistic), float(result.pvalue), 1.06
    low, high = _fisher_interval(r, n, confidence, scale)
    return Correlation(method, r, n, low, high, pvalue, confidence)


def increment_correlation(x: Any, y: Any, *, method: str = "pearson", confidence: float = 0.95) -> Correlation:
    """:func:`correlation` of the steps ``diff(x)`` and ``diff(y)`` of two series measured at the same points.

    Along t, e (Eq. 9) grows by construction and v usually grows too, so the correlation of their levels is
    high for almost any pair of increasing curves. Whether e's *growth* follows v's growth is not built into
    the formula: that is what this measures (n is one less than the series' length).
    """
    xa, ya = _pair(x, y)
    return correlation(np.diff(xa), np.diff(ya), method=method, confidence=confidence)
