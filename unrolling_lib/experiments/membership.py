"""§4.3 (Figure 2) and §8.4 (Figure 13): the membership-inference risk of the unlearned batch.

The privacy risk score (PRS, Song & Mittal; :func:`~unrolling_lib.privacy.privacy_risk_score`) of a sample is
the posterior probability, estimated from a shadow model, that it was a training member. As §4.3 describes, the
shadow model is trained on half of the training set (its members) and the adversary holds half of the test set
(its non-members); here it is trained with the setting's own recipe (the same N pre-training steps, t
fine-tuning steps, γ, batch sizes and learning rates), since the attack assumes the adversary knows how the
target was trained.

:func:`membership_grid` runs the §8.3 protocol over a grid (:func:`~.verification_grid.verification_grid`) with
the unlearned batch x̂₁ kept out of every other step (so the retrained M′ never saw it), records the membership
signal of x̂₁'s samples on M (``trained``), on M″ by single-gradient unlearning (``unlearned``), on M″ by
amnesiac unlearning (``amnesiac``) and on M′ (``retrained``), trains one shadow per distinct recipe, and
returns one row per setting and signal mode: the mean PRS of x̂₁ on each model, and the attack's own quality,
its ROC AUC on the shadow's members against its non-members (0.5: no membership signal at all).

Two ways to compute the signal (``modes``): ``"softmax"``, the modified entropy of the softmax output in eval
mode, 5 log-spaced bins per class (Song & Mittal); and ``"released"``, what the paper's released code did: the
same formula on raw logits with the models in train mode, 10 equal-width bins.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from ..data import BatchOrder, load_dataset
from ..metrics import correlation
from ..models import build_model_for
from ..privacy import SIGNAL_MODES, membership_signal, privacy_risk_score, split_in_half
from ..storage import read_table, write_table
from ..training import cpu_threads, pick_device, train
from ..validation import ParameterError, check_choice, check_int
from .verification_grid import AXES, VERIFICATION_GRIDS, VerificationGrid, verification_grid

__all__ = ["MEMBERSHIP_COLUMNS", "MEMBERSHIP_DEFAULTS", "MEMBERSHIP_GRIDS", "MODEL_STATES", "PRS_BINS",
           "MembershipGrid", "membership_grid", "membership_spec", "prs_change", "shadow_signals"]

MODEL_STATES = ("trained", "unlearned", "amnesiac", "retrained")  # M, M″ (single gradient), M″ (amnesiac), M′
PRS_BINS = {"softmax": {"num_bins": 5, "log_bins": True}, "released": {"num_bins": 10, "log_bins": False}}
MEMBERSHIP_COLUMNS = ("setting", *AXES, "mode", *(f"prs_{s}" for s in MODEL_STATES), "attack_auc", "v", "v_amnesiac",
                      "e", "accuracy", "diverged")
_SHADOW_TAG = 0x5348  # keeps the shadow's random streams apart from the target's

# x̂₁ = the first block of the training data, kept out of every other step: M′ never sees it.
_FORGET = {"unlearn_batch": 0, "exclude_unlearned": True, "record_outputs": True, "noise_floor": False}
_Q = VERIFICATION_GRIDS["quick"]["base"]
# Quick: digits and MNIST-5k, the two small nets, four γ from the same start (N = 50 steps of 64, t = 40 of
# 32): Figure 13 per data set and model, Figure 2 across the 16 settings.
_QUICK = {"base": {**_Q, **_FORGET, "pretrain_steps": 50, "finetune_steps": 40, "verify_every": 40,
                   "sigma_every": 20, "lr": 0.01, "batch_size": 32},
          "axes": {"dataset": ["digits", "mnist5k"], "model": ["small_vgg", "small_resnet"],
                   "gamma": [0.0, 5.0, 10.0, 20.0]}}
_SMOKE = {"base": {**VERIFICATION_GRIDS["smoke"]["base"], **_FORGET, "batch_size": 16},
          "axes": {"gamma": [0.0, 20.0]}}
# Colab: CIFAR-10, ResNet-18 and VGG-19, three γ, N = 2 epochs, t = 300 steps.
_COLAB = {"base": {**VERIFICATION_GRIDS["colab"]["base"], **_FORGET, "pretrain_steps": 780, "finetune_steps": 300,
                   "verify_every": 300, "batch_size": 32},
          "axes": {"model": ["resnet18", "vgg19"], "gamma": [0.0, 10.0, 20.0]}}
# The paper: both models on CIFAR-10 and CIFAR-100 (Figure 13's four panels), its γ grid, N = 20 epochs.
_PAPER = {"base": {**VERIFICATION_GRIDS["paper"]["base"], **_FORGET, "pretrain_steps": 7800, "finetune_steps": 7810,
                   "verify_every": 7810, "batch_size": 32},
          "axes": {"dataset": ["cifar10", "cifar100"], "model": ["resnet18", "vgg19"],
                   "gamma": [0.0, 1.0, 5.0, 10.0, 15.0, 20.0]}}
MEMBERSHIP_GRIDS: dict[str, dict[str, Any]] = {"quick": _QUICK, "colab": _COLAB, "paper": _PAPER, "smoke": _SMOKE}


@dataclass
class MembershipGrid:
    """What :func:`membership_grid` returns: ``table`` (one row per setting and mode, :data:`MEMBERSHIP_COLUMNS`),
    ``shadows`` (one row per shadow and mode: its recipe key, n members / non-members, AUC) and ``grid`` (the
    :class:`~.verification_grid.VerificationGrid` of the protocol runs, with the recorded signals)."""

    table: pd.DataFrame
    shadows: pd.DataFrame
    grid: VerificationGrid


_RECIPE = ("dataset", "model", "gammas", "scaling", "pretrain_steps", "pretrain_batch_size", "pretrain_lr",
           "finetune_steps", "batch_size", "lr", "momentum", "weight_decay", "train_subset", "test_subset", "seeds")


def _recipe(params: Mapping[str, Any]) -> tuple:
    return tuple(tuple(params[k]) if isinstance(params[k], list) else params[k] for k in _RECIPE)


def shadow_signals(params: Mapping[str, Any], *, device: torch.device | str = "cpu",
                   modes: Sequence[str] = SIGNAL_MODES, progress: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """Train the shadow model of one setting (``params``: a checked :func:`~.verification.verification_experiment`
    parameter set) on a seeded half of the training set with the setting's recipe, and return, per mode, the
    membership signal and labels of its members (``in``, ``in_labels``: that half) and non-members (``out``,
    ``out_labels``: a seeded half of the test set)."""
    seed, gamma = params["seeds"][0], params["gammas"][0]
    data = load_dataset(params["dataset"], train=True, subset=params["train_subset"], seed=seed).to(device)
    test = load_dataset(params["dataset"], train=False, subset=params["test_subset"], seed=seed).to(device)
    members = data.select(split_in_half(len(data), seed=_SHADOW_TAG + seed)[0])
    outsiders = test.select(split_in_half(len(test), seed=_SHADOW_TAG + seed)[0])
    model = build_model_for(params["model"], data.x.shape[1:], data.num_classes, seed=_SHADOW_TAG + seed).to(device)
    common = dict(gamma=gamma, scaling=params["scaling"], progress=progress, on_divergence="raise")
    pre_lr = params["lr"] if params["pretrain_lr"] is None else params["pretrain_lr"]
    with cpu_threads(params["threads"]):
        if params["pretrain_steps"] > 0:
            order = BatchOrder(len(members), params["pretrain_batch_size"], steps=params["pretrain_steps"],
                               seed=_SHADOW_TAG + seed)
            train(model, members, order, lr=pre_lr, desc="shadow pre-train", **common)
        order = BatchOrder(len(members), params["batch_size"], steps=params["finetune_steps"],
                           seed=_SHADOW_TAG + seed + 1)
        train(model, members, order, lr=params["lr"], momentum=params["momentum"],
              weight_decay=params["weight_decay"], desc="shadow fine-tune", **common)
        out = {}
        for mode in modes:
            out[mode] = {"in": membership_signal(model, members.x, members.y, mode=mode),
                         "in_labels": members.y.cpu().numpy(),
                         "out": membership_signal(model, outsiders.x, outsiders.y, mode=mode),
                         "out_labels": outsiders.y.cpu().numpy()}
    return out


def _auc(signals: Mapping[str, np.ndarray]) -> float:
    """ROC AUC of −signal for members against non-members (smaller modified entropy: more member-like)."""
    labels = np.r_[np.ones(len(signals["in"])), np.zeros(len(signals["out"]))]
    scores = -np.r_[signals["in"], signals["out"]]
    finite = np.isfinite(scores)
    return float(roc_auc_score(labels[finite], scores[finite])) if finite.any() else float("nan")


def membership_grid(spec: Mapping[str, Any], *, device: str = "auto", modes: Sequence[str] = SIGNAL_MODES,
                    checkpoint_dir: str | os.PathLike[str] | None = None, progress: bool = True) -> MembershipGrid:
    """PRS of the unlearned batch before and after unlearning, over the settings of ``spec`` (a grid spec, see
    :mod:`~.verification_grid`; its base must record the outputs and keep x̂₁ out, as :data:`MEMBERSHIP_GRIDS`
    do). One shadow per distinct recipe; with ``checkpoint_dir`` the protocol runs and each shadow's signals
    are kept there and reused."""
    modes = [check_choice("modes", m, SIGNAL_MODES) for m in modes]
    if not modes:
        raise ParameterError("modes=[] is not allowed; give one or more of " + ", ".join(SIGNAL_MODES))
    base = spec.get("base", {}) if isinstance(spec, Mapping) else {}
    if not base.get("record_outputs") or not base.get("exclude_unlearned"):
        raise ParameterError("spec['base'] must set record_outputs=True and exclude_unlearned=True (with "
                             "unlearn_batch): the PRS needs the models' outputs on x̂₁, and M′ must never see it")
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    grid = verification_grid(spec, device=device, progress=progress,
                             checkpoint_dir=None if folder is None else folder / "protocol")
    dev = pick_device(device)
    shadows: dict[tuple, dict[str, dict[str, np.ndarray]]] = {}
    rows, shadow_rows = [], []
    for i, params in enumerate(grid.settings):
        key = _recipe(params)
        if key not in shadows:
            shadows[key] = _cached_shadow(params, dev, modes, folder, len(shadows), progress)
            for mode in modes:
                s = shadows[key][mode]
                shadow_rows.append({"shadow": len(shadow_rows) // len(modes), "setting": i, "mode": mode,
                                    "members": len(s["in"]), "non_members": len(s["out"]), "auc": _auc(s)})
        row = grid.table.iloc[i]
        keys = {c: row[c] for c in ("setting", *AXES)}
        outputs = grid.outputs[grid.outputs["setting"] == i] if len(grid.outputs) else grid.outputs
        for mode in modes:
            s = shadows[key][mode]
            prs = {}
            for state in MODEL_STATES:
                part = outputs[(outputs["state"] == state) & (outputs["mode"] == mode)]
                prs[f"prs_{state}"] = float(np.mean(privacy_risk_score(
                    s["in"], s["out"], s["in_labels"], s["out_labels"], part["signal"].to_numpy(),
                    part["label"].to_numpy().astype(np.int64), **PRS_BINS[mode]))) if len(part) else float("nan")
            rows.append({**keys, "mode": mode, **prs, "attack_auc": _auc(s),
                         **{c: row[c] for c in ("v", "v_amnesiac", "e", "accuracy", "diverged")}})
    return MembershipGrid(table=pd.DataFrame(rows, columns=list(MEMBERSHIP_COLUMNS)),
                          shadows=pd.DataFrame(shadow_rows), grid=grid)


def _cached_shadow(params: dict[str, Any], device: torch.device, modes: list[str], folder: Path | None, k: int,
                   progress: bool) -> dict[str, dict[str, np.ndarray]]:
    path = folder / f"shadow_{k}.csv" if folder is not None else None
    if path is not None and path.exists():
        table = read_table(path)
        if set(modes) <= set(table["mode"]):
            return {m: {"in": part.loc[part["member"], "signal"].to_numpy(),
                        "in_labels": part.loc[part["member"], "label"].to_numpy().astype(np.int64),
                        "out": part.loc[~part["member"], "signal"].to_numpy(),
                        "out_labels": part.loc[~part["member"], "label"].to_numpy().astype(np.int64)}
                    for m, part in table.groupby("mode") if m in modes}
    signals = shadow_signals(params, device=device, modes=modes, progress=progress)
    if path is not None:
        frames = [pd.DataFrame({"mode": m, "member": member, "signal": s[side], "label": s[f"{side}_labels"]})
                  for m, s in signals.items() for side, member in (("in", True), ("out", False))]
        write_table(pd.concat(frames, ignore_index=True), path, recipe=[str(v) for v in _recipe(params)])
    return signals


# The chapter's parameters per profile: which membership signals to compute.
MEMBERSHIP_DEFAULTS: dict[str, dict[str, Any]] = {name: {"modes": list(SIGNAL_MODES)} for name in MEMBERSHIP_GRIDS}


def membership_spec(profile: str, *, seed: int = 0) -> dict[str, Any]:
    """:data:`MEMBERSHIP_GRIDS` [profile] with every setting at ``seed``."""
    if profile not in MEMBERSHIP_GRIDS:
        raise ParameterError(f"profile={profile!r} is not allowed; choose one of {list(MEMBERSHIP_GRIDS)}")
    spec = MEMBERSHIP_GRIDS[profile]
    return {**spec, "base": {**spec["base"], "seed": check_int("seed", seed, 0)}}


def prs_change(table: pd.DataFrame) -> pd.DataFrame:
    """§8.4's reading of Figure 13, per data set, model and mode: PRS of x̂₁ at γ = 0 before and after
    single-gradient unlearning and their ratio (the paper: about 2 at γ = 0), and Spearman(γ, PRS) before and
    after (the paper: signs switch, mostly weak)."""
    rows = []
    kept = table[~table["diverged"].astype(bool)]
    for (dataset, model, mode), part in kept.groupby(["dataset", "model", "mode"], sort=True):
        base = part[part["gamma"] == 0]
        before = float(base["prs_trained"].iloc[0]) if len(base) else float("nan")
        after = float(base["prs_unlearned"].iloc[0]) if len(base) else float("nan")
        rho = [correlation(part["gamma"], part[c], method="spearman").r if part["gamma"].nunique() >= 3
               else float("nan") for c in ("prs_trained", "prs_unlearned")]
        rows.append({"dataset": dataset, "model": model, "mode": mode, "prs_before": before, "prs_after": after,
                     "ratio": before / after if after > 0 else float("nan"),
                     "prs_retrained": float(base["prs_retrained"].iloc[0]) if len(base) else float("nan"),
                     "spearman_before": rho[0], "spearman_after": rho[1], "gammas": part["gamma"].nunique()})
    return pd.DataFrame(rows)
