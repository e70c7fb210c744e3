"""§8.5 measured: the wall time of single-gradient unlearning against one retraining of the same model.

§8.5 prices single-gradient unlearning at 1/N of a retraining of N steps (one gradient against N). On a real
model the two also differ in what a step costs (the unlearning gradient is one forward and backward pass on
x̂₁; a training step adds the optimiser's update and reads a new batch), so :func:`unlearning_cost` times both
on the same model and data and reports the measured ratio beside 1/N.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import pandas as pd
import torch

from ..data import DATASETS, BatchOrder, batch_tensors, load_dataset
from ..losses import make_loss
from ..models import MODELS, build_model_for
from ..training import cpu_threads, pick_device, train
from ..unlearning import single_gradient_unlearn
from ..validation import check_choice, check_int, check_number

__all__ = ["COST_COLUMNS", "unlearning_cost"]

COST_COLUMNS = ("dataset", "model", "steps", "batch_size", "repeat", "retrain_seconds", "unlearn_seconds",
                "measured_ratio", "formula_ratio")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def unlearning_cost(dataset: str = "digits", model: str = "small_resnet", *, steps: int = 200, batch_size: int = 32,
                    lr: float = 0.01, repeats: int = 3, threads: int | None = 1, seed: int = 0,
                    device: str | torch.device = "auto") -> pd.DataFrame:
    """Time ``repeats`` retrainings of ``model`` for ``steps`` SGD steps of ``batch_size`` on ``dataset``, and
    as many single-gradient unlearning steps of one batch (§5.1) on the trained model; one row per repeat,
    columns :data:`COST_COLUMNS` (``formula_ratio`` = 1/N). Each timing is wall time on ``threads`` CPU
    threads (or the GPU), measured after one warm-up of each."""
    dataset = check_choice("dataset", dataset, DATASETS)
    model = check_choice("model", model, tuple(MODELS))
    steps, batch_size = check_int("steps", steps, 1), check_int("batch_size", batch_size, 1)
    repeats, seed = check_int("repeats", repeats, 1), check_int("seed", seed, 0)
    lr = check_number("lr", lr)
    dev = pick_device(device)
    data = load_dataset(dataset, train=True, seed=seed).to(dev)
    order = BatchOrder(len(data), batch_size, steps=steps, seed=seed)
    start = build_model_for(model, data.x.shape[1:], data.num_classes, seed=seed).to(dev)
    loss_fn = make_loss(0.0)
    forget = batch_tensors(data, order[0], dev)
    rows: list[dict[str, Any]] = []
    with cpu_threads(threads):
        warm = train(copy.deepcopy(start), data, BatchOrder(len(data), batch_size, steps=2, seed=seed), lr=lr,
                     progress=False).model
        single_gradient_unlearn(warm, start, loss_fn, *forget, lr=lr)
        for k in range(repeats):
            fresh = copy.deepcopy(start)
            _sync(dev)
            t0 = time.perf_counter()
            trained = train(fresh, data, order, lr=lr, progress=False).model
            _sync(dev)
            retrain = time.perf_counter() - t0
            t0 = time.perf_counter()
            single_gradient_unlearn(trained, start, loss_fn, *forget, lr=lr)
            _sync(dev)
            unlearn = time.perf_counter() - t0
            rows.append({"dataset": dataset, "model": model, "steps": steps, "batch_size": batch_size, "repeat": k,
                         "retrain_seconds": retrain, "unlearn_seconds": unlearn, "measured_ratio": unlearn / retrain,
                         "formula_ratio": 1.0 / steps})
    return pd.DataFrame(rows, columns=list(COST_COLUMNS))


# Quick: the small ResNet on digits, 200 steps of 32, three repeats (seconds). Colab: ResNet-18 on CIFAR-10,
# one epoch of 1,563 steps. The paper's N (≈ 100,000 steps) is not timed: the ratio is what matters.
UNLEARNING_COST_DEFAULTS: dict[str, dict[str, Any]] = {
    "quick": {"dataset": "digits", "model": "small_resnet", "steps": 200, "batch_size": 32, "lr": 0.01, "repeats": 3,
              "threads": 1},
    "colab": {"dataset": "cifar10", "model": "resnet18", "steps": 1563, "batch_size": 32, "lr": 0.01, "repeats": 2,
              "threads": None},
    "paper": {"dataset": "cifar10", "model": "resnet18", "steps": 7812, "batch_size": 32, "lr": 0.01, "repeats": 3,
              "threads": None},
    "smoke": {"dataset": "digits", "model": "small_cnn", "steps": 20, "batch_size": 16, "lr": 0.01, "repeats": 2,
              "threads": 1},
}
