"""Outputs against weights (§4.2): close weights give close outputs, but equal outputs need not mean close weights.

Two facts of §4.2, made measurable on a small MLP trained on digits:

- **Permutation symmetry.** Reordering the hidden units of a layer (the rows of its weight matrix and bias,
  and the matching columns of the next layer's matrix) gives another point in weight space that computes
  exactly the same function (the lecture notes cited as [26] in the paper). Its verification error
  v = ‖w − w_π‖₂ against the original is large, while every output is unchanged: output-space metrics cannot
  certify closeness in weight space.
- **Continuity.** Along the segment w(α) = w_a + α (w_b − w_a) between two nearby models, the largest output
  difference over a finite data set is at most a local Lipschitz constant times the weight difference
  α‖w_b − w_a‖, and their ratio tends, as v → 0, to max_x ‖J_x Δ̂‖₂: the directional derivative of the
  outputs along the unit direction Δ̂ (computed exactly with a Jacobian-vector product).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import nn
from torch.func import functional_call, jvp

from ..data import BatchOrder, TensorData, load_digits_dataset
from ..metrics import flat_params, verification_error
from ..models import MLP
from ..profiles import ParameterError
from ..training import cpu_threads, train_lockstep
from .expansion import quiet_jvp

__all__ = [
    "SYMMETRY_DEFAULTS",
    "NearbyModels",
    "default_alphas",
    "linear_path_alphas",
    "interpolation_table",
    "output_difference",
    "permutation_check",
    "permute_all_hidden",
    "permute_hidden",
    "random_permutation",
    "symmetry_figure",
    "train_nearby_models",
]

_QUICK: dict[str, Any] = {
    "hidden": [32],
    "subset": 512,
    "batch_size": 32,
    "epochs": 3,
    "lr": 0.1,
    "skip": 5,
    "alphas": 25,
}
SYMMETRY_DEFAULTS: dict[str, dict[str, Any]] = {
    "quick": dict(_QUICK),
    "colab": {**_QUICK, "hidden": [64, 64], "subset": 1437, "epochs": 10},
    "paper": {**_QUICK, "hidden": [128, 128], "subset": 1437, "epochs": 30, "alphas": 41},
}


# --------------------------------------------------------------------------------------------- permute
def _linears(model: nn.Module) -> list[nn.Linear]:
    if not isinstance(model, MLP):
        raise ParameterError(f"model must be an unrolling_lib.models.MLP; got {type(model).__name__}")
    return [m for m in model.net if isinstance(m, nn.Linear)]


def random_permutation(width: int, seed: int = 0) -> torch.Tensor:
    """A random permutation of ``range(width)`` that moves every unit (a derangement), fixed by ``seed``."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 2:
        raise ParameterError(f"width={width!r} is not allowed; use an int >= 2 (one unit cannot move)")
    gen = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(width, generator=gen)
        if not (perm == torch.arange(width)).any():
            return perm


def permute_hidden(model: nn.Module, perm: torch.Tensor | Sequence[int] | Sequence[torch.Tensor | None],
                   layer: int | None = None) -> nn.Module:
    """A new MLP whose hidden units are reordered: the same function, different weights (§4.2).

    ``perm`` is a permutation of the units of hidden layer ``layer`` (default 0), or, with ``layer=None``
    and a list, one permutation (or ``None``) per hidden layer. For hidden layer l with permutation π the
    rows of W_l and b_l and the columns of W_{l+1} are reordered by π; elementwise activations commute
    with that, so every output is unchanged. ``model`` is not modified.
    """
    linears = _linears(model)
    hidden = len(linears) - 1
    if hidden < 1:
        raise ParameterError("model has no hidden layer; there is nothing to permute")
    if layer is not None or not (isinstance(perm, (list, tuple)) and perm and
                                 (perm[0] is None or isinstance(perm[0], (torch.Tensor, list, tuple)))):
        perms: list[Any] = [None] * hidden
        index = 0 if layer is None else layer
        if not (isinstance(index, int) and 0 <= index < hidden):
            raise ParameterError(f"layer={layer!r} is not allowed; use an int in [0, {hidden - 1}]")
        perms[index] = perm
    else:
        perms = list(perm)
        if len(perms) != hidden:
            raise ParameterError(f"perm has {len(perms)} permutations; the model has {hidden} hidden layers")
    new = copy.deepcopy(model)
    new_linears = _linears(new)
    with torch.no_grad():
        for i, p in enumerate(perms):
            if p is None:
                continue
            p = torch.as_tensor(p, dtype=torch.int64)
            width = new_linears[i].out_features
            if sorted(p.tolist()) != list(range(width)):
                raise ParameterError(f"perm for hidden layer {i} must be a permutation of range({width})")
            new_linears[i].weight.copy_(new_linears[i].weight[p])
            if new_linears[i].bias is not None:
                new_linears[i].bias.copy_(new_linears[i].bias[p])
            new_linears[i + 1].weight.copy_(new_linears[i + 1].weight[:, p])
    return new


# ---------------------------------------------------------------------------------------------- models
@dataclass
class NearbyModels:
    """M trained on the whole order and M′ trained on it without one step (§8.3), from the same w₀."""

    model: nn.Module
    retrained: nn.Module
    initial: nn.Module
    data: TensorData
    order: BatchOrder
    skip: int
    lr: float


def train_nearby_models(*, hidden: Sequence[int] = (32,), subset: int = 512, batch_size: int = 32,
                        epochs: int = 3, lr: float = 0.1, skip: int = 5, seed: int = 0,
                        dtype: torch.dtype = torch.float64, threads: int | None = 1) -> NearbyModels:
    """An MLP (tanh) trained by plain SGD on ``subset`` digits, and the same run with step ``skip`` left out.

    The two are a natural pair of nearby models: their distance is the verification error of unlearning
    step ``skip`` by doing nothing. float64 by default, so that "identical outputs" means to ~1e-15.
    ``threads``: torch CPU threads while training (one by default: the model is tiny; ``None``: unchanged).
    """
    data = load_digits_dataset(subset=subset, seed=seed, dtype=dtype)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MLP(in_features=64, hidden=tuple(int(h) for h in hidden), num_classes=10).to(dtype)
    initial = copy.deepcopy(model)
    order = BatchOrder(len(data), batch_size, epochs=epochs, seed=seed)
    with cpu_threads(threads):
        result = train_lockstep(model, data, order, skip=skip, lr=lr, progress=False, on_divergence="raise")
    return NearbyModels(model=result.model, retrained=result.retrained, initial=initial, data=data, order=order,
                        skip=result.skip, lr=float(lr))


@torch.no_grad()
def output_difference(a: nn.Module, b: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """(max, mean) over the inputs ``x`` of ‖M_a(x) − M_b(x)‖₂ (logits)."""
    diff = (a(x) - b(x)).norm(dim=1)
    return float(diff.max()), float(diff.mean())


def permute_all_hidden(model: nn.Module, *, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with every hidden layer's units permuted (layer i by ``random_permutation``, seed + i)."""
    linears = _linears(model)
    return permute_hidden(model, [random_permutation(lin.out_features, seed + i) for i, lin in enumerate(linears[:-1])])


def permutation_check(pair: NearbyModels, *, seed: int = 0) -> pd.DataFrame:
    """Permute every hidden layer of M: its outputs, its weights, compared with M′ (the honest retrain).

    One row per comparison (M vs π(M), M vs M′): largest and mean output difference over the training data,
    and the verification error ‖w − w′‖₂.
    """
    permuted = permute_all_hidden(pair.model, seed=seed)
    rows = []
    for name, other in (("permuted hidden units π(M)", permuted), ("retrained without one batch M′", pair.retrained)):
        out_max, out_mean = output_difference(pair.model, other, pair.data.x)
        rows.append({"compared with M": name, "max output difference": out_max,
                     "mean output difference": out_mean,
                     "verification error ‖w − w_other‖₂": verification_error(pair.model, other),
                     "‖w‖₂": float(flat_params(pair.model).double().norm())})
    return pd.DataFrame(rows)


# -------------------------------------------------------------------------------------------- interpolate
def _with_flat(model: nn.Module, flat: torch.Tensor) -> dict[str, torch.Tensor]:
    params, offset = {}, 0
    for name, p in model.named_parameters():
        params[name] = flat[offset:offset + p.numel()].view_as(p)
        offset += p.numel()
    return params


def interpolation_table(a: nn.Module, b: nn.Module, x: torch.Tensor, alphas: Sequence[float] | np.ndarray
                        ) -> pd.DataFrame:
    """Output difference against weight difference along w(α) = w_a + α (w_b − w_a) (§4.2).

    Columns: ``alpha``, ``weight_difference`` α‖w_b − w_a‖₂ (the v between M_a and M_{w(α)}),
    ``output_difference`` max over ``x`` of ‖M_{w(α)}(x) − M_a(x)‖₂, ``mean_output_difference``, ``ratio`` =
    output / weight difference, and ``limit`` = max_x ‖J_x Δ̂‖₂, the ratio's limit as α → 0 (one
    Jacobian-vector product along the unit direction Δ̂).
    """
    alphas = np.asarray(alphas, dtype=np.float64)
    if alphas.ndim != 1 or len(alphas) == 0 or np.any(alphas <= 0):
        raise ParameterError("alphas must be a non-empty list of numbers > 0")
    wa, wb = flat_params(a).to(torch.float64), flat_params(b).to(torch.float64)
    delta = wb - wa
    size = float(delta.norm())
    if size == 0:
        raise ParameterError("models a and b have identical weights; there is no segment to walk along")
    work = copy.deepcopy(a).to(torch.float64)
    xx = x.to(torch.float64)

    def outputs(flat: torch.Tensor) -> torch.Tensor:
        return functional_call(work, _with_flat(work, flat), (xx,))

    with torch.no_grad(), quiet_jvp():
        base = outputs(wa)
        _, tangent = jvp(outputs, (wa,), (delta / size,))
        limit = float(tangent.norm(dim=1).max())
        rows = []
        for alpha in alphas:
            diff = (outputs(wa + float(alpha) * delta) - base).norm(dim=1)
            rows.append({"alpha": float(alpha), "weight_difference": float(alpha) * size,
                         "output_difference": float(diff.max()), "mean_output_difference": float(diff.mean())})
    table = pd.DataFrame(rows)
    table["ratio"] = table["output_difference"] / table["weight_difference"]
    table["limit"] = limit
    return table


def symmetry_figure(near: pd.DataFrame, permuted_path: pd.DataFrame, v_permuted: float) -> go.Figure:
    """Left: output vs weight difference towards M′ (log-log) with the linear bound. Right: the path M → π(M)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "towards the retrained M′", f"towards the permuted π(M), v = {v_permuted:.3g}"))
    limit = float(near["limit"].iloc[0])
    fig.add_trace(go.Scatter(x=near["weight_difference"], y=near["output_difference"], mode="lines+markers",
                             name="max over the data ‖M_w(α)(x) − M(x)‖₂"), row=1, col=1)
    fig.add_trace(go.Scatter(x=near["weight_difference"], y=limit * near["weight_difference"], mode="lines",
                             name=f"linear: {limit:.3g} · weight difference (α → 0 slope)",
                             line={"dash": "dash", "color": "black"}), row=1, col=1)
    fig.add_trace(go.Scatter(x=permuted_path["alpha"], y=permuted_path["output_difference"], mode="lines+markers",
                             name="along w + α(π(w) − w)", line={"color": "#d62728"}), row=1, col=2)
    fig.update_xaxes(type="log", title_text="weight difference α‖w′ − w‖₂", row=1, col=1)
    fig.update_yaxes(type="log", title_text="max output difference", row=1, col=1)
    fig.update_xaxes(title_text="α (0 = M, 1 = π(M))", row=1, col=2)
    fig.update_yaxes(title_text="max output difference", row=1, col=2)
    fig.update_layout(height=500, legend={"orientation": "h", "y": -0.25})
    return fig


def default_alphas(count: int) -> np.ndarray:
    """Log-spaced α from 1e-5 to 1 (``count`` values): reaches far enough towards v → 0 to see the limit."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 2:
        raise ParameterError(f"alphas={count!r} is not allowed; use an int >= 2 (number of points)")
    return np.logspace(-5, 0, count)


def linear_path_alphas(count: int) -> np.ndarray:
    """``count`` evenly spaced α in (0, 1] for the path towards the permuted model."""
    return np.linspace(1.0 / count, 1.0, count) if count >= 2 else np.array([1.0])

