"""How close unlearning came: the verification error (§4.2, §8.3), accuracy, and correlations (§8.3, §8.4).

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

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import nn

from .params import Weights, eval_mode, weight_distance
from .validation import ParameterError, check_int

__all__ = ["accuracy", "pearson", "spearman", "verification_error"]


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
