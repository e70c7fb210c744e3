"""The standard-deviation (SD) loss of §6.2 (Eq. 10) and the ℓ2 penalty of the §6.1 strawman.

SD loss adds γ times the standard deviation of each sample's logits to the cross entropy. Two scalings:

- ``"equation"``: Eq. 10 as printed, the batch mean of CE + γ · population std of the sample's logits.
- ``"code"`` (default): what the released code computes and what the paper's γ grids were run with,
  ``CE.mean() + γ · Σ_i std_unbiased(logits_i) / (B·C)``; with C classes this is roughly Eq. 10 with γ/C.

At zero spread (all logits of a sample equal, e.g. constant initial weights in the toy classifier of
Eq. 11) the square root has an infinite derivative and ``torch.std`` back-propagates NaN. Here the square
root is only taken where the variance is positive and the std is exactly 0 elsewhere, so the value is
exact everywhere and the gradient at zero spread is 0 (a valid subgradient: the std is Lipschitz with a
kink there, like |x| at 0). Away from zero spread the gradient is the exact one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .profiles import ParameterError, check_number

__all__ = ["SCALINGS", "SDLoss", "l2_penalty", "logit_std", "sd_loss", "safe_sqrt"]

SCALINGS = ("code", "equation")


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


def _check_scaling(scaling: str) -> str:
    if scaling not in SCALINGS:
        raise ParameterError(f"scaling={scaling!r} is not allowed; choose one of {', '.join(map(repr, SCALINGS))}")
    return scaling


def sd_loss(logits: torch.Tensor, targets: torch.Tensor, gamma: float, *, scaling: str = "code") -> torch.Tensor:
    """SD loss (Eq. 10) of a batch, a scalar tensor.

    ``scaling="equation"``: mean over the batch of CE_i + γ · std_pop(logits_i) (Eq. 10 as printed).
    ``scaling="code"``: CE.mean() + γ · Σ_i std_unbiased(logits_i) / (B·C) (the released code, the scaling
    of the paper's γ grids). ``targets`` are class indices (or class probabilities, as for
    ``F.cross_entropy``). ``gamma = 0`` gives plain cross entropy.
    """
    gamma = check_number("gamma", gamma, inclusive=True)
    _check_scaling(scaling)
    _check_logits(logits)
    ce = F.cross_entropy(logits, targets)
    if scaling == "equation":
        return ce + gamma * logit_std(logits).mean()
    num_classes = logits.shape[1]
    return ce + gamma * logit_std(logits, unbiased=True).mean() / num_classes


class SDLoss(nn.Module):
    """:func:`sd_loss` as a criterion ``loss(logits, targets)`` (for training loops and σ)."""

    def __init__(self, gamma: float, *, scaling: str = "code") -> None:
        super().__init__()
        self.gamma = check_number("gamma", gamma, inclusive=True)
        self.scaling = _check_scaling(scaling)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return sd_loss(logits, targets, self.gamma, scaling=self.scaling)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, scaling={self.scaling!r}"


def l2_penalty(model: nn.Module, lam: float) -> torch.Tensor:
    """λ·‖w‖₂ over the trainable parameters (the §6.1 strawman; the norm itself, not its square).

    Add it to the cross entropy. Differentiable everywhere, with gradient 0 at w = 0.
    """
    ok = isinstance(lam, (int, float)) and not isinstance(lam, bool) and 0 <= float(lam) < float("inf")
    if not ok:
        raise ParameterError(f"lam={lam!r} is not allowed; use a finite number >= 0")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ParameterError("model has no trainable parameters; the penalty is taken over those")
    squared = torch.stack([p.pow(2).sum() for p in params]).sum()
    return float(lam) * safe_sqrt(squared)
