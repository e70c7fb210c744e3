"""Unlearning error (Eq. 9), verification error (§4.2, §8.3), weight change, accuracy, correlations.

Distances between weights are ℓ2 norms over the trainable parameters. Each side may be

- an ``nn.Module``: its parameters with ``requires_grad`` (frozen ones and all buffers are left out);
- a state dict (any mapping of names to tensors): every floating-point entry except BatchNorm's buffers
  ``running_mean``, ``running_var`` and ``num_batches_tracked`` (a state dict does not record which
  parameters were frozen, so those count);
- a flat tensor, as from :func:`flat_params`.

Two named sides (module or state dict) are matched by name; against a module only the module's
trainable names count. A flat tensor is matched by position, in ``model.parameters()`` order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import nn

from .models import module_mode
from .profiles import ParameterError, check_int, check_number

__all__ = [
    "BN_BUFFERS",
    "accuracy",
    "flat_params",
    "pearson",
    "spearman",
    "unlearning_error",
    "verification_error",
    "weight_change",
]

BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")

Weights = nn.Module | Mapping[str, torch.Tensor] | torch.Tensor


def unlearning_error(lr: float, steps: int, weight_change: float, sigma_avg: float) -> float:
    """Eq. 9: e = η² · (‖w_t − w₀‖₂ / t) · σ_avg · (t² − t) / 2.

    ``lr`` η, ``steps`` t (SGD steps since w₀), ``weight_change`` ‖w_t − w₀‖₂ (see :func:`weight_change`),
    ``sigma_avg`` the mean of the σ values sampled along the way (see ``hessian.sigma``).
    """
    lr = check_number("lr", lr, inclusive=True)
    steps = check_int("steps", steps, 1)
    wc = check_number("weight_change", weight_change, inclusive=True)
    sigma_avg = check_number("sigma_avg", sigma_avg, inclusive=True)
    t = int(steps)
    return lr**2 * (wc / t) * sigma_avg * (t * t - t) / 2


def _named(x: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if isinstance(x, nn.Module):
        return {name: p.detach() for name, p in x.named_parameters() if p.requires_grad}
    return {
        k: v.detach() for k, v in x.items()
        if isinstance(v, torch.Tensor) and v.is_floating_point() and not k.endswith(BN_BUFFERS)
    }


def flat_params(x: Weights) -> torch.Tensor:
    """The weights as one flat, detached tensor (trainable parameters; see the module docstring)."""
    if isinstance(x, torch.Tensor):
        return x.detach().reshape(-1)
    if isinstance(x, (nn.Module, Mapping)):
        named = _named(x)
        if not named:
            return torch.zeros(0)
        return torch.cat([v.reshape(-1) for v in named.values()])
    raise ParameterError(f"weights must be an nn.Module, a state dict or a flat tensor; got {type(x).__name__}")


def _as_float64(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(device="cpu", dtype=torch.float64).reshape(-1)


def _distance(a: Weights, b: Weights) -> float:
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, (nn.Module, Mapping, torch.Tensor)):
            raise ParameterError(f"{name} must be an nn.Module, a state dict or a flat tensor; got {type(x).__name__}")
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        fa, fb = _as_float64(flat_params(a)), _as_float64(flat_params(b))
        if fa.numel() != fb.numel():
            raise ParameterError(f"a and b must hold the same number of weights; got {fa.numel()} and {fb.numel()}")
        return float(torch.linalg.vector_norm(fa - fb))
    na, nb = _named(a), _named(b)
    if isinstance(a, nn.Module) != isinstance(b, nn.Module):  # one module: its trainable names count
        keys = list(na if isinstance(a, nn.Module) else nb)
    else:
        keys = list(na)
        if set(na) != set(nb):
            diff = sorted(set(na) ^ set(nb))
            raise ParameterError(f"a and b must have the same parameter names; they differ in {diff[:3]}")
    missing = [k for k in keys if k not in na or k not in nb]
    if missing:
        raise ParameterError(f"a and b must both hold every trainable parameter; missing {missing[:3]}")
    total = 0.0
    for k in keys:
        if na[k].shape != nb[k].shape:
            raise ParameterError(f"parameter {k} has shape {tuple(na[k].shape)} in a and {tuple(nb[k].shape)} in b")
        total += float((_as_float64(na[k]) - _as_float64(nb[k])).pow(2).sum())
    return math.sqrt(total)


def verification_error(a: Weights, b: Weights) -> float:
    """v = ‖w″ − w′‖₂ (§4.2, §8.3): ℓ2 distance between two sets of weights over trainable parameters.

    Typically ``a`` is the unlearned model M″ and ``b`` the model M′ retrained without the data. BatchNorm
    running statistics never count. Computed in float64.
    """
    return _distance(a, b)


def weight_change(a: Weights, b: Weights) -> float:
    """‖w_t − w₀‖₂, the weight change of Eq. 9, with the conventions of :func:`verification_error`."""
    return _distance(a, b)


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
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ParameterError(f"batch_size={batch_size!r} is not allowed; use an int >= 1")
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    correct = total = 0
    with module_mode(model, train=False):
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
