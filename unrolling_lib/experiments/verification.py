"""§8.3: is the unlearning error (Eq. 9) a proxy for the verification error?

:func:`verification_experiment` runs the protocol for each γ and returns a :class:`VerificationResult`:

    1. Train M₀ for N steps (the SD loss with the run's γ) → M_N, whose weights are w₀ from here on.
    2. From M_N, train t steps on x̂₁ … x̂_t → M_{N+t}, recording e(t) (Eq. 9) with σ sampled every
       ``sigma_every`` steps.
    3. In lockstep, from the same M_N, train M′ on x̂₂ … x̂_t (the same order with x̂₁ skipped).
    4. Unlearn x̂₁ from M_{N+t} with a single gradient (§5.1) taken at w₀: w″ = w_{N+t} + η·∇L(w₀; x̂₁).
    5. v = ‖w′ − w″‖₂, every ``verify_every`` steps, so that e and v can be correlated over t.

On the same runs, two other unlearned models: w″ by single-gradient unlearning with the gradient at
w_{N+t} (``v_final``, the formula printed in §8.3), and by amnesiac unlearning (``v_amnesiac``, Graves et
al.: the updates M applied at the steps that used x̂₁, recorded as they happened and subtracted). With plain
SGD and x̂₁ at the first step the amnesiac update is −η∇L(w₀; x̂₁) itself, so ``v_amnesiac`` equals ``v``
there; they part when x̂₁ is used later (``unlearn_step > 0``, every epoch) or with momentum.

The printed §8.3 formula takes the gradient at w_{N+t}; the theory and the released verification code
take it at w₀, the default here (``unlearn_at="final"`` for the printed one). The unlearned batch is step
``unlearn_step`` of the fine-tuning order (x̂₁ is step 0); ``unlearn_batch=114`` makes it the block of
training samples the released code unlearned (its 115th batch of 32, moved to the front). Every γ starts
from the same initial weights and sees the same pre-training and fine-tuning batches. The noise floor is the distance
between M′ and a second, separate retraining on the same order (0 on a CPU; on a GPU, the size of v that
non-deterministic kernels alone produce).

Which algorithm. The book measures plain SGD, the algorithm the expansion of §5 unrolls; the paper (§9,
"Experimental constraints") says it removed momentum and augmentation too. The released verification script,
though, fine-tuned with momentum 0.9 and weight decay 5e-4 (at lr 0.1), put x̂₁'s block first in every epoch,
let M′ skip it every time, and scaled the unlearning step by the number of times it was used; which of the
two produced the reported numbers cannot be told from the release. :data:`RELEASED_FINETUNING` switches the
fine-tuning (not the pre-training, and not the learning rate) to the script's set-up, so the two can be
compared on the same runs. With momentum 0.9 one batch moves the weights by about 10·η·g over the following
steps, while the single-gradient step adds back η·g: it removes about a tenth of the first-order effect.

Where the expansion holds. Eq. 9 keeps the η² term of the expansion, which describes SGD only while
η·t·σ ≪ 1; the table's ``eta_t_sigma`` column (η·t·σ_avg) says where each row is.

Seeds. ``seeds`` repeats the whole protocol (data subset, initial weights, pre-training and fine-tuning
orders, Hessian batch) for each seed; the table has a ``seed`` column and :func:`summarize_verification`
reports every correlation per seed, with its n and 95% interval, and pooled over the seeds.

``VERIFICATION_DEFAULTS`` holds the quick / colab / paper values for ``setup(profile,
defaults=VERIFICATION_DEFAULTS, ...)``; ``verification_experiment(**cfg.params, seed=cfg.seed,
device=cfg.device)`` then runs them. :func:`summarize_verification` reduces a result to one row per γ and the
correlations the paper reports; :func:`unlearned_batch_sensitivity` repeats the protocol for several forgotten
batches.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..curvature import SIGMA_MODES
from ..data import DATASETS, BatchOrder, TensorData, batch_tensors, load_dataset
from ..losses import check_scaling, make_loss
from ..metrics import Correlation, accuracy, correlation, increment_correlation, verification_error
from ..models import MODELS, build_model_for
from ..params import flat_weights
from ..privacy import SIGNAL_MODES, membership_signal
from ..storage import atomic_torch_save, claim_folder, read_table, write_table
from ..training import StepState, TrainingDiverged, cpu_threads, pick_device, train, train_lockstep
from ..unlearning import UNLEARN_AT, UpdateRecorder, amnesiac_unlearn, single_gradient_unlearn
from ..unlearning_error import UnlearningErrorMonitor, eta_t_sigma, unlearning_error, weight_change
from ..validation import (
    ParameterError,
    check_bool,
    check_choice,
    check_int,
    check_ints,
    check_keys,
    check_number,
    check_numbers,
)

__all__ = ["OUTPUT_COLUMNS", "RELEASED_FINETUNING", "SENSITIVITY_BLOCKS", "SUMMARY_COLUMNS", "UNLEARNING_METHODS",
           "VERIFICATION_COLUMNS", "VERIFICATION_DEFAULTS", "VerificationResult", "VerificationSummary",
           "check_verification_params", "method_correlations", "summarize_verification",
           "unlearned_batch_sensitivity", "verification_experiment"]

VERIFICATION_COLUMNS = ("seed", "gamma", "t", "e", "v", "v_final", "v_amnesiac", "v_limit", "weight_change",
                        "sigma_avg", "eta_t_sigma", "accuracy", "noise_floor")
SUMMARY_COLUMNS = ("seed", "gamma", "t", "e", "v", "v_final", "v_amnesiac", "v_limit", "weight_change", "sigma_avg",
                   "eta_t_sigma", "accuracy",
                   "noise_floor", "n_t", "pearson_e_v_over_t", "pearson_low", "pearson_high", "pearson_increments",
                   "increments_low", "increments_high")

# With record_outputs: the membership signal of each of x̂₁'s samples on each model after the last step.
OUTPUT_COLUMNS = ("seed", "gamma", "state", "mode", "sample", "label", "signal")

# The released verification script's fine-tuning (its lr 0.1 aside): pass it over the profile's values,
# verification_experiment(**{**cfg.params, **RELEASED_FINETUNING}). Pre-training stays plain SGD.
RELEASED_FINETUNING: dict[str, Any] = {"momentum": 0.9, "weight_decay": 5e-4, "unlearn_every_epoch": True}

# Digits and the small CNN on a CPU: seconds per γ and seed. Batch sizes and learning rates are the released
# code's correlation runs' (pre-training in batches of 128 at lr 0.1, fine-tuning in batches of 32 at lr 0.01),
# but the algorithm is plain SGD (no momentum, no weight decay: see RELEASED_FINETUNING), three seeds.
_QUICK: dict[str, Any] = {
    "dataset": "digits", "model": "small_cnn", "gammas": [0.0, 5.0, 10.0, 20.0], "scaling": "code",
    "pretrain_steps": 200, "pretrain_batch_size": 128, "pretrain_lr": 0.1,
    "finetune_steps": 400, "batch_size": 32, "lr": 0.01,
    "sigma_every": 50, "verify_every": 25, "hessian_batch_size": 32, "sigma_mode": "spectral",
    "unlearn_step": 0, "unlearn_batch": None, "exclude_unlearned": False, "unlearn_at": "initial",
    "noise_floor": True, "train_subset": None, "test_subset": None, "threads": 1,
    "seeds": [0, 1, 2], "momentum": 0.0, "weight_decay": 0.0, "unlearn_every_epoch": False, "record_outputs": False,
}
# CIFAR-10 and ResNet-18 on one GPU (a T4: about 4 minutes per γ), with far fewer steps than the paper and
# one seed (three would not fit the 20-minute budget).
_COLAB: dict[str, Any] = {
    **_QUICK, "dataset": "cifar10", "model": "resnet18", "pretrain_steps": 780, "finetune_steps": 1000,
    "sigma_every": 200, "verify_every": 100, "hessian_batch_size": 512, "test_subset": 2000, "threads": None,
    "seeds": [0],
}
# The paper's setting (§8.1, §8.3) as its released code ran it: pre-training 20 epochs in batches of 128
# at lr 0.1, fine-tuning 5 epochs in batches of 32 at lr 0.01, σ on a fixed batch of 512 every 200 steps,
# the CIFAR-10 γ grid, x̂₁ = the 115th block of 32 training images (batch index 114). Hours per γ and seed;
# three seeds (resumable: each finished γ and seed is checkpointed).
_PAPER: dict[str, Any] = {
    **_COLAB, "gammas": [0.0, 1.0, 5.0, 10.0, 15.0, 20.0], "pretrain_steps": 7800, "finetune_steps": 7810,
    "unlearn_batch": 114, "test_subset": None, "seeds": [0, 1, 2],
}
# The same code path in seconds (CI's nbval run): two γ, one seed, a few dozen steps on a digits subset.
_SMOKE: dict[str, Any] = {
    **_QUICK, "gammas": [0.0, 20.0], "pretrain_steps": 10, "finetune_steps": 20, "sigma_every": 10,
    "verify_every": 5, "hessian_batch_size": 16, "train_subset": 256, "test_subset": 100, "seeds": [0],
}
VERIFICATION_DEFAULTS: dict[str, dict[str, Any]] = {"quick": _QUICK, "colab": _COLAB, "paper": _PAPER,
                                                    "smoke": _SMOKE}

# Forgotten batches for :func:`unlearned_batch_sensitivity`, evenly spread over the training blocks (the
# released code's block 114 included where the data has it).
SENSITIVITY_BLOCKS: dict[str, list[int]] = {"quick": [0, 11, 22, 33], "colab": [0, 114, 500, 1000],
                                            "paper": [114, 400, 800, 1200], "smoke": [0, 3]}

_Q = VERIFICATION_DEFAULTS["quick"]
_HESSIAN_TAG = 0x4E55  # keeps the Hessian batch's random stream apart from the orders'


# ---------------------------------------------------------------------------------------------------
# What the experiment returns
# ---------------------------------------------------------------------------------------------------


@dataclass
class VerificationResult:
    """What :func:`verification_experiment` returns.

    ``table``: one row per γ and measured t, columns :data:`VERIFICATION_COLUMNS`. ``sigma``: the monitor's σ
    samples (columns ``gamma`` and :data:`unrolling_lib.unlearning_error.MONITOR_COLUMNS`). ``params``: the
    resolved parameters. ``diverged``: γ → the message of a fine-tuning run that diverged (its rows stop there).
    ``outputs``: with ``record_outputs``, the membership signal of x̂₁'s samples on each model after the last
    step (columns :data:`OUTPUT_COLUMNS`); empty otherwise.
    """

    table: pd.DataFrame
    sigma: pd.DataFrame
    params: dict[str, Any]
    diverged: dict[float, str] = field(default_factory=dict)
    outputs: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(OUTPUT_COLUMNS)))


@dataclass
class VerificationSummary:
    """What :func:`summarize_verification` returns.

    ``table``: one row per seed and γ at its last t, columns :data:`SUMMARY_COLUMNS`: Pearson(e, v) over t
    (``pearson_e_v_over_t``, over ``n_t`` measured steps, with its 95% interval ``pearson_low/high``) and the
    Pearson of their increments along t (``pearson_increments``, interval ``increments_low/high``: whether e's
    growth follows v's, which the levels of two increasing series cannot show). ``across_gamma``: per seed,
    Pearson(e, v) across the γ values at the last t (the paper's Figure 11), columns ``seed``, ``n``,
    ``pearson``, ``low``, ``high``. ``pooled``: the same across every (seed, γ) point, a
    :class:`~unrolling_lib.metrics.Correlation`; ``pearson_over_gamma`` is its r (nan with fewer than two
    points).
    """

    table: pd.DataFrame
    across_gamma: pd.DataFrame
    pooled: Correlation

    @property
    def pearson_over_gamma(self) -> float:
        return self.pooled.r


# ---------------------------------------------------------------------------------------------------
# Pieces
# ---------------------------------------------------------------------------------------------------


def _finetune_order(n: int, p: dict[str, Any]) -> BatchOrder:
    """The fine-tuning batches x̂₁ … x̂_t (seeded, the same for every γ).

    With ``unlearn_batch = k``, the batch at step ``unlearn_step`` is the k-th block of ``batch_size``
    consecutive training samples (the released code's choice of x̂₁). The other steps follow the seeded order
    over all samples, so x̂₁'s samples may recur in later epochs, for M and M′ alike (§8.3 removes a *step*);
    with ``exclude_unlearned`` they draw from the remaining samples only (the data itself is removed). With
    ``unlearn_every_epoch`` the block (the k-th, or the seeded order's first batch) opens every epoch of the
    remaining samples, as the released code ordered it.
    """
    bs, steps, seed = p["batch_size"], p["finetune_steps"], p["seed"] + 1
    if p["unlearn_batch"] is None and not p["unlearn_every_epoch"]:
        return BatchOrder(n, bs, steps=steps, seed=seed)
    k = p["unlearn_batch"]
    if k is not None and bs * (k + 1) > n:
        raise ParameterError(f"unlearn_batch={k} is not allowed; the data has {n // bs} blocks of {bs} samples")
    block = np.arange(bs * k, bs * (k + 1)) if k is not None else BatchOrder(n, bs, steps=1, seed=seed)[0]
    excluded = p["exclude_unlearned"] or p["unlearn_every_epoch"]
    pool = np.setdiff1d(np.arange(n), block) if excluded else np.arange(n)
    if p["unlearn_every_epoch"]:
        per_epoch = len(pool) // bs
        others = [pool[b] for b in BatchOrder(len(pool), bs, steps=steps, seed=seed)]
        batches: list[np.ndarray] = []
        while len(batches) < steps:
            batches.append(block)
            batches.extend(others[:per_epoch])
            others = others[per_epoch:]
        return BatchOrder.from_batches(batches[:steps], n)
    batches = [pool[b] for b in BatchOrder(len(pool), bs, steps=steps - 1, seed=seed)] if steps > 1 else []
    batches.insert(p["unlearn_step"], block)
    return BatchOrder.from_batches(batches, n)


class _VerificationProbe:
    """Every ``every`` steps of the lockstep run, and after its last step: w″ by single-gradient unlearning
    (the gradient at ``unlearn_at``, and at w_{N+t} beside it), w″ by amnesiac unlearning (the updates
    ``recorder`` kept at the steps that used x̂₁), v = ‖w′ − w″‖ for each, e(t) with the monitor's σ_avg so far,
    ‖w_t − w₀‖ and test accuracy."""

    def __init__(self, *, every: int, w0: nn.Module, loss_fn: Any, batch: tuple[torch.Tensor, torch.Tensor],
                 unlearn_steps: Sequence[int], lr: float, unlearn_at: str, monitor: UnlearningErrorMonitor,
                 test: TensorData, recorder: UpdateRecorder, record_outputs: bool = False) -> None:
        self.every, self.w0, self.loss_fn, self.batch = every, w0, loss_fn, batch
        self.record_outputs, self.outputs = record_outputs, []
        self.unlearn_steps, self.lr, self.unlearn_at = sorted(unlearn_steps), lr, unlearn_at
        self.monitor, self.test, self.recorder = monitor, test, recorder
        self.w0_flat = flat_weights(w0).clone()
        # η·‖∇L(w₀; x̂₁)‖, the size of one single-gradient step: where v saturates once SGD has forgotten x̂₁
        step = single_gradient_unlearn(w0, w0, loss_fn, *batch, lr=lr, times_used=1, unlearn_at="initial")
        self.step_norm = weight_change(step, self.w0_flat)
        self.rows: list[dict[str, Any]] = []

    def _single(self, model: nn.Module, used: int, at: str) -> nn.Module:
        return single_gradient_unlearn(model, self.w0, self.loss_fn, *self.batch, lr=self.lr, times_used=used,
                                       unlearn_at=at)

    def on_step(self, state: StepState) -> None:
        t = state.t
        used = sum(1 for s in self.unlearn_steps if s <= state.step)  # times M used x̂ so far; M′ never did
        change = weight_change(state.model, self.w0_flat)
        sigma_avg = self.monitor.sigma_avg
        e = unlearning_error(self.lr, t, change, sigma_avg) if math.isfinite(sigma_avg) else math.nan
        self.rows.append({"t": t, "e": e,
                          "v": verification_error(self._single(state.model, used, self.unlearn_at), state.retrained),
                          "v_final": verification_error(self._single(state.model, used, "final"), state.retrained),
                          "v_amnesiac": verification_error(amnesiac_unlearn(state.model, self.recorder),
                                                           state.retrained),
                          "v_limit": used * self.step_norm,
                          "weight_change": change, "sigma_avg": sigma_avg,
                          "eta_t_sigma": eta_t_sigma(self.lr, t, sigma_avg) if math.isfinite(sigma_avg) else math.nan,
                          "accuracy": accuracy(state.model, self.test)})

    def on_end(self, state: StepState | None) -> None:
        """The last step taken is always measured, on the grid or not."""
        if state is not None and (not self.rows or self.rows[-1]["t"] != state.t):
            self.on_step(state)
        if state is not None and self.record_outputs:
            used = sum(1 for s in self.unlearn_steps if s <= state.step)
            models = {"trained": state.model, "unlearned": self._single(state.model, used, self.unlearn_at),
                      "amnesiac": amnesiac_unlearn(state.model, self.recorder), "retrained": state.retrained}
            x, y = self.batch
            labels = y.cpu().numpy()
            for name, model in models.items():
                for mode in SIGNAL_MODES:
                    values = membership_signal(model, x, y, mode=mode)
                    self.outputs += [{"state": name, "mode": mode, "sample": i, "label": int(labels[i]),
                                      "signal": float(v)} for i, v in enumerate(values)]


def _pretraining_key(gamma: float, model_name: str, p: dict[str, Any], device: torch.device,
                     deterministic: bool) -> tuple:
    """Everything M_N depends on: runs with the same key start fine-tuning from identical weights."""
    names = ("dataset", "train_subset", "seed", "scaling", "pretrain_steps", "pretrain_batch_size", "pretrain_lr")
    return (float(gamma), model_name, *(p[n] for n in names), str(device), deterministic,
            torch.get_num_threads())


def _one_gamma(gamma: float, *, data: TensorData, test: TensorData, model_name: str, seed: int, p: dict[str, Any],
               order: BatchOrder, hessian_batch: tuple[torch.Tensor, torch.Tensor], device: torch.device,
               checkpoint_dir: Path | None, progress: bool, deterministic: bool,
               shared: MutableMapping[tuple, dict] | None = None
               ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, str | None]:
    """The §8.3 protocol for one γ: the rows of the result table, the monitor's σ records, the recorded
    outputs (empty unless ``record_outputs``) and, if the fine-tuning diverged, its message (the rows then stop
    before the divergence; pre-training that diverges raises TrainingDiverged)."""
    loss_fn = make_loss(gamma, p["scaling"])
    common = dict(gamma=gamma, scaling=p["scaling"], progress=progress, deterministic=deterministic,
                  on_divergence="raise")
    model = build_model_for(model_name, data.x.shape[1:], data.num_classes, seed=seed).to(device)

    # 1. Pre-training → M_N (cached, so that a resumed run does not repeat it, and in ``shared`` when given).
    cached = checkpoint_dir / f"pretrained_gamma_{_tag(gamma)}.pt" if checkpoint_dir is not None else None
    key = _pretraining_key(gamma, model_name, p, device, deterministic)
    if p["pretrain_steps"] > 0:
        if shared is not None and key in shared:
            model.load_state_dict(shared[key])
        elif cached is not None and cached.exists():
            model.load_state_dict(torch.load(cached, map_location=device, weights_only=True))
        else:
            pre = BatchOrder(len(data), p["pretrain_batch_size"], steps=p["pretrain_steps"], seed=seed)
            train(model, data, pre, lr=p["pretrain_lr"], desc=f"pre-train γ={gamma:g}", **common)
        if cached is not None and not cached.exists():
            atomic_torch_save(model.state_dict(), cached)
        if shared is not None:
            shared[key] = copy.deepcopy(model.state_dict())
    w0 = copy.deepcopy(model)

    # 2–5. Fine-tune M and M′ in lockstep; the monitor records σ, the probe e, v, ‖Δw‖ and accuracy.
    monitor = UnlearningErrorMonitor(p["lr"], *hessian_batch, loss_fn=loss_fn, every=p["sigma_every"],
                                     sigma_mode=p["sigma_mode"])
    step = p["unlearn_step"]
    steps = order.steps_of(order[step]) if p["unlearn_every_epoch"] else [step]  # every use of x̂₁, or one
    recorder = UpdateRecorder(steps=steps)  # the updates M applied with x̂₁, for amnesiac unlearning
    probe = _VerificationProbe(every=p["verify_every"], w0=w0, loss_fn=loss_fn,
                               batch=batch_tensors(data, order[step], device), unlearn_steps=steps, lr=p["lr"],
                               unlearn_at=p["unlearn_at"], monitor=monitor, test=test, recorder=recorder,
                               record_outputs=p["record_outputs"])
    finetune = dict(common, momentum=p["momentum"], weight_decay=p["weight_decay"])
    message, floor = None, math.nan
    try:
        pair = train_lockstep(model, data, order, unlearn_step=steps if len(steps) > 1 else step, lr=p["lr"],
                              callbacks=[recorder, monitor, probe], desc=f"fine-tune γ={gamma:g}", **finetune)
    except TrainingDiverged as err:  # keep the rows measured before it diverged
        message = str(err)

    # Noise floor: retrain M′ a second time, separately, on the same order.
    if p["noise_floor"] and message is None:
        again = train(copy.deepcopy(w0), data, order.without(*steps), lr=p["lr"], desc="noise floor", **finetune)
        floor = verification_error(again.model, pair.retrained)

    measured = [c for c in VERIFICATION_COLUMNS if c not in ("seed", "gamma", "noise_floor")]
    rows = pd.DataFrame(probe.rows, columns=measured)
    rows.insert(0, "gamma", gamma)
    rows.insert(0, "seed", seed)
    rows["noise_floor"] = floor
    sigmas = monitor.frame()
    sigmas.insert(0, "gamma", gamma)
    sigmas.insert(0, "seed", seed)
    outputs = pd.DataFrame(probe.outputs, columns=list(OUTPUT_COLUMNS[2:]))
    outputs.insert(0, "gamma", gamma)
    outputs.insert(0, "seed", seed)
    return rows[list(VERIFICATION_COLUMNS)], sigmas, outputs, message


# ---------------------------------------------------------------------------------------------------
# The experiment
# ---------------------------------------------------------------------------------------------------


def check_verification_params(**params: Any) -> dict[str, Any]:
    """Check the §8.3 parameters (the keys of :data:`VERIFICATION_DEFAULTS`) before any work; return them
    normalised (ints as ints, γ as a list of floats). The one set of rules: :func:`verification_experiment` applies
    it, and the chapter's ``setup(..., check=check_verification_params)`` too, so a bad value stops the chapter
    at its first cell with the same one-line message."""
    check_keys("§8.3", params, _Q)
    q = params

    def optional_int(name: str, low: int) -> int | None:
        return None if q[name] is None else check_int(name, q[name], low)

    out = {
        "dataset": check_choice("dataset", q["dataset"], DATASETS),
        "model": check_choice("model", q["model"], tuple(MODELS)),
        "gammas": check_numbers("gammas", q["gammas"], inclusive=True, distinct=True, scalar_ok=True),
        "scaling": check_scaling(q["scaling"]),
        "pretrain_steps": check_int("pretrain_steps", q["pretrain_steps"], 0),
        "pretrain_batch_size": check_int("pretrain_batch_size", q["pretrain_batch_size"], 1),
        "pretrain_lr": None if q["pretrain_lr"] is None else check_number("pretrain_lr", q["pretrain_lr"]),
        "finetune_steps": check_int("finetune_steps", q["finetune_steps"], 1),
        "batch_size": check_int("batch_size", q["batch_size"], 1),
        "lr": check_number("lr", q["lr"]),
        "sigma_every": check_int("sigma_every", q["sigma_every"], 1),
        "verify_every": check_int("verify_every", q["verify_every"], 1),
        "hessian_batch_size": check_int("hessian_batch_size", q["hessian_batch_size"], 1),
        "sigma_mode": check_choice("sigma_mode", q["sigma_mode"], SIGMA_MODES),
        "unlearn_step": check_int("unlearn_step", q["unlearn_step"], 0),
        "unlearn_batch": optional_int("unlearn_batch", 0),
        "exclude_unlearned": check_bool("exclude_unlearned", q["exclude_unlearned"]),
        "unlearn_at": check_choice("unlearn_at", q["unlearn_at"], UNLEARN_AT),
        "noise_floor": check_bool("noise_floor", q["noise_floor"]),
        "train_subset": optional_int("train_subset", 1),
        "test_subset": optional_int("test_subset", 1),
        "threads": optional_int("threads", 1),
        "seeds": check_ints("seeds", q["seeds"], 0, distinct=True),
        "momentum": check_number("momentum", q["momentum"], inclusive=True, high=1.0),
        "weight_decay": check_number("weight_decay", q["weight_decay"], inclusive=True),
        "unlearn_every_epoch": check_bool("unlearn_every_epoch", q["unlearn_every_epoch"]),
        "record_outputs": check_bool("record_outputs", q["record_outputs"]),
    }
    if out["unlearn_every_epoch"] and out["unlearn_step"] != 0:
        raise ParameterError(f"unlearn_step={out['unlearn_step']} is not allowed with unlearn_every_epoch=True; the "
                             "block opens every epoch, so use unlearn_step=0")
    if out["exclude_unlearned"] and out["unlearn_batch"] is None:
        raise ParameterError("exclude_unlearned=True needs unlearn_batch: the block of samples to keep out of the "
                             "other steps")
    if out["unlearn_step"] >= out["finetune_steps"]:
        raise ParameterError(f"unlearn_step={out['unlearn_step']} is not allowed; use a step of the fine-tuning run, "
                             f"0..{out['finetune_steps'] - 1}")
    return out


def verification_experiment(
    *,
    dataset: str = _Q["dataset"],
    model: str = _Q["model"],
    gammas: Sequence[float] = tuple(_Q["gammas"]),
    scaling: str = _Q["scaling"],
    pretrain_steps: int = _Q["pretrain_steps"],
    pretrain_batch_size: int = _Q["pretrain_batch_size"],
    pretrain_lr: float | None = _Q["pretrain_lr"],
    finetune_steps: int = _Q["finetune_steps"],
    batch_size: int = _Q["batch_size"],
    lr: float = _Q["lr"],
    sigma_every: int = _Q["sigma_every"],
    verify_every: int = _Q["verify_every"],
    hessian_batch_size: int = _Q["hessian_batch_size"],
    sigma_mode: str = _Q["sigma_mode"],
    unlearn_step: int = _Q["unlearn_step"],
    unlearn_batch: int | None = _Q["unlearn_batch"],
    exclude_unlearned: bool = _Q["exclude_unlearned"],
    unlearn_at: str = _Q["unlearn_at"],
    noise_floor: bool = _Q["noise_floor"],
    train_subset: int | None = _Q["train_subset"],
    test_subset: int | None = _Q["test_subset"],
    threads: int | None = _Q["threads"],
    seeds: Sequence[int] | None = None,
    momentum: float = _Q["momentum"],
    weight_decay: float = _Q["weight_decay"],
    unlearn_every_epoch: bool = _Q["unlearn_every_epoch"],
    record_outputs: bool = _Q["record_outputs"],
    seed: int = 0,
    device: str | torch.device = "auto",
    checkpoint_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    deterministic: bool = False,
    pretrained_cache: MutableMapping[tuple, dict] | None = None,
) -> VerificationResult:
    """§8.3's verification protocol for each γ in ``gammas``; ``result.table`` has one row per γ and measured t.

    Columns: ``gamma``, ``t`` (fine-tuning steps, every ``verify_every`` and the last), ``e`` (Eq. 9, σ_avg over the σ
    samples taken every ``sigma_every`` steps so far), ``v`` = ‖w′ − w″‖₂, ``v_limit`` = η·m·‖∇L(w₀; x̂₁)‖ (the
    single-gradient step, m the uses of x̂₁ so far: where v saturates once SGD has forgotten x̂₁),
    ``weight_change`` = ‖w_t − w₀‖₂,
    ``sigma_avg``, ``accuracy`` (of M_{N+t} on the test split, or ``test_subset`` of its samples) and
    ``noise_floor`` (one value per γ, see the module docstring). The defaults are the quick profile's
    (:data:`VERIFICATION_DEFAULTS`). ``pretrain_lr=None`` pre-trains with ``lr``. ``unlearn_step``: the step
    of the fine-tuning order whose batch is unlearned (0: x̂₁); ``unlearn_batch=k`` makes that batch the k-th
    block of ``batch_size`` consecutive training samples; ``exclude_unlearned=True`` keeps that block out of
    every other step (by default it may recur in later epochs: M′ differs from M by one step).
    ``unlearn_at``: where the unlearning gradient is taken, ``"initial"`` (w₀ = M_N) or ``"final"``
    (w_{N+t}). ``hessian_batch_size``: samples of the fixed, seeded batch σ is computed on.
    ``threads``: torch CPU threads during the run (restored afterwards; ``None`` leaves the setting alone).
    ``deterministic``: run the training inside :func:`~unrolling_lib.training.deterministic_mode`.
    ``record_outputs``: after the last step, record the membership signal
    (:func:`~unrolling_lib.privacy.membership_signal`, both modes) of each of x̂₁'s samples on M (``trained``),
    on M″ by single-gradient unlearning (``unlearned``) and by amnesiac unlearning (``amnesiac``), and on M′
    (``retrained``), in ``result.outputs`` (columns :data:`OUTPUT_COLUMNS`), for the PRS of §4.3 and §8.4.
    ``pretrained_cache``: a dict shared between calls, filled with each M_N under everything it depends on
    (data, model, seed, γ, loss scaling, the pre-training's steps, batch size and rate, device, threads), so
    that runs differing only after pre-training (batch size, η, σ's batch) pre-train once.
    ``seeds``: run the whole protocol once per seed (the table's ``seed`` column); ``None`` runs ``seed``
    alone (the profiles list three). ``momentum``, ``weight_decay`` (fine-tuning only, as
    ``torch.optim.SGD``) and ``unlearn_every_epoch`` (x̂₁'s block first in every epoch, skipped by M′ every
    time, the unlearning step scaled by its uses) reproduce the released code's set-up
    (:data:`RELEASED_FINETUNING`); the defaults are plain SGD. ``eta_t_sigma`` = η·t·σ_avg per row.

    ``checkpoint_dir``: after each γ its rows are written there atomically (CSV with provenance, one folder
    ``seed_<s>`` per seed), as is each pre-trained M_N; a later call with the same parameters and folder skips
    the γ values already done (a seed's folder refuses a call with different parameters). The σ samples are
    in ``result.sigma``, the resolved parameters in ``result.params``. When a γ's training diverges, a warning
    names it, the rows measured before the divergence are kept and the message is in
    ``result.diverged[gamma]`` (``[(seed, gamma)]`` with several seeds).
    """
    params = check_verification_params(
        dataset=dataset, model=model, gammas=gammas, scaling=scaling, pretrain_steps=pretrain_steps,
        pretrain_batch_size=pretrain_batch_size, pretrain_lr=pretrain_lr, finetune_steps=finetune_steps,
        batch_size=batch_size, lr=lr, sigma_every=sigma_every, verify_every=verify_every,
        hessian_batch_size=hessian_batch_size, sigma_mode=sigma_mode, unlearn_step=unlearn_step,
        unlearn_batch=unlearn_batch, exclude_unlearned=exclude_unlearned, unlearn_at=unlearn_at,
        noise_floor=noise_floor, train_subset=train_subset, test_subset=test_subset, threads=threads,
        seeds=[check_int("seed", seed, 0)] if seeds is None else seeds, momentum=momentum,
        weight_decay=weight_decay, unlearn_every_epoch=unlearn_every_epoch, record_outputs=record_outputs)
    gammas, threads, seeds = params.pop("gammas"), params.pop("threads"), params.pop("seeds")
    base = {**params, "pretrain_lr": params["lr"] if params["pretrain_lr"] is None else params["pretrain_lr"]}
    check_bool("progress", progress)
    check_bool("deterministic", deterministic)
    dev = pick_device(device)
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if pretrained_cache is not None and not isinstance(pretrained_cache, MutableMapping):
        raise ParameterError(f"pretrained_cache={type(pretrained_cache).__name__} is not allowed; give a dict or None")
    run = dict(gammas=gammas, threads=threads, device=dev, progress=progress, deterministic=deterministic,
               shared=pretrained_cache)

    tables, sigmas, outputs, diverged = [], [], [], {}
    for s in seeds:
        sub = None if folder is None else (folder / f"seed_{s}" if len(seeds) > 1 or s != seed else folder)
        table, sigma, out, failed = _one_seed({**base, "seed": s}, sub, model, **run)
        tables.append(table)
        sigmas.append(sigma)
        outputs.append(out)
        diverged.update(failed if len(seeds) == 1 else {(s, g): m for g, m in failed.items()})
    df = pd.concat(tables, ignore_index=True)[list(VERIFICATION_COLUMNS)]
    if folder is not None and len(seeds) > 1:
        write_table(df, folder / "verification.csv", seeds=seeds, **base)
    sigma = pd.concat(sigmas, ignore_index=True)
    return VerificationResult(table=df, sigma=sigma, params={**base, "seed": seeds[0], "seeds": seeds},
                              diverged=diverged, outputs=pd.concat(outputs, ignore_index=True)[list(OUTPUT_COLUMNS)])


def _one_seed(p: dict[str, Any], folder: Path | None, model: str, *, gammas: list[float], threads: int | None,
              device: torch.device, progress: bool, deterministic: bool,
              shared: MutableMapping[tuple, dict] | None
              ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[float, str]]:
    """The protocol for every γ at one seed (``p["seed"]``): its table, σ samples, recorded outputs and
    diverged γ values."""
    data = load_dataset(p["dataset"], train=True, subset=p["train_subset"], seed=p["seed"]).to(device)
    test = load_dataset(p["dataset"], train=False, subset=p["test_subset"], seed=p["seed"]).to(device)
    if p["hessian_batch_size"] > len(data):
        raise ParameterError(f"hessian_batch_size={p['hessian_batch_size']} is not allowed; the data has "
                             f"{len(data)} samples")
    order = _finetune_order(len(data), p)
    picked = np.random.default_rng([_HESSIAN_TAG, p["seed"]]).choice(len(data), p["hessian_batch_size"],
                                                                      replace=False)
    hessian_batch = batch_tensors(data, np.sort(picked), device)
    if folder is not None:  # only once every check has passed: a refused call leaves the folder as it was
        # threads, device and deterministic mode each change v in its last digits: a resume must not mix them
        claim_folder(folder, {**p, "threads": threads, "device": str(device), "deterministic": deterministic,
                              "columns": list(VERIFICATION_COLUMNS)},
                     name="checkpoint_dir", stamp="verification_params.json")

    tables, sigmas, outputs, diverged = [], [], [], {}
    for gamma in gammas:
        done = folder / f"gamma_{_tag(gamma)}.csv" if folder is not None else None
        if done is not None and done.exists():
            tables.append(read_table(done))
            for kept, name in ((sigmas, "sigma"), (outputs, "outputs")):
                if done.with_name(f"{name}_gamma_{_tag(gamma)}.csv").exists():
                    kept.append(read_table(done.with_name(f"{name}_gamma_{_tag(gamma)}.csv")))
            continue
        try:
            with cpu_threads(threads):
                rows, sig, out, message = _one_gamma(gamma, data=data, test=test, model_name=model, seed=p["seed"],
                                                p=p, order=order, hessian_batch=hessian_batch, device=device,
                                                checkpoint_dir=folder, progress=progress,
                                                deterministic=deterministic, shared=shared)
        except TrainingDiverged as err:
            message, rows, sig, out = str(err), None, None, None
        if message is not None:
            warnings.warn(f"gamma={gamma:g} (seed {p['seed']}) diverged, its rows stop there: {message}",
                          RuntimeWarning, stacklevel=3)
            diverged[gamma] = message
            if rows is not None:
                tables.append(rows)
                sigmas.append(sig)
            continue  # not saved as done: a resumed run tries it again
        if folder is not None:
            write_table(sig, folder / f"sigma_gamma_{_tag(gamma)}.csv", gamma=gamma, **p)
            if len(out):
                write_table(out, folder / f"outputs_gamma_{_tag(gamma)}.csv", gamma=gamma, **p)
            write_table(rows, folder / f"gamma_{_tag(gamma)}.csv", gamma=gamma, **p)
        tables.append(rows)
        sigmas.append(sig)
        outputs.append(out)

    df = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(VERIFICATION_COLUMNS))
    df = df[list(VERIFICATION_COLUMNS)]
    if folder is not None:
        write_table(df, folder / "verification.csv", **p)
    out = pd.concat(outputs, ignore_index=True) if outputs else pd.DataFrame(columns=list(OUTPUT_COLUMNS))
    return df, pd.concat(sigmas, ignore_index=True) if sigmas else pd.DataFrame(), out, diverged


def _tag(gamma: float) -> str:
    """γ as it appears in a checkpoint's file name: ``repr`` of the float, exact (1.0 and 1.0000001 differ)."""
    return repr(float(gamma))


def summarize_verification(result: VerificationResult | pd.DataFrame) -> VerificationSummary:
    """One row per seed and γ: the last t's e, v, ‖Δw‖, σ_avg, η·t·σ, accuracy and noise floor, Pearson(e, v)
    over t and Pearson of their increments, each with n and a 95% interval; Pearson(e, v) across the γ values
    at the last t per seed (Fig. 10–11) and pooled over seeds. Takes a result or its ``table`` (a table
    without a ``seed`` column counts as seed 0)."""
    df = result.table if isinstance(result, VerificationResult) else result
    if "seed" not in df:
        df = df.assign(seed=0)
    rows = []
    for (seed, gamma), part in df.groupby(["seed", "gamma"], sort=True):
        part = part.sort_values("t")
        last = part.iloc[-1]
        levels = correlation(part["e"], part["v"]) if len(part) >= 2 else None
        steps = increment_correlation(part["e"], part["v"]) if len(part) >= 3 else None
        rows.append({"seed": int(seed), "gamma": gamma, "t": int(last["t"]), "e": last["e"], "v": last["v"],
                     "v_final": last.get("v_final", math.nan), "v_amnesiac": last.get("v_amnesiac", math.nan),
                     "v_limit": last.get("v_limit", math.nan),
                     "weight_change": last["weight_change"], "sigma_avg": last["sigma_avg"],
                     "eta_t_sigma": last.get("eta_t_sigma", math.nan), "accuracy": last["accuracy"],
                     "noise_floor": last["noise_floor"], "n_t": len(part),
                     **_interval(levels, "pearson_e_v_over_t", "pearson_low", "pearson_high"),
                     **_interval(steps, "pearson_increments", "increments_low", "increments_high")})
    out = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    across = []
    for seed, part in out.groupby("seed", sort=True):
        c = correlation(part["e"], part["v"]) if len(part) >= 2 else None
        across.append({"seed": int(seed), "n": len(part), **_interval(c, "pearson", "low", "high")})
    pooled = (correlation(out["e"], out["v"]) if len(out) >= 2
              else Correlation("pearson", math.nan, len(out), -1.0, 1.0, math.nan))
    return VerificationSummary(table=out, across_gamma=pd.DataFrame(across, columns=["seed", "n", "pearson", "low",
                                                                                      "high"]), pooled=pooled)


UNLEARNING_METHODS = {"single_gradient": "v", "single_gradient_final": "v_final", "amnesiac": "v_amnesiac"}


def method_correlations(result: VerificationResult | pd.DataFrame) -> pd.DataFrame:
    """Pearson(e, v) over t for each unlearning method measured on the same runs (Figures 9 and 15), per
    seed and γ: columns ``seed``, ``gamma``, ``method`` (:data:`UNLEARNING_METHODS`), ``n``, ``pearson``,
    ``low``, ``high`` (95% interval), and ``v_last`` (the method's v at the last t)."""
    df = result.table if isinstance(result, VerificationResult) else result
    df = df if "seed" in df else df.assign(seed=0)
    rows = []
    for (seed, gamma), part in df.groupby(["seed", "gamma"], sort=True):
        part = part.sort_values("t")
        for method, column in UNLEARNING_METHODS.items():
            c = correlation(part["e"], part[column]) if len(part) >= 3 else None
            rows.append({"seed": int(seed), "gamma": gamma, "method": method, "n": len(part),
                         **_interval(c, "pearson", "low", "high"), "v_last": part[column].iloc[-1]})
    return pd.DataFrame(rows)


def _interval(c: Correlation | None, r: str, low: str, high: str) -> dict[str, float]:
    """A correlation's r and interval under the given column names (nan when there is none)."""
    if c is None:
        return {r: math.nan, low: math.nan, high: math.nan}
    return {r: c.r, low: c.low, high: c.high}


def unlearned_batch_sensitivity(blocks: Sequence[int], *, gamma: float = 0.0, **params: Any) -> pd.DataFrame:
    """§8.3 repeated with different forgotten batches x̂₁ (``unlearn_batch`` = each of ``blocks``) at one γ.

    Everything else (``params``, as for :func:`verification_experiment`) stays fixed, so the spread of
    Pearson(e, v) over t across the rows is how much the along-t correlation depends on *which* batch is
    forgotten. Only the first of ``seeds`` (if given) is run. One row per block: ``unlearn_batch``, ``gamma``,
    ``n_t``, ``pearson_e_v_over_t`` with its 95% interval ``pearson_low/high``, and the last t's ``e`` and ``v``.
    """
    if isinstance(blocks, np.ndarray):
        blocks = blocks.tolist()
    if not isinstance(blocks, (list, tuple)) or not blocks:
        raise ParameterError(f"blocks={blocks!r} is not allowed; give a non-empty list of block indices")
    blocks = [check_int(f"blocks[{i}]", b, 0) for i, b in enumerate(blocks)]
    gamma = check_number("gamma", gamma, inclusive=True)
    if params.get("seeds"):
        params = {**params, "seeds": list(params["seeds"])[:1]}
    rows = []
    for block in blocks:
        result = verification_experiment(**{**params, "gammas": [gamma], "unlearn_batch": block})
        last = summarize_verification(result).table.iloc[0]
        rows.append({"unlearn_batch": block, "gamma": gamma, "n_t": last["n_t"],
                     **{k: last[k] for k in ("pearson_e_v_over_t", "pearson_low", "pearson_high", "e", "v")}})
    return pd.DataFrame(rows)
