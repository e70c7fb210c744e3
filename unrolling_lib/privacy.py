"""Membership-inference risk: modified entropy and Song & Mittal's privacy risk score (§4.3, §8.4).

The privacy risk score (PRS) of a sample is the posterior probability that it was a training member,
estimated from a shadow model: for each class, histograms of a membership signal (the modified entropy of
the model's softmax output) over the shadow model's members and non-members give

    PRS(x, y) = h_in[b] / (h_in[b] + h_out[b]),   b the bin of the target value,

as in Song & Mittal (Eq. 13 and 15 of their paper). The details follow their released implementation:

- bins: ``num_bins`` per class, log-spaced (or linear) from the smallest to the largest shadow value of
  that class (members ∪ non-members); with log bins, values are first clamped below at 1e-10;
- each histogram is divided by its own number of values (a class with no member values has h_in = 0);
- a target value outside the range takes the first or last bin; an empty bin (h_in + h_out = 0) takes the
  nearest non-empty bin, looking at the lower side first at each distance.

One deliberate difference: the outer bin edges are exactly the smallest and largest value (numpy's
``logspace`` can round the last edge below the largest value, which would drop it from the histogram).

Inputs are **softmax probabilities**, not logits (the released code of the paper forgot the softmax and
left models in train mode; :func:`softmax_probs` does both right). A 1-D array is taken as precomputed
signal values (modified entropy or any score where smaller means "more member-like").
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import numpy as np
import torch
from torch import nn

from .params import eval_mode
from .validation import ParameterError, check_choice, check_int

__all__ = ["LOG_FLOOR", "SIGNAL_MODES", "membership_signal", "modified_entropy", "privacy_risk_score", "softmax_probs",
           "split_in_half"]

LOG_FLOOR = 1e-30  # log(max(p, LOG_FLOOR)) in the modified entropy, as Song & Mittal's code
BIN_FLOOR = 1e-10  # smallest value placed in log-spaced bins, as Song & Mittal's code


def _probs(name: str, probs: Any) -> np.ndarray:
    p = np.asarray(probs.detach().cpu() if isinstance(probs, torch.Tensor) else probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ParameterError(f"{name} must be softmax probabilities of shape (n, classes >= 2); got {p.shape}")
    if p.size and (p.min() < -1e-6 or p.max() > 1 + 1e-6 or np.abs(p.sum(axis=1) - 1).max() > 1e-3):
        raise ParameterError(f"{name} must be softmax probabilities (in [0, 1], rows summing to 1); "
                             "were logits passed?")
    return p


def _labels(name: str, labels: Any, n: int, num_classes: int | None = None) -> np.ndarray:
    y = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
    if y.shape != (n,) or (n and not np.issubdtype(y.dtype, np.integer)):
        raise ParameterError(f"{name} must be {n} integer class labels; got shape {y.shape}, dtype {y.dtype}")
    y = y.astype(np.int64)
    if num_classes is not None and n and (y.min() < 0 or y.max() >= num_classes):
        raise ParameterError(f"{name} must lie in [0, {num_classes}); got {y.min()}..{y.max()}")
    return y


def modified_entropy(probs: Any, labels: Any) -> np.ndarray:
    """Song & Mittal's modified entropy (their Eq. 8) of each row of softmax probabilities ``probs``:

    Mentr(F(x), y) = −(1 − F_y)·log F_y − Σ_{i≠y} F_i·log(1 − F_i),  logs of max(·, 1e-30).

    Small for confident, correct predictions (typical of training members), large otherwise.
    """
    p = _probs("probs", probs)
    y = _labels("labels", labels, p.shape[0], p.shape[1])
    return _mentr(p, y)


def _values(name: str, data: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(data.detach().cpu() if isinstance(data, torch.Tensor) else data, dtype=np.float64)
    if arr.ndim == 1:
        return arr, _labels(f"{name}_labels", labels, arr.shape[0])
    p = _probs(name, arr)
    y = _labels(f"{name}_labels", labels, p.shape[0], p.shape[1])
    return modified_entropy(p, y), y


def _edges(values: np.ndarray, num_bins: int, log_bins: bool) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    if log_bins:
        edges = np.logspace(np.log10(lo), np.log10(hi), num_bins + 1)
    else:
        edges = np.linspace(lo, hi, num_bins + 1)
    edges[0], edges[-1] = lo, hi
    return edges


def _bin_index(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Bin of each value: [e_i, e_{i+1}), the last bin closed; outside values go to the first/last bin."""
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)


def _histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    if values.size == 0:
        return np.zeros(len(edges) - 1)
    if edges[0] == edges[-1]:  # a single distinct value: everything in the last bin
        counts = np.zeros(len(edges) - 1)
        counts[-1] = values.size
    else:
        counts, _ = np.histogram(values, bins=edges)
    return counts / values.size


def _score_table(h_in: np.ndarray, h_out: np.ndarray) -> np.ndarray:
    """PRS of each bin; an empty bin takes the nearest non-empty one (lower side first)."""
    total = h_in + h_out
    filled = np.flatnonzero(total > 0)
    table = np.empty(len(total))
    for b in range(len(total)):
        dist = np.abs(filled - b)
        nearest = filled[np.flatnonzero(dist == dist.min())[0]]  # ties: the lower bin comes first
        table[b] = h_in[nearest] / total[nearest]
    return table


def privacy_risk_score(
    shadow_in: Any,
    shadow_out: Any,
    shadow_in_labels: Any,
    shadow_out_labels: Any,
    target: Any,
    target_labels: Any,
    num_bins: int = 5,
    log_bins: bool = True,
) -> np.ndarray:
    """Song & Mittal's privacy risk score of each target sample (see the module docstring), in [0, 1].

    ``shadow_in`` / ``shadow_out``: the shadow model's softmax outputs (n, C) on its training members and on
    non-members; ``target``: the target model's softmax outputs on the samples to score; each with its
    integer labels. 1-D inputs are taken as precomputed signal values instead of probabilities.
    """
    num_bins = check_int("num_bins", num_bins, 1)
    v_in, y_in = _values("shadow_in", shadow_in, shadow_in_labels)
    v_out, y_out = _values("shadow_out", shadow_out, shadow_out_labels)
    v_t, y_t = _values("target", target, target_labels)
    if log_bins:
        v_in, v_out = np.maximum(v_in, BIN_FLOOR), np.maximum(v_out, BIN_FLOOR)
    scores = np.empty(v_t.shape[0])
    for c in np.unique(y_t):
        tr, te = v_in[y_in == c], v_out[y_out == c]
        if tr.size + te.size == 0:
            raise ParameterError(f"target_labels has class {c}, which has no shadow values to build bins from")
        edges = _edges(np.concatenate([tr, te]), num_bins, log_bins)
        table = _score_table(_histogram(tr, edges), _histogram(te, edges))
        mask = y_t == c
        scores[mask] = table[_bin_index(edges, v_t[mask])]
    return scores


@torch.no_grad()
def softmax_probs(model: nn.Module, inputs: torch.Tensor, *, batch_size: int = 1024) -> np.ndarray:
    """The model's softmax outputs (n, C) as float64, computed in eval mode (the modes are restored)."""
    batch_size = check_int("batch_size", batch_size, 1)
    first = next(model.parameters(), None)
    device = first.device if first is not None else inputs.device
    with eval_mode(model):
        out = [torch.softmax(model(inputs[i:i + batch_size].to(device)).double(), dim=1).cpu()
               for i in range(0, len(inputs), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, 0))


def split_in_half(n: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random halves of ``range(n)`` (sorted), e.g. the shadow model's members and the
    non-members the adversary holds (§4.3: half the training set, half the test set)."""
    n = check_int("n", n, 2)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2:])


SIGNAL_MODES = ("softmax", "released")


def _mentr(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    rows = np.arange(p.shape[0])
    log_p = np.log(np.maximum(p, LOG_FLOOR))
    log_q = np.log(np.maximum(1.0 - p, LOG_FLOOR))
    terms = -p * log_q
    terms[rows, y] = -(1.0 - p[rows, y]) * log_p[rows, y]
    return terms.sum(axis=1)


@torch.no_grad()
def membership_signal(model: nn.Module, inputs: torch.Tensor, labels: Any, *, mode: str = "softmax",
                      batch_size: int = 1024) -> np.ndarray:
    """The membership signal of each sample, the modified entropy (smaller: more member-like).

    ``mode="softmax"`` (right, the default): of the model's softmax output in eval mode. ``mode="released"``:
    as the paper's released code computed it, of the raw logits with the model in train mode (BatchNorm then
    normalises with the statistics of each chunk of ``batch_size`` inputs; a copy of the model is used, so its
    running statistics are left alone). The formula is applied to the logits as if they were probabilities.
    """
    mode = check_choice("mode", mode, SIGNAL_MODES)
    y = _labels("labels", labels, int(inputs.shape[0]))
    if mode == "softmax":
        return modified_entropy(softmax_probs(model, inputs, batch_size=batch_size), y)
    batch_size = check_int("batch_size", batch_size, 1)
    copy = deepcopy(model)
    copy.train()
    device = next(copy.parameters()).device
    logits = torch.cat([copy(inputs[i:i + batch_size].to(device)).double().cpu()
                        for i in range(0, len(inputs), batch_size)]).numpy()
    return _mentr(logits, y)
