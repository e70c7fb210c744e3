"""The unlearning error along training: the machinery of §6.1, §8.1 and §8.2.

:func:`error_curves` runs §8.1's set-up for every cell of a grid and returns one tidy table:

    1. Train M₀ (initial weights fixed by the seed) for N steps with the cell's loss → M_N, whose weights
       are w₀ from here on. N = 0 is §6.1's "training for less" (e from random initialisation).
    2. From M_N, train t more steps on x̂₁ … x̂_t (a seeded order, the same for every cell of a seed)
       → M_{N+t}, recording every ``record_every`` steps: e(t) (Eq. 9, σ sampled every ``sigma_every``
       steps on a fixed batch), ‖w_t − w₀‖₂, ‖w_t‖₂, ‖w₀‖₂, σ_avg, η·t·σ_avg and test accuracy.

A cell is a seed, a setting (data set and model), a loss and an N. The loss is the cross entropy plus
the SD term (Eq. 10, strength γ, ``scaling`` as everywhere) and an ℓ2 term of strength λ (§6.1), one
γ and one λ per cell. Every γ, λ and N of a seed starts from the same M₀ and sees the same batches.

ℓ2, two ways (§6.1). The paper writes the penalty as λ‖w‖₂; its released CIFAR scripts pass λ to the
optimiser as ``weight_decay``, which is the gradient of λ/2·‖w‖²₂. ``l2_form="weight_decay"`` (the
default, what the code ran) uses the latter, ``l2_form="norm"`` adds λ‖w‖₂ to the loss, as written
(:func:`unrolling_lib.losses.l2_penalty`). Both are over the trainable parameters. σ is taken on the data
loss (cross entropy and SD term) alone: the penalty's own Hessian, λ·I for weight decay, would add λ.

Pre-training is shared along N: one run to the largest N of the grid, a copy kept at each N, so a grid
of several N costs one pre-training per seed, setting and loss.

Long runs. A tqdm bar counts the runs (one per seed, setting and loss). With ``checkpoint_dir`` each cell's
rows and σ samples are written atomically as the cell finishes, and each pre-trained M_N as pre-training
reaches it (deleted once its cell is written); a later call with the same parameters and folder reads the
finished cells back and resumes pre-training from the latest M_N on disk, so an interrupted Colab session
loses at most the cell in flight. A folder that holds other parameters is refused.

The §6.1, §8.1 and §8.2 chapters call this with their own grids (``strawmen``, ``sd_loss``, ``ablation``).
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
from tqdm import tqdm

from ..curvature import SIGMA_MODES
from ..data import DATASETS, BatchOrder, TensorData, batch_tensors, load_dataset
from ..losses import check_scaling, l2_penalty, make_loss
from ..metrics import accuracy
from ..models import MODELS, build_model_for
from ..params import flat_weights
from ..storage import atomic_torch_save, claim_folder, read_table, write_table
from ..training import StepState, TrainingDiverged, bars_wanted, cpu_threads, pick_device, train
from ..unlearning_error import UnlearningErrorMonitor, eta_t_sigma, unlearning_error, weight_change
from ..validation import ParameterError, check_bool, check_choice, check_int, check_ints, check_number, check_numbers

__all__ = ["CURVE_COLUMNS", "ERROR_CURVE_DEFAULTS", "L2_FORMS", "RUN_KEYS", "STAND_INS", "ErrorCurves",
           "check_error_curve_params", "error_curves", "final_rows", "paper_beside_ours"]

L2_FORMS = ("weight_decay", "norm")
RUN_KEYS = ("seed", "dataset", "model", "gamma", "l2")  # one pre-training (and one checkpoint) per key
CELL_KEYS = (*RUN_KEYS, "pretrain_steps")
CURVE_COLUMNS = (*CELL_KEYS, "t", "e", "weight_change", "weight_norm", "initial_norm", "sigma_avg",
                 "eta_t_sigma", "accuracy")

# The quick profile's shape of a call; the section modules override the grids. Batches of 128 at lr 0.1 as
# the released training scripts (plain SGD: no momentum, no augmentation, §9).
ERROR_CURVE_DEFAULTS: dict[str, Any] = {
    "settings": [["digits", "small_vgg"], ["digits", "small_resnet"], ["mnist5k", "small_vgg"],
                 ["mnist5k", "small_resnet"]],
    "gammas": [0.0], "l2s": [0.0], "l2_form": "weight_decay", "scaling": "code",
    "pretrain_steps": [0], "steps": 100, "batch_size": 128, "lr": 0.1,
    "sigma_every": 25, "record_every": 10, "hessian_batch_size": 128, "sigma_mode": "spectral",
    "sigma_max_iter": 100, "train_subset": None, "test_subset": None, "seeds": [0], "threads": None,
}
_D = ERROR_CURVE_DEFAULTS
_HESSIAN_TAG = 0x5E61  # keeps the Hessian batch's random stream apart from the orders'


@dataclass
class ErrorCurves:
    """What :func:`error_curves` returns.

    ``table``: one row per cell and recorded t (t = 0 included: M_N itself), columns :data:`CURVE_COLUMNS`.
    ``sigma``: the σ samples (the cell's keys and :data:`unrolling_lib.unlearning_error.MONITOR_COLUMNS`).
    ``params``: the resolved parameters. ``diverged``: cell key (seed, dataset, model, γ, λ, N) → the
    message of a run that diverged (its rows stop before the divergence; a pre-training that diverged has
    no rows for any N).
    """

    table: pd.DataFrame
    sigma: pd.DataFrame
    params: dict[str, Any]
    diverged: dict[tuple, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------------


def _check_settings(settings: Any) -> list[list[str]]:
    if not isinstance(settings, (list, tuple)) or not settings:
        raise ParameterError(f"settings={settings!r} is not allowed; give a non-empty list of [dataset, model] "
                             "pairs")
    out = []
    for i, pair in enumerate(settings):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ParameterError(f"settings[{i}]={pair!r} is not allowed; give a [dataset, model] pair")
        out.append([check_choice(f"settings[{i}] dataset", pair[0], DATASETS),
                    check_choice(f"settings[{i}] model", pair[1], tuple(MODELS))])
    if len({tuple(p) for p in out}) != len(out):
        raise ParameterError(f"settings={settings!r} is not allowed; each [dataset, model] pair once")
    return out


def check_error_curve_params(**params: Any) -> dict[str, Any]:
    """Check the parameters of :func:`error_curves` (the keys of :data:`ERROR_CURVE_DEFAULTS`) before any
    work; return them normalised. A bad value stops with one line naming the parameter and what is allowed."""
    unknown = sorted(set(params) - set(_D))
    if unknown:
        raise ParameterError(f"{unknown[0]} is not a parameter of the error-curve experiment; known: "
                             f"{', '.join(sorted(_D))}")
    q = {**_D, **params}

    def optional_int(name: str, low: int) -> int | None:
        return None if q[name] is None else check_int(name, q[name], low)

    return {
        "settings": _check_settings(q["settings"]),
        "gammas": check_numbers("gammas", q["gammas"], inclusive=True, distinct=True, scalar_ok=True),
        "l2s": check_numbers("l2s", q["l2s"], inclusive=True, distinct=True, scalar_ok=True),
        "l2_form": check_choice("l2_form", q["l2_form"], L2_FORMS),
        "scaling": check_scaling(q["scaling"]),
        "pretrain_steps": check_ints("pretrain_steps", q["pretrain_steps"], 0, distinct=True),
        "steps": check_int("steps", q["steps"], 1),
        "batch_size": check_int("batch_size", q["batch_size"], 1),
        "lr": check_number("lr", q["lr"]),
        "sigma_every": check_int("sigma_every", q["sigma_every"], 1),
        "record_every": check_int("record_every", q["record_every"], 1),
        "hessian_batch_size": check_int("hessian_batch_size", q["hessian_batch_size"], 1),
        "sigma_mode": check_choice("sigma_mode", q["sigma_mode"], SIGMA_MODES),
        "sigma_max_iter": check_int("sigma_max_iter", q["sigma_max_iter"], 1),
        "train_subset": optional_int("train_subset", 1),
        "test_subset": optional_int("test_subset", 1),
        "seeds": check_ints("seeds", q["seeds"], 0, distinct=True),
        "threads": optional_int("threads", 1),
    }


# ---------------------------------------------------------------------------------------------------
# Pieces
# ---------------------------------------------------------------------------------------------------


def _training_loss(model: nn.Module, gamma: float, scaling: str, l2: float, l2_form: str) -> dict[str, Any]:
    """The keyword arguments of :func:`~unrolling_lib.training.train` for the cell's loss: the data loss
    (CE + SD term) and the ℓ2 term, as weight decay or as λ‖w‖₂ added to the loss."""
    data_loss = make_loss(gamma, scaling)
    if l2 == 0.0:
        return {"loss_fn": data_loss}
    if l2_form == "weight_decay":
        return {"loss_fn": data_loss, "weight_decay": l2}

    def penalised(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return data_loss(logits, targets) + l2_penalty(model, l2)

    penalised.__name__ = f"{getattr(data_loss, '__name__', repr(data_loss))} + {l2:g}·‖w‖₂"
    return {"loss_fn": penalised}


class _Snapshots:
    """Keeps a copy of the weights (and BatchNorm buffers) when the run reaches each step count in ``steps``
    (``offset``: the step count the run starts from). With ``path`` (step count → file) each copy is also
    written there atomically, so that an interrupted grid resumes from it instead of pre-training again."""

    every = 1

    def __init__(self, steps: Sequence[int], *, offset: int = 0, path: Any = None) -> None:
        self.steps, self.offset, self.path, self.kept = set(steps), offset, path, {}

    def on_start(self, model: nn.Module) -> None:
        if self.offset in self.steps:
            self._keep(model, self.offset)

    def on_step(self, state: StepState) -> None:
        if state.t + self.offset in self.steps:
            self._keep(state.model, state.t + self.offset)

    def _keep(self, model: nn.Module, n: int) -> None:
        self.kept[n] = copy.deepcopy(model.state_dict())
        if self.path is not None and n > 0:  # M₀ is rebuilt from the seed
            atomic_torch_save(self.kept[n], self.path(n))


class _CurveProbe:
    """Every ``every`` steps, at t = 0 and after the last step: e(t) with the monitor's σ_avg so far,
    ‖w_t − w₀‖₂, ‖w_t‖₂ and test accuracy."""

    def __init__(self, *, every: int, lr: float, monitor: UnlearningErrorMonitor, test: TensorData) -> None:
        self.every, self.lr, self.monitor, self.test = every, lr, monitor, test
        self.rows: list[dict[str, Any]] = []
        self.w0: torch.Tensor | None = None

    def on_start(self, model: nn.Module) -> None:
        self.w0 = flat_weights(model).detach().clone()
        self._record(model, 0)

    def on_step(self, state: StepState) -> None:
        self._record(state.model, state.t)

    def on_end(self, state: StepState | None) -> None:
        if state is not None and self.rows[-1]["t"] != state.t:
            self._record(state.model, state.t)

    def _record(self, model: nn.Module, t: int) -> None:
        w = flat_weights(model)
        s = self.monitor.sigma_avg
        finite = math.isfinite(s)
        change = weight_change(w, self.w0)
        self.rows.append({"t": t, "e": (0.0 if t == 0 else unlearning_error(self.lr, t, change, s)) if finite
                          else math.nan, "weight_change": change, "weight_norm": float(w.norm()),
                          "initial_norm": float(self.w0.norm()), "sigma_avg": s,
                          "eta_t_sigma": eta_t_sigma(self.lr, t, s) if finite else math.nan,
                          "accuracy": accuracy(model, self.test)})


class _RunFiles:
    """Where a run's cells and pre-trained snapshots live in ``checkpoint_dir`` (nothing without one)."""

    def __init__(self, folder: Path | None, key: dict[str, Any]) -> None:
        self.folder, self.name = folder, _run_name(key)

    def cell(self, n: int) -> Path | None:
        return None if self.folder is None else self.folder / f"{self.name}_N_{n}.csv"

    def sigma(self, n: int) -> Path | None:
        return None if self.folder is None else self.folder / f"sigma_{self.name}_N_{n}.csv"

    def snapshot(self, n: int) -> Path | None:
        return None if self.folder is None else self.folder / f"pretrained_{self.name}_N_{n}.pt"

    def has(self, path: Path | None) -> bool:
        return path is not None and path.exists()


def _one_run(key: dict[str, Any], p: dict[str, Any], *, data: TensorData, test: TensorData,
             hessian_batch: tuple[torch.Tensor, torch.Tensor], finetune: BatchOrder, device: torch.device,
             progress: bool, folder: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict[tuple, str]]:
    """Every N of one seed, setting and loss: the rows, the σ samples and the diverged cells.

    With ``folder``, a cell already written there is read back, each finished cell is written as it ends,
    and pre-training resumes from the latest snapshot on disk (a snapshot is deleted once its cell is
    written): an interruption loses at most the cell in flight and the pre-training since the last N."""
    seed, gamma, l2 = key["seed"], key["gamma"], key["l2"]
    label = f"{key['dataset']}/{key['model']} γ={gamma:g} λ={l2:g}"
    files = _RunFiles(folder, key)
    grid = sorted(p["pretrain_steps"])
    common = dict(lr=p["lr"], progress=progress, on_divergence="raise")
    rows, sigmas, diverged = {}, {}, {}
    for n in grid:
        if files.has(files.cell(n)) and files.has(files.sigma(n)):
            rows[n], sigmas[n] = read_table(files.cell(n)), read_table(files.sigma(n))
    todo = [n for n in grid if n not in rows]
    if not todo:
        return _joined(rows, sigmas, grid) + (diverged,)
    model = build_model_for(key["model"], data.x.shape[1:], data.num_classes, seed=seed).to(device)
    # Pre-train to the largest N whose weights are not on disk, from the latest snapshot below the first such N.
    missing = [n for n in todo if n > 0 and not files.has(files.snapshot(n))]
    start = max([n for n in grid if n > 0 and files.has(files.snapshot(n)) and (not missing or n < min(missing))],
                default=0)
    end = max(missing, default=start)
    if start > 0:
        model.load_state_dict(torch.load(files.snapshot(start), map_location=device, weights_only=True))
    snapshots = _Snapshots([n for n in grid if start <= n <= end], offset=start,
                           path=files.snapshot if folder is not None else None)
    if end > start:
        order = BatchOrder(len(data), p["batch_size"], steps=grid[-1], seed=seed)
        part = BatchOrder.from_batches([order[i] for i in range(start, end)], len(data))
        try:
            train(model, data, part, callbacks=[snapshots], desc=f"pre-train {label}",
                  **common, **_training_loss(model, gamma, p["scaling"], l2, p["l2_form"]))
        except TrainingDiverged as err:  # the N reached before the divergence are still measured
            diverged.update({(*key.values(), n): str(err) for n in missing if n not in snapshots.kept})
    else:
        snapshots.on_start(model)
    for n in todo:
        if n in snapshots.kept:
            model.load_state_dict(snapshots.kept[n])
        elif files.has(files.snapshot(n)):
            model.load_state_dict(torch.load(files.snapshot(n), map_location=device, weights_only=True))
        else:
            continue  # pre-training diverged before N
        monitor = UnlearningErrorMonitor(p["lr"], *hessian_batch, loss_fn=make_loss(gamma, p["scaling"]),
                                         every=p["sigma_every"], sigma_mode=p["sigma_mode"],
                                         max_iter=p["sigma_max_iter"])
        probe = _CurveProbe(every=p["record_every"], lr=p["lr"], monitor=monitor, test=test)
        failed = None
        try:
            train(model, data, finetune, callbacks=[monitor, probe], desc=f"N={n} {label}", **common,
                  **_training_loss(model, gamma, p["scaling"], l2, p["l2_form"]))
        except TrainingDiverged as err:
            failed = diverged[(*key.values(), n)] = str(err)
        cell = {**key, "pretrain_steps": n}
        rows[n] = pd.DataFrame(probe.rows).assign(**cell)[list(CURVE_COLUMNS)]
        sigmas[n] = monitor.frame().assign(**cell)
        if folder is not None and failed is None:  # a cell that diverged is tried again on resume
            write_table(sigmas[n], files.sigma(n), **cell)
            write_table(rows[n], files.cell(n), **cell)
            if files.has(files.snapshot(n)):
                files.snapshot(n).unlink()
    return _joined(rows, sigmas, grid) + (diverged,)


def _joined(rows: dict[int, pd.DataFrame], sigmas: dict[int, pd.DataFrame],
            grid: list[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A run's cells in N order: its rows and σ samples."""
    ns = [n for n in grid if n in rows]
    table = pd.concat([rows[n] for n in ns], ignore_index=True)[list(CURVE_COLUMNS)] if ns else _empty(CURVE_COLUMNS)
    sigma = pd.concat([sigmas[n] for n in ns], ignore_index=True) if ns else pd.DataFrame(columns=list(CELL_KEYS))
    return table, sigma


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(columns=list(columns))


def _run_name(key: dict[str, Any]) -> str:
    """A run's file name: every key, γ and λ as exact reprs (1.0 and 1.0000001 differ)."""
    return (f"seed_{key['seed']}_{key['dataset']}_{key['model']}_gamma_{float(key['gamma'])!r}"
            f"_l2_{float(key['l2'])!r}")


# ---------------------------------------------------------------------------------------------------
# The experiment
# ---------------------------------------------------------------------------------------------------


def error_curves(
    *,
    settings: Sequence[Sequence[str]] = tuple(tuple(s) for s in _D["settings"]),
    gammas: Sequence[float] = tuple(_D["gammas"]),
    l2s: Sequence[float] = tuple(_D["l2s"]),
    l2_form: str = _D["l2_form"],
    scaling: str = _D["scaling"],
    pretrain_steps: Sequence[int] = tuple(_D["pretrain_steps"]),
    steps: int = _D["steps"],
    batch_size: int = _D["batch_size"],
    lr: float = _D["lr"],
    sigma_every: int = _D["sigma_every"],
    record_every: int = _D["record_every"],
    hessian_batch_size: int = _D["hessian_batch_size"],
    sigma_mode: str = _D["sigma_mode"],
    sigma_max_iter: int = _D["sigma_max_iter"],
    train_subset: int | None = _D["train_subset"],
    test_subset: int | None = _D["test_subset"],
    seeds: Sequence[int] = tuple(_D["seeds"]),
    threads: int | None = _D["threads"],
    device: str | torch.device = "auto",
    checkpoint_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> ErrorCurves:
    """e(t), ‖w_t − w₀‖₂, ‖w_t‖₂, σ_avg and accuracy for every seed, setting, γ, λ and N (module docstring).

    ``settings``: [dataset, model] pairs (``DATASETS`` × ``MODELS``). ``gammas``: SD strengths (γ = 0:
    cross entropy). ``l2s``: ℓ2 strengths λ, applied as ``l2_form``. The grid is every γ × λ. ``pretrain_steps``:
    the N values (0 allowed). ``steps``: t after M_N. Batches of ``batch_size`` at learning rate ``lr``
    (plain SGD) for both phases. σ every ``sigma_every`` steps on ``hessian_batch_size`` seeded training
    samples (mode ``sigma_mode``, at most ``sigma_max_iter`` Lanczos products each: a cap for large models
    on slow hardware, whose samples then say ``converged=False``); rows every ``record_every`` steps.
    ``train_subset`` / ``test_subset``: samples of each split (accuracy is on the test split). ``threads``:
    torch CPU threads during the run.
    ``checkpoint_dir``: see the module docstring. Defaults: :data:`ERROR_CURVE_DEFAULTS`.
    """
    p = check_error_curve_params(
        settings=settings, gammas=gammas, l2s=l2s, l2_form=l2_form, scaling=scaling, pretrain_steps=pretrain_steps,
        steps=steps, batch_size=batch_size, lr=lr, sigma_every=sigma_every, record_every=record_every,
        hessian_batch_size=hessian_batch_size, sigma_mode=sigma_mode, sigma_max_iter=sigma_max_iter,
        train_subset=train_subset,
        test_subset=test_subset, seeds=seeds, threads=threads)
    check_bool("progress", progress)
    dev = pick_device(device)
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    keys = [{"seed": s, "dataset": d, "model": m, "gamma": g, "l2": lam}
            for s in p["seeds"] for d, m in p["settings"] for g in p["gammas"] for lam in p["l2s"]]
    datasets = dict.fromkeys(d for d, _ in p["settings"])
    loaded = {(d, s): _inputs(d, s, p, dev) for s in p["seeds"] for d in datasets}  # checks sizes first
    if folder is not None:  # only once every check has passed: a refused call leaves the folder as it was
        claim_folder(folder, {**p, "device": str(dev)}, name="checkpoint_dir", stamp="error_curves_params.json")
    tables, sigmas, diverged = [], [], {}
    with cpu_threads(p["threads"]), tqdm(total=len(keys), desc="error curves",
                                             disable=not bars_wanted(progress)) as bar:
        for key in keys:
            table, sigma, failed = _one_run(key, p, **loaded[(key["dataset"], key["seed"])], device=dev,
                                            progress=progress, folder=folder)
            for cell, message in failed.items():
                warnings.warn(f"{cell} diverged, its rows stop there: {message}", RuntimeWarning, stacklevel=2)
            diverged.update(failed)
            tables.append(table)
            sigmas.append(sigma)
            bar.update(1)
    table = pd.concat(tables, ignore_index=True)[list(CURVE_COLUMNS)]
    sigma = pd.concat(sigmas, ignore_index=True)
    return ErrorCurves(table=table, sigma=sigma, params=p, diverged=diverged)


def _inputs(dataset: str, seed: int, p: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """A seed's data: the splits, the fixed Hessian batch and the fine-tuning order x̂₁ … x̂_t."""
    data = load_dataset(dataset, train=True, subset=p["train_subset"], seed=seed).to(device)
    test = load_dataset(dataset, train=False, subset=p["test_subset"], seed=seed).to(device)
    if p["hessian_batch_size"] > len(data):
        raise ParameterError(f"hessian_batch_size={p['hessian_batch_size']} is not allowed; {dataset} has "
                             f"{len(data)} training samples here")
    picked = np.random.default_rng([_HESSIAN_TAG, seed]).choice(len(data), p["hessian_batch_size"], replace=False)
    return {"data": data, "test": test, "hessian_batch": batch_tensors(data, np.sort(picked), device),
            "finetune": BatchOrder(len(data), p["batch_size"], steps=p["steps"], seed=seed + 1)}


def final_rows(table: pd.DataFrame | ErrorCurves) -> pd.DataFrame:
    """The last recorded t of every cell: the e, ‖Δw‖, σ_avg and accuracy a paper table reports."""
    df = table.table if isinstance(table, ErrorCurves) else table
    last = df.sort_values("t").groupby(list(CELL_KEYS), sort=True).tail(1)
    return last.sort_values(list(CELL_KEYS)).reset_index(drop=True)


# The paper's setting each quick-profile setting stands in for. Both our data sets have 10 classes, so both
# sit beside CIFAR-10's rows: the code scaling divides γ by the number of classes, and CIFAR-10's grid
# (γ = 1…20, i.e. 0.1…2 per class) is the one that applies to 10 classes.
STAND_INS: dict[str, str] = {"small_resnet": "resnet18", "small_vgg": "vgg19", "digits": "cifar10",
                             "mnist5k": "cifar10", "resnet18": "resnet18", "vgg19": "vgg19",
                             "cifar10": "cifar10", "cifar100": "cifar100", "synthetic_cifar": "cifar10"}


def paper_beside_ours(ours: pd.DataFrame | ErrorCurves, paper: pd.DataFrame, *, strength: str,
                      pretrain_steps: int | None = None, pretrain_epochs: int | None = None) -> pd.DataFrame:
    """Our final rows next to the paper's rows of the same strength, model family and data set family.

    ``paper``: a table of :func:`unrolling_lib.data.paper_table`; ``strength``: ``"gamma"`` or ``"l2"``;
    ``pretrain_steps`` picks our N, ``pretrain_epochs`` the paper's (default: each one's smallest). One row
    per our setting and strength value the paper also reports: ``dataset``, ``model``, the strength,
    ``paper_dataset``, ``paper_model``, ``e_paper``, ``e_ours`` and each relative to the same setting's
    strength 0 (``e_ratio_paper``, ``e_ratio_ours``: the scale-free comparison), ``accuracy_paper`` (%) and
    ``accuracy_ours`` (%). The two e columns are at different scales (the paper's thousands of CIFAR steps,
    our few hundred small-model steps): compare their ratios, not their values.
    """
    check_choice("strength", strength, ("gamma", "l2"))
    mine = final_rows(ours)
    mine = mine[(mine["l2"] == 0.0) if strength == "gamma" else (mine["gamma"] == 0.0)]
    n = mine["pretrain_steps"].min() if pretrain_steps is None else pretrain_steps
    mine = mine[mine["pretrain_steps"] == n]
    mine = mine.groupby(["dataset", "model", strength], as_index=False)[["e", "accuracy"]].mean()
    theirs = paper[paper["pretrain_epochs"] == (paper["pretrain_epochs"].min() if pretrain_epochs is None
                                                else pretrain_epochs)]
    rows = []
    for (dataset, model), part in mine.groupby(["dataset", "model"], sort=False):
        ref = theirs[(theirs["dataset"] == STAND_INS[dataset]) & (theirs["model"] == STAND_INS[model])]
        ref = ref.set_index(strength)
        base_ours = part.loc[part[strength] == 0.0, "e"]
        base_paper = ref["e"].get(0.0, np.nan)
        for _, row in part.iterrows():
            if row[strength] not in ref.index:
                continue
            paper_row = ref.loc[row[strength]]
            rows.append({"dataset": dataset, "model": model, strength: row[strength],
                         "paper_dataset": STAND_INS[dataset], "paper_model": STAND_INS[model],
                         "e_paper": paper_row["e"], "e_ours": row["e"],
                         "e_ratio_paper": paper_row["e"] / base_paper,
                         "e_ratio_ours": row["e"] / base_ours.iloc[0] if len(base_ours) else np.nan,
                         "accuracy_paper": paper_row["accuracy"], "accuracy_ours": 100 * row["accuracy"]})
    return pd.DataFrame(rows)
