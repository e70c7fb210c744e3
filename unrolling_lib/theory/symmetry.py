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

Numerics only: :func:`unrolling_lib.figures.symmetry.symmetry_figure` draws the two paths.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.func import functional_call, jvp

from ..data import BatchOrder, TensorData, load_digits_dataset
from ..metrics import verification_error
from ..models import MLP
from ..params import flat_weights, named_trainable, unflatten
from ..training import cpu_threads, quiet_jvp, train_lockstep
from ..validation import (
    ParameterError,
    check_choice,
    check_instance,
    check_int,
    check_ints,
    check_keys,
    check_number,
    check_numbers,
)

__all__ = [
    "SYMMETRY_DEFAULTS",
    "Interpolations",
    "NearbyModels",
    "PermutationCheck",
    "check_symmetry_params",
    "default_alphas",
    "interpolation_paths",
    "interpolation_table",
    "linear_path_alphas",
    "output_difference",
    "permutation_check",
    "permute_all_hidden",
    "permute_hidden",
    "quiet_jvp",
    "random_permutation",
    "train_nearby_models",
]

_QUICK: dict[str, Any] = {
    "hidden": [32],
    "subset": 512,
    "batch_size": 32,
    "epochs": 3,
    "lr": 0.1,
    "unlearn_step": 5,
    "alphas": 25,
}
SYMMETRY_DEFAULTS: dict[str, dict[str, Any]] = {
    "quick": dict(_QUICK),
    "colab": {**_QUICK, "hidden": [64, 64], "subset": 1437, "epochs": 10},
    "paper": {**_QUICK, "hidden": [128, 128], "subset": 1437, "epochs": 30, "alphas": 41},
    "smoke": {**_QUICK, "hidden": [16], "subset": 128, "epochs": 1, "unlearn_step": 1, "alphas": 5},
}


# ------------------------------------------------------------------------------------------------ checks
def _check_training(*, hidden: Any, subset: Any, batch_size: Any, epochs: Any, lr: Any, unlearn_step: Any
                    ) -> dict[str, Any]:
    """The rules of :func:`train_nearby_models`'s run: widths, a batch that fits the subset, a step of the order
    (``epochs`` × ``subset // batch_size`` steps; the subset's upper bound is the data's, checked on loading)."""
    hidden = check_ints("hidden", hidden, 1)
    subset = check_int("subset", subset, 1)
    batch_size = check_int("batch_size", batch_size, 1, subset)
    epochs = check_int("epochs", epochs, 1)
    return {"hidden": hidden, "subset": subset, "batch_size": batch_size, "epochs": epochs,
            "lr": check_number("lr", lr),
            "unlearn_step": check_int("unlearn_step", unlearn_step, 0, epochs * (subset // batch_size) - 1)}


def _check_alphas(alphas: Any) -> int:
    """Points along each path of :func:`interpolation_paths`: at least two."""
    return check_int("alphas", alphas, 2)


def check_symmetry_params(**params: Any) -> dict[str, Any]:
    """Check the §4.2 parameters (the keys of :data:`SYMMETRY_DEFAULTS`) before any work; return them normalised
    (Python ints, ``hidden`` as a list). The one set of rules: :func:`train_nearby_models` and
    :func:`interpolation_paths` apply the same checks, and the chapter's ``setup(..., check=check_symmetry_params)``
    too."""
    check_keys("§4.2", params, _QUICK, kind="study")
    q = params
    out = _check_training(hidden=q["hidden"], subset=q["subset"], batch_size=q["batch_size"], epochs=q["epochs"],
                          lr=q["lr"], unlearn_step=q["unlearn_step"])
    return {**out, "alphas": _check_alphas(q["alphas"])}


# --------------------------------------------------------------------------------------------- permute
def _linears(model: nn.Module) -> list[nn.Linear]:
    check_instance("model", model, MLP)
    return [m for m in model.net if isinstance(m, nn.Linear)]


def random_permutation(width: int, seed: int = 0) -> torch.Tensor:
    """A random permutation of ``range(width)`` that moves every unit (a derangement), fixed by ``seed`` (§4.2)."""
    width = check_int("width", width, 2)  # one unit cannot move
    gen = torch.Generator().manual_seed(check_int("seed", seed, 0))
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
        index = check_int("layer", 0 if layer is None else layer, 0, hidden - 1)
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


def permute_all_hidden(model: nn.Module, *, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with every hidden layer's units permuted (layer i by ``random_permutation``, seed + i)."""
    linears = _linears(model)
    seed = check_int("seed", seed, 0)
    return permute_hidden(model, [random_permutation(lin.out_features, seed + i) for i, lin in enumerate(linears[:-1])])


# ---------------------------------------------------------------------------------------------- models
@dataclass
class NearbyModels:
    """M trained on the whole order and M′ trained on it without step ``unlearn_step`` (§8.3), from the same w₀."""

    model: nn.Module
    retrained: nn.Module
    initial: nn.Module
    data: TensorData
    order: BatchOrder
    unlearn_step: int
    lr: float


def train_nearby_models(*, hidden: Sequence[int] = tuple(_QUICK["hidden"]), subset: int = _QUICK["subset"],
                        batch_size: int = _QUICK["batch_size"], epochs: int = _QUICK["epochs"],
                        lr: float = _QUICK["lr"], unlearn_step: int = _QUICK["unlearn_step"], seed: int = 0,
                        dtype: torch.dtype = torch.float64, threads: int | None = 1) -> NearbyModels:
    """An MLP (tanh) trained by plain SGD on ``subset`` digits, and the same run with step ``unlearn_step`` left
    out (§4.2's pair of nearby models).

    Their distance is the verification error of unlearning step ``unlearn_step`` by doing nothing. float64 by
    default, so that "identical outputs" means to ~1e-15. ``threads``: torch CPU threads while training (one
    by default: the model is tiny; ``None``: unchanged). Defaults are the quick profile's; the arguments are
    checked by the rules of :func:`check_symmetry_params`.
    """
    p = _check_training(hidden=hidden, subset=subset, batch_size=batch_size, epochs=epochs, lr=lr,
                        unlearn_step=unlearn_step)
    seed = check_int("seed", seed, 0)
    data = load_digits_dataset(subset=p["subset"], seed=seed, dtype=dtype)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MLP(in_features=64, hidden=tuple(p["hidden"]), num_classes=10).to(dtype)
    initial = copy.deepcopy(model)
    order = BatchOrder(len(data), p["batch_size"], epochs=p["epochs"], seed=seed)
    with cpu_threads(threads):
        result = train_lockstep(model, data, order, unlearn_step=p["unlearn_step"], lr=p["lr"], progress=False,
                                on_divergence="raise")
    return NearbyModels(model=result.model, retrained=result.retrained, initial=initial, data=data, order=order,
                        unlearn_step=result.unlearn_step, lr=p["lr"])


@torch.no_grad()
def output_difference(a: nn.Module, b: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """(max, mean) over the inputs ``x`` of ‖M_a(x) − M_b(x)‖₂ (logits)."""
    diff = (a(x) - b(x)).norm(dim=1)
    return float(diff.max()), float(diff.mean())


@dataclass
class PermutationCheck:
    """§4.2's first fact on one pair: M against its permuted copy π(M) and against the retrained M′.

    ``table`` has one row per comparison, ``comparison`` = ``"permuted"`` (π(M)) or ``"retrained"`` (M′), and
    the columns ``max_output_difference`` and ``mean_output_difference`` (of ‖M(x) − M_other(x)‖₂ over the
    training data), ``verification_error`` ‖w − w_other‖₂ and ``weight_norm`` ‖w‖₂ of M. ``permuted`` is π(M).
    """

    table: pd.DataFrame
    permuted: nn.Module

    def row(self, comparison: str) -> pd.Series:
        """The table's row for ``"permuted"`` or ``"retrained"``."""
        rows = self.table.set_index("comparison")
        return rows.loc[check_choice("comparison", comparison, list(rows.index))]


def permutation_check(pair: NearbyModels, *, seed: int = 0) -> PermutationCheck:
    """Permute every hidden layer of M (:func:`permute_all_hidden`): its outputs, its weights, compared with M′
    (the honest retrain), §4.2."""
    check_instance("pair", pair, NearbyModels)
    permuted = permute_all_hidden(pair.model, seed=seed)
    weight_norm = float(flat_weights(pair.model).double().norm())
    rows = []
    for name, other in (("permuted", permuted), ("retrained", pair.retrained)):
        out_max, out_mean = output_difference(pair.model, other, pair.data.x)
        rows.append({"comparison": name, "max_output_difference": out_max, "mean_output_difference": out_mean,
                     "verification_error": verification_error(pair.model, other), "weight_norm": weight_norm})
    return PermutationCheck(table=pd.DataFrame(rows), permuted=permuted)


# -------------------------------------------------------------------------------------------- interpolate
def interpolation_table(a: nn.Module, b: nn.Module, x: torch.Tensor, alphas: Sequence[float] | np.ndarray
                        ) -> pd.DataFrame:
    """Output difference against weight difference along w(α) = w_a + α (w_b − w_a) (§4.2).

    Columns: ``alpha``, ``weight_difference`` α‖w_b − w_a‖₂ (the v between M_a and M_{w(α)}),
    ``output_difference`` max over ``x`` of ‖M_{w(α)}(x) − M_a(x)‖₂, ``mean_output_difference``, ``ratio`` =
    output / weight difference, and ``limit`` = max_x ‖J_x Δ̂‖₂, the ratio's limit as α → 0 (one
    Jacobian-vector product along the unit direction Δ̂).
    """
    alphas = np.asarray(check_numbers("alphas", alphas), dtype=np.float64)
    wa, wb = flat_weights(a).to(torch.float64), flat_weights(b).to(torch.float64)
    delta = wb - wa
    size = float(delta.norm())
    if size == 0:
        raise ParameterError("models a and b have identical weights; there is no segment to walk along")
    work = copy.deepcopy(a).to(torch.float64)
    names, like = zip(*named_trainable(work, name="a"), strict=True)
    xx = x.to(torch.float64)

    def outputs(flat: torch.Tensor) -> torch.Tensor:
        # the flat w back into named tensors, so the model is evaluated as a function of its weights
        return functional_call(work, dict(zip(names, unflatten(flat, like), strict=True)), (xx,))

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


def default_alphas(count: int) -> np.ndarray:
    """Log-spaced α from 1e-5 to 1 (``count`` values): reaches far enough towards v → 0 to see the limit."""
    return np.logspace(-5, 0, check_int("count", count, 2))


def linear_path_alphas(count: int) -> np.ndarray:
    """``count`` evenly spaced α in (0, 1] for the path towards the permuted model."""
    count = check_int("count", count, 1)
    return np.linspace(1.0 / count, 1.0, count) if count >= 2 else np.array([1.0])


@dataclass
class Interpolations:
    """The two walks of §4.2 from M: towards the retrained M′ (``near``, log-spaced α down to 1e-5) and towards
    the permuted π(M) (``permuted_path``, evenly spaced α in (0, 1]); both are :func:`interpolation_table`s."""

    near: pd.DataFrame
    permuted_path: pd.DataFrame

    @property
    def limit(self) -> float:
        """max_x ‖J_x Δ̂‖₂ towards M′: the slope the output difference follows as v → 0."""
        return float(self.near["limit"].iloc[0])


def interpolation_paths(pair: NearbyModels, permuted: nn.Module, *, alphas: int = _QUICK["alphas"]
                        ) -> Interpolations:
    """Walk from M towards M′ and towards ``permuted`` (π(M), e.g. :attr:`PermutationCheck.permuted`) with
    ``alphas`` points each, measuring outputs over the training data (§4.2)."""
    check_instance("pair", pair, NearbyModels)
    alphas = _check_alphas(alphas)
    near = interpolation_table(pair.model, pair.retrained, pair.data.x, default_alphas(alphas))
    path = interpolation_table(pair.model, permuted, pair.data.x, linear_path_alphas(alphas))
    return Interpolations(near=near, permuted_path=path)
