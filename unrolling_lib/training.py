"""Plain SGD over an explicit batch order, with callbacks; lockstep training of M and the retrained M′.

The analysis of §5 unrolls plain SGD, w_{s+1} = w_s − η ∇L(w_s; x̂_s), over a fixed sequence of batches
(the ordering *I* of §4.1). This module runs exactly that: no momentum, no weight decay, no learning-rate
schedule, no augmentation. The batches come from a :class:`~unrolling_lib.data.BatchOrder`, so a run can be
replayed, and the naively retrained model of §8.3 is the same run on ``order.without(i)``.

Functions
    :func:`train` — one model over one order. Returns a :class:`TrainResult` (the model, trained in place,
    and the loss of every step).
    :func:`train_lockstep` — M over the order and M′ over the same order with one step skipped, side by
    side from the same w₀. Every callback sees both models after the same step, so the verification error
    ‖w′ − w″‖ can be measured at any t without storing checkpoints. M′ is bit for bit what
    ``train(copy_of_w0, data, order.without(skip))`` gives on a CPU: each model goes through the same
    sequence of operations as it would alone.
    :func:`noise_floor` — train two copies of w₀ on the same order and report their distance: the size of
    ‖w′ − w″‖ that non-deterministic kernels alone produce (0 on a CPU, not on a GPU).
    :func:`deterministic_mode` — a context manager that asks torch for deterministic kernels and seeds it.

Callbacks
    Anything with an ``on_step(state)`` method, or a plain function ``f(state)``. Optional attributes and
    methods: ``every`` (call ``on_step`` after steps t = every, 2·every, …; default 1), ``on_start(model)``
    before the first step, ``on_end(state)`` after the last, and ``wants_update(step, indices) -> bool``:
    when it returns True for a step, that step's applied update w_{s+1} − w_s is recorded in
    ``state.update`` and ``on_step`` is called for that step whatever ``every`` says. The
    :class:`StepState` a callback receives is described below.

Divergence
    A step whose loss is not finite (or exceeds ``max_loss``) is not applied. The run stops there, with a
    message that names the step, the learning rate and the loss's setting (γ, scaling); the weights are
    those before that step and the losses up to it are kept. ``on_divergence="stop"`` (default) warns and
    returns the partial result with ``diverged=True``; ``"raise"`` raises :class:`TrainingDiverged`,
    which carries the same partial result as ``.result``.
"""

from __future__ import annotations

import copy
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .data import BatchOrder, TensorData, batch_tensors
from .losses import SCALINGS, SDLoss
from .metrics import verification_error
from .models import module_mode
from .plotting import in_book_build
from .profiles import ParameterError, check_number

__all__ = [
    "Callback",
    "LockstepResult",
    "StepState",
    "TrainResult",
    "TrainingDiverged",
    "cpu_threads",
    "deterministic_mode",
    "make_loss",
    "noise_floor",
    "train",
    "train_lockstep",
]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
DIVERGENCE_MODES = ("stop", "raise")


# ---------------------------------------------------------------------------------------------------
# What callbacks see, what training returns
# ---------------------------------------------------------------------------------------------------


@dataclass
class StepState:
    """The state after one SGD step, as passed to ``callback.on_step``.

    ``step``: index of the step just taken in the order (0-based). ``t``: steps of the order done so far
    (``step + 1``); the model now holds w_t. ``total``: steps in the order. ``model``: the model trained on
    the whole order (M). ``indices``: the sample positions of this step's batch. ``loss``: M's loss on
    that batch before the update. ``lr``: η. ``update``: w_t − w_{t−1} per trainable parameter (in
    ``model.parameters()`` order) when a callback asked for it, else ``None``. ``retrained``: M′ in
    :func:`train_lockstep` (it skips one step, so after step ``s`` it has taken ``t − 1`` steps once
    ``s`` ≥ the skipped step), else ``None``.
    """

    step: int
    t: int
    total: int
    model: nn.Module
    indices: np.ndarray
    loss: float
    lr: float
    update: list[torch.Tensor] | None = None
    retrained: nn.Module | None = None


class Callback:
    """Base class for callbacks (subclassing is optional: any object with ``on_step`` works)."""

    every: int = 1

    def on_start(self, model: nn.Module) -> None:
        """Called once before the first step with the model at w₀."""

    def on_step(self, state: StepState) -> None:
        """Called after steps t = every, 2·every, … (and after steps whose update was asked for)."""

    def on_end(self, state: StepState | None) -> None:
        """Called once after the last step taken (``None`` when no step was taken)."""


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
    on the order without step ``skip``, both in place. ``losses``/``retrained_losses`` are per step of the
    order (``nan`` for the step M′ skipped); ``steps`` counts the order's steps done."""

    model: nn.Module
    retrained: nn.Module
    skip: int
    losses: np.ndarray
    retrained_losses: np.ndarray
    steps: int
    diverged: bool = False
    message: str | None = None
    seconds: float = 0.0


class TrainingDiverged(RuntimeError):
    """The loss became non-finite or exceeded ``max_loss``. ``.result`` holds everything computed until
    then (a :class:`TrainResult` or :class:`LockstepResult`)."""

    def __init__(self, message: str, result: TrainResult | LockstepResult) -> None:
        super().__init__(message)
        self.result = result


# ---------------------------------------------------------------------------------------------------
# Loss, determinism
# ---------------------------------------------------------------------------------------------------


def make_loss(gamma: float = 0.0, scaling: str = "code") -> LossFn:
    """The training loss ``loss(logits, targets)``: cross entropy for γ = 0, else the SD loss (Eq. 10)."""
    if scaling not in SCALINGS:
        raise ParameterError(f"scaling={scaling!r} is not allowed; choose one of {', '.join(map(repr, SCALINGS))}")
    if not (isinstance(gamma, (int, float)) and not isinstance(gamma, bool) and 0 <= gamma < math.inf):
        raise ParameterError(f"gamma={gamma!r} is not allowed; use a finite number >= 0")
    if gamma == 0:
        return F.cross_entropy
    return SDLoss(float(gamma), scaling=scaling)


@contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """Use ``threads`` CPU threads for torch inside the block (``None``: leave the setting alone).

    Small models gain nothing from several threads, and when the cores are shared with other work, idle
    threads spinning for their share can make each step many times slower; one thread avoids both.
    """
    if threads is None:
        yield
        return
    if not (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1):
        raise ParameterError(f"threads={threads!r} is not allowed; use an int >= 1 or None")
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@contextmanager
def deterministic_mode(seed: int | None = None, *, threads: int | None = None) -> Iterator[None]:
    """Deterministic kernels inside the block; everything is restored on exit.

    Turns on ``torch.use_deterministic_algorithms`` (an operation without a deterministic kernel raises),
    cuDNN's deterministic mode without benchmarking, and the cuBLAS workspace setting CUDA needs for it.
    With ``seed``, torch's random state is forked and seeded (dropout and other random layers then repeat);
    with ``threads``, torch uses that many CPU threads inside the block. On a CPU, the same seed and the
    same thread count give bit-identical weights; on a GPU, determinism is what the kernels promise.
    """
    if seed is not None and not (isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0):
        raise ParameterError(f"seed={seed!r} is not allowed; use a non-negative int or None")
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    try:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        with cpu_threads(threads), torch.random.fork_rng(devices=devices, enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]
        if saved[4] is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved[4]


# ---------------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------------


def _check_common(data: Any, order: Any, on_divergence: str, max_loss: Any) -> None:
    if not isinstance(data, TensorData) and not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise ParameterError(f"data must be a TensorData or an (x, y) pair of tensors; got {type(data).__name__}")
    if not isinstance(order, BatchOrder):
        raise ParameterError(f"order must be a BatchOrder; got {type(order).__name__}")
    n = len(data) if isinstance(data, TensorData) else int(data[1].shape[0])
    if order.n > n:
        raise ParameterError(f"order indexes {order.n} samples but data has {n}; build the order for this data")
    if on_divergence not in DIVERGENCE_MODES:
        raise ParameterError(f"on_divergence={on_divergence!r} is not allowed; choose one of "
                             f"{', '.join(map(repr, DIVERGENCE_MODES))}")
    if max_loss is not None and not (isinstance(max_loss, (int, float)) and max_loss > 0):
        raise ParameterError(f"max_loss={max_loss!r} is not allowed; use a number > 0 or None")


def _trainable(model: nn.Module) -> list[nn.Parameter]:
    if not isinstance(model, nn.Module):
        raise ParameterError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ParameterError("model has no trainable parameters")
    return params


def _device_of(model: nn.Module, device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return next(model.parameters()).device


def _setting(lr: float, gamma: float | None, scaling: str | None, loss_fn: LossFn | None) -> str:
    if loss_fn is not None:
        name = repr(loss_fn) if isinstance(loss_fn, nn.Module) else getattr(loss_fn, "__name__", None)
        return f"lr={lr:g}, loss_fn={name or type(loss_fn).__name__}"
    return f"lr={lr:g}, gamma={gamma:g}, scaling={scaling!r}"


# ---------------------------------------------------------------------------------------------------
# Callbacks plumbing
# ---------------------------------------------------------------------------------------------------


class _FunctionCallback(Callback):
    def __init__(self, fn: Callable[[StepState], Any]) -> None:
        self.fn = fn

    def on_step(self, state: StepState) -> None:
        self.fn(state)


def _as_callbacks(callbacks: Sequence[Any] | Any | None) -> list[Any]:
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)):
        callbacks = [callbacks]
    out = []
    for i, cb in enumerate(callbacks):
        if hasattr(cb, "on_step"):
            out.append(cb)
        elif callable(cb):
            out.append(_FunctionCallback(cb))
        else:
            raise ParameterError(f"callbacks[{i}] must have an on_step(state) method or be a function of the state")
        every = getattr(out[-1], "every", 1)
        if every is not None and not (isinstance(every, int) and not isinstance(every, bool) and every >= 1):
            raise ParameterError(f"callbacks[{i}].every={every!r} is not allowed; use an int >= 1 or None")
    return out


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


def _run(models: list[nn.Module], skips: list[int | None], data: TensorData | tuple, order: BatchOrder, *,
         lr: float, loss_fn: LossFn, setting: str, callbacks: list[Any], device: torch.device,
         progress: bool, max_loss: float | None, desc: str) -> tuple[list[list[float]], int, str | None]:
    """Train every model over ``order`` side by side; model k skips step ``skips[k]``.

    Returns the per-step losses of each model (nan where skipped), the steps done and a divergence message.
    """
    params = [_trainable(m) for m in models]
    names = ["M", "M′"]
    losses: list[list[float]] = [[] for _ in models]
    total, done, message = len(order), 0, None
    state: StepState | None = None
    for cb in callbacks:
        if hasattr(cb, "on_start"):
            cb.on_start(models[0])
    bar = tqdm(total=total, desc=desc, disable=not progress or in_book_build(), leave=False, mininterval=0.5)
    with _train_mode(models), bar:
        for step, indices in enumerate(order):
            x, y = batch_tensors(data, indices, device)
            # Every model's loss first: if one diverges, no model takes this step.
            step_losses = [None if skips[k] == step else loss_fn(model(x), y) for k, model in enumerate(models)]
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
                    _apply_sgd(loss, params[k], lr)
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
    scaling: str = "code",
    loss_fn: LossFn | None = None,
    callbacks: Sequence[Any] | Any | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    deterministic: bool = False,
    seed: int | None = None,
    on_divergence: str = "stop",
    max_loss: float | None = 1e6,
    desc: str = "SGD",
) -> TrainResult:
    """Plain SGD on ``model`` (in place) over the batches of ``order``: w_{s+1} = w_s − η ∇L(w_s; x̂_s) (§5.1).

    The loss is ``loss_fn(logits, targets)`` if given, else :func:`make_loss` of ``gamma`` and ``scaling``
    (cross entropy for γ = 0, the SD loss of Eq. 10 otherwise). Batches are taken from ``data`` and moved to
    ``device`` (default: where the model is). The model is in train mode during training (BatchNorm uses
    batch statistics) and its modes are restored afterwards. ``callbacks``: see the module docstring.
    ``deterministic=True`` runs inside :func:`deterministic_mode` (with ``seed``). ``progress`` shows a tqdm
    bar (never while the book is built: a static page cannot animate it). Divergence (a non-finite loss or
    one above ``max_loss``): see the module docstring.
    """
    lr = check_number("lr", lr)
    _check_common(data, order, on_divergence, max_loss)
    _trainable(model)
    losses, done, message, seconds = _train_models(
        [model], [None], data, order, lr=lr, gamma=gamma, scaling=scaling, loss_fn=loss_fn, callbacks=callbacks,
        device=device, progress=progress, deterministic=deterministic, seed=seed, max_loss=max_loss, desc=desc)
    result = TrainResult(model=model, losses=losses[0], steps=done, diverged=message is not None, message=message,
                         seconds=seconds)
    return _finish(result, message, on_divergence)


def _train_models(models: list[nn.Module], skips: list[int | None], data: Any, order: BatchOrder, *, lr: float,
                  gamma: float, scaling: str, loss_fn: LossFn | None, callbacks: Any, device: Any, progress: bool,
                  deterministic: bool, seed: int | None, max_loss: float | None,
                  desc: str) -> tuple[list[np.ndarray], int, str | None, float]:
    """What :func:`train` and :func:`train_lockstep` share: the loss, the callbacks, the deterministic mode and
    the loop itself. Returns each model's losses, the steps done, the divergence message and the seconds."""
    setting = _setting(lr, gamma, scaling, loss_fn)
    loss_fn = loss_fn if loss_fn is not None else make_loss(gamma, scaling)
    start = time.perf_counter()
    with deterministic_mode(seed) if deterministic else nullcontext():
        losses, done, message = _run(models, skips, data, order, lr=lr, loss_fn=loss_fn, setting=setting,
                                     callbacks=_as_callbacks(callbacks), device=_device_of(models[0], device),
                                     progress=progress, max_loss=max_loss, desc=desc)
    arrays = [np.asarray(loss, dtype=np.float64) for loss in losses]
    return arrays, done, message, time.perf_counter() - start


def train_lockstep(
    model: nn.Module,
    data: TensorData | tuple[torch.Tensor, torch.Tensor],
    order: BatchOrder,
    *,
    skip: int,
    lr: float,
    gamma: float = 0.0,
    scaling: str = "code",
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
) -> LockstepResult:
    """Train M (``model``) on ``order`` and the naively retrained M′ on ``order.without(skip)`` side by side,
    both from the weights ``model`` holds now (§8.3).

    M′ is a deep copy of ``model`` made before the first step, unless ``retrained`` (a model holding the same
    w₀) is given. At every step both models take the same batch, except at step ``skip`` where M′ takes
    none; callbacks see both after each step (``state.model`` and ``state.retrained``), so v = ‖w′ − w″‖ can
    be measured along the way. Each model's own sequence of operations is the one it would have alone, so on
    a CPU M′ equals ``train(w₀, data, order.without(skip))`` bit for bit. Other arguments as in :func:`train`.
    """
    lr = check_number("lr", lr)
    _check_common(data, order, on_divergence, max_loss)
    skip = order._check_step("skip", skip)
    _trainable(model)
    if retrained is None:
        retrained = copy.deepcopy(model)
    elif retrained is model:
        raise ParameterError("retrained must be a separate model holding w₀, not the model itself")
    losses, done, message, seconds = _train_models(
        [model, retrained], [None, skip], data, order, lr=lr, gamma=gamma, scaling=scaling, loss_fn=loss_fn,
        callbacks=callbacks, device=device, progress=progress, deterministic=deterministic, seed=seed,
        max_loss=max_loss, desc=desc)
    result = LockstepResult(model=model, retrained=retrained, skip=skip, losses=losses[0],
                            retrained_losses=losses[1], steps=done, diverged=message is not None, message=message,
                            seconds=seconds)
    return _finish(result, message, on_divergence)


def noise_floor(
    model: nn.Module,
    data: TensorData | tuple[torch.Tensor, torch.Tensor],
    order: BatchOrder,
    *,
    lr: float,
    gamma: float = 0.0,
    scaling: str = "code",
    loss_fn: LossFn | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
    deterministic: bool = False,
) -> float:
    """‖w_a − w_b‖₂ after training two copies of ``model`` (left untouched) on the same ``order``.

    The distance that retraining alone produces: 0.0 on a CPU; on a GPU, non-deterministic kernels (atomic
    additions in convolutions' backward passes, for instance) make it positive. Report a verification error
    beside it: §8.3's v is only meaningful above this floor.
    """
    kwargs = dict(lr=lr, gamma=gamma, scaling=scaling, loss_fn=loss_fn, device=device, progress=progress,
                  deterministic=deterministic, on_divergence="raise")
    a = train(copy.deepcopy(model), data, order, **kwargs).model
    b = train(copy.deepcopy(model), data, order, **kwargs).model
    return verification_error(a, b)

