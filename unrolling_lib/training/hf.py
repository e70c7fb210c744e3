"""The unlearning error (Eq. 9) inside a Hugging Face ``transformers.Trainer``, and the SD loss (Eq. 10) for one.

:class:`UnlearningErrorCallback` is a ``TrainerCallback``: every ``every`` optimizer steps it samples σ, the
largest Hessian eigenvalue of the training loss on a fixed batch (Lanczos, warm-started from the previous
sample: :class:`~unrolling_lib.unlearning_error.UnlearningErrorMonitor`, the same code the book's own loop
uses), measures ‖w_t − w₀‖₂ from the weights at ``on_train_begin`` (or a given w₀), and logs
``unlearning_error`` (Eq. 9), ``sigma``, ``sigma_avg`` and ``weight_change`` through ``trainer.log``: they show
in the Trainer's progress, in ``trainer.state.log_history`` and in every reporter it was given.

Eq. 9 is derived for plain SGD at a fixed learning rate η. The callback reads η from the Trainer's optimizer at
each sample and warns once, naming the optimizer, when the run is anything else (momentum, weight decay,
another optimizer, a learning rate that changes, or gradient clipping, which the Trainer does by default at
``max_grad_norm=1.0``): e is then only a heuristic.

Which weights. By default w is every trainable parameter. ``sigma_params`` (name prefixes, e.g. ``["classifier"]``)
restricts w, for σ and ‖w_t − w₀‖₂ alike, to those parameters, the others held fixed: e of that block, as the
paper's released text runs measured it over the classification head. The top eigenvalue of a principal block of
the Hessian is at most the whole Hessian's (Cauchy interlacing), so σ over the head is a lower bound on σ over
all parameters, at a fraction of the cost.

Cost. One σ sample is a Lanczos run of Hessian-vector products on the fixed batch, each (measured on MiniLM)
about one and a half training steps; warm starts bring a sample down to a handful of products (``hvp_count`` in
:attr:`UnlearningErrorCallback.records`). With ``every = k`` that is added once per k training steps. Measured
(``python -m unrolling_lib bench trainer``, two CPU cores, MiniLM with a linear head, a Trainer step on 8 texts of
8 tokens taking 0.16 s): a warm sample over all 22.7 M parameters took 6.9 s (6 products), about 43 training
steps, so ×1.85 on the run's time at k = 50; over the head's 770 parameters (``sigma_params``) 0.05 s, a third
of a step (×1.01). At this size the products are about a third of a sample: in a profiled cold sample of 9.3 s
they took 2.6 s, 34 dot products of 22.7 M-long vectors 2.0 s, drawing the random start 0.9 s, and growing
and re-orthogonalising the Lanczos basis most of the rest.

:class:`SDLossTrainer` is a ``Trainer`` whose ``compute_loss`` is the SD loss at ``gamma`` (either scaling)
on the model's logits and the batch's ``labels``.

``transformers`` is optional for the library: this module needs it, nothing else imports it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from transformers import Trainer, TrainerCallback

from ..losses import DEFAULT_SCALING, batch_loss, make_loss
from ..params import eval_mode
from ..unlearning_error import UnlearningErrorMonitor
from ..validation import ParameterError, check_int

__all__ = ["SDLossTrainer", "UnlearningErrorCallback"]


def _logits(output: Any) -> torch.Tensor:
    return output.logits if hasattr(output, "logits") else output


class _OnInput(nn.Module):
    """The model as a function of one input tensor, the batch's other entries held fixed: what the curvature
    code differentiates. Its parameters are the model's own."""

    def __init__(self, model: nn.Module, key: str, fixed: Mapping[str, torch.Tensor]) -> None:
        super().__init__()
        self.model, self.key, self.fixed = model, key, dict(fixed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = x.device
        return _logits(self.model(**{self.key: x, **{k: v.to(device) for k, v in self.fixed.items()}}))


def _named(name: str, prefixes: Sequence[str]) -> bool:
    """Whether parameter ``name`` is one of ``prefixes`` or inside a module they name ("head" holds "head.weight",
    not "headline.weight")."""
    return any(name == q or name.startswith(q.rstrip(".") + ".") for q in prefixes)


@contextmanager
def _only(model: nn.Module, prefixes: Sequence[str] | None) -> Iterator[None]:
    """Inside the block only the parameters whose names start with one of ``prefixes`` are trainable (all of them
    when ``prefixes`` is None); ``requires_grad`` is restored afterwards."""
    if prefixes is None:
        yield
        return
    saved = {n: p.requires_grad for n, p in model.named_parameters()}
    try:
        for n, p in model.named_parameters():
            p.requires_grad_(saved[n] and _named(n, prefixes))
        yield
    finally:
        for n, p in model.named_parameters():
            p.requires_grad_(saved[n])


class UnlearningErrorCallback(TrainerCallback):
    """Samples σ every ``every`` optimizer steps on ``batch`` and logs e (Eq. 9) with ``trainer.log`` (module
    docstring). ``batch``: a dict of tensors as the model takes them, with the targets under ``labels_key``;
    ``input_key``: the entry the Hessian is taken through (its other entries, e.g. an attention mask, are
    held fixed). ``loss_fn(logits, labels)``: the training loss (default: cross entropy; pass
    ``make_loss(gamma, scaling)`` for the SD loss). ``w0``: the weights e is measured from (a flat tensor);
    default, the model's at ``on_train_begin``. ``sigma_params``: name prefixes of the parameters w is made of
    (module docstring; default all). ``sigma_mode``, ``max_iter``: as the monitor's."""

    def __init__(self, trainer: Trainer, batch: Mapping[str, torch.Tensor], *, every: int = 50,
                 input_key: str = "input_ids", labels_key: str = "labels", loss_fn: Any = None,
                 w0: torch.Tensor | None = None, sigma_params: Sequence[str] | None = None,
                 sigma_mode: str = "spectral", max_iter: int = 100) -> None:
        self.every = check_int("every", every, 1)
        if not isinstance(batch, Mapping) or input_key not in batch or labels_key not in batch:
            raise ParameterError(f"batch must be a dict holding {input_key!r} and {labels_key!r}; got "
                                 f"{sorted(batch) if isinstance(batch, Mapping) else type(batch).__name__}")
        self.trainer = trainer
        model = trainer.model
        if sigma_params is not None:
            if isinstance(sigma_params, str) or not all(isinstance(q, str) for q in sigma_params):
                raise ParameterError("sigma_params must be a list of parameter-name prefixes, e.g. ['classifier']")
            names = [n for n, p in model.named_parameters() if p.requires_grad and _named(n, sigma_params)]
            if not names:
                tops = sorted({n.split(".")[0] for n, _ in model.named_parameters()})
                raise ParameterError(f"sigma_params={list(sigma_params)} names no trainable parameter of the model; "
                                     f"its names start with {tops}")
        self.sigma_params = None if sigma_params is None else list(sigma_params)
        fixed = {k: v for k, v in batch.items() if k not in (input_key, labels_key)}
        self._on_input = _OnInput(model, input_key, fixed)
        inputs, targets = batch[input_key], batch[labels_key]
        try:  # a batch the model cannot take is refused here, not at the first sample
            with torch.no_grad():
                out = self._on_input(inputs[:1].to(next(model.parameters()).device))
        except Exception as err:  # noqa: BLE001 - re-raised as one line
            raise ParameterError(f"batch does not fit the model: {type(err).__name__}: {err}".splitlines()[0]) from None
        if out.dim() != 2:
            raise ParameterError(f"batch: the model's logits must be (batch, classes); got shape {tuple(out.shape)}")
        self.monitor = UnlearningErrorMonitor(1.0, inputs, targets, loss_fn=loss_fn, every=self.every,
                                              sigma_mode=sigma_mode, max_iter=max_iter, sample_at_start=False)
        self._w0 = None if w0 is None else w0.detach().reshape(-1).clone()
        self._lr: float | None = None
        self._warned = False

    @property
    def records(self) -> list[dict[str, Any]]:
        """Every σ sample: t, e, σ, σ_avg, ‖w_t − w₀‖₂, the eigenvalue, Hessian-vector products, seconds."""
        return self.monitor.records

    def _check_optimizer(self, optimizer: Any) -> float:
        while isinstance(getattr(optimizer, "optimizer", None), torch.optim.Optimizer):
            optimizer = optimizer.optimizer  # accelerate's wrapper holds the torch optimizer
        groups = optimizer.param_groups
        group, lr = groups[0], float(groups[0]["lr"])
        plain = (type(optimizer) is torch.optim.SGD
                 and all(not g.get("momentum") and not g.get("weight_decay") and g["lr"] == lr for g in groups))
        changed = self._lr is not None and lr != self._lr
        clip = float(getattr(self.trainer.args, "max_grad_norm", 0.0) or 0.0)
        if (not plain or changed or clip > 0) and not self._warned:
            if not plain:
                why = f"it is {type(optimizer).__name__} ({_settings(group)})"
            elif changed:
                why = "its learning rate changes"
            else:
                why = f"gradients are clipped at max_grad_norm={clip:g} (the Trainer's default; set 0 to turn it off)"
            warnings.warn(f"UnlearningErrorCallback: Eq. 9 assumes plain SGD at a fixed learning rate; {why}, so e is "
                          "only a heuristic here", RuntimeWarning, stacklevel=3)
            self._warned = True
        self._lr = lr
        return lr

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        with _only(self.trainer.model, self.sigma_params):
            self.monitor.start(self._on_input, w0=self._w0)

    def on_step_end(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kwargs: Any) -> None:
        t = int(state.global_step)
        if t % self.every != 0:
            return
        opt = optimizer if optimizer is not None else self.trainer.optimizer
        self.monitor.lr = self._check_optimizer(opt)
        # no dropout: σ of the network itself, not of a random sub-network
        with eval_mode(self._on_input), _only(self.trainer.model, self.sigma_params):
            record = self.monitor.step(self._on_input, t)
        if record is not None:
            self.trainer.log({"unlearning_error": record["e"], "sigma": record["sigma"],
                              "sigma_avg": record["sigma_avg"], "weight_change": record["weight_change"]})


def _settings(group: Mapping[str, Any]) -> str:
    keys = ("lr", "momentum", "weight_decay", "betas")
    return ", ".join(f"{k}={group[k]}" for k in keys if k in group)


class SDLossTrainer(Trainer):
    """A ``Trainer`` whose loss is the SD loss (Eq. 10) at ``gamma`` in ``scaling`` (``"code"`` or
    ``"equation"``) on the model's logits and the batch's ``labels``; γ = 0 is cross entropy."""

    def __init__(self, *args: Any, gamma: float = 0.0, scaling: str = DEFAULT_SCALING, **kwargs: Any) -> None:
        self.sd_loss = make_loss(gamma, scaling)
        super().__init__(*args, **kwargs)

    def compute_loss(self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        loss = batch_loss(self.sd_loss, _logits(outputs), labels)
        return (loss, outputs) if return_outputs else loss
