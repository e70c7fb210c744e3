"""What a training callback is and what it sees (the :func:`~unrolling_lib.training.train` loop calls it).

A callback is anything with an ``on_step(state)`` method (the :class:`Callback` protocol), or a plain function
``f(state)``. Optional attributes and methods: ``every`` (call ``on_step`` after steps t = every, 2·every, …;
default 1; ``None``: only for the steps it asks about), ``on_start(model)`` before the first step,
``on_end(state)`` after the last, and ``wants_update(step, indices) -> bool``: when it returns True for a step,
that step's applied update w_{s+1} − w_s is recorded in ``state.update`` and ``on_step`` is called for that
step whatever ``every`` says. :class:`~unrolling_lib.unlearning_error.UnlearningErrorMonitor` and
:class:`~unrolling_lib.unlearning.UpdateRecorder` are callbacks; neither imports this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from ..validation import ParameterError, check_int

__all__ = ["Callback", "StepState", "as_callbacks"]


@dataclass
class StepState:
    """The state after one SGD step, as passed to ``callback.on_step``.

    ``step``: index of the step just taken in the order (0-based). ``t``: steps of the order done so far
    (``step + 1``); the model now holds w_t. ``total``: steps in the order. ``model``: the model trained on
    the whole order (M). ``indices``: the sample positions of this step's batch. ``loss``: M's loss on
    that batch before the update. ``lr``: η. ``update``: w_t − w_{t−1} per trainable parameter (in
    ``model.parameters()`` order) when a callback asked for it, else ``None``. ``retrained``: M′ in
    :func:`train_lockstep` (it skips the unlearned step or steps, so after step ``s`` it has taken ``t``
    minus the number of skipped steps up to ``s``), else ``None``.
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


@runtime_checkable
class Callback(Protocol):
    """The callback protocol: ``on_step(state)``. The optional hooks (``every``, ``on_start(model)``,
    ``on_end(state)``, ``wants_update(step, indices)``) are looked up with ``getattr``; see the module docstring.
    Subclassing is not needed: any object with ``on_step`` is a callback."""

    def on_step(self, state: StepState) -> None:
        """Called after steps t = every, 2·every, … (and after steps whose update was asked for)."""


class _FunctionCallback:
    """A plain function ``f(state)`` as a callback called after every step."""

    every = 1

    def __init__(self, fn: Callable[[StepState], Any]) -> None:
        self.fn = fn

    def on_step(self, state: StepState) -> None:
        self.fn(state)


def as_callbacks(callbacks: Sequence[Any] | Any | None) -> list[Any]:
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
        if every is not None:
            check_int(f"callbacks[{i}].every", every, 1)
    return out


