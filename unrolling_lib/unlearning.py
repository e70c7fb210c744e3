"""Approximate unlearning: single-gradient unlearning (§5.1, §8.3).

Expanding SGD around the initial weights w₀ (Eq. 4) splits the final weights into a sum of gradients all
taken at w₀, one per step, plus order-dependent Hessian terms (Eq. 5–6). The first sum is easy to undo:
a batch x̂ that was used m times contributed −η·m·∇L(w₀; x̂) to it, so adding that back,

    w″ = w_t + η · m · ∇L(w₀; x̂),

unlearns it up to the second sum, whose size the unlearning error (Eq. 9) estimates. ∇L is the gradient of
the *mean* loss over the batch, as in the SGD step that used it. To unlearn one sample x* of a batch of
size b, pass that sample alone and ``lr = η/b`` (its share of the batch mean).

The printed §8.3 formula takes the gradient at the final weights w_{N+t}; the theory (and the released
verification code) takes it at w₀. ``unlearn_at="initial"`` (default) follows the theory, ``unlearn_at="final"`` the
printed formula.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from .losses import LossFn, batch_loss
from .params import Weights, module_mode, named_trainable, trainable_parameters, trainable_weights, unflatten
from .validation import ParameterError, check_bool, check_choice, check_int, check_number

__all__ = ["UNLEARN_AT", "UpdateRecorder", "amnesiac_unlearn", "batch_gradient", "single_gradient_unlearn"]

UNLEARN_AT = ("initial", "final")  # where the unlearning gradient is taken: w₀ (the theory) or w_t (§8.3 printed)


def batch_gradient(model: nn.Module, loss_fn: LossFn, inputs: torch.Tensor, targets: torch.Tensor, *,
                   train_mode: bool = True, weights: Mapping[str, torch.Tensor] | None = None) -> list[torch.Tensor]:
    """∇ of ``loss_fn(model(inputs), targets)`` for each trainable parameter (zeros where unused), at the
    model's own weights or at ``weights`` (``{name: tensor}`` for every trainable parameter, as
    :func:`~unrolling_lib.params.trainable_weights` gives).

    Nothing about ``model`` changes: the forward pass is ``torch.func.functional_call`` on detached weights and
    on copies of the buffers (BatchNorm statistics), so neither ``.grad`` nor the running statistics move, and no
    copy of the module is made. ``train_mode=True`` evaluates the loss as an SGD step does (BatchNorm on batch
    statistics).
    """
    named = named_trainable(model)
    at = {n: (p if weights is None else weights[n]).detach().requires_grad_(True) for n, p in named}
    state = {n: b.clone() for n, b in model.named_buffers()}
    state.update({n: p.detach() for n, p in model.named_parameters() if not p.requires_grad})
    with module_mode(model, train=train_mode):
        out = functional_call(model, {**state, **at}, (inputs,))
    grads = torch.autograd.grad(batch_loss(loss_fn, out, targets), list(at.values()), allow_unused=True)
    return [g if g is not None else torch.zeros_like(p) for g, (_, p) in zip(grads, named, strict=True)]


def single_gradient_unlearn(
    model_t: nn.Module,
    model_0_or_params: Weights,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    lr: float,
    times_used: int = 1,
    unlearn_at: str = "initial",
    train_mode: bool = True,
) -> nn.Module:
    """Single-gradient unlearning (§5.1): a new model with w″ = w_t + η·m·∇L(w; x̂).

    ``model_t``: the trained model (weights w_t); it is not modified. ``model_0_or_params``: the initial
    weights w₀ as a model of the same architecture, a state dict, or a flat tensor in
    ``model.parameters()`` order (only used when ``unlearn_at="initial"``). ``inputs``, ``targets``: the batch x̂
    to unlearn. ``lr``: the SGD learning rate η. ``times_used``: m, how often the batch was used (e.g.
    once per epoch). ``unlearn_at``: where the gradient is taken, ``"initial"`` (w₀, the theory's choice) or
    ``"final"`` (w_t, the §8.3 formula as printed). ``train_mode``: evaluate the loss as the training step
    did (BatchNorm on batch statistics) rather than in eval mode.

    Returns a deep copy of ``model_t`` whose trainable parameters are w″; its buffers (BatchNorm running
    statistics) are those of ``model_t``. Compare it with a retrained model with
    ``metrics.verification_error``.
    """
    lr = check_number("lr", lr)
    times_used = check_int("times_used", times_used, 0)
    check_choice("unlearn_at", unlearn_at, UNLEARN_AT)
    named_trainable(model_t, name="model_t")
    check_bool("train_mode", train_mode)
    at = (trainable_weights(model_t, model_0_or_params, name="model_0_or_params") if unlearn_at == "initial"
          else None)
    grads = batch_gradient(model_t, loss_fn, inputs, targets, train_mode=train_mode, weights=at)
    unlearned = copy.deepcopy(model_t)
    with torch.no_grad():
        for p, g in zip(trainable_parameters(unlearned), grads, strict=True):
            p.add_(g.to(p.dtype), alpha=lr * times_used)
    return unlearned


# ---------------------------------------------------------------------------------------------------
# Amnesiac unlearning (Graves et al.)
# ---------------------------------------------------------------------------------------------------
#
# Amnesiac unlearning keeps, during training, the update each step applied, w_{s+1} − w_s, for the steps
# whose batch held data that may later be deleted, and unlearns by subtracting those updates from the final
# weights. What is subtracted is the update as applied (a difference of weights), not the gradient taken
# after the step: with plain SGD the two differ by where the gradient is evaluated, with other optimisers
# by much more.

class UpdateRecorder:
    """A training callback that records w_{s+1} − w_s at the steps whose batch contains any of ``samples``.

    ``samples``: sample positions (of the data the order indexes) that may be unlearned later; or ``steps``:
    step indices of the order to record whatever their batch. ``to_cpu``: keep the recorded updates in CPU
    memory (a ResNet-18 update is 45 MB). Pass it in ``callbacks`` of :func:`unrolling_lib.training.train`;
    in a loop of your own, call :meth:`record` with ``[p_after − p_before for each trainable parameter]``.
    ``updates`` maps each recorded step to its update (one tensor per trainable parameter, in
    ``model.parameters()`` order).
    """

    every = None  # called only for the steps it asks about (see wants_update)

    def __init__(self, samples: Sequence[int] | np.ndarray | int | None = None, *,
                 steps: Sequence[int] | None = None, to_cpu: bool = False) -> None:
        if (samples is None) == (steps is None):
            raise ParameterError("give samples= (positions whose steps to record) or steps= (step indices), "
                                 "exactly one of them")
        self.samples = None if samples is None else np.unique(np.asarray(samples, dtype=np.int64).reshape(-1))
        self.steps = None if steps is None else frozenset(int(s) for s in steps)
        self.to_cpu = bool(to_cpu)
        self.updates: dict[int, list[torch.Tensor]] = {}

    def wants_update(self, step: int, indices: np.ndarray) -> bool:
        """Whether the update of ``step`` (whose batch is ``indices``) is to be recorded."""
        if self.steps is not None:
            return step in self.steps
        return bool(np.isin(np.asarray(indices), self.samples).any())

    def on_step(self, state: Any) -> None:
        if state.update is not None and self.wants_update(state.step, state.indices):
            self.record(state.step, state.update)

    def record(self, step: int, update: Sequence[torch.Tensor]) -> None:
        """Keep ``update`` (w_{s+1} − w_s per trainable parameter) as the update of step ``step``."""
        kept = [u.detach().to("cpu") if self.to_cpu else u.detach().clone() for u in update]
        self.updates[int(step)] = kept

    def __len__(self) -> int:
        return len(self.updates)


Updates = UpdateRecorder | Mapping[int, Sequence[torch.Tensor]] | Sequence[Sequence[torch.Tensor]]


def _update_list(updates: Updates) -> list[Sequence[torch.Tensor]]:
    if isinstance(updates, UpdateRecorder):
        return list(updates.updates.values())
    if isinstance(updates, Mapping):
        return list(updates.values())
    if isinstance(updates, Sequence):
        return list(updates)
    raise ParameterError(f"updates must be an UpdateRecorder, a mapping step → update or a list of updates; "
                         f"got {type(updates).__name__}")


def amnesiac_unlearn(model_t: nn.Module, updates: Updates, *, inplace: bool = False) -> nn.Module:
    """Amnesiac unlearning (Graves et al.): w = w_t − Σ_s (w_{s+1} − w_s) over the recorded steps s.

    ``model_t``: the trained model. ``updates``: an :class:`UpdateRecorder` filled during training, or the
    updates themselves (each a list of tensors, one per trainable parameter in ``model.parameters()`` order,
    or one flat tensor). Returns a deep copy of ``model_t`` with the updates removed (``model_t`` itself
    with ``inplace=True``); BatchNorm statistics are left as they are. Unlearning the only step of a
    one-step run returns w₀ up to float rounding.
    """
    unlearned = model_t if inplace else copy.deepcopy(model_t)
    params = trainable_parameters(unlearned, name="model_t")
    total = sum(p.numel() for p in params)
    with torch.no_grad():
        for i, update in enumerate(_update_list(updates)):
            if isinstance(update, torch.Tensor):
                if update.numel() != total:
                    raise ParameterError(f"updates[{i}] must hold {total} weights; got {update.numel()}")
                pieces = unflatten(update.reshape(-1), params, name=f"updates[{i}]")
            else:
                pieces = list(update)
                if len(pieces) != len(params) or any(u.shape != p.shape for u, p in zip(pieces, params, strict=True)):
                    raise ParameterError(f"updates[{i}] must have one tensor per trainable parameter, "
                                         "shaped like it")
            for p, u in zip(params, pieces, strict=True):
                p.sub_(u.to(device=p.device, dtype=p.dtype))
    return unlearned
