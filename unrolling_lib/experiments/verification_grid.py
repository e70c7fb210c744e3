"""§8.3 across training set-ups (Figures 12 and 14): is e a proxy for v from one setting to the next?

The paper's central claim about e is made across settings: Figure 12 correlates e and v over 160 set-ups
(footnote 9: N, batch size, γ, model and the Hessian batch size), Figure 14 the same with amnesiac unlearning.
:func:`verification_grid` runs the §8.3 protocol (:func:`~.verification.verification_experiment`)
once per setting of a grid and returns one tidy row per setting: its parameters, e and v at the last t (v for
single-gradient unlearning at w₀, at w_{N+t}, and amnesiac), the noise floor, η·t·σ and accuracy.
:func:`grid_correlations` reduces it to Pearson(e, v) per data set and method, with n and a 95% interval.

The grid is data. A spec is ``{"base": {...}, "axes": {name: [values], ...}}``: every combination of the axes
over the base values, each key one of :func:`verification_experiment`'s parameters (``gamma`` for one SD
strength per setting); or ``{"base": {...}, "settings": [{...}, ...]}`` for an explicit list. With
``"sample": k`` (and ``"sample_seed"``, default 0) an axes spec runs a seeded random k of its combinations, in
the product's order, as the paper ran 160 of the 288 combinations its footnote 9 spans. The learning rate is
an axis too, since where the η² truncation holds depends on it (η·t·σ). ``VERIFICATION_GRIDS`` holds one spec
per profile, so a sweep runner can run the same grids elsewhere.

Settings that differ only after pre-training (batch size, η, σ's batch) share one pre-trained M_N
(``verification_experiment(pretrained_cache=...)``): identical weights, computed once.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..metrics import correlation
from ..storage import claim_folder, provenance, read_table, write_table
from ..training import bars_wanted
from ..validation import ParameterError, check_bool, check_int
from .error_curves import STAND_INS
from .verification import UNLEARNING_METHODS, VERIFICATION_DEFAULTS, check_verification_params, verification_experiment

__all__ = ["CURVE_KEYS", "GAMMA_GRIDS", "GRID_CHAPTER_DEFAULTS", "GRID_COLUMNS", "METHODS", "PAPER_PEARSON",
           "VERIFICATION_GRIDS", "VerificationGrid", "across_gamma_correlations", "along_t_correlations",
           "breaking_settings", "chapter_specs", "grid_correlations", "grid_settings", "paper_reports",
           "stand_in_for", "verification_grid"]

METHODS = UNLEARNING_METHODS  # v of each unlearning method, as the protocol's table names it
AXES = ("dataset", "model", "gamma", "pretrain_steps", "batch_size", "lr", "hessian_batch_size", "unlearn_step",
        "seed")
GRID_COLUMNS = ("setting", *AXES, "t", "e", "v", "v_final", "v_amnesiac", "noise_floor", "eta_t_sigma",
                "weight_change", "sigma_avg", "accuracy", "diverged")
CURVE_KEYS = ("setting", *AXES)  # the columns a curve row carries before the protocol's own


@dataclass
class VerificationGrid:
    """What :func:`verification_grid` returns. ``table``: one row per setting, columns :data:`GRID_COLUMNS`.
    ``curves``: every measured t of every setting (:data:`CURVE_KEYS`, then the protocol's
    :data:`~.verification.VERIFICATION_COLUMNS` without seed and γ), for the along-t figures.
    ``settings``: the checked parameters of each setting. ``provenance``: versions, commit, device, time.
    ``outputs``: with ``record_outputs`` in the spec, the membership signals the protocol recorded (a
    ``setting`` column, then :data:`~.verification.OUTPUT_COLUMNS` without seed and γ)."""

    table: pd.DataFrame
    curves: pd.DataFrame
    settings: list[dict[str, Any]]
    provenance: dict[str, Any] = field(default_factory=dict)
    outputs: pd.DataFrame = field(default_factory=pd.DataFrame)

# One γ per setting, one seed, no released fine-tuning: what the grid varies is in its axes.
_BASE = {**VERIFICATION_DEFAULTS["quick"], "seeds": None, "noise_floor": True}
_BASE.pop("gammas")
_MODELS = ["small_vgg", "small_resnet"]  # the two BatchNorm stand-ins for VGG-19 and ResNet-18 (§8.1's chapter)

# Across settings (Figures 12 and 14). Quick: digits and MNIST-5k with the two small nets, the paper's axes
# (N, batch size, γ, model, σ's batch), η, and where x̂₁ sits (first, or halfway: with plain SGD the amnesiac
# update of a first-step batch is the single gradient at w₀ itself, so only a later x̂₁ tells the two methods
# apart). 1,152 combinations of which a seeded 20 run, t = 40 steps, N = 0 or 100 steps of 64: about 4 s each
# on 2 cores. The second retraining (the noise floor) is left out here: on a CPU it is 0 bit for bit, and the
# per-γ runs below measure it on the same device; the colab and paper grids measure it in every setting.
_QUICK = {"base": {**_BASE, "finetune_steps": 40, "verify_every": 20, "sigma_every": 20, "pretrain_batch_size": 64,
                   "noise_floor": False},
          "axes": {"dataset": ["digits", "mnist5k"], "model": _MODELS, "pretrain_steps": [0, 100],
                   "batch_size": [32, 64, 128], "gamma": [0.0, 10.0, 20.0], "lr": [0.01, 0.03],
                   "hessian_batch_size": [32, 64], "unlearn_step": [0, 20]},
          "sample": 20, "sample_seed": 0}
_SMOKE = {"base": {**_BASE, "finetune_steps": 10, "verify_every": 5, "sigma_every": 5, "pretrain_steps": 5,
                   "hessian_batch_size": 16, "train_subset": 256, "test_subset": 100},
          "axes": {"gamma": [0.0, 20.0], "unlearn_step": [0, 5]}}
# Colab (one T4): ResNet-18 and VGG-19 on CIFAR-10, two N, two batch sizes, two γ: 16 settings of 300 steps.
_COLAB = {"base": {**VERIFICATION_DEFAULTS["colab"], "seeds": None, "finetune_steps": 300, "verify_every": 100},
          "axes": {"model": ["resnet18", "vgg19"], "pretrain_steps": [0, 780], "batch_size": [32, 128],
                   "gamma": [0.0, 20.0]}}
_COLAB["base"].pop("gammas")
# The paper (footnote 9): N = 10…80 epochs, batch sizes 32, 64, 128, γ across Figure 7's range, both models,
# Hessian batches of 256 and 512: 8 × 3 × 3 × 2 × 2 = 288 combinations, of which the paper ran 160 (a seeded
# 160 here; which 160 the paper ran is not published).
_PAPER = {"base": {**VERIFICATION_DEFAULTS["paper"], "seeds": None},
          "axes": {"model": ["resnet18", "vgg19"], "pretrain_steps": [3900 * k for k in range(1, 9)],
                   "batch_size": [32, 64, 128], "gamma": [0.0, 5.0, 20.0], "hessian_batch_size": [256, 512]},
          "sample": 160, "sample_seed": 0}
_PAPER["base"].pop("gammas")
VERIFICATION_GRIDS: dict[str, dict[str, Any]] = {"quick": _QUICK, "colab": _COLAB, "paper": _PAPER, "smoke": _SMOKE}


def _per_model(base: dict[str, Any], models: list[str], gammas: list[float], trained: int) -> dict[str, Any]:
    """Figures 9, 11 and 15: per model, every γ from a well-trained start (N = ``trained``), and γ = 0 from a
    fresh one (N = 0)."""
    settings = [{"model": m, "gamma": g, "pretrain_steps": trained} for m in models for g in gammas]
    settings += [{"model": m, "gamma": 0.0, "pretrain_steps": 0} for m in models]
    return {"base": base, "settings": settings}


# Across γ and along t (Figures 9, 11, 15). Quick: digits, the two small nets, the paper's CIFAR-10 γ grid,
# N = 60 steps of 64 (2.7 epochs; above 95% test accuracy) against N = 0, t = 60 steps of 32, e and v every
# 5 steps, the noise floor in every run.
GAMMA_GRIDS: dict[str, dict[str, Any]] = {
    "quick": _per_model({**_BASE, "finetune_steps": 60, "verify_every": 5, "sigma_every": 20,
                         "pretrain_batch_size": 64}, _MODELS, [0.0, 1.0, 5.0, 10.0, 15.0, 20.0], 60),
    # Colab: ResNet-18 and VGG-19 on CIFAR-10, three γ, N = 780 steps of 128 (2 epochs) against N = 0
    "colab": _per_model({**_COLAB["base"], "finetune_steps": 500, "verify_every": 50, "sigma_every": 100},
                        ["resnet18", "vgg19"], [0.0, 10.0, 20.0], 780),
    # The paper (Figure 9): N = 80 epochs against N = 0, t = 5 epochs, Figure 11's γ grid on both models
    "paper": _per_model({**_PAPER["base"], "finetune_steps": 7812, "verify_every": 100, "sigma_every": 400},
                        ["resnet18", "vgg19"], [0.0, 1.0, 5.0, 10.0, 15.0, 20.0], 31250),
    "smoke": _per_model({**_SMOKE["base"]}, ["small_cnn"], [0.0, 20.0], 5),
}


# The across-settings chapter's parameters per profile: how many combinations of the grid it runs (0: every one).
GRID_CHAPTER_DEFAULTS: dict[str, dict[str, Any]] = {
    name: {"sample": spec.get("sample", 0)} for name, spec in VERIFICATION_GRIDS.items()}


def chapter_specs(profile: str, *, seed: int = 0, sample: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two grids of the §8.3 across-settings chapter at ``profile``: (:data:`GAMMA_GRIDS` [profile],
    :data:`VERIFICATION_GRIDS` [profile]), every setting at ``seed``, the second with ``sample`` combinations
    drawn (0: every one; ``None``: the profile's)."""
    if profile not in VERIFICATION_GRIDS:
        raise ParameterError(f"profile={profile!r} is not allowed; choose one of {list(VERIFICATION_GRIDS)}")
    seed = check_int("seed", seed, 0)
    per_gamma = {**GAMMA_GRIDS[profile], "base": {**GAMMA_GRIDS[profile]["base"], "seed": seed}}
    across = {**VERIFICATION_GRIDS[profile], "base": {**VERIFICATION_GRIDS[profile]["base"], "seed": seed}}
    k = across.get("sample", 0) if sample is None else check_int("sample", sample, 0)
    across.pop("sample", None)
    if k:
        across["sample"] = k
    return per_gamma, across


def grid_settings(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The settings of a grid spec (module docstring), each a complete, checked parameter set of
    :func:`verification_experiment` with ``gammas=[γ]`` and ``seeds=[seed]``. Refuses a spec with unknown keys,
    an empty axis, or a value the protocol would refuse, naming the setting, before any work."""
    if not isinstance(spec, Mapping) or "base" not in spec or ("axes" in spec) == ("settings" in spec):
        raise ParameterError("spec must be a dict with 'base' and exactly one of 'axes' (a product) or "
                             "'settings' (a list)")
    unknown = set(spec) - {"base", "axes", "settings", "sample", "sample_seed"}
    if unknown:
        raise ParameterError(f"spec keys {sorted(unknown)} are not allowed; use base, axes or settings, sample, "
                             "sample_seed")
    if "axes" in spec:
        axes = dict(spec["axes"])
        for name, values in axes.items():
            if not isinstance(values, (list, tuple)) or not values:
                raise ParameterError(f"axes[{name!r}]={values!r} is not allowed; give a non-empty list")
        combos = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]
        if "sample" in spec:
            k = check_int("sample", spec["sample"], 1)
            if k > len(combos):
                raise ParameterError(f"sample={k} is not allowed; the axes have {len(combos)} combinations")
            rng = np.random.default_rng(check_int("sample_seed", spec.get("sample_seed", 0), 0))
            combos = [combos[i] for i in np.sort(rng.choice(len(combos), k, replace=False))]
    elif "sample" in spec:
        raise ParameterError("sample is not allowed with 'settings'; it draws from the combinations of 'axes'")
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


def _keys(i: int, params: dict[str, Any]) -> dict[str, Any]:
    return {"setting": i, **{a: params["gammas"][0] if a == "gamma" else params["seeds"][0] if a == "seed"
                             else params[a] for a in AXES}}


def _row(keys: dict[str, Any], curve: pd.DataFrame, diverged: bool) -> dict[str, Any]:
    if curve.empty:
        return {**keys, "diverged": True}
    last = curve.sort_values("t").iloc[-1]
    return {**keys, **{c: last[c] for c in GRID_COLUMNS if c in last.index and c not in keys},
            "diverged": diverged}


def _curve(keys: dict[str, Any], table: pd.DataFrame) -> pd.DataFrame:
    curve = table.drop(columns=["seed", "gamma"]).sort_values("t").reset_index(drop=True)
    for k, (name, value) in enumerate(keys.items()):
        curve.insert(k, name, value)
    return curve


def verification_grid(spec: Mapping[str, Any], *, device: str = "auto",
                      checkpoint_dir: str | os.PathLike[str] | None = None,
                      progress: bool = True) -> VerificationGrid:
    """Run the §8.3 protocol once per setting of ``spec`` (:func:`grid_settings`) and return a
    :class:`VerificationGrid`: one row per setting (e and each method's v at the last t; ``diverged``: the
    setting's training diverged, its row then holds the last t measured, or none) and every setting's curve
    along t. With ``checkpoint_dir``, each finished setting's curve is written there atomically (with its
    provenance) and a later call skips it."""
    settings = grid_settings(spec)
    check_bool("progress", progress)
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if folder is not None:
        claim_folder(folder, {"settings": settings}, name="checkpoint_dir", stamp="grid_spec.json")
    rows, curves, outputs, shared = [], [], [], {}
    for i, params in enumerate(tqdm(settings, desc="settings", disable=not bars_wanted(progress))):
        keys = _keys(i, params)
        done = folder / f"setting_{i}.csv" if folder is not None else None
        recorded = folder / f"setting_{i}_outputs.csv" if folder is not None else None
        if done is not None and done.exists():
            curve = read_table(done)
            rows.append(_row(keys, curve, diverged=False))
            curves.append(curve)
            if recorded.exists():
                outputs.append(read_table(recorded))
            continue
        with warnings.catch_warnings():  # a diverged setting is reported by its row, not once per γ
            warnings.simplefilter("ignore", RuntimeWarning)
            result = verification_experiment(**params, device=device, progress=progress, pretrained_cache=shared,
                                             checkpoint_dir=None if folder is None else folder / f"setting_{i}")
        curve = _curve(keys, result.table)
        out = result.outputs.drop(columns=["seed", "gamma"])
        out.insert(0, "setting", i)
        rows.append(_row(keys, curve, diverged=bool(result.diverged)))
        if done is not None and not result.diverged:
            if len(out):
                write_table(out, recorded, setting=i, device=str(device))
            write_table(curve, done, setting=i, device=str(device))
        curves.append(curve)
        outputs.append(out)
    table = pd.DataFrame(rows, columns=list(GRID_COLUMNS))
    table["diverged"] = table["diverged"].astype(bool)
    curves = [c for c in curves if not c.empty]
    along = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=list(CURVE_KEYS))
    outputs = [o for o in outputs if not o.empty]
    recorded_all = pd.concat(outputs, ignore_index=True) if outputs else pd.DataFrame()
    return VerificationGrid(table=table, curves=along, settings=settings, outputs=recorded_all,
                            provenance=provenance(device=str(device), settings=len(settings)))


def grid_correlations(table: pd.DataFrame, *, by: str = "dataset") -> pd.DataFrame:
    """Pearson(e, v) across the settings of ``table`` (a :class:`VerificationGrid` table), per value of ``by``
    and per unlearning method (:data:`METHODS`), with n, its 95% interval, Spearman's rank correlation (the
    paper's reading, "lower e, lower v", is about order) and ``left_out`` (settings that diverged); also
    ``ce`` (only γ = 0) and ``sd`` (γ > 0) rows, as the paper colours its points."""
    rows = []
    kept = table[~table["diverged"].astype(bool)]
    for value, part in kept.groupby(by, sort=True):
        left_out = int(table.loc[table[by] == value, "diverged"].astype(bool).sum())
        for subset, rows_of in (("all", part), ("ce", part[part["gamma"] == 0]), ("sd", part[part["gamma"] > 0])):
            for method, column in METHODS.items():
                rows.append({by: value, "runs": subset, "method": method, **_pearson(rows_of["e"], rows_of[column]),
                             "spearman": _spearman(rows_of["e"], rows_of[column]), "left_out": left_out})
    return pd.DataFrame(rows, columns=[by, "runs", "method", "n", "pearson", "low", "high", "spearman", "left_out"])


def _pearson(x: pd.Series, y: pd.Series) -> dict[str, Any]:
    ok = pd.concat([x, y], axis=1).dropna()
    c = correlation(ok.iloc[:, 0], ok.iloc[:, 1]) if len(ok) >= 3 else None
    return {"n": len(ok), "pearson": c.r if c else math.nan, "low": c.low if c else math.nan,
            "high": c.high if c else math.nan}


def _spearman(x: pd.Series, y: pd.Series) -> float:
    ok = pd.concat([x, y], axis=1).dropna()
    return correlation(ok.iloc[:, 0], ok.iloc[:, 1], method="spearman").r if len(ok) >= 3 else math.nan


def along_t_correlations(curves: pd.DataFrame) -> pd.DataFrame:
    """Figures 9 and 15: Pearson(e, v) over the measured t of each setting of ``curves`` (a
    :class:`VerificationGrid`'s), per unlearning method, with n and its 95% interval (nominal: the points of
    one run are not independent). One row per setting and method, with the setting's axes."""
    rows = []
    for _, part in curves.groupby("setting", sort=True):
        keys = part.iloc[0][list(CURVE_KEYS)].to_dict()
        for method, column in METHODS.items():
            rows.append({**keys, "method": method, **_pearson(part["e"], part[column])})
    return pd.DataFrame(rows)


def across_gamma_correlations(table: pd.DataFrame, *, by: str = "model") -> pd.DataFrame:
    """Figure 11: Pearson(e, v) at the last t across the γ values of ``table``, per value of ``by`` and per
    method, among the settings that share everything but γ (the rows are grouped by every other axis; groups
    with fewer than three γ are skipped)."""
    kept = table[~table["diverged"].astype(bool)]
    others = [a for a in AXES if a != "gamma"]
    rows = []
    for keys, part in kept.groupby(others, sort=True):
        if part["gamma"].nunique() < 3:
            continue
        for method, column in METHODS.items():
            rows.append({**dict(zip(others, keys, strict=True)), "method": method, "gammas": part["gamma"].nunique(),
                         **_pearson(part["e"], part[column])})
    return pd.DataFrame(rows, columns=[*others, "method", "gammas", "n", "pearson", "low", "high"])


def breaking_settings(table: pd.DataFrame, *, method: str = "single_gradient", by: str = "dataset",
                      top: int = 5) -> pd.DataFrame:
    """The settings that most change Pearson(e, v) across settings: per value of ``by``, each kept setting's
    leave-one-out r (``r_without``) and ``influence`` = r − r_without (positive: the setting props the
    correlation up; negative: it breaks it), the ``top`` largest |influence| per group, with their axes,
    e, v and η·t·σ."""
    check_int("top", top, 1)
    if method not in METHODS:
        raise ParameterError(f"method={method!r} is not allowed; choose one of {list(METHODS)}")
    column, rows = METHODS[method], []
    columns = [by, *[a for a in AXES if a != by], "e", column, "eta_t_sigma", "setting", "pearson", "r_without",
               "influence"]
    kept = table[~table["diverged"].astype(bool)]
    for _, part in kept.groupby(by, sort=True):
        if len(part) < 4:
            continue
        r = correlation(part["e"], part[column]).r
        for index in part.index:
            rest = part.drop(index)
            without = correlation(rest["e"], rest[column]).r
            rows.append({**part.loc[index, columns[:-4]].to_dict(),
                         "setting": part.loc[index, "setting"], "pearson": r, "r_without": without,
                         "influence": r - without})
    out = pd.DataFrame(rows, columns=columns)
    if out.empty:
        return out
    out = out.assign(size=out["influence"].abs()).sort_values([by, "size"], ascending=[True, False])
    return out.groupby(by, sort=True).head(top).drop(columns="size").reset_index(drop=True)


# §8.3's reported Pearson correlations (ResNet-18 and VGG-19 on CIFAR): figure, what is held, the value.
PAPER_PEARSON = (
    ("Figure 9", "along t, N = 0 (ResNet-18, CIFAR-10)", 0.934),
    ("Figure 9", "along t, N = 80 epochs (ResNet-18, CIFAR-10)", 0.9668),
    ("Figure 11", "across γ, ResNet-18 (CIFAR-10)", 0.96),
    ("Figure 11", "across γ, VGG-19 (CIFAR-10)", 0.81),
    ("Figure 12", "across settings, CIFAR-10", 0.9028),
    ("Figure 12", "across settings, CIFAR-100", 0.8813),
    ("Figure 14", "amnesiac, across settings, CIFAR-10", 0.91),
    ("Figure 14", "amnesiac, across settings, CIFAR-100", 0.81),
)


def paper_reports(per_gamma: VerificationGrid, across: VerificationGrid) -> pd.DataFrame:
    """Each of :data:`PAPER_PEARSON` beside what these runs measure for it: ``per_gamma`` is a
    :data:`GAMMA_GRIDS` run (Figures 9, 11; 15 is Figure 9 with the amnesiac v), ``across`` a
    :data:`VERIFICATION_GRIDS` run (Figures 12, 14). Columns: figure, paper_setting, paper, measured_setting,
    n, pearson, low, high. Along t, the first model's γ = 0 runs from N = 0 and from the largest N; across γ, each
    model at the largest N; across settings, each data set (amnesiac: only the settings where x̂₁ is not the
    first batch, when there are any, since a first-step x̂₁ makes amnesiac and single-gradient one method)."""
    rows = []
    models = list(dict.fromkeys(per_gamma.table["model"]))
    trained = per_gamma.table["pretrain_steps"].max()
    along = along_t_correlations(per_gamma.curves)
    along = along[(along["gamma"] == 0) & (along["method"] == "single_gradient")]
    first = stand_in_for(models, "resnet18")  # Figure 9 is ResNet-18's
    for (fig, what, paper), n_steps in zip(PAPER_PEARSON[:2], (0, trained), strict=True):
        hit = along[(along["model"] == first) & (along["pretrain_steps"] == n_steps)]
        rows.append(_report(fig, what, paper, f"{first}, N = {n_steps}, γ = 0", hit))
    gamma = across_gamma_correlations(per_gamma.table)
    gamma = gamma[(gamma["method"] == "single_gradient") & (gamma["pretrain_steps"] == trained)]
    for (fig, what, paper), paper_model in zip(PAPER_PEARSON[2:4], ("resnet18", "vgg19"), strict=True):
        model = stand_in_for(models, paper_model, fallback=False)
        setting = f"{model}, N = {trained}" if model is not None else f"no stand-in for {paper_model} here"
        rows.append(_report(fig, what, paper, setting, gamma[gamma["model"] == model]))
    table = across.table
    later = table[table["unlearn_step"] > 0] if (table["unlearn_step"] > 0).any() else table
    datasets = sorted(table["dataset"].unique())
    for (fig, what, paper), k in zip(PAPER_PEARSON[4:], (0, 1, 0, 1), strict=True):
        if k >= len(datasets):
            continue
        amnesiac = fig == "Figure 14"
        source = later if amnesiac else table
        c = grid_correlations(source)
        hit = c[(c["dataset"] == datasets[k]) & (c["runs"] == "all")
                & (c["method"] == ("amnesiac" if amnesiac else "single_gradient"))]
        where = " (x̂₁ not first)" if amnesiac and source is later and later is not table else ""
        rows.append(_report(fig, what, paper, f"{datasets[k]}{where}", hit))
    return pd.DataFrame(rows)


def stand_in_for(models: Sequence[str], paper_model: str, *, fallback: bool = True) -> str | None:
    """The first of ``models`` that is, or stands in for, the paper's ``paper_model`` ("resnet18", "vgg19");
    with none, the first model (``fallback``) or ``None``."""
    for m in models:
        if STAND_INS.get(m, m) == paper_model:
            return m
    return models[0] if fallback and len(models) else None


def _report(fig: str, what: str, paper: float, measured: str, hit: pd.DataFrame) -> dict[str, Any]:
    got = hit.iloc[0] if len(hit) else None
    return {"figure": fig, "paper_setting": what, "paper": paper, "measured_setting": measured,
            **{k: (got[k] if got is not None else math.nan) for k in ("n", "pearson", "low", "high")}}
