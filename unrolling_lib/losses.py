"""The standard-deviation (SD) loss of §6.2 (Eq. 10) and the ℓ2 penalty of the §6.1 strawman.

SD loss adds γ times the standard deviation of each sample's logits to the cross entropy. Two scalings:

- ``"equation"``: Eq. 10 as printed, the batch mean of CE + γ · population std of the sample's logits.
- ``"code"``: what the released code computes and what the paper's γ grids were run with,
  ``CE.mean() + γ · Σ_i std_unbiased(logits_i) / (B·C)``; with C classes this is roughly Eq. 10 with γ/C.

:data:`DEFAULT_SCALING` is ``"code"`` everywhere in the library: every γ the paper reports (1…20 on CIFAR-10,
50…250 on CIFAR-100, 0.01…1.5 on DistilBERT) was run with it, so a γ taken from the paper means what the paper
meant. The toy classifier's chapter (§6.2) passes ``"equation"`` explicitly, because the paper's analysis of
Eq. 11 and its thresholds (γ < 1) are stated for Eq. 10 as printed.

At zero spread (all logits of a sample equal, e.g. constant initial weights in the toy classifier of
Eq. 11) the square root has an infinite derivative and ``torch.std`` back-propagates NaN. Here the square
root is only taken where the variance is positive and the std is exactly 0 elsewhere, so the value is
exact everywhere and the gradient at zero spread is 0 (a valid subgradient: the std is Lipschitz with a
kink there, like |x| at 0). Away from zero spread the gradient is the exact one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .params import trainable_parameters
from .validation import ParameterError, check_choice, check_number

__all__ = ["DEFAULT_SCALING", "SCALINGS", "LossFn", "SDLoss", "batch_loss", "check_scaling", "l2_penalty",
           "logit_std", "make_loss", "safe_sqrt", "sd_loss"]

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
