"""The weights of a model as the paper's vector w: trainable parameters, flat vectors, train/eval mode.

The paper's w (and so ‖w_t − w₀‖₂ of Eq. 9, v = ‖w′ − w″‖₂ of §4.2 and the Hessian of Eq. 8) is the vector of
**trainable parameters**, in ``model.parameters()`` order. BatchNorm's running statistics are buffers, not
weights, and never count; a state dict given for weights drops them by name.

- :func:`trainable_parameters`, :func:`named_trainable`: the parameters that make up w.
- :func:`flatten` / :func:`unflatten`: a list of tensors ↔ one flat vector (views where possible).
- :func:`flat_weights`: w of a module, a state dict or an already flat tensor, detached.
- :func:`weight_distance`: ‖a − b‖₂ in float64 between two such weights.
- :func:`with_weights`: a copy of a model carrying other weights (given in any of those forms).
- :func:`module_mode` / :func:`eval_mode`: train or eval mode inside a block, every submodule's flag restored.

The ground layer: imports nothing of the package but :mod:`unrolling_lib.validation`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from .validation import ParameterError

__all__ = [
    "BN_BUFFERS",
    "Weights",
    "eval_mode",
    "flat_weights",
    "trainable_weights",
    "flatten",
    "module_mode",
    "named_trainable",
    "num_parameters",
    "trainable_parameters",
    "unflatten",
    "weight_distance",
    "with_weights",
]

BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")

Weights = nn.Module | Mapping[str, torch.Tensor] | torch.Tensor


def _check_module(name: str, model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise ParameterError(f"{name} must be a torch.nn.Module; got {type(model).__name__}")
    return model


def named_trainable(model: nn.Module, *, name: str = "model") -> list[tuple[str, nn.Parameter]]:
    """``(name, parameter)`` for every parameter with ``requires_grad``, in ``model.parameters()`` order."""
    params = [(n, p) for n, p in _check_module(name, model).named_parameters() if p.requires_grad]
    if not params:
        raise ParameterError(f"{name} has no trainable parameters; w is made of those")
    return params


def trainable_parameters(model: nn.Module, *, name: str = "model") -> list[nn.Parameter]:
    """The parameters that make up w (``requires_grad``), in ``model.parameters()`` order."""
    return [p for _, p in named_trainable(model, name=name)]


def num_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameters (BatchNorm running statistics are buffers and never count)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def flatten(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """One flat vector from a list of tensors (e.g. per-parameter gradients), in list order."""
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(flat: torch.Tensor, like: Sequence[torch.Tensor], *, name: str = "vector") -> list[torch.Tensor]:
    """Views of ``flat`` shaped like each tensor of ``like`` (the inverse of :func:`flatten`)."""
    total = sum(t.numel() for t in like)
    if flat.dim() != 1 or flat.numel() != total:
        raise ParameterError(f"{name} must be flat with {total} entries; got shape {tuple(flat.shape)}")
    pieces, offset = [], 0
    for t in like:
        pieces.append(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()
    return pieces


def _named_weights(x: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Trainable weights by name: a module's ``requires_grad`` parameters, a state dict without its buffers."""
    if isinstance(x, nn.Module):
        return {n: p.detach() for n, p in x.named_parameters() if p.requires_grad}
    return {k: v.detach() for k, v in x.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point() and not k.endswith(BN_BUFFERS)}


def _check_weights(name: str, x: object) -> None:
    if not isinstance(x, (nn.Module, Mapping, torch.Tensor)):
        raise ParameterError(f"{name} must be an nn.Module, a state dict or a flat tensor; got {type(x).__name__}")


def flat_weights(x: Weights, *, name: str = "weights") -> torch.Tensor:
    """w as one flat, detached tensor: a module's trainable parameters, a state dict's floating-point entries
    other than BatchNorm buffers, or a tensor (flattened)."""
    _check_weights(name, x)
    if isinstance(x, torch.Tensor):
        return x.detach().reshape(-1)
    named = _named_weights(x)
    return flatten(list(named.values())) if named else torch.zeros(0)


def _as_float64(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to(device="cpu", dtype=torch.float64).reshape(-1)


def weight_distance(a: Weights, b: Weights, *, names: tuple[str, str] = ("a", "b")) -> float:
    """‖w_a − w_b‖₂ over the trainable weights, computed in float64.

    Two modules or two state dicts are matched by parameter name; a module and a state dict by the module's
    trainable names; a flat tensor against anything by position.
    """
    for name, x in zip(names, (a, b), strict=True):
        _check_weights(name, x)
    na_, nb_ = names
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        fa, fb = _as_float64(flat_weights(a)), _as_float64(flat_weights(b))
        if fa.numel() != fb.numel():
            raise ParameterError(f"{na_} and {nb_} must hold the same number of weights; "
                                 f"got {fa.numel()} and {fb.numel()}")
        return float(torch.linalg.vector_norm(fa - fb))
    wa, wb = _named_weights(a), _named_weights(b)
    if isinstance(a, nn.Module) != isinstance(b, nn.Module):  # one module: its trainable names count
        keys = list(wa if isinstance(a, nn.Module) else wb)
    else:
        keys = list(wa)
        if set(wa) != set(wb):
            diff = sorted(set(wa) ^ set(wb))
            raise ParameterError(f"{na_} and {nb_} must have the same parameter names; they differ in {diff[:3]}")
    missing = [k for k in keys if k not in wa or k not in wb]
    if missing:
        raise ParameterError(f"{na_} and {nb_} must both hold every trainable parameter; missing {missing[:3]}")
    total = 0.0
    for k in keys:
        if wa[k].shape != wb[k].shape:
            raise ParameterError(f"parameter {k} has shape {tuple(wa[k].shape)} in {na_} and "
                                 f"{tuple(wb[k].shape)} in {nb_}")
        total += float((_as_float64(wa[k]) - _as_float64(wb[k])).pow(2).sum())
    return math.sqrt(total)


def trainable_weights(model: nn.Module, weights: Weights, *, name: str = "weights") -> dict[str, torch.Tensor]:
    """``weights`` as ``{name: tensor}`` for each trainable parameter of ``model``, checked (shapes included):
    a module of the same architecture, a state dict, or a flat tensor in ``model.parameters()`` order. The
    tensors are detached views, not copies."""
    _check_weights(name, weights)
    params = named_trainable(model)
    if isinstance(weights, torch.Tensor):
        total = sum(p.numel() for _, p in params)
        flat = weights.detach().reshape(-1)
        if flat.numel() != total:
            raise ParameterError(f"{name} must hold {total} trainable weights; got {flat.numel()}")
        pieces = unflatten(flat, [p for _, p in params], name=name)
        return {n: piece for (n, _), piece in zip(params, pieces, strict=True)}
    found = {n: p.detach() for n, p in weights.named_parameters()} if isinstance(weights, nn.Module) else weights
    missing = [n for n, _ in params if n not in found]
    if missing:
        raise ParameterError(f"{name} lacks trainable parameter(s) {missing[:3]}")
    for n, p in params:
        if tuple(found[n].shape) != tuple(p.shape):
            raise ParameterError(f"{name}[{n!r}] has shape {tuple(found[n].shape)}; the model's is {tuple(p.shape)}")
    return {n: found[n].detach() for n, _ in params}


def with_weights(model: nn.Module, weights: Weights, *, name: str = "weights") -> nn.Module:
    """A deep copy of ``model`` (architecture, buffers) whose trainable parameters are ``weights``: a module of
    the same architecture (its trainable parameters count, its buffers do not), a state dict, or a flat tensor
    in ``model.parameters()`` order."""
    values = trainable_weights(model, weights, name=name)
    out = copy.deepcopy(model)
    with torch.no_grad():
        for n, p in named_trainable(out):
            p.copy_(values[n])
    return out


@contextmanager
def module_mode(model: nn.Module, *, train: bool | None) -> Iterator[nn.Module]:
    """``model`` in train (``train=True``) or eval mode (``False``), or as it is (``None``: code inside may
    change it); every submodule's own flag is restored on exit, also when an error is raised."""
    flags = [(m, m.training) for m in model.modules()]
    try:
        if train is not None:
            model.train(train)
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode (BatchNorm on running statistics, no dropout); every flag restored on exit."""
    with module_mode(model, train=False):
        yield model
