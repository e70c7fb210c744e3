"""The unlearning error (Eq. 9) recorded while a model trains.

    e(t) = η² · ‖w_t − w₀‖₂ / t · σ_avg · (t² − t) / 2

σ_avg is the mean of the σ values sampled so far: the Hessian's largest singular value (|λ| of its
eigenvalue of largest magnitude; or sqrt(λ) as the released code computed it, ``sigma_mode="paper"``),
sampled every ``every`` steps (§5.3: "working with the average also allows one to only compute σ every
couple of steps"). Each sample is taken on one fixed Hessian batch at the current weights and starts the
Lanczos iteration from the previous sample's eigenvector, which usually converges in two or three
Hessian-vector products instead of ten or more.

Use it with :func:`unrolling_lib.training.train` (pass it in ``callbacks``) or from any training loop::

    monitor = UnlearningErrorMonitor(lr=0.01, inputs=xh, targets=yh, loss_fn=loss_fn, every=50)
    monitor.start(model)                      # w₀, and σ at w₀
    for t, (x, y) in enumerate(batches, start=1):
        ...                                   # one SGD step
        monitor.step(model, t)                # samples σ and records e(t) when t % every == 0
    monitor.frame()                           # t, sigma, sigma_avg, weight_change, e, ...
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import torch
from torch import nn

from .hessian import EigenResult, sigma, top_eigenvalue
from .metrics import flat_params, unlearning_error, weight_change
from .profiles import ParameterError

__all__ = ["MONITOR_COLUMNS", "UnlearningErrorMonitor"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

MONITOR_COLUMNS = ("t", "e", "sigma", "sigma_avg", "weight_change", "eigenvalue", "hvp_count", "converged",
                   "seconds")


class UnlearningErrorMonitor:
    """Samples σ every ``every`` steps and records e(t) (Eq. 9), σ_avg and ‖w_t − w₀‖₂.

    ``lr``: η of the SGD run being watched. ``inputs``, ``targets``: the fixed batch the Hessian is taken on
    (moved to the model's device when sampling). ``loss_fn(logits, targets)``: the training loss (the L whose
    Hessian enters Eq. 5–8); default cross entropy. ``sigma_mode``: ``"spectral"`` (|λ|) or ``"paper"``
    (sqrt(λ)), see :func:`unrolling_lib.hessian.sigma`. ``tol``, ``max_iter``: passed to
    :func:`~unrolling_lib.hessian.top_eigenvalue`. ``warm_start``: start each sample from the previous
    eigenvector. ``sample_at_start``: take the first sample at w₀ (t = 0).

    ‖w_t − w₀‖₂ is over the trainable parameters (BatchNorm statistics excluded). Records are dictionaries
    with the keys of :data:`MONITOR_COLUMNS`; :meth:`frame` returns them as a DataFrame.
    """

    def __init__(
        self,
        lr: float,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        *,
        loss_fn: LossFn | None = None,
        every: int = 50,
        sigma_mode: str = "spectral",
        tol: float = 1e-3,
        max_iter: int = 100,
        warm_start: bool = True,
        sample_at_start: bool = True,
    ) -> None:
        if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and 0 < lr < math.inf):
            raise ParameterError(f"lr={lr!r} is not allowed; use a finite number > 0")
        if not (isinstance(every, int) and not isinstance(every, bool) and every >= 1):
            raise ParameterError(f"every={every!r} is not allowed; use an int >= 1")
        if not (isinstance(inputs, torch.Tensor) and isinstance(targets, torch.Tensor)
                and len(inputs) == len(targets) and len(inputs) > 0):
            raise ParameterError("inputs and targets must be tensors with the same, non-zero number of samples")
        sigma(1.0, sigma_mode)  # checks the mode
        if not (isinstance(tol, (int, float)) and 0 < tol < 1):
            raise ParameterError(f"tol={tol!r} is not allowed; use a float in (0, 1)")
        if not (isinstance(max_iter, int) and not isinstance(max_iter, bool) and max_iter >= 1):
            raise ParameterError(f"max_iter={max_iter!r} is not allowed; use an int >= 1")
        self.lr = float(lr)
        self.inputs, self.targets = inputs, targets
        self.loss_fn: LossFn = loss_fn if loss_fn is not None else nn.functional.cross_entropy
        self.every = every
        self.sigma_mode = sigma_mode
        self.tol, self.max_iter = tol, max_iter
        self.warm_start = warm_start
        self.sample_at_start = sample_at_start
        self.records: list[dict[str, Any]] = []
        self._w0: torch.Tensor | None = None
        self._previous: EigenResult | None = None
        self._sigma_sum = 0.0
        self._sigma_count = 0  # finite σ samples (the paper's sqrt(λ) is nan where λ < 0)
        self._batch_cache: tuple[torch.device, torch.Tensor, torch.Tensor] | None = None

    # -- the plain interface ---------------------------------------------------------------------

    def start(self, model: nn.Module) -> UnlearningErrorMonitor:
        """Remember w₀ (the model's weights now) and forget earlier records; sample σ at w₀ if asked."""
        self._w0 = flat_params(model).detach().clone()
        self.records, self._previous, self._sigma_sum, self._sigma_count = [], None, 0.0, 0
        if self.sample_at_start:
            self._sample(model, 0)
        return self

    def step(self, model: nn.Module, t: int, *, force: bool = False) -> dict[str, Any] | None:
        """Call after SGD step ``t`` (t steps since w₀). Samples σ and records e(t) when ``t`` is a multiple
        of ``every`` (or ``force``); returns the new record, else ``None``."""
        if self._w0 is None:
            raise RuntimeError("UnlearningErrorMonitor.start(model) must be called with w₀ before step()")
        if not (isinstance(t, int) and not isinstance(t, bool) and t >= 0):
            raise ParameterError(f"t={t!r} is not allowed; use the number of SGD steps since w₀ (an int >= 0)")
        if not force and t % self.every != 0:
            return None
        if self.records and self.records[-1]["t"] == t:
            return self.records[-1]
        return self._sample(model, t)

    def frame(self) -> pd.DataFrame:
        """The records as a DataFrame with columns :data:`MONITOR_COLUMNS`, one row per sample."""
        return pd.DataFrame(self.records, columns=list(MONITOR_COLUMNS))

    @property
    def sigma_avg(self) -> float:
        """Mean of the finite σ values sampled so far (nan before the first). In the paper's mode a sample
        with a negative top eigenvalue has no sqrt: it is left out of the mean (its record keeps σ = nan)."""
        return self._sigma_sum / self._sigma_count if self._sigma_count else math.nan

    @property
    def latest(self) -> dict[str, Any] | None:
        """The last record, or ``None``."""
        return self.records[-1] if self.records else None

    # -- the training-loop callback interface (see unrolling_lib.training) -----------------------------

    def on_start(self, model: nn.Module) -> None:
        self.start(model)

    def on_step(self, state: Any) -> None:
        self.step(state.model, state.t)

    # -- internals -------------------------------------------------------------------------------------

    def _hessian_batch(self, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        device = next(model.parameters()).device
        if self._batch_cache is None or self._batch_cache[0] != device:
            self._batch_cache = (device, self.inputs.to(device), self.targets.to(device))
        return self._batch_cache[1], self._batch_cache[2]

    def _sample(self, model: nn.Module, t: int) -> dict[str, Any]:
        start = time.perf_counter()
        x, y = self._hessian_batch(model)
        init = self._previous if self.warm_start else None
        result = top_eigenvalue(model, self.loss_fn, x, y, tol=self.tol, max_iter=self.max_iter, init=init)
        self._previous = result
        s = sigma(result, self.sigma_mode)
        if math.isfinite(s):
            self._sigma_sum += s
            self._sigma_count += 1
        sigma_avg = self.sigma_avg
        change = weight_change(flat_params(model), self._w0)
        if not math.isfinite(sigma_avg):  # no finite σ yet (paper mode, negative eigenvalues only)
            e = math.nan
        else:
            e = 0.0 if t == 0 else unlearning_error(self.lr, t, change, sigma_avg)
        record = {"t": t, "e": e, "sigma": s, "sigma_avg": sigma_avg, "weight_change": change,
                  "eigenvalue": result.value, "hvp_count": result.hvp_count, "converged": result.converged,
                  "seconds": time.perf_counter() - start}
        self.records.append(record)
        return record
