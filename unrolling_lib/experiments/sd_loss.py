"""§8.1: the SD loss decreases the unlearning error (Figure 7, Table 1, Table 4).

§8.1's set-up is :func:`~unrolling_lib.experiments.error_curves.error_curves` with the SD loss (Eq. 10) at
each γ for both phases: train M₀ for N steps → M_N (w₀), then t steps → M_{N+t}, and e (Eq. 9) from M_N.
Figure 7 is e along t per γ; Table 1 the last t's e and accuracy per γ at one N (the paper: CIFAR-10,
N = 10 epochs, t = 1 epoch); Table 4 the same for every N (read along N in §8.2, :mod:`.ablation`).

``SD_LOSS_DEFAULTS`` holds the quick / colab / paper / smoke values.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .error_curves import ERROR_CURVE_DEFAULTS, ErrorCurves, final_rows
from .strawmen import PAPER_SETTINGS

__all__ = ["SD_LOSS_DEFAULTS", "sd_loss_effect"]

# Quick: the four mirrored settings, the CIFAR-10 γ grid without 15 (our data sets have 10 classes),
# N = 100 steps of 32, t = 120 steps, σ every 30 steps on 64 images (the released code took it on 32 or
# 512), a row every 20. About 1,100 steps per setting.
_QUICK: dict[str, Any] = {
    **ERROR_CURVE_DEFAULTS, "gammas": [0.0, 1.0, 5.0, 10.0, 20.0], "pretrain_steps": [100], "steps": 120,
    "batch_size": 32, "lr": 0.1, "sigma_every": 30, "record_every": 20, "hessian_batch_size": 64,
}
# Colab (one T4; planned at 25k SGD steps and about 400 Hessian-vector products, some 9 minutes): CIFAR-10
# only, both models, four γ, N = 1 epoch, t = 1 epoch (the paper: N = 10 epochs); CIFAR-100, whose γ grid
# differs, is left to the paper profile.
_COLAB: dict[str, Any] = {
    **_QUICK, "settings": PAPER_SETTINGS[:2], "gammas": [0.0, 5.0, 10.0, 20.0], "pretrain_steps": [1563],
    "steps": 1563, "sigma_every": 250, "record_every": 125, "hessian_batch_size": 512, "test_subset": 2000,
}
# The paper: N = 10 epochs (Table 1; Table 4's other N are §8.2's), t = 5 epochs (Figure 7), the CIFAR-10 γ
# grid; the CIFAR-100 settings take their own grid with gammas=[0, 50, 100, 150, 200, 250] (a second call).
_PAPER: dict[str, Any] = {
    **_COLAB, "gammas": [0.0, 1.0, 5.0, 10.0, 15.0, 20.0], "pretrain_steps": [15625], "steps": 7812,
    "sigma_every": 400, "record_every": 400, "test_subset": None, "seeds": [0, 1, 2],
}
_SMOKE: dict[str, Any] = {
    **_QUICK, "settings": [["digits", "small_vgg"], ["mnist5k", "small_resnet"]], "gammas": [0.0, 20.0],
    "pretrain_steps": [5], "steps": 10, "sigma_every": 5, "record_every": 5, "hessian_batch_size": 16,
    "train_subset": 256, "test_subset": 100,
}
SD_LOSS_DEFAULTS: dict[str, dict[str, Any]] = {"quick": _QUICK, "colab": _COLAB, "paper": _PAPER, "smoke": _SMOKE}


def sd_loss_effect(curves: ErrorCurves | pd.DataFrame) -> pd.DataFrame:
    """Table 1 / Table 4, measured: the last t's e, accuracy, ‖w_t − w₀‖₂ and σ_avg per seed, setting, N and γ
    (λ = 0), with ``e_ratio`` = e / e(γ = 0) and ``accuracy_drop`` = accuracy(γ = 0) − accuracy, both
    against the same seed, setting and N."""
    last = final_rows(curves)
    last = last[last["l2"] == 0.0]
    keys = ["seed", "dataset", "model", "pretrain_steps"]
    base = last[last["gamma"] == 0.0].set_index(keys)[["e", "accuracy"]]
    index = pd.MultiIndex.from_frame(last[keys])
    out = last[[*keys, "gamma", "t", "e", "accuracy", "weight_change", "sigma_avg", "eta_t_sigma"]].copy()
    out["e_ratio"] = out["e"].to_numpy() / base["e"].reindex(index).to_numpy()
    out["accuracy_drop"] = base["accuracy"].reindex(index).to_numpy() - out["accuracy"].to_numpy()
    return out.reset_index(drop=True)
