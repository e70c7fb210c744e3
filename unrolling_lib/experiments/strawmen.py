"""§6.1: the two strawmen — training for less (Figure 3) and ℓ2 regularisation (Figure 4, Table 3, Figure 16).

Both are grids of :func:`~unrolling_lib.experiments.error_curves.error_curves`: the cross entropy with an
ℓ2 term of strength λ, N ∈ ``pretrain_steps``, t more steps. Figure 3 is the λ = 0, N = 0 slice: e along t
from random initialisation, beside the accuracy each t buys. Figure 4 and Table 3 are e per λ; Figure 16 the
norms, ‖w_t‖₂ against ‖w_t − w₀‖₂ and the triangle bound ‖w_t‖₂ + ‖w₀‖₂ that motivated the penalty.

``STRAWMEN_DEFAULTS`` holds the quick / colab / paper / smoke values; ``error_curves(**cfg.params, ...)``
runs them. The penalty is the released code's weight decay by default (``l2_form="weight_decay"``: the
gradient of λ/2·‖w‖²₂); ``l2_form="norm"`` is the λ‖w‖₂ the paper writes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..metrics import correlation
from .error_curves import ERROR_CURVE_DEFAULTS, ErrorCurves, final_rows

__all__ = ["PAPER_SETTINGS", "STRAWMEN_DEFAULTS", "growth_along_t", "l2_effect", "triangle_table"]

# The paper's four settings (§6.1): ResNet-18 and VGG-19 on CIFAR-10 and CIFAR-100.
PAPER_SETTINGS = [["cifar10", "resnet18"], ["cifar10", "vgg19"], ["cifar100", "resnet18"], ["cifar100", "vgg19"]]

# Quick: the four settings mirrored on digits and MNIST-5k (two real 10-class image sets that ship in
# packages) with the two small BatchNorm nets; Figure 4's λ grid without 0.001 (for time); N = 0 and 100
# steps; t = 120 steps of 32 (2.7 epochs of digits, 1 of MNIST-5k); σ every 30 steps on 64 training images,
# a row every 20.
# About 1,000 steps per setting.
_QUICK: dict[str, Any] = {
    **ERROR_CURVE_DEFAULTS, "gammas": [0.0], "l2s": [0.0, 0.01, 0.1], "pretrain_steps": [0, 100],
    "steps": 120, "batch_size": 32, "lr": 0.1, "sigma_every": 30, "record_every": 20, "hessian_batch_size": 64,
}
# Colab (one T4; planned at about 47k SGD steps and 1k Hessian-vector products on 512 images, some 17
# minutes): the paper's four settings, three λ, N = 0 and half an epoch, t = 1 epoch of 1,563 steps, σ every
# 250 steps, accuracy on 2,000 test images.
_COLAB: dict[str, Any] = {
    **_QUICK, "settings": PAPER_SETTINGS, "l2s": [0.0, 0.01, 0.1], "pretrain_steps": [0, 782], "steps": 1563,
    "sigma_every": 250, "record_every": 125, "hessian_batch_size": 512, "test_subset": 2000,
}
# The paper: Table 3's λ grid, N = 0, 20 and 40 epochs, t = 5 epochs (Figure 4: 7,812 steps). The paper's step
# counts (15,625 steps = 10 epochs) put 1,562.5 steps in an epoch of 50,000 images: batches of 32.
_PAPER: dict[str, Any] = {
    **_COLAB, "l2s": [0.0, 1e-5, 1e-4, 1e-3, 0.01, 0.1], "pretrain_steps": [0, 31250, 62500], "steps": 7812,
    "sigma_every": 400, "record_every": 400, "test_subset": None, "seeds": [0, 1, 2],
}
_SMOKE: dict[str, Any] = {
    **_QUICK, "settings": [["digits", "small_vgg"], ["mnist5k", "small_resnet"]], "l2s": [0.0, 0.1],
    "pretrain_steps": [0, 5], "steps": 10, "sigma_every": 5, "record_every": 5, "hessian_batch_size": 16,
    "train_subset": 256, "test_subset": 100,
}
STRAWMEN_DEFAULTS: dict[str, dict[str, Any]] = {"quick": _QUICK, "colab": _COLAB, "paper": _PAPER, "smoke": _SMOKE}


def _table(curves: ErrorCurves | pd.DataFrame) -> pd.DataFrame:
    return curves.table if isinstance(curves, ErrorCurves) else curves


def growth_along_t(curves: ErrorCurves | pd.DataFrame, *, l2: float = 0.0, pretrain_steps: int = 0) -> pd.DataFrame:
    """Figure 3's claim, measured: how e grows with t from M_N, per seed and setting (λ = ``l2``).

    Columns ``seed``, ``dataset``, ``model``, ``n`` (recorded t > 0), ``pearson`` of e with t and its 95%
    interval ``low``/``high`` (how close to a straight line), ``e_last`` and ``half_ratio`` = e(t)/e(t/2) at
    the last t (2 for growth in proportion to t, 4 for t²; Eq. 9 has t − 1 times ‖w_t − w₀‖·σ_avg), and
    ``accuracy_last``.
    """
    df = _table(curves)
    df = df[(df["l2"] == l2) & (df["pretrain_steps"] == pretrain_steps) & (df["gamma"] == 0.0) & (df["t"] > 0)]
    rows = []
    for (seed, dataset, model), part in df.groupby(["seed", "dataset", "model"], sort=False):
        part = part.sort_values("t")
        c = correlation(part["t"], part["e"])
        last = part.iloc[-1]
        half = part.iloc[(part["t"] - last["t"] / 2).abs().argsort().iloc[0]]
        rows.append({"seed": seed, "dataset": dataset, "model": model, "n": c.n, "pearson": c.r, "low": c.low,
                     "high": c.high, "e_last": last["e"], "half_ratio": last["e"] / half["e"],
                     "accuracy_last": last["accuracy"]})
    return pd.DataFrame(rows)


def l2_effect(curves: ErrorCurves | pd.DataFrame) -> pd.DataFrame:
    """Figure 4 / Table 3, measured: the last t's e, accuracy and ‖w_t − w₀‖₂ per setting, N and λ, with
    ``e_ratio`` = e / e(λ = 0) of the same seed, setting and N (< 1: the penalty helped)."""
    last = final_rows(curves)
    last = last[last["gamma"] == 0.0]
    base = last[last["l2"] == 0.0].set_index(["seed", "dataset", "model", "pretrain_steps"])["e"]
    keys = list(zip(last["seed"], last["dataset"], last["model"], last["pretrain_steps"], strict=True))
    out = last[["seed", "dataset", "model", "pretrain_steps", "l2", "t", "e", "accuracy", "weight_change",
                "weight_norm", "sigma_avg"]].copy()
    out["e_ratio"] = out["e"].to_numpy() / base.reindex(keys).to_numpy()
    return out.reset_index(drop=True)


def triangle_table(curves: ErrorCurves | pd.DataFrame) -> pd.DataFrame:
    """Figure 16's quantities along t: ‖w_t − w₀‖₂ (``weight_change``), ‖w_t‖₂, and the triangle bound
    ``bound`` = ‖w_t‖₂ + ‖w₀‖₂ ≥ ‖w_t − w₀‖₂ with its looseness ``bound_ratio`` = bound / ‖w_t − w₀‖₂ (inf at
    t = 0). One row per recorded t of every cell (γ = 0)."""
    df = _table(curves)
    df = df[df["gamma"] == 0.0].copy()
    df["bound"] = df["weight_norm"] + df["initial_norm"]
    with np.errstate(divide="ignore"):
        df["bound_ratio"] = df["bound"] / df["weight_change"].replace(0.0, np.nan)
    df.loc[df["weight_change"] == 0.0, "bound_ratio"] = np.inf
    return df[["seed", "dataset", "model", "pretrain_steps", "l2", "t", "weight_change", "weight_norm",
               "initial_norm", "bound", "bound_ratio"]].reset_index(drop=True)
