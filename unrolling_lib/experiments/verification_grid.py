"""§8.3 across training set-ups (Figures 12 and 14): is e a proxy for v from one setting to the next?

The paper's central claim about e is made across settings: Figure 12 correlates e and v over 160 set-ups
(footnote 9: N, batch size, γ, model and the Hessian batch size), Figure 14 the same with amnesiac unlearning.
:func:`verification_grid` runs the §8.3 protocol (:func:`~.verification.verification_experiment`)
once per setting of a grid and returns one tidy row per setting: its parameters, e and v at the last t (v for
single-gradient unlearning at w₀, at w_{N+t}, and amnesiac), the noise floor, η·t·σ and accuracy.
:func:`grid_correlations` reduces it to Pearson(e, v) per data set and method, with n and a 95% interval.

The grid is data. A spec is ``{"base": {...}, "axes": {name: [values], ...}}``: every combination of the axes
over the base values, each key one of :func:`verification_experiment`'s parameters (``gamma`` for one SD
strength per setting); or ``{"base": {...}, "settings": [{...}, ...]}`` for an explicit list. The learning rate
is an axis too, since where the η² truncation holds depends on it (η·t·σ). ``VERIFICATION_GRIDS`` holds one
spec per profile, so a sweep runner can run the same grids elsewhere.

Long runs. Each setting runs in its own folder under ``checkpoint_dir`` (its finished row is written there
atomically, and the protocol's own checkpoints resume a setting in flight); the grid's folder refuses a call
with another spec. A setting that diverges is kept as a row with its message (``diverged``) and left out of
the correlations, which say how many were left out.
"""

from __future__ import annotations

import itertools
import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from ..metrics import correlation
from ..storage import claim_folder, read_table, write_table
from ..training import bars_wanted
from ..validation import ParameterError, check_bool
from .verification import UNLEARNING_METHODS, VERIFICATION_DEFAULTS, check_verification_params, verification_experiment

__all__ = ["GRID_COLUMNS", "METHODS", "VERIFICATION_GRIDS", "grid_correlations", "grid_settings",
           "verification_grid"]

METHODS = UNLEARNING_METHODS  # v of each unlearning method, as the protocol's table names it
AXES = ("dataset", "model", "gamma", "pretrain_steps", "batch_size", "lr", "hessian_batch_size", "seed")
GRID_COLUMNS = ("setting", *AXES, "t", "e", "v", "v_final", "v_amnesiac", "noise_floor", "eta_t_sigma",
                "weight_change", "sigma_avg", "accuracy", "diverged")

# One γ per setting, one seed, no released fine-tuning: what the grid varies is in its axes.
_BASE = {**VERIFICATION_DEFAULTS["quick"], "seeds": None, "noise_floor": True}
_BASE.pop("gammas")
# Quick (digits, the small CNN; about 2 s a setting on 2 cores): N × batch size × γ × lr, 36 settings.
_QUICK = {"base": {**_BASE, "finetune_steps": 200, "verify_every": 50, "sigma_every": 50},
          "axes": {"pretrain_steps": [0, 200], "batch_size": [32, 64, 128], "gamma": [0.0, 10.0, 20.0],
                   "lr": [0.01, 0.03]}}
_SMOKE = {"base": {**_BASE, "finetune_steps": 10, "verify_every": 5, "sigma_every": 5, "pretrain_steps": 5,
                   "hessian_batch_size": 16, "train_subset": 256, "test_subset": 100},
          "axes": {"gamma": [0.0, 20.0], "batch_size": [16, 32]}}
# Colab (one T4): ResNet-18 and VGG-19 on CIFAR-10, two N, two batch sizes, two γ: 16 settings of 300 steps.
_COLAB = {"base": {**VERIFICATION_DEFAULTS["colab"], "seeds": None, "finetune_steps": 300, "verify_every": 100},
          "axes": {"model": ["resnet18", "vgg19"], "pretrain_steps": [0, 780], "batch_size": [32, 128],
                   "gamma": [0.0, 20.0]}}
_COLAB["base"].pop("gammas")
# The paper (footnote 9): N = 10…80 epochs, batch sizes 32, 64, 128, γ across Figure 7's range, both models,
# Hessian batches of 256 and 512: 8 × 3 × 3 × 2 × 2 = 288 combinations, of which the paper ran 160.
_PAPER = {"base": {**VERIFICATION_DEFAULTS["paper"], "seeds": None},
          "axes": {"model": ["resnet18", "vgg19"], "pretrain_steps": [3900 * k for k in range(1, 9)],
                   "batch_size": [32, 64, 128], "gamma": [0.0, 5.0, 20.0], "hessian_batch_size": [256, 512]}}
_PAPER["base"].pop("gammas")
VERIFICATION_GRIDS: dict[str, dict[str, Any]] = {"quick": _QUICK, "colab": _COLAB, "paper": _PAPER, "smoke": _SMOKE}


def grid_settings(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The settings of a grid spec (module docstring), each a complete, checked parameter set of
    :func:`verification_experiment` with ``gammas=[γ]`` and ``seeds=[seed]``. Refuses a spec with unknown keys,
    an empty axis, or a value the protocol would refuse, naming the setting, before any work."""
    if not isinstance(spec, Mapping) or "base" not in spec or ("axes" in spec) == ("settings" in spec):
        raise ParameterError("spec must be a dict with 'base' and exactly one of 'axes' (a product) or "
                             "'settings' (a list)")
    if "axes" in spec:
        axes = dict(spec["axes"])
        for name, values in axes.items():
            if not isinstance(values, (list, tuple)) or not values:
                raise ParameterError(f"axes[{name!r}]={values!r} is not allowed; give a non-empty list")
        combos = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]
    else:
        combos = [dict(s) for s in spec["settings"]]
        if not combos:
            raise ParameterError("settings=[] is not allowed; give at least one setting")
    out = []
    for i, combo in enumerate(combos):
        params = {**spec["base"], **combo}
        gamma = params.pop("gamma", None)
        seed = params.pop("seed", 0)
        if gamma is None:
            raise ParameterError(f"setting {i} has no gamma; put it in base or in the axes")
        params["gammas"], params["seeds"] = [gamma], [seed]
        try:
            checked = check_verification_params(**params)
        except ParameterError as err:
            raise ParameterError(f"setting {i} ({combo}): {err}") from None
        out.append(checked)
    return out


def _row(i: int, params: dict[str, Any], result: Any) -> dict[str, Any]:
    keys = {"setting": i, **{a: params["gammas"][0] if a == "gamma" else params["seeds"][0] if a == "seed"
                             else params[a] for a in AXES}}
    if result is None or result.table.empty:
        return {**keys, "diverged": True}
    last = result.table.sort_values("t").iloc[-1]
    return {**keys, **{c: last[c] for c in GRID_COLUMNS if c in last.index and c not in keys},
            "diverged": bool(result.diverged)}


def verification_grid(spec: Mapping[str, Any], *, device: str = "auto",
                      checkpoint_dir: str | os.PathLike[str] | None = None, progress: bool = True) -> pd.DataFrame:
    """Run the §8.3 protocol once per setting of ``spec`` (:func:`grid_settings`); one row per setting,
    columns :data:`GRID_COLUMNS` (e and each method's v at the last t; ``diverged``: the setting's training
    diverged, its row then holds the last t measured, or none)."""
    settings = grid_settings(spec)
    check_bool("progress", progress)
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if folder is not None:
        claim_folder(folder, {"settings": settings}, name="checkpoint_dir", stamp="grid_spec.json")
    rows = []
    for i, params in enumerate(tqdm(settings, desc="settings", disable=not bars_wanted(progress))):
        done = folder / f"setting_{i}.csv" if folder is not None else None
        if done is not None and done.exists():
            rows.append(read_table(done).iloc[0].to_dict())
            continue
        with warnings.catch_warnings():  # a diverged setting is reported by its row, not once per γ
            warnings.simplefilter("ignore", RuntimeWarning)
            result = verification_experiment(**params, device=device, progress=progress,
                                             checkpoint_dir=None if folder is None else folder / f"setting_{i}")
        row = _row(i, params, result)
        if done is not None and not row["diverged"]:
            write_table(pd.DataFrame([row]), done, setting=i)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(GRID_COLUMNS))


def grid_correlations(table: pd.DataFrame, *, by: str = "dataset") -> pd.DataFrame:
    """Pearson(e, v) across the settings of ``table`` (a :func:`verification_grid` result), per value of ``by``
    and per unlearning method (:data:`METHODS`), with n, its 95% interval and ``left_out`` (settings that
    diverged); also ``ce`` (only γ = 0) and ``sd`` (γ > 0) rows, as the paper colours its points."""
    rows = []
    kept = table[~table["diverged"].astype(bool)]
    for value, part in kept.groupby(by, sort=True):
        left_out = int(table.loc[table[by] == value, "diverged"].astype(bool).sum())
        for subset, rows_of in (("all", part), ("ce", part[part["gamma"] == 0]), ("sd", part[part["gamma"] > 0])):
            for method, column in METHODS.items():
                ok = rows_of[["e", column]].dropna()
                c = correlation(ok["e"], ok[column]) if len(ok) >= 3 else None
                rows.append({by: value, "runs": subset, "method": method, "n": len(ok),
                             "pearson": c.r if c else math.nan, "low": c.low if c else math.nan,
                             "high": c.high if c else math.nan, "left_out": left_out})
    return pd.DataFrame(rows)
