"""Plain SGD over an explicit batch order, with callbacks; lockstep training of M and the retrained M′.

The analysis of §5 unrolls plain SGD, w_{s+1} = w_s − η ∇L(w_s; x̂_s), over a fixed sequence of batches
(the ordering *I* of §4.1). By default this module runs exactly that: no momentum, no weight decay, no
learning-rate schedule, no augmentation. The batches come from a :class:`~unrolling_lib.data.BatchOrder`, so
a run can be replayed, and the naively retrained model of §8.3 is the same run on ``order.without(i)``.

The released set-up
    The paper's released verification code fine-tuned with momentum 0.9 and weight decay 5e-4, and its
    retrained M′ never saw the forgotten batch: the batch opened every epoch and M′ skipped it each time.
    The ``momentum`` and ``weight_decay`` arguments (0 by default: plain SGD, bit for bit) and a list of
    steps for ``train_lockstep(unlearn_step=…)`` exist to reproduce that set-up and show what it changes;
    the analysis assumes none of it. The update is then PyTorch's ``torch.optim.SGD`` (dampening 0, no
    Nesterov): d = ∇L(w) + λw; b = d at a model's first step, else b = μb + d; w ← w − ηb. Each model keeps
    its own momentum buffer b, and a step that M′ skips leaves its buffer as it was.

Functions
    :func:`train` — one model over one order. Returns a :class:`TrainResult` (the model, trained in place,
    and the loss of every step).
    :func:`train_lockstep` — M over the order and M′ over the same order with one step (or several)
    skipped, side by side from the same w₀. Every callback sees both models after the same step, so the
    verification error ‖w′ − w″‖ can be measured at any t without storing checkpoints. M′ is bit for bit
    what ``train(copy_of_w0, data, order.without(unlearn_step))`` gives on a CPU: each model goes through
    the same sequence of operations as it would alone.
    :func:`noise_floor` — train two copies of w₀ on the same order and report their distance: the size of
    ‖w′ − w″‖ that non-deterministic kernels alone produce (0 on a CPU, not on a GPU).

Callbacks
    See :mod:`unrolling_lib.training.callbacks` (the protocol and the :class:`StepState` they receive).

Progress
    ``progress=True`` shows a tqdm bar; tqdm's own ``TQDM_DISABLE=1`` environment variable, read at every run,
    turns every bar off (the book's set-up sets it while the static pages are built: a static page cannot
    animate a bar).

Divergence
    A step whose loss is not finite (or exceeds ``max_loss``) is not applied. The run stops there, with a
    message that names the step, the learning rate, the loss's setting (γ, scaling) and the momentum and
    weight decay where they are not 0; the weights are those before that step and the losses up to it are
    kept. ``on_divergence="stop"`` (default) warns and returns the partial result with ``diverged=True``;
    ``"raise"`` raises :class:`TrainingDiverged`, which carries the same partial result as ``.result``.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..data import BatchOrder, TensorData, batch_tensors
from ..losses import DEFAULT_SCALING, LossFn, make_loss
from ..params import module_mode, trainable_parameters, weight_distance
from ..validation import ParameterError, check_choice, check_instance, check_number
from .callbacks import StepState, as_callbacks
from .runtime import bars_wanted, deterministic_mode

__all__ = ["DIVERGENCE_MODES", "LockstepResult", "TrainResult", "TrainingDiverged", "noise_floor", "train",
           "train_lockstep"]

DIVERGENCE_MODES = ("stop", "raise")



@dataclass
class TrainResult:
    """What :func:`train` returns. ``model`` was trained in place; ``losses[s]`` is the loss of step s;
    ``steps`` is the number of steps applied; ``diverged``/``message`` say whether and why it stopped early."""

    model: nn.Module
    losses: np.ndarray
    steps: int
    diverged: bool = False
    message: str | None = None
    seconds: float = 0.0


@dataclass
class LockstepResult:
    """What :func:`train_lockstep` returns: M (``model``) trained on the whole order and M′ (``retrained``)
    on the order without the steps ``unlearn_steps`` (the unlearned batch's steps, ascending), both in place.
    ``unlearn_step`` is the step given, or the first of several. ``losses`` and ``retrained_losses`` are per
    step of the order (``nan`` where M′ skipped); ``steps`` counts the order's steps done."""

    model: nn.Module
    retrained: nn.Module
    unlearn_step: int
    losses: np.ndarray
    retrained_losses: np.ndarray
    steps: int
    diverged: bool = False
    message: str | None = None
    seconds: float = 0.0
    unlearn_steps: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.unlearn_steps:
            self.unlearn_steps = (self.unlearn_step,)


class TrainingDiverged(RuntimeError):
    """The loss became non-finite or exceeded ``max_loss``. ``.result`` holds everything computed until
    then (a :class:`TrainResult` or :class:`LockstepResult`)."""

    def __init__(self, message: str, result: TrainResult | LockstepResult) -> None:
        super().__init__(message)
        self.result = result



def _check_common(data: Any, order: Any, on_divergence: str, max_loss: Any) -> None:
    if not isinstance(data, TensorData) and not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise ParameterError(f"data must be a TensorData or an (x, y) pair of tensors; got {type(data).__name__}")
    check_instance("order", order, BatchOrder)
    n = len(data) if isinstance(data, TensorData) else int(data[1].shape[0])
    if order.n > n:
        raise ParameterError(f"order indexes {order.n} samples but data has {n}; build the order for this data")
    check_choice("on_divergence", on_divergence, DIVERGENCE_MODES)
    if max_loss is not None:
        check_number("max_loss", max_loss)


def _check_optimiser(momentum: Any, weight_decay: Any) -> tuple[float, float]:
    momentum = check_number("momentum", momentum, low=0.0, inclusive=True, high=1.0)
    weight_decay = check_number("weight_decay", weight_decay, low=0.0, inclusive=True)
    return momentum, weight_decay


def _check_unlearn_steps(order: BatchOrder, unlearn_step: Any) -> tuple[int, ...]:
    """``unlearn_step`` (one step, or a non-empty list of distinct ones) as ascending steps in [0, len)."""
    if not isinstance(unlearn_step, (list, tuple, range, np.ndarray)):
        return (order.check_step("unlearn_step", unlearn_step),)
    if isinstance(unlearn_step, np.ndarray):
        unlearn_step = unlearn_step.reshape(-1).tolist()
    given = list(unlearn_step)
    if not given:
        raise ParameterError("unlearn_step=[] is not allowed; give a step or a non-empty list of distinct steps")
    steps = [order.check_step(f"unlearn_step[{i}]", step) for i, step in enumerate(given)]
    if len(set(steps)) != len(steps):
        raise ParameterError(f"unlearn_step={given!r} is not allowed; give distinct steps (negative ones count "
                             "from the end)")
    return tuple(sorted(steps))


def _device_of(model: nn.Module, device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return next(model.parameters()).device


def _setting(lr: float, gamma: float | None, scaling: str | None, loss_fn: LossFn | None, momentum: float = 0.0,
             weight_decay: float = 0.0) -> str:
    extra = f", momentum={momentum:g}" if momentum else ""
    extra += f", weight_decay={weight_decay:g}" if weight_decay else ""
    if loss_fn is not None:
        name = repr(loss_fn) if isinstance(loss_fn, nn.Module) else getattr(loss_fn, "__name__", None)
        return f"lr={lr:g}, loss_fn={name or type(loss_fn).__name__}{extra}"
    return f"lr={lr:g}, gamma={gamma:g}, scaling={scaling!r}{extra}"



# ---------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------


@contextmanager
def _train_mode(models: Sequence[nn.Module]) -> Iterator[None]:
    """Models in train mode (BatchNorm on batch statistics); each submodule's own flag restored after."""
    with ExitStack() as stack:
        for model in models:
            stack.enter_context(module_mode(model, train=True))
        yield


def _diverged(value: float, max_loss: float | None) -> bool:
    return not math.isfinite(value) or (max_loss is not None and value > max_loss)


def _apply_sgd(loss: torch.Tensor, params: list[nn.Parameter], lr: float) -> None:
    """The plain SGD update w ← w − η ∇L(w; batch) for a loss computed at w."""
    grads = torch.autograd.grad(loss, params)
    with torch.no_grad():
        torch._foreach_add_(params, grads, alpha=-lr)


class _Update:
    """One model's update rule and its state: plain SGD (:func:`_apply_sgd`) when μ = λ = 0, else PyTorch's
    SGD with momentum μ and weight decay λ, in the order of operations of ``torch.optim.SGD``'s multi-tensor
    path: d = ∇L + λw; b = d (a copy) at the first step this model takes, else b ← μb + d; w ← w − ηb."""

    def __init__(self, params: list[nn.Parameter], lr: float, momentum: float, weight_decay: float) -> None:
        self.params, self.lr, self.momentum, self.weight_decay = params, lr, momentum, weight_decay
        self.buffer: list[torch.Tensor] | None = None  # b, one tensor per parameter

    def step(self, loss: torch.Tensor) -> None:
        if self.momentum == 0.0 and self.weight_decay == 0.0:
            _apply_sgd(loss, self.params, self.lr)
            return
        grads = torch.autograd.grad(loss, self.params)
        with torch.no_grad():
            if self.weight_decay != 0.0:
                grads = torch._foreach_add(grads, self.params, alpha=self.weight_decay)
            if self.momentum != 0.0:
                if self.buffer is None:
                    self.buffer = [d.detach().clone() for d in grads]
                else:
                    torch._foreach_mul_(self.buffer, self.momentum)
                    torch._foreach_add_(self.buffer, grads)
                grads = self.buffer
            torch._foreach_add_(self.params, grads, alpha=-self.lr)


def _run(models: list[nn.Module], skips: list[frozenset[int]], data: TensorData | tuple, order: BatchOrder, *,
         lr: float, momentum: float, weight_decay: float, loss_fn: LossFn, setting: str, callbacks: list[Any],
         device: torch.device, progress: bool, max_loss: float | None,
         desc: str) -> tuple[list[list[float]], int, str | None]:
    """Train every model over ``order`` side by side; model k skips the steps in ``skips[k]``.

    Returns the per-step losses of each model (nan where skipped), the steps done and a divergence message.
    """
    params = [trainable_parameters(m) for m in models]
    updates = [_Update(p, lr, momentum, weight_decay) for p in params]
    names = ["M", "M′"]
    losses: list[list[float]] = [[] for _ in models]
    total, done, message = len(order), 0, None
    state: StepState | None = None
    for cb in callbacks:
        if hasattr(cb, "on_start"):
            cb.on_start(models[0])
    bar = tqdm(total=total, desc=desc, leave=False, mininterval=0.5, disable=not bars_wanted(progress))
    with _train_mode(models), bar:
        for step, indices in enumerate(order):
            x, y = batch_tensors(data, indices, device)
            # Every model's loss first: if one diverges, no model takes this step.
            step_losses = [None if step in skips[k] else loss_fn(model(x), y) for k, model in enumerate(models)]
            values = [math.nan if loss is None else float(loss.detach()) for loss in step_losses]
            bad = [k for k, loss in enumerate(step_losses) if loss is not None and _diverged(values[k], max_loss)]
            if bad:
                k, value = bad[0], values[bad[0]]
                what = "not finite" if not math.isfinite(value) else f"above max_loss={max_loss:g}"
                who = f" of {names[k]}" if len(models) > 1 else ""
                message = (f"{desc}: training diverged at step {step} (t={step + 1} of {total}): the loss{who} is "
                           f"{value:.4g}, {what} ({setting}); stopped before applying it, the weights and losses "
                           f"of the {done} steps before are kept")
                break
            asks = [cb for cb in callbacks if hasattr(cb, "wants_update") and cb.wants_update(step, indices)]
            before = [p.detach().clone() for p in params[0]] if asks else None
            for k, loss in enumerate(step_losses):
                if loss is not None:
                    updates[k].step(loss)
            del step_losses
            for k in range(len(models)):
                losses[k].append(values[k])
            done = step + 1
            update = [p.detach() - b for p, b in zip(params[0], before, strict=True)] if asks else None
            state = StepState(step=step, t=done, total=total, model=models[0], indices=indices, loss=values[0],
                              lr=lr, update=update, retrained=models[1] if len(models) > 1 else None)
            for cb in callbacks:
                every = getattr(cb, "every", 1)
                if cb in asks or (every is not None and done % every == 0):
                    cb.on_step(state)
            bar.update(1)
            if done % 50 == 0 or done == total:
                bar.set_postfix(loss=f"{values[0]:.4f}", refresh=False)
    for cb in callbacks:
        if hasattr(cb, "on_end"):
            cb.on_end(state)
    return losses, done, message


def _finish(result: TrainResult | LockstepResult, message: str | None, on_divergence: str) -> Any:
    if message is None:
        return result
    if on_divergence == "raise":
        raise TrainingDiverged(message, result)
    warnings.warn(message, RuntimeWarning, stacklevel=3)
    return result


def train(
    model: nn.Module,
    data: TensorData | tuple[torch.Tensor, torch.Tensor],
    order: BatchOrder,
    *,
    lr: float,
    gamma: float = 0.0,
    scaling: str = DEFAULT_SCALING,
    loss_fn: LossFn | None = None,
    callbacks: Sequence[Any] | Any | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    deterministic: bool = False,
    seed: int | None = None,
    on_divergence: str = "stop",
    max_loss: float | None = 1e6,
    desc: str = "SGD",
    momentum: float = 0.0,
    weight_decay: float = 0.0,
) -> TrainResult:
    """Plain SGD on ``model`` (in place) over the batches of ``order``: w_{s+1} = w_s − η ∇L(w_s; x̂_s) (§5.1).

    The loss is ``loss_fn(logits, targets)`` if given, else :func:`make_loss` of ``gamma`` and ``scaling``
    (cross entropy for γ = 0, the SD loss of Eq. 10 otherwise). Batches are taken from ``data`` and moved to
    ``device`` (default: where the model is). The model is in train mode during training (BatchNorm uses
    batch statistics) and its modes are restored afterwards. ``callbacks``: see the module docstring.
    ``deterministic=True`` runs inside :func:`deterministic_mode` (with ``seed``). ``progress`` shows a tqdm
    bar (never while the book is built: a static page cannot animate it). Divergence (a non-finite loss or
    one above ``max_loss``): see the module docstring.

    ``momentum`` μ ∈ [0, 1) and ``weight_decay`` λ ≥ 0 turn the update into ``torch.optim.SGD``'s with
    those values (dampening 0, no Nesterov), as in the released verification code (μ = 0.9, λ = 5e-4); the
    defaults (0, 0) are the plain SGD above, bit for bit. ``state.update`` is the update applied either way.
    """
    lr = check_number("lr", lr)
    momentum, weight_decay = _check_optimiser(momentum, weight_decay)
    _check_common(data, order, on_divergence, max_loss)
    trainable_parameters(model)
    losses, done, message, seconds = _train_models(
        [model], [frozenset()], data, order, lr=lr, momentum=momentum, weight_decay=weight_decay, gamma=gamma,
        scaling=scaling, loss_fn=loss_fn, callbacks=callbacks, device=device, progress=progress,
        deterministic=deterministic, seed=seed, max_loss=max_loss, desc=desc)
    result = TrainResult(model=model, losses=losses[0], steps=done, diverged=message is not None, message=message,
                         seconds=seconds)
    return _finish(result, message, on_divergence)


def _train_models(models: list[nn.Module], skips: list[frozenset[int]], data: Any, order: BatchOrder, *,
                  lr: float, momentum: float, weight_decay: float, gamma: float, scaling: str,
                  loss_fn: LossFn | None, callbacks: Any, device: Any, progress: bool, deterministic: bool,
                  seed: int | None, max_loss: float | None,
                  desc: str) -> tuple[list[np.ndarray], int, str | None, float]:
    """What :func:`train` and :func:`train_lockstep` share: the loss, the callbacks, the deterministic mode and
    the loop itself. Returns each model's losses, the steps done, the divergence message and the seconds."""
    setting = _setting(lr, gamma, scaling, loss_fn, momentum, weight_decay)
    loss_fn = loss_fn if loss_fn is not None else make_loss(gamma, scaling)
    start = time.perf_counter()
    with deterministic_mode(seed) if deterministic else nullcontext():
        losses, done, message = _run(models, skips, data, order, lr=lr, momentum=momentum,
                                     weight_decay=weight_decay, loss_fn=loss_fn, setting=setting,
                                     callbacks=as_callbacks(callbacks), device=_device_of(models[0], device),
                                     progress=progress, max_loss=max_loss, desc=desc)
    arrays = [np.asarray(loss, dtype=np.float64) for loss in losses]
    return arrays, done, message, time.perf_counter() - start


def train_lockstep(
    model: nn.Module,
    data: TensorData | tuple[torch.Tensor, torch.Tensor],
    order: BatchOrder,
    *,
    unlearn_step: int | Sequence[int],
    lr: float,
    gamma: float = 0.0,
    scaling: str = DEFAULT_SCALING,
    loss_fn: LossFn | None = None,
    retrained: nn.Module | None = None,
    callbacks: Sequence[Any] | Any | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    deterministic: bool = False,
    seed: int | None = None,
    on_divergence: str = "stop",
    max_loss: float | None = 1e6,
    desc: str = "SGD (M, M′)",
    momentum: float = 0.0,
    weight_decay: float = 0.0,
) -> LockstepResult:
    """Train M (``model``) on ``order`` and the naively retrained M′ on ``order.without(unlearn_step)`` side by side,
    both from the weights ``model`` holds now (§8.3).

    M′ is a deep copy of ``model`` made before the first step, unless ``retrained`` (a model holding the same
    w₀) is given. At every step both models take the same batch, except at step ``unlearn_step`` where M′ takes
    none; callbacks see both after each step (``state.model`` and ``state.retrained``), so v = ‖w′ − w″‖ can
    be measured along the way. Each model's own sequence of operations is the one it would have alone, so on
    a CPU M′ equals ``train(w₀, data, order.without(unlearn_step))`` bit for bit. Other arguments as in :func:`train`.

    ``unlearn_step`` may also be a non-empty list of distinct steps, all of which M′ skips: the released
    verification code's M′, which never sees the forgotten batch in any epoch, is
    ``unlearn_step=order.steps_of(batch)``. With ``momentum``/``weight_decay``, M′ has its own momentum
    buffer, left untouched at the steps it skips, so it still equals ``train(w₀, data,
    order.without(steps), momentum=…, weight_decay=…)`` bit for bit on a CPU.
    """
    lr = check_number("lr", lr)
    momentum, weight_decay = _check_optimiser(momentum, weight_decay)
    _check_common(data, order, on_divergence, max_loss)
    unlearn_steps = _check_unlearn_steps(order, unlearn_step)
    unlearn_step = unlearn_steps[0]  # the step itself when one was given
    trainable_parameters(model)
    if retrained is None:
        retrained = copy.deepcopy(model)
    elif retrained is model:
        raise ParameterError("retrained must be a separate model holding w₀, not the model itself")
    losses, done, message, seconds = _train_models(
        [model, retrained], [frozenset(), frozenset(unlearn_steps)], data, order, lr=lr, momentum=momentum,
        weight_decay=weight_decay, gamma=gamma, scaling=scaling, loss_fn=loss_fn, callbacks=callbacks,
        device=device, progress=progress, deterministic=deterministic, seed=seed, max_loss=max_loss, desc=desc)
    result = LockstepResult(model=model, retrained=retrained, unlearn_step=unlearn_step, losses=losses[0],
                            retrained_losses=losses[1], steps=done, diverged=message is not None, message=message,
                            seconds=seconds, unlearn_steps=unlearn_steps)
    return _finish(result, message, on_divergence)


def noise_floor(
    model: nn.Module,
    data: TensorData | tuple[torch.Tensor, torch.Tensor],
    order: BatchOrder,
    *,
    lr: float,
    gamma: float = 0.0,
    scaling: str = DEFAULT_SCALING,
    loss_fn: LossFn | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
    deterministic: bool = False,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
) -> float:
    """‖w_a − w_b‖₂ after training two copies of ``model`` (left untouched) on the same ``order``.

    The distance that retraining alone produces: 0.0 on a CPU; on a GPU, non-deterministic kernels (atomic
    additions in convolutions' backward passes, for instance) make it positive. Report a verification error
    beside it: §8.3's v is only meaningful above this floor. ``momentum`` and ``weight_decay`` as in
    :func:`train`.
    """
    kwargs = dict(lr=lr, gamma=gamma, scaling=scaling, loss_fn=loss_fn, device=device, progress=progress,
                  deterministic=deterministic, on_divergence="raise", momentum=momentum, weight_decay=weight_decay)
    a = train(copy.deepcopy(model), data, order, **kwargs).model
    b = train(copy.deepcopy(model), data, order, **kwargs).model
    return weight_distance(a, b)

