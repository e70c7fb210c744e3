"""§8.2: an ablation — what the SD loss changes in e: σ_avg or ‖w_t − w₀‖₂ (Figure 8), and how its effect
varies with the pre-training N (Table 4 read along N).

A grid of :func:`~unrolling_lib.experiments.error_curves.error_curves` over γ and N. The paper reports that σ
stays flat in γ after an initial oscillation, so that the SD loss lowers e through ‖w_t − w₀‖₂, and that
the relative decrease of e at a given γ shrinks as N grows (the model near convergence moves less).
:func:`sigma_spread` and :func:`influence_of_n` measure both; the chapter says which hold at our scale.

``ABLATION_DEFAULTS`` holds the quick / colab / paper / smoke values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .error_curves import ERROR_CURVE_DEFAULTS, ErrorCurves
from .sd_loss import sd_loss_effect
from .strawmen import PAPER_SETTINGS

__all__ = ["ABLATION_DEFAULTS", "influence_of_n", "paper_influence_of_n", "sigma_spread"]

# Quick: digits with both small nets (the cheap settings, so that two seeds and four N fit), three γ,
# N = 0, 60 and 120 steps of 32, t = 100 steps, σ every 25 steps on 64 images, a row every 10.
_QUICK: dict[str, Any] = {
    **ERROR_CURVE_DEFAULTS, "settings": [["digits", "small_vgg"], ["digits", "small_resnet"]],
    "gammas": [0.0, 5.0, 20.0], "pretrain_steps": [0, 60, 120], "steps": 100, "batch_size": 32,
    "lr": 0.1, "sigma_every": 25, "record_every": 10, "hessian_batch_size": 64, "seeds": [0, 1],
}
# Colab (one T4; planned at 23k SGD steps and about 400 Hessian-vector products, some 8 minutes): ResNet-18
# on CIFAR-10 (Figure 8's setting), three γ, N = 0, 1 and 2 epochs, t = 1 epoch, one seed.
_COLAB: dict[str, Any] = {
    **_QUICK, "settings": PAPER_SETTINGS[:1], "pretrain_steps": [0, 1563, 3126], "steps": 1563,
    "sigma_every": 250, "record_every": 125, "hessian_batch_size": 512, "test_subset": 2000, "seeds": [0],
}
# The paper: Figure 8 is ResNet-18 on CIFAR-10 at N = 10 epochs, t = 5 epochs; Table 4's N = 0…50 epochs.
_PAPER: dict[str, Any] = {
    **_COLAB, "settings": PAPER_SETTINGS[:2], "gammas": [0.0, 1.0, 5.0, 10.0, 15.0, 20.0],
    "pretrain_steps": [0, 15625, 31250, 46875, 62500, 78125], "steps": 7812, "sigma_every": 400,
    "record_every": 400, "test_subset": None, "seeds": [0, 1, 2],
}
_SMOKE: dict[str, Any] = {
    **_QUICK, "settings": [["digits", "small_resnet"]], "gammas": [0.0, 20.0], "pretrain_steps": [0, 5],
    "steps": 10, "sigma_every": 5, "record_every": 5, "hessian_batch_size": 16, "train_subset": 256,
    "test_subset": 100, "seeds": [0],
}
ABLATION_DEFAULTS: dict[str, dict[str, Any]] = {"quick": _QUICK, "colab": _COLAB, "paper": _PAPER,
                                                "smoke": _SMOKE}


def sigma_spread(curves: ErrorCurves | pd.DataFrame) -> pd.DataFrame:
    """Whether σ stays flat in γ: per seed, setting and N, the last t's σ_avg at every γ, their ``spread`` =
    max / min across γ (1: flat), and the same for ‖w_t − w₀‖₂ (``change_spread``, for comparison).

    Columns ``seed``, ``dataset``, ``model``, ``pretrain_steps``, ``n_gamma``, ``sigma_min``, ``sigma_max``,
    ``spread``, ``change_min``, ``change_max``, ``change_spread``, ``sigma_at_0`` and ``sigma_at_max``
    (σ_avg at γ = 0 and at the largest γ).
    """
    effect = sd_loss_effect(curves)
    rows = []
    for key, part in effect.groupby(["seed", "dataset", "model", "pretrain_steps"], sort=True):
        part = part.sort_values("gamma")
        s, c = part["sigma_avg"], part["weight_change"]
        rows.append({**dict(zip(["seed", "dataset", "model", "pretrain_steps"], key, strict=True)),
                     "n_gamma": len(part), "sigma_min": s.min(), "sigma_max": s.max(), "spread": s.max() / s.min(),
                     "change_min": c.min(), "change_max": c.max(), "change_spread": c.max() / c.min(),
                     "sigma_at_0": s.iloc[0], "sigma_at_max": s.iloc[-1]})
    return pd.DataFrame(rows)


def influence_of_n(curves: ErrorCurves | pd.DataFrame) -> pd.DataFrame:
    """Table 4 read along N: per setting, N and γ > 0, the decrease of e relative to γ = 0, ``decrease`` =
    1 − e/e(γ = 0), as a mean over seeds with its ``low``/``high`` 95% interval (Student t over the seeds;
    nan with one seed) and ``n_seeds``; ``accuracy_drop`` likewise averaged. The paper: the decrease
    shrinks as N grows (VGG-19 on CIFAR-10 at γ = 5: 20 % at N = 10 epochs, 4 % at N = 30)."""
    from scipy import stats

    effect = sd_loss_effect(curves)
    effect = effect[effect["gamma"] > 0].assign(decrease=lambda d: 1.0 - d["e_ratio"])
    rows = []
    for (dataset, model, n, gamma), part in effect.groupby(["dataset", "model", "pretrain_steps", "gamma"],
                                                           sort=True):
        d = part["decrease"].to_numpy()
        k = len(d)
        half = stats.t.ppf(0.975, k - 1) * d.std(ddof=1) / np.sqrt(k) if k > 1 else np.nan
        rows.append({"dataset": dataset, "model": model, "pretrain_steps": n, "gamma": gamma, "n_seeds": k,
                     "decrease": d.mean(), "low": d.mean() - half, "high": d.mean() + half,
                     "accuracy_drop": part["accuracy_drop"].mean()})
    return pd.DataFrame(rows)


def paper_influence_of_n(table4: pd.DataFrame, *, dataset: str = "cifar10",
                         gammas: tuple[float, ...] = (5.0, 20.0)) -> pd.DataFrame:
    """The paper's Table 4 (:func:`unrolling_lib.data.paper_table`) read along N as :func:`influence_of_n`
    reads ours: per model, N (``pretrain_steps`` holds the paper's epochs here) and γ in ``gammas``, the
    ``decrease`` 1 − e/e(γ = 0) and the ``accuracy_drop`` (a fraction, as ours), one run each (no interval)."""
    part = table4[table4["dataset"] == dataset]
    base = part[part["gamma"] == 0.0].set_index(["model", "pretrain_epochs"])
    rows = []
    for _, row in part[part["gamma"].isin(gammas)].iterrows():
        ref = base.loc[(row["model"], row["pretrain_epochs"])]
        rows.append({"dataset": dataset, "model": row["model"], "pretrain_steps": int(row["pretrain_epochs"]),
                     "gamma": row["gamma"], "n_seeds": 1, "decrease": 1.0 - row["e"] / ref["e"], "low": np.nan,
                     "high": np.nan, "accuracy_drop": (ref["accuracy"] - row["accuracy"]) / 100.0})
    return pd.DataFrame(rows).sort_values(["model", "gamma", "pretrain_steps"]).reset_index(drop=True)
