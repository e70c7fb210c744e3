"""§8.3: is the unlearning error (Eq. 9) a proxy for the verification error?

:func:`verification_experiment` runs the protocol for each γ and returns a :class:`VerificationResult`:

    1. Train M₀ for N steps (the SD loss with the run's γ) → M_N, whose weights are w₀ from here on.
    2. From M_N, train t steps on x̂₁ … x̂_t → M_{N+t}, recording e(t) (Eq. 9) with σ sampled every
       ``sigma_every`` steps.
    3. In lockstep, from the same M_N, train M′ on x̂₂ … x̂_t (the same order with x̂₁ skipped).
    4. Unlearn x̂₁ from M_{N+t} with a single gradient (§5.1) taken at w₀: w″ = w_{N+t} + η·∇L(w₀; x̂₁).
    5. v = ‖w′ − w″‖₂, every ``verify_every`` steps, so that e and v can be correlated over t.

The printed §8.3 formula takes the gradient at w_{N+t}; the theory and the released verification code
take it at w₀, the default here (``unlearn_at="final"`` for the printed one). The unlearned batch is step
``unlearn_step`` of the fine-tuning order (x̂₁ is step 0); ``unlearn_batch=114`` makes it the block of
training samples the released code unlearned (its 115th batch of 32, moved to the front). Every γ starts
from the same initial weights and sees the same pre-training and fine-tuning batches. The noise floor is the distance
between M′ and a second, separate retraining on the same order (0 on a CPU; on a GPU, the size of v that
non-deterministic kernels alone produce).

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
from collections.abc import Sequence
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
from ..metrics import accuracy, pearson, verification_error
from ..models import MODELS, build_model
from ..params import flat_weights
from ..storage import atomic_torch_save, claim_folder, read_table, write_table
from ..training import StepState, TrainingDiverged, cpu_threads, pick_device, train, train_lockstep
from ..unlearning import UNLEARN_AT, single_gradient_unlearn
from ..unlearning_error import UnlearningErrorMonitor, unlearning_error, weight_change
from ..validation import ParameterError, check_bool, check_choice, check_int, check_keys, check_number, check_numbers

__all__ = ["SENSITIVITY_BLOCKS", "SUMMARY_COLUMNS", "VERIFICATION_COLUMNS", "VERIFICATION_DEFAULTS",
           "VerificationResult", "VerificationSummary", "check_verification_params", "summarize_verification",
           "unlearned_batch_sensitivity", "verification_experiment"]

VERIFICATION_COLUMNS = ("gamma", "t", "e", "v", "weight_change", "sigma_avg", "accuracy", "noise_floor")
SUMMARY_COLUMNS = ("gamma", "t", "e", "v", "weight_change", "sigma_avg", "accuracy", "noise_floor",
                   "pearson_e_v_over_t")

# Digits and the small CNN on a CPU: seconds for the four γ values. Pre-training and fine-tuning follow the
# released code's settings (batches of 128 at lr 0.1, then batches of 32 at lr 0.01).
_QUICK: dict[str, Any] = {
    "dataset": "digits", "model": "small_cnn", "gammas": [0.0, 5.0, 10.0, 20.0], "scaling": "code",
    "pretrain_steps": 200, "pretrain_batch_size": 128, "pretrain_lr": 0.1,
    "finetune_steps": 400, "batch_size": 32, "lr": 0.01,
    "sigma_every": 50, "verify_every": 25, "hessian_batch_size": 32, "sigma_mode": "spectral",
    "unlearn_step": 0, "unlearn_batch": None, "exclude_unlearned": False, "unlearn_at": "initial",
    "noise_floor": True, "train_subset": None, "test_subset": None, "threads": 1,
}
# CIFAR-10 and ResNet-18 on one GPU (a T4: about 4 minutes per γ), with far fewer steps than the paper.
_COLAB: dict[str, Any] = {
    **_QUICK, "dataset": "cifar10", "model": "resnet18", "pretrain_steps": 780, "finetune_steps": 1000,
    "sigma_every": 200, "verify_every": 100, "hessian_batch_size": 512, "test_subset": 2000, "threads": None,
}
# The paper's setting (§8.1, §8.3) as its released code ran it: pre-training 20 epochs in batches of 128
# at lr 0.1, fine-tuning 5 epochs in batches of 32 at lr 0.01, σ on a fixed batch of 512 every 200 steps,
# the CIFAR-10 γ grid, x̂₁ = the 115th block of 32 training images (batch index 114). Hours per γ.
_PAPER: dict[str, Any] = {
    **_COLAB, "gammas": [0.0, 1.0, 5.0, 10.0, 15.0, 20.0], "pretrain_steps": 7800, "finetune_steps": 7810,
    "unlearn_batch": 114, "test_subset": None,
}
VERIFICATION_DEFAULTS: dict[str, dict[str, Any]] = {"quick": _QUICK, "colab": _COLAB, "paper": _PAPER}

# Forgotten batches for :func:`unlearned_batch_sensitivity`, evenly spread over the training blocks (the
# released code's block 114 included where the data has it).
SENSITIVITY_BLOCKS: dict[str, list[int]] = {"quick": [0, 11, 22, 33], "colab": [0, 114, 500, 1000],
                                            "paper": [114, 400, 800, 1200]}

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
    """

    table: pd.DataFrame
    sigma: pd.DataFrame
    params: dict[str, Any]
    diverged: dict[float, str] = field(default_factory=dict)


@dataclass
class VerificationSummary:
    """What :func:`summarize_verification` returns. ``table``: one row per γ at its last t, columns
    :data:`SUMMARY_COLUMNS`. ``pearson_over_gamma``: Pearson(e, v) across the γ values at the last t (the
    paper's Figure 11 correlates across γ); nan with fewer than two γ."""

    table: pd.DataFrame
    pearson_over_gamma: float


# ---------------------------------------------------------------------------------------------------
# Pieces
# ---------------------------------------------------------------------------------------------------


def _build(name: str, data: TensorData, seed: int) -> nn.Module:
    """The model ``name`` for ``data``'s input shape, with initial weights fixed by ``seed``."""
    if name in ("mlp", "linear_head"):
        return build_model(name, data.num_classes, seed=seed, in_features=int(np.prod(data.x.shape[1:])))
    return build_model(name, data.num_classes, seed=seed, in_channels=int(data.x.shape[1]))


def _finetune_order(n: int, p: dict[str, Any]) -> BatchOrder:
    """The fine-tuning batches x̂₁ … x̂_t (seeded, the same for every γ).

    With ``unlearn_batch = k``, the batch at step ``unlearn_step`` is the k-th block of ``batch_size``
    consecutive training samples (the released code's choice of x̂₁). The other steps follow the seeded order
    over all samples, so x̂₁'s samples may recur in later epochs, for M and M′ alike (§8.3 removes a *step*);
    with ``exclude_unlearned`` they draw from the remaining samples only (the data itself is removed).
    """
    bs, steps, seed = p["batch_size"], p["finetune_steps"], p["seed"] + 1
    if p["unlearn_batch"] is None:
        return BatchOrder(n, bs, steps=steps, seed=seed)
    k = p["unlearn_batch"]
    if bs * (k + 1) > n:
        raise ParameterError(f"unlearn_batch={k} is not allowed; the data has {n // bs} blocks of {bs} samples")
    block = np.arange(bs * k, bs * (k + 1))
    pool = np.setdiff1d(np.arange(n), block) if p["exclude_unlearned"] else np.arange(n)
    batches = [pool[b] for b in BatchOrder(len(pool), bs, steps=steps - 1, seed=seed)] if steps > 1 else []
    batches.insert(p["unlearn_step"], block)
    return BatchOrder.from_batches(batches, n)


class _VerificationProbe:
    """Every ``every`` steps of the lockstep run, and after its last step: w″ by single-gradient unlearning,
    v = ‖w′ − w″‖, e(t) with the monitor's σ_avg so far, ‖w_t − w₀‖ and test accuracy."""

    def __init__(self, *, every: int, w0: nn.Module, loss_fn: Any, batch: tuple[torch.Tensor, torch.Tensor],
                 unlearn_step: int, lr: float, unlearn_at: str, monitor: UnlearningErrorMonitor,
                 test: TensorData) -> None:
        self.every, self.w0, self.loss_fn, self.batch = every, w0, loss_fn, batch
        self.unlearn_step, self.lr, self.unlearn_at = unlearn_step, lr, unlearn_at
        self.monitor, self.test = monitor, test
        self.w0_flat = flat_weights(w0).clone()
        self.rows: list[dict[str, Any]] = []

    def on_step(self, state: StepState) -> None:
        t = state.t
        used = 1 if state.step >= self.unlearn_step else 0  # x̂ was used once by M, never by M′
        unlearned = single_gradient_unlearn(state.model, self.w0, self.loss_fn, *self.batch, lr=self.lr,
                                            times_used=used, unlearn_at=self.unlearn_at)
        change = weight_change(state.model, self.w0_flat)
        sigma_avg = self.monitor.sigma_avg
        e = unlearning_error(self.lr, t, change, sigma_avg) if math.isfinite(sigma_avg) else math.nan
        self.rows.append({"t": t, "e": e, "v": verification_error(unlearned, state.retrained),
                          "weight_change": change, "sigma_avg": sigma_avg,
                          "accuracy": accuracy(state.model, self.test)})

    def on_end(self, state: StepState | None) -> None:
        """The last step taken is always measured, on the grid or not."""
        if state is not None and (not self.rows or self.rows[-1]["t"] != state.t):
            self.on_step(state)


def _one_gamma(gamma: float, *, data: TensorData, test: TensorData, model_name: str, seed: int, p: dict[str, Any],
               order: BatchOrder, hessian_batch: tuple[torch.Tensor, torch.Tensor], device: torch.device,
               checkpoint_dir: Path | None, progress: bool,
               deterministic: bool) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """The §8.3 protocol for one γ: the rows of the result table, the monitor's σ records and, if the
    fine-tuning diverged, its message (the rows then stop before the divergence; pre-training that
    diverges raises TrainingDiverged)."""
    loss_fn = make_loss(gamma, p["scaling"])
    common = dict(gamma=gamma, scaling=p["scaling"], progress=progress, deterministic=deterministic,
                  on_divergence="raise")
    model = _build(model_name, data, seed).to(device)

    # 1. Pre-training → M_N (cached, so that a resumed run does not repeat it).
    cached = checkpoint_dir / f"pretrained_gamma_{_tag(gamma)}.pt" if checkpoint_dir is not None else None
    if p["pretrain_steps"] > 0:
        if cached is not None and cached.exists():
            model.load_state_dict(torch.load(cached, map_location=device, weights_only=True))
        else:
            pre = BatchOrder(len(data), p["pretrain_batch_size"], steps=p["pretrain_steps"], seed=seed)
            train(model, data, pre, lr=p["pretrain_lr"], desc=f"pre-train γ={gamma:g}", **common)
            if cached is not None:
                atomic_torch_save(model.state_dict(), cached)
    w0 = copy.deepcopy(model)

    # 2–5. Fine-tune M and M′ in lockstep; the monitor records σ, the probe e, v, ‖Δw‖ and accuracy.
    monitor = UnlearningErrorMonitor(p["lr"], *hessian_batch, loss_fn=loss_fn, every=p["sigma_every"],
                                     sigma_mode=p["sigma_mode"])
    step = p["unlearn_step"]
    probe = _VerificationProbe(every=p["verify_every"], w0=w0, loss_fn=loss_fn,
                               batch=batch_tensors(data, order[step], device), unlearn_step=step, lr=p["lr"],
                               unlearn_at=p["unlearn_at"], monitor=monitor, test=test)
    message, floor = None, math.nan
    try:
        pair = train_lockstep(model, data, order, unlearn_step=step, lr=p["lr"], callbacks=[monitor, probe],
                              desc=f"fine-tune γ={gamma:g}", **common)
    except TrainingDiverged as err:  # keep the rows measured before it diverged
        message = str(err)

    # Noise floor: retrain M′ a second time, separately, on the same order.
    if p["noise_floor"] and message is None:
        again = train(copy.deepcopy(w0), data, order.without(step), lr=p["lr"], desc="noise floor", **common)
        floor = verification_error(again.model, pair.retrained)

    rows = pd.DataFrame(probe.rows, columns=[c for c in VERIFICATION_COLUMNS if c not in ("gamma", "noise_floor")])
    rows.insert(0, "gamma", gamma)
    rows["noise_floor"] = floor
    sigmas = monitor.frame()
    sigmas.insert(0, "gamma", gamma)
    return rows[list(VERIFICATION_COLUMNS)], sigmas, message


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
    }
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
    seed: int = 0,
    device: str | torch.device = "auto",
    checkpoint_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    deterministic: bool = False,
) -> VerificationResult:
    """§8.3's verification protocol for each γ in ``gammas``; ``result.table`` has one row per γ and measured t.

    Columns: ``gamma``, ``t`` (fine-tuning steps, every ``verify_every`` and the last), ``e`` (Eq. 9, σ_avg over the σ
    samples taken every ``sigma_every`` steps so far), ``v`` = ‖w′ − w″‖₂, ``weight_change`` = ‖w_t − w₀‖₂,
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

    ``checkpoint_dir``: after each γ its rows are written there atomically (CSV with provenance), as is
    each pre-trained M_N; a later call with the same parameters and folder skips the γ values already done
    (the folder refuses a call with different parameters). The σ samples are in ``result.sigma``, the
    resolved parameters in ``result.params``. When a γ's training diverges, a warning names it, the rows
    measured before the divergence are kept and the message is in ``result.diverged[gamma]``.
    """
    params = check_verification_params(
        dataset=dataset, model=model, gammas=gammas, scaling=scaling, pretrain_steps=pretrain_steps,
        pretrain_batch_size=pretrain_batch_size, pretrain_lr=pretrain_lr, finetune_steps=finetune_steps,
        batch_size=batch_size, lr=lr, sigma_every=sigma_every, verify_every=verify_every,
        hessian_batch_size=hessian_batch_size, sigma_mode=sigma_mode, unlearn_step=unlearn_step,
        unlearn_batch=unlearn_batch, exclude_unlearned=exclude_unlearned, unlearn_at=unlearn_at,
        noise_floor=noise_floor, train_subset=train_subset, test_subset=test_subset, threads=threads)
    gammas, threads = params.pop("gammas"), params.pop("threads")
    p = {**params, "pretrain_lr": params["lr"] if params["pretrain_lr"] is None else params["pretrain_lr"],
         "seed": check_int("seed", seed, 0)}
    check_bool("progress", progress)
    check_bool("deterministic", deterministic)
    dev = pick_device(device)
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None

    data = load_dataset(dataset, train=True, subset=p["train_subset"], seed=p["seed"]).to(dev)
    test = load_dataset(dataset, train=False, subset=p["test_subset"], seed=p["seed"]).to(dev)
    if p["hessian_batch_size"] > len(data):
        raise ParameterError(f"hessian_batch_size={hessian_batch_size} is not allowed; the data has {len(data)} "
                             "samples")
    order = _finetune_order(len(data), p)
    picked = np.random.default_rng([_HESSIAN_TAG, p["seed"]]).choice(len(data), p["hessian_batch_size"],
                                                                      replace=False)
    hessian_batch = batch_tensors(data, np.sort(picked), dev)
    if folder is not None:  # only once every check has passed: a refused call leaves the folder as it was
        # threads, device and deterministic mode each change v in its last digits: a resume must not mix them
        claim_folder(folder, {**p, "threads": threads, "device": str(dev), "deterministic": deterministic},
                     name="checkpoint_dir", stamp="verification_params.json")

    tables, sigmas, diverged = [], [], {}
    for gamma in gammas:
        done = folder / f"gamma_{_tag(gamma)}.csv" if folder is not None else None
        if done is not None and done.exists():
            tables.append(read_table(done))
            if done.with_name(f"sigma_gamma_{_tag(gamma)}.csv").exists():
                sigmas.append(read_table(done.with_name(f"sigma_gamma_{_tag(gamma)}.csv")))
            continue
        try:
            with cpu_threads(threads):
                rows, sig, message = _one_gamma(gamma, data=data, test=test, model_name=model, seed=p["seed"],
                                                p=p, order=order, hessian_batch=hessian_batch, device=dev,
                                                checkpoint_dir=folder, progress=progress,
                                                deterministic=deterministic)
        except TrainingDiverged as err:
            message, rows, sig = str(err), None, None
        if message is not None:
            warnings.warn(f"gamma={gamma:g} diverged, its rows stop there: {message}", RuntimeWarning,
                          stacklevel=2)
            diverged[gamma] = message
            if rows is not None:
                tables.append(rows)
                sigmas.append(sig)
            continue  # not saved as done: a resumed run tries it again
        if folder is not None:
            write_table(sig, folder / f"sigma_gamma_{_tag(gamma)}.csv", gamma=gamma, **p)
            write_table(rows, folder / f"gamma_{_tag(gamma)}.csv", gamma=gamma, **p)
        tables.append(rows)
        sigmas.append(sig)

    df = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(VERIFICATION_COLUMNS))
    df = df[list(VERIFICATION_COLUMNS)]
    if folder is not None:
        write_table(df, folder / "verification.csv", **p)
    sigma = pd.concat(sigmas, ignore_index=True) if sigmas else pd.DataFrame()
    return VerificationResult(table=df, sigma=sigma, params=p, diverged=diverged)


def _tag(gamma: float) -> str:
    """γ as it appears in a checkpoint's file name: ``repr`` of the float, exact (1.0 and 1.0000001 differ)."""
    return repr(float(gamma))


def summarize_verification(result: VerificationResult | pd.DataFrame) -> VerificationSummary:
    """One row per γ: the last t's e, v, ‖Δw‖, σ_avg, accuracy and noise floor, and Pearson(e, v) over t;
    and Pearson(e, v) across the γ values at the last t (Fig. 10–11). Takes a result or its ``table``."""
    df = result.table if isinstance(result, VerificationResult) else result
    rows = []
    for gamma, part in df.groupby("gamma", sort=True):
        part = part.sort_values("t")
        last = part.iloc[-1]
        ok = part["v"].std() > 0 and part["e"].std() > 0 and len(part) >= 2
        rows.append({"gamma": gamma, "t": int(last["t"]), "e": last["e"], "v": last["v"],
                     "weight_change": last["weight_change"], "sigma_avg": last["sigma_avg"],
                     "accuracy": last["accuracy"], "noise_floor": last["noise_floor"],
                     "pearson_e_v_over_t": pearson(part["e"], part["v"]) if ok else math.nan})
    out = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    return VerificationSummary(table=out, pearson_over_gamma=pearson(out["e"], out["v"]) if len(out) >= 2
                               else math.nan)


def unlearned_batch_sensitivity(blocks: Sequence[int], *, gamma: float = 0.0, **params: Any) -> pd.DataFrame:
    """§8.3 repeated with different forgotten batches x̂₁ (``unlearn_batch`` = each of ``blocks``) at one γ.

    Everything else (``params``, as for :func:`verification_experiment`) stays fixed, so the spread of
    Pearson(e, v) over t across the rows is how much the along-t correlation depends on *which* batch is
    forgotten. One row per block: ``unlearn_batch``, ``gamma``, ``pearson_e_v_over_t`` and the last t's ``e``
    and ``v``.
    """
    if isinstance(blocks, np.ndarray):
        blocks = blocks.tolist()
    if not isinstance(blocks, (list, tuple)) or not blocks:
        raise ParameterError(f"blocks={blocks!r} is not allowed; give a non-empty list of block indices")
    blocks = [check_int(f"blocks[{i}]", b, 0) for i, b in enumerate(blocks)]
    gamma = check_number("gamma", gamma, inclusive=True)
    rows = []
    for block in blocks:
        result = verification_experiment(**{**params, "gammas": [gamma], "unlearn_batch": block})
        last = summarize_verification(result).table.iloc[0]
        rows.append({"unlearn_batch": block, "gamma": gamma, "pearson_e_v_over_t": last["pearson_e_v_over_t"],
                     "e": last["e"], "v": last["v"]})
    return pd.DataFrame(rows)
