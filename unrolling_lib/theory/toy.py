"""The binary toy classifier of §6.2 (Eq. 11) in closed form.

A linear model with two outputs a = w₁·x and b = w₂·x on one point of label 0. Its SD loss depends on d = a − b only:

    L(a, b) = log(1 + e^{b−a}) + γ · c · |a − b|,

where the population std of the two outputs is |a − b|/2, so c = 1/2 under Eq. 10 as printed
(``scaling="equation"``). The released code's term γ · Σ_i std_unbiased(logits_i) / (B·C) has, for B = 1
and C = 2, std_unbiased = |a − b|/√2 and so c = 1/(2√2) (``scaling="code"``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..profiles import ParameterError

__all__ = ["SCALINGS", "SD_COEFFICIENT", "toy_sd_loss", "toy_sd_minimum"]

SCALINGS = ("code", "equation")
# The SD term of Eq. 11 is γ · SD_COEFFICIENT[scaling] · |a − b|.
SD_COEFFICIENT = {"equation": 0.5, "code": 1.0 / (2.0 * math.sqrt(2.0))}


def _check_scaling(scaling: str) -> None:
    if scaling not in SCALINGS:
        raise ParameterError(f"scaling={scaling!r} is not allowed; choose one of {', '.join(map(repr, SCALINGS))}")


def toy_sd_loss(a: Any, b: Any, gamma: float, scaling: str = "equation") -> Any:
    """Eq. 11: the SD loss of the binary toy classifier at outputs ``a``, ``b`` (label 0).

    log(1 + e^{b−a}) + γ·c·|a − b| with c = 1/2 (``"equation"``) or 1/(2√2) (``"code"``). Works
    elementwise on floats, numpy arrays (returns numpy) and torch tensors (returns torch, differentiable).
    """
    _check_scaling(scaling)
    if not (isinstance(gamma, (int, float, np.floating)) and not isinstance(gamma, bool) and gamma >= 0):
        raise ParameterError(f"gamma={gamma!r} is not allowed; use a number >= 0")
    coeff = float(gamma) * SD_COEFFICIENT[scaling]
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        a_t = torch.as_tensor(a)
        b_t = torch.as_tensor(b, dtype=a_t.dtype if a_t.is_floating_point() else None)
        return torch.nn.functional.softplus(b_t - a_t) + coeff * (a_t - b_t).abs()
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    value = np.logaddexp(0.0, -d) + coeff * np.abs(d)
    return float(value) if value.ndim == 0 else value


def toy_sd_minimum(gamma: Any, scaling: str = "equation") -> Any:
    """The d = a − b where Eq. 11 is smallest.

    Along d the loss is log(1 + e^{−d}) + γc|d|: decreasing for d < 0, with slope −1/(1+e^d) + γc for
    d > 0 and subgradient [−1/2 − γc, −1/2 + γc] at 0. Hence d* = log(1/(γc) − 1) when γc < 1/2 and d* = 0
    otherwise: log(2/γ − 1) for γ < 1 under ``"equation"``, log(2√2/γ − 1) for γ < √2 under ``"code"``.
    γ = 0 gives +inf (cross entropy alone has no minimum). Accepts a float or an array of γ.
    """
    _check_scaling(scaling)
    g = np.asarray(gamma, dtype=np.float64)
    if not np.all(np.isfinite(g) & (g >= 0)):
        raise ParameterError(f"gamma={gamma!r} is not allowed; use finite numbers >= 0")
    gc = g * SD_COEFFICIENT[scaling]
    with np.errstate(divide="ignore"):
        d = np.where(gc < 0.5, np.log(np.where(gc < 0.5, 1.0 / gc - 1.0, 1.0)), 0.0)
    return float(d) if d.ndim == 0 else d
