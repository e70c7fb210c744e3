"""The unlearning error e (Eq. 9), the Eq. 8 bounds it comes from, and e recorded while a model trains (§5.3).

    e = η² · ‖w_t − w₀‖₂ / t · σ_avg · (t² − t) / 2                                   (Eq. 9)

with η the learning rate, t the SGD steps since w₀, ‖w_t − w₀‖₂ over the trainable parameters
(:func:`weight_change`) and σ_avg the mean of the σ values sampled along the way (:func:`sigma_avg`; σ from
:func:`unrolling_lib.curvature.sigma`). Eq. 8 is the same expression with σ = max_i σ_i (:func:`eq8_bound`).
Two variants the §5 chapter measures beside it: :func:`eq8_consistent_bound` (η instead of η², the
substitution Eq. 6 → 7 makes when Σ g_j is replaced consistently by (w₀ − w_t)/η) and :func:`eq8_rigorous_bound`
(η² Σ_i σ_i ‖Σ_{j<i} g_j‖, what the triangle inequality and the operator norm give without substitution).

Where e means anything. Eq. 6–9 keep only the η² term of the expansion of SGD around w₀. Its order-k term
has C(t, k) products of size about σ^{k−1}‖g‖, so successive orders shrink only while η·t·σ ≪ 1
(:func:`eta_t_sigma`), not merely while η ≪ 1. Past η·t·σ ≈ 1, curvature makes SGD forget its early steps:
the verification error of forgetting x̂₁ saturates near η‖g_{x̂₁}‖ while e keeps growing like t·‖w_t − w₀‖.
Every figure that shows e along t should show η·t·σ beside it.

:class:`UnlearningErrorMonitor` records e(t) during training: σ is the Hessian's largest singular value (|λ|
of its eigenvalue of largest magnitude; or sqrt(λ) as the released code computed it, ``sigma_mode="paper"``),
sampled every ``every`` steps (§5.3: "working with the average also allows one to only compute σ every
couple of steps"). Each sample is taken on one fixed Hessian batch at the current weights and starts the
Lanczos iteration from the previous sample's eigenvector, with a tenth of a fresh start vector mixed in
(``fresh``). Use it with :func:`unrolling_lib.training.train` (pass it in ``callbacks``) or from any training
loop::

    monitor = UnlearningErrorMonitor(lr=0.01, inputs=xh, targets=yh, loss_fn=loss_fn, every=50)
    monitor.start(model)                      # w₀, and σ at w₀
    for t, (x, y) in enumerate(batches, start=1):
        ...                                   # one SGD step
        monitor.step(model, t)                # samples σ and records e(t) when t % every == 0
    monitor.frame()                           # t, sigma, sigma_avg, weight_change, e, ...

What a sample costs. Building the Hessian operator costs about one training step of the same batch size
and each Hessian-vector product a little more (the small CNN on digits, one CPU thread). With σ every 50
steps a sample takes about five products at the default ``tol`` (six to seven from a cold start): by then
the previous eigenvector is no longer close, its Rayleigh quotient alone is off by up to about 10 % and
two products by up to about 4 %, so no residual test can stop after one or two. That puts the monitor's
cost every 50 steps well above a tenth of the training time; ``python -m unrolling_lib bench monitor``
measures it at 50 and at 200 steps (the paper's cadence), with σ's error against a converged reference at
the same weights and the cost model that bounds it from below. A looser ``tol`` saves about one product
per sample but lets more samples converge to the second eigenvalue after the top two swap (see "What no
stopping rule can see" in :mod:`unrolling_lib.curvature`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .curvature import DEFAULT_SIGMA_MODE, SIGMA_MODES, EigenResult, check_batch, sigma, top_eigenvalue
from .losses import LossFn
from .params import Weights, flat_weights, weight_distance
from .validation import ParameterError, check_bool, check_choice, check_int, check_number

__all__ = [
    "MONITOR_COLUMNS",
    "UnlearningErrorMonitor",
    "eq8_bound",
    "eq8_consistent_bound",
    "eq8_rigorous_bound",
    "eta_t_sigma",
    "sigma_avg",
    "unlearning_error",
    "weight_change",
]

MONITOR_COLUMNS = ("t", "e", "sigma", "sigma_avg", "weight_change", "eigenvalue", "hvp_count", "converged",
                   "seconds")


def _pairs(steps: int) -> float:
    """(t² − t)/2: the number of Hessian-gradient products in the η² term of t steps (Eq. 6)."""
    return (steps * steps - steps) / 2


def unlearning_error(lr: float, steps: int, weight_change: float, sigma_avg: float) -> float:
    """Eq. 9: e = η² · (‖w_t − w₀‖₂ / t) · σ_avg · (t² − t) / 2.

    ``lr`` η, ``steps`` t (SGD steps since w₀), ``weight_change`` ‖w_t − w₀‖₂ (see :func:`weight_change`),
    ``sigma_avg`` the mean of the σ values sampled along the way (see :func:`sigma_avg`).
    """
    lr = check_number("lr", lr, inclusive=True)
    t = check_int("steps", steps, 1)
    wc = check_number("weight_change", weight_change, inclusive=True)
    sigma_avg = check_number("sigma_avg", sigma_avg, inclusive=True)
    return lr**2 * (wc / t) * sigma_avg * _pairs(t)


def eta_t_sigma(lr: Any, steps: Any, sigma: Any) -> Any:
    """η·t·σ, the number that decides whether the η² truncation behind Eq. 8–9 holds (≪ 1) or not (≳ 1).

    The ratio of the order-(k+1) to the order-k term of the expansion is about η·σ·(t − k)/(k + 1); on a
    quadratic with curvature σ the η² term overestimates the exact remainder by about η·t·σ/2 once that is large.
    Takes scalars or arrays (NumPy broadcasting; a pandas Series stays a Series), all non-negative.
    """
    for name, value in (("lr", lr), ("steps", steps), ("sigma", sigma)):
        values = np.asarray(value, dtype=np.float64)
        if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ParameterError(f"{name}={value!r} is not allowed; use finite non-negative numbers")
    if all(np.ndim(v) == 0 for v in (lr, steps, sigma)):
        return float(lr) * float(steps) * float(sigma)
    return lr * steps * sigma


def eq8_bound(lr: float, steps: int, weight_change: float, sigma_max: float) -> float:
    """Eq. 8 as printed: η² · ‖w_t − w₀‖₂ / t · σ · (t² − t)/2 with σ = max_i σ_i over the steps 1 … t − 1."""
    return unlearning_error(lr, steps, weight_change, check_number("sigma_max", sigma_max, inclusive=True))


def eq8_consistent_bound(lr: float, steps: int, weight_change: float, sigma_max: float) -> float:
    """Eq. 8 with the substitution of Eq. 6 → 7 made consistently: η · ‖w_t − w₀‖₂ / t · σ · (t² − t)/2.

    Eq. 7 replaces the partial gradient sum Σ_{j<i} g_j by i(w_t − w₀)/t; since w_t − w₀ ≈ −η Σ g_j the
    consistent replacement is i(w₀ − w_t)/(η t), one factor η fewer than the printed Eq. 8.
    """
    lr = check_number("lr", lr)
    return eq8_bound(lr, steps, weight_change, sigma_max) / lr


def eq8_rigorous_bound(lr: float, sigmas: Sequence[float] | np.ndarray,
                       partial_gradient_norms: Sequence[float] | np.ndarray) -> float:
    """η² Σ_{i=1}^{t−1} σ_i ‖Σ_{j<i} g_j‖₂: the bound on ‖η² c_t‖ (Eq. 6) that Eq. 8's steps rest on.

    ``sigmas[i]`` is σ_i (spectral) of batch i and ``partial_gradient_norms[i]`` is ‖Σ_{j<i} g_j‖ (so entry 0 is
    0), both for i = 0 … t − 1; the triangle inequality and ‖H_i v‖ ≤ σ_i‖v‖ give the bound, which always holds.
    """
    lr = check_number("lr", lr, inclusive=True)
    s, g = np.asarray(sigmas, dtype=np.float64), np.asarray(partial_gradient_norms, dtype=np.float64)
    if s.shape != g.shape or s.ndim != 1:
        raise ParameterError(f"sigmas and partial_gradient_norms must be 1-D of one length; got {s.shape} and "
                             f"{g.shape}")
    return lr**2 * float(sum(s[i] * g[i] for i in range(1, len(s))))


def sigma_avg(sigmas: Sequence[float] | np.ndarray) -> float:
    """σ_avg of Eq. 9: the mean of the finite σ samples (nan if there is none).

    In the paper's mode a sample whose top eigenvalue is negative has no sqrt(λ) (nan): it is left out of the
    mean, as a sweep that skips a failed σ sample would.
    """
    values = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def weight_change(a: Weights, b: Weights) -> float:
    """‖w_t − w₀‖₂ of Eq. 9 over the trainable weights, in float64 (:func:`~unrolling_lib.params.weight_distance`)."""
    return weight_distance(a, b)


class UnlearningErrorMonitor:
    """Samples σ every ``every`` steps and records e(t) (Eq. 9), σ_avg and ‖w_t − w₀‖₂.

    ``lr``: η of the SGD run being watched. ``inputs``, ``targets``: the fixed batch the Hessian is taken on
    (moved to the model's device when sampling). ``loss_fn(logits, targets)``: the training loss (the L whose
    Hessian enters Eq. 5–8); default cross entropy. ``sigma_mode``: ``"spectral"`` (|λ|) or ``"paper"``
    (sqrt(λ)), see :func:`unrolling_lib.curvature.sigma`. ``tol``, ``max_iter``: passed to
    :func:`~unrolling_lib.curvature.top_eigenvalue`. ``warm_start``: start each sample from the previous
    eigenvector. ``fresh``: the weight of a fresh start vector (random, seeded with t, plus the batch
    gradient) mixed into each warm start (:func:`~unrolling_lib.curvature.top_eigenvalue`'s ``fresh``):
    when the top eigenvector has turned away from the previous one it keeps the new one in the start (0.1:
    about a tenth of a product more per sample; in a stress test of 408 samples 2 instead of 4 were more
    than 1 % below the top eigenvalue). ``sample_at_start``: take the first sample at w₀ (t = 0).

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
        sigma_mode: str = DEFAULT_SIGMA_MODE,
        tol: float = 1e-3,
        max_iter: int = 100,
        warm_start: bool = True,
        sample_at_start: bool = True,
        fresh: float = 0.1,
    ) -> None:
        lr = check_number("lr", lr)
        every = check_int("every", every, 1)
        check_batch(inputs, targets)
        check_choice("sigma_mode", sigma_mode, SIGMA_MODES)
        tol = check_number("tol", tol, high=1.0)
        max_iter = check_int("max_iter", max_iter, 1)
        self.lr = lr
        self.inputs, self.targets = inputs, targets
        self.loss_fn: LossFn = loss_fn if loss_fn is not None else nn.functional.cross_entropy
        self.every = every
        self.sigma_mode = sigma_mode
        self.tol, self.max_iter = tol, max_iter
        self.warm_start = check_bool("warm_start", warm_start)
        self.fresh = check_number("fresh", fresh, inclusive=True)
        self.sample_at_start = check_bool("sample_at_start", sample_at_start)
        self.records: list[dict[str, Any]] = []
        self._w0: torch.Tensor | None = None
        self._previous: EigenResult | None = None
        self._sigma_sum = 0.0
        self._sigma_count = 0  # finite σ samples (the paper's sqrt(λ) is nan where λ < 0)
        self._batch_cache: tuple[torch.device, torch.Tensor, torch.Tensor] | None = None

    # -- the plain interface ---------------------------------------------------------------------

    def start(self, model: nn.Module, w0: torch.Tensor | None = None) -> UnlearningErrorMonitor:
        """Remember w₀ (the model's weights now, or the flat ``w0`` given) and forget earlier records; sample σ at
        w₀ if asked."""
        now = flat_weights(model).detach()
        if w0 is not None and w0.numel() != now.numel():
            raise ParameterError(f"w0 must hold {now.numel()} weights; got {w0.numel()}")
        self._w0 = (now if w0 is None else w0.detach().reshape(-1).to(now.device)).clone()
        self.records, self._previous, self._sigma_sum, self._sigma_count = [], None, 0.0, 0
        if self.sample_at_start:
            self._sample(model, 0)
        return self

    def step(self, model: nn.Module, t: int, *, force: bool = False) -> dict[str, Any] | None:
        """Call after SGD step ``t`` (t steps since w₀). Samples σ and records e(t) when ``t`` is a multiple
        of ``every`` (or ``force``); returns the new record, else ``None``."""
        if self._w0 is None:
            raise RuntimeError("UnlearningErrorMonitor.start(model) must be called with w₀ before step()")
        t = check_int("t", t, 0)
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

    # -- the training-loop callback protocol (unrolling_lib.training.callbacks) --------------------------

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
        result = top_eigenvalue(model, self.loss_fn, x, y, tol=self.tol, max_iter=self.max_iter, init=init, seed=t,
                                fresh=self.fresh)
        self._previous = result
        s = sigma(result, sigma_mode=self.sigma_mode)
        if math.isfinite(s):
            self._sigma_sum += s
            self._sigma_count += 1
        sigma_avg = self.sigma_avg
        change = weight_change(flat_weights(model), self._w0)
        if not math.isfinite(sigma_avg):  # no finite σ yet (paper mode, negative eigenvalues only)
            e = math.nan
        else:
            e = 0.0 if t == 0 else unlearning_error(self.lr, t, change, sigma_avg)
        record = {"t": t, "e": e, "sigma": s, "sigma_avg": sigma_avg, "weight_change": change,
                  "eigenvalue": result.value, "hvp_count": result.hvp_count, "converged": result.converged,
                  "seconds": time.perf_counter() - start}
        self.records.append(record)
        return record
