"""The standard-deviation (SD) loss of §6.2 (Eq. 10) and the ℓ2 penalty of the §6.1 strawman.

SD loss adds γ times the standard deviation of each sample's logits to the cross entropy. Two scalings:

- ``"equation"``: Eq. 10 as printed, the batch mean of CE + γ · population std of the sample's logits.
- ``"code"``: what the released code computes and what the paper's γ grids were run with,
  ``CE.mean() + γ · Σ_i std_unbiased(logits_i) / (B·C)``; with C classes this is roughly Eq. 10 with γ/C.

:data:`DEFAULT_SCALING` is ``"code"`` everywhere in the library: every γ the paper reports (1…20 on CIFAR-10,
50…250 on CIFAR-100, 0.01…1.5 on DistilBERT) was run with it, so a γ taken from the paper means what the paper
meant. The two are the same loss with γ rescaled: :func:`equation_gamma` converts a code-scaled γ to Eq. 10's
units, γ_Eq10 = γ_code·√(C/(C − 1))/C (about 0.105·γ for C = 10 and 0.010·γ for C = 100, which is why the
paper's CIFAR-100 grid is ten times larger than its CIFAR-10 grid), and :func:`code_gamma` converts back.
The toy classifier's chapter (§6.2) passes ``"equation"`` explicitly, because the paper's analysis of
Eq. 11 and its thresholds (γ < 1) are stated for Eq. 10 as printed.

At zero spread (all logits of a sample equal, e.g. constant initial weights in the toy classifier of
Eq. 11) the square root has an infinite derivative and ``torch.std`` back-propagates NaN. Here the square
root is only taken where the variance is positive and the std is exactly 0 elsewhere, so the value is
exact everywhere and the gradient at zero spread is 0 (a valid subgradient: the std is Lipschitz with a
kink there, like |x| at 0). Away from zero spread the gradient is the exact one.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .params import trainable_parameters
from .validation import ParameterError, check_choice, check_int, check_number

__all__ = ["DEFAULT_SCALING", "SCALINGS", "LossFn", "SDLoss", "batch_loss", "check_scaling", "code_gamma",
           "equation_gamma", "l2_penalty", "logit_std", "make_loss", "safe_sqrt", "sd_loss"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SCALINGS = ("code", "equation")
DEFAULT_SCALING = "code"  # the scaling of the paper's γ grids (see the module docstring)


def safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """sqrt(x) for x ≥ 0 whose gradient at x = 0 is 0 instead of inf/NaN (value unchanged)."""
    positive = x > 0
    safe = torch.where(positive, x, torch.ones_like(x))
    return torch.where(positive, safe.sqrt(), torch.zeros_like(x))


def logit_std(logits: torch.Tensor, *, unbiased: bool = False) -> torch.Tensor:
    """Per-sample std of the logits (B, C) → (B,): population (÷C) or unbiased (÷(C−1)).

    Finite value and gradient at zero spread (see :func:`safe_sqrt`).
    """
    _check_logits(logits)
    centred = logits - logits.mean(dim=1, keepdim=True)
    denom = logits.shape[1] - 1 if unbiased else logits.shape[1]
    return safe_sqrt(centred.pow(2).sum(dim=1) / denom)


def _check_logits(logits: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ParameterError(f"logits must be a tensor of shape (batch, classes); got {shape}")
    if logits.shape[1] < 2:
        raise ParameterError(f"logits must have at least 2 classes; got {logits.shape[1]}")
    if logits.shape[0] == 0:
        raise ParameterError("logits must hold at least one sample; the mean over an empty batch is not defined")


def check_scaling(scaling: str) -> str:
    """``scaling`` must be one of :data:`SCALINGS`; returns it."""
    return check_choice("scaling", scaling, SCALINGS)


def _gamma_factor(num_classes: int) -> float:
    """γ_Eq10 / γ_code for C classes: the code divides an unbiased std (÷(C − 1) inside the root) by C."""
    c = check_int("num_classes", num_classes, 2)
    return math.sqrt(c / (c - 1)) / c


def equation_gamma(gamma: float, num_classes: int) -> float:
    """The γ of Eq. 10 as printed (``scaling="equation"``) that gives the same loss as ``gamma`` in the released
    code's scaling (``scaling="code"``) with ``num_classes`` classes: γ·√(C/(C − 1))/C.

    For C = 10 that is about 0.105·γ, so the paper's γ = 20 on CIFAR-10 is about 2.1 in Eq. 10's units;
    for C = 100 about 0.010·γ.
    """
    return check_number("gamma", gamma, inclusive=True) * _gamma_factor(num_classes)


def code_gamma(gamma: float, num_classes: int) -> float:
    """The inverse of :func:`equation_gamma`: the code-scaled γ equal to Eq. 10's ``gamma``."""
    return check_number("gamma", gamma, inclusive=True) / _gamma_factor(num_classes)


def sd_loss(logits: torch.Tensor, targets: torch.Tensor, gamma: float, *,
            scaling: str = DEFAULT_SCALING) -> torch.Tensor:
    """SD loss (Eq. 10) of a batch, a scalar tensor.

    ``scaling="equation"``: mean over the batch of CE_i + γ · std_pop(logits_i) (Eq. 10 as printed).
    ``scaling="code"``: CE.mean() + γ · Σ_i std_unbiased(logits_i) / (B·C) (the released code, the scaling
    of the paper's γ grids). ``targets`` are class indices (or class probabilities, as for
    ``F.cross_entropy``). ``gamma = 0`` gives plain cross entropy.
    """
    gamma = check_number("gamma", gamma, inclusive=True)
    check_scaling(scaling)
    _check_logits(logits)
    ce = F.cross_entropy(logits, targets)
    if scaling == "equation":
        return ce + gamma * logit_std(logits).mean()
    num_classes = logits.shape[1]
    return ce + gamma * logit_std(logits, unbiased=True).mean() / num_classes


class SDLoss(nn.Module):
    """:func:`sd_loss` as a criterion ``loss(logits, targets)`` (for training loops and σ)."""

    def __init__(self, gamma: float, *, scaling: str = DEFAULT_SCALING) -> None:
        super().__init__()
        self.gamma = check_number("gamma", gamma, inclusive=True)
        self.scaling = check_scaling(scaling)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return sd_loss(logits, targets, self.gamma, scaling=self.scaling)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, scaling={self.scaling!r}"


def l2_penalty(model: nn.Module, lam: float) -> torch.Tensor:
    """λ·‖w‖₂ over the trainable parameters (the §6.1 strawman; the norm itself, not its square).

    Add it to the cross entropy. Differentiable everywhere, with gradient 0 at w = 0.
    """
    lam = check_number("lam", lam, inclusive=True)
    params = trainable_parameters(model)
    squared = torch.stack([p.pow(2).sum() for p in params]).sum()
    return lam * safe_sqrt(squared)


def batch_loss(loss_fn: LossFn, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``loss_fn(logits, targets)``, which must be a scalar (the mean loss of the batch, as SGD uses it)."""
    loss = loss_fn(logits, targets)
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ParameterError(f"loss_fn must return a scalar; it returned shape {shape}")
    return loss


def make_loss(gamma: float = 0.0, scaling: str = DEFAULT_SCALING) -> LossFn:
    """The training loss ``loss(logits, targets)``: cross entropy for γ = 0, else the SD loss (Eq. 10)."""
    check_scaling(scaling)
    gamma = check_number("gamma", gamma, inclusive=True)
    if gamma == 0:
        return F.cross_entropy
    return SDLoss(gamma, scaling=scaling)
