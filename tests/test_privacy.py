"""Modified entropy and Song & Mittal's privacy risk score against hand values and a plain loop version."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from unrolling_lib.privacy import modified_entropy, privacy_risk_score, softmax_probs, split_in_half


def test_modified_entropy_by_hand() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    labels = np.array([0, 1, 0, 0])
    expected = [
        -(0.3) * math.log(0.7) - 0.2 * math.log(0.8) - 0.1 * math.log(0.9),
        -(0.8) * math.log(0.2) - 0.7 * math.log(0.3) - 0.1 * math.log(0.9),
        0.0,  # certain and right
        -1.0 * math.log(1e-30) - 1.0 * math.log(1e-30),  # certain and wrong: logs floored at 1e-30
    ]
    assert modified_entropy(probs, labels) == pytest.approx(expected, rel=1e-12)
    assert modified_entropy(torch.tensor(probs), torch.tensor(labels)) == pytest.approx(expected, rel=1e-12)


def test_modified_entropy_rejects_logits_and_bad_labels() -> None:
    with pytest.raises(ValueError, match="softmax probabilities"):
        modified_entropy(np.array([[2.0, -1.0], [0.5, 0.3]]), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        modified_entropy(np.array([[0.5, 0.5]]), np.array([2]))
    with pytest.raises(ValueError, match="integer class labels"):
        modified_entropy(np.array([[0.5, 0.5]]), np.array([0.0]))


# ------------------------------------------------------------------------------------------------
# An independent, deliberately plain implementation of the risk score (loops, no numpy histogram).
# ------------------------------------------------------------------------------------------------


def _mentr_loop(p: list[float], y: int) -> float:
    total = 0.0
    for i, pi in enumerate(p):
        if i == y:
            total -= (1 - pi) * math.log(max(pi, 1e-30))
        else:
            total -= pi * math.log(max(1 - pi, 1e-30))
    return total


def _prs_loop(s_in, s_out, y_in, y_out, target, y_t, num_bins=5, log_bins=True):
    v_in = [_mentr_loop(list(p), int(c)) for p, c in zip(s_in, y_in, strict=True)]
    v_out = [_mentr_loop(list(p), int(c)) for p, c in zip(s_out, y_out, strict=True)]
    v_t = [_mentr_loop(list(p), int(c)) for p, c in zip(target, y_t, strict=True)]
    scores, empty_bins = [], 0
    for value, label in zip(v_t, y_t, strict=True):
        tr = [v for v, c in zip(v_in, y_in, strict=True) if c == label]
        te = [v for v, c in zip(v_out, y_out, strict=True) if c == label]
        if log_bins:
            tr = [max(v, 1e-10) for v in tr]
            te = [max(v, 1e-10) for v in te]
        lo, hi = min(tr + te), max(tr + te)
        if log_bins:
            step = (math.log10(hi) - math.log10(lo)) / num_bins
            edges = [10 ** (math.log10(lo) + k * step) for k in range(num_bins + 1)]
        else:
            edges = [lo + k * (hi - lo) / num_bins for k in range(num_bins + 1)]
        edges[0], edges[-1] = lo, hi

        def find(v: float, edges: list[float] = edges) -> int:
            if v >= edges[-1]:
                return num_bins - 1
            if v <= edges[0]:
                return 0
            return max(k for k in range(num_bins) if edges[k] <= v)

        h_in, h_out = [0.0] * num_bins, [0.0] * num_bins
        for v in tr:
            h_in[find(v)] += 1 / len(tr)
        for v in te:
            h_out[find(v)] += 1 / len(te)
        empty_bins += sum(1 for k in range(num_bins) if h_in[k] + h_out[k] == 0)
        b = find(value)
        if h_in[b] + h_out[b] > 0:
            scores.append(h_in[b] / (h_in[b] + h_out[b]))
            continue
        for dist in range(1, num_bins):
            if b - dist >= 0 and h_in[b - dist] + h_out[b - dist] > 0:
                scores.append(h_in[b - dist] / (h_in[b - dist] + h_out[b - dist]))
                break
            if b + dist < num_bins and h_in[b + dist] + h_out[b + dist] > 0:
                scores.append(h_in[b + dist] / (h_in[b + dist] + h_out[b + dist]))
                break
    return np.array(scores), empty_bins


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _shadow_data(seed: int, classes: int = 3):
    """Members: confident and right; non-members: mixed. Bimodal values leave empty middle bins."""
    rng = np.random.default_rng(seed)
    n_in, n_out, n_t = 60, 50, 80
    y_in, y_out, y_t = (rng.integers(0, classes, n) for n in (n_in, n_out, n_t))

    def outputs(y: np.ndarray, sharp: np.ndarray) -> np.ndarray:
        logits = rng.normal(size=(len(y), classes))
        logits[np.arange(len(y)), y] += sharp
        return _softmax(logits)

    s_in = outputs(y_in, rng.choice([2.0, 12.0], size=n_in))
    s_out = outputs(y_out, rng.choice([-2.0, 1.0, 12.0], size=n_out))
    # Targets include values far outside the shadow range on both sides.
    s_t = outputs(y_t, rng.choice([-30.0, 0.0, 3.0, 12.0, 40.0], size=n_t))
    return s_in, s_out, y_in, y_out, s_t, y_t


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("num_bins", "log_bins"), [(5, True), (8, True), (5, False), (1, True)])
def test_prs_equals_loop_implementation(seed: int, num_bins: int, log_bins: bool) -> None:
    data = _shadow_data(seed)
    got = privacy_risk_score(*data, num_bins=num_bins, log_bins=log_bins)
    expected, _ = _prs_loop(*data, num_bins=num_bins, log_bins=log_bins)
    assert got.shape == (len(data[-1]),)
    assert np.allclose(got, expected, rtol=0, atol=1e-12)
    assert np.all((got >= 0) & (got <= 1))


def test_test_data_has_empty_bins_and_out_of_range_targets() -> None:
    s_in, s_out, y_in, y_out, s_t, y_t = data = _shadow_data(0)
    _, empty = _prs_loop(*data, num_bins=8)
    assert empty > 0
    m_all = modified_entropy(np.concatenate([s_in, s_out]), np.concatenate([y_in, y_out]))
    m_t = modified_entropy(s_t, y_t)
    assert m_t.min() < max(m_all.min(), 1e-10) and m_t.max() > m_all.max()


def test_prs_hand_example_with_values() -> None:
    # 1-D inputs are signal values; linear bins over [0, 4] with 2 bins: [0, 2) and [2, 4].
    v_in, v_out = np.array([0.0, 0.5, 1.0, 3.5]), np.array([2.5, 3.0, 4.0])
    labels_in, labels_out = np.zeros(4, dtype=int), np.zeros(3, dtype=int)
    target = np.array([0.2, 3.9, -5.0, 9.0, 2.0])
    # h_in = (3/4, 1/4), h_out = (0, 1): scores (1, 0.2) by bin.
    got = privacy_risk_score(v_in, v_out, labels_in, labels_out, target, np.zeros(5, dtype=int),
                             num_bins=2, log_bins=False)
    assert got == pytest.approx([1.0, 0.2, 1.0, 0.2, 0.2])


def test_prs_unknown_class_and_bad_bins() -> None:
    s_in, s_out, y_in, y_out, s_t, y_t = _shadow_data(0)
    with pytest.raises(ValueError, match="class 2"):
        privacy_risk_score(s_in[y_in < 2], s_out[y_out < 2], y_in[y_in < 2], y_out[y_out < 2], s_t, y_t)
    with pytest.raises(ValueError, match="num_bins="):
        privacy_risk_score(s_in, s_out, y_in, y_out, s_t, y_t, num_bins=0)
    with pytest.raises(ValueError, match="softmax probabilities"):
        privacy_risk_score(s_in * 3, s_out, y_in, y_out, s_t, y_t)


def test_softmax_probs_eval_mode_and_restore() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5))
    model.train()
    x = torch.randn(10, 4)
    p1, p2 = softmax_probs(model, x, batch_size=3), softmax_probs(model, x)
    assert np.allclose(p1, p2)  # no dropout: eval mode
    assert np.allclose(p1.sum(axis=1), 1.0) and p1.dtype == np.float64
    assert model.training and model[1].training


def test_split_in_half() -> None:
    a, b = split_in_half(11, seed=3)
    assert len(a) == 5 and len(b) == 6 and not set(a) & set(b) and set(a) | set(b) == set(range(11))
    with pytest.raises(ValueError, match="n="):
        split_in_half(1)


def test_empty_bins_worked_by_hand():
    """Five linear bins over [0.05, 1]: members fill bins 0 and 4 (1/3, 2/3), non-members too (1/2, 1/2).

    Bin 0 scores (1/3)/(1/3 + 1/2) = 0.4 and bin 4 (2/3)/(2/3 + 1/2) = 4/7. A target in bin 2 is equally far
    from both: the lower one wins. Bins 1 and 3 take their nearest neighbour; values outside the range take the
    first or last bin.
    """
    shadow_in, shadow_out = np.array([0.05, 0.95, 1.0]), np.array([0.1, 1.0])
    target = np.array([0.5, 0.3, 0.7, 2.0, 0.0])
    scores = privacy_risk_score(shadow_in, shadow_out, np.zeros(3, int), np.zeros(2, int), target,
                                np.zeros(5, int), num_bins=5, log_bins=False)
    np.testing.assert_allclose(scores, [0.4, 0.4, 4 / 7, 4 / 7, 0.4])
