"""Amnesiac unlearning: the recorder keeps the updates actually applied, and subtracting them undoes them."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unrolling_lib.data import BatchOrder, batch_tensors, load_digits_dataset
from unrolling_lib.metrics import verification_error
from unrolling_lib.models import build_model
from unrolling_lib.training import train
from unrolling_lib.unlearning import UpdateRecorder, amnesiac_unlearn
from unrolling_lib.validation import ParameterError


@pytest.fixture(scope="module")
def digits():
    return load_digits_dataset(train=True, subset=400, seed=0)


def test_one_step_unlearned_returns_w0(digits):
    w0 = build_model("small_cnn", 10, seed=0, batch_norm=True)
    order = BatchOrder(len(digits), 32, steps=1, seed=0)
    recorder = UpdateRecorder(order[0][:3])  # any sample of the batch marks its step
    trained = train(copy.deepcopy(w0), digits, order, lr=0.5, gamma=5.0, callbacks=[recorder],
                    progress=False).model
    assert list(recorder.updates) == [0]
    assert verification_error(trained, w0) > 0.05
    unlearned = amnesiac_unlearn(trained, recorder)
    eps = torch.finfo(torch.float32).eps
    for p, p0 in zip(unlearned.parameters(), w0.parameters(), strict=True):
        # w₁ − (w₁ − w₀) = w₀ up to one rounding of w₁ − w₀, i.e. a few ulps of the weights involved
        bound = 2 * eps * float(p0.detach().abs().max() + p.detach().abs().max() + 1e-30)
        assert float((p - p0).detach().abs().max()) <= bound
    assert verification_error(trained, w0) > 0.05  # the trained model itself is left alone


def test_records_the_applied_update_not_a_post_step_gradient(digits):
    lr = 0.2
    order = BatchOrder(len(digits), 32, epochs=2, seed=3)
    target = int(order[5][0])
    snapshots = {}

    def snapshot(state):
        snapshots[state.t] = [p.detach().clone() for p in state.model.parameters()]

    model = build_model("small_cnn", 10, seed=1)
    w0 = [p.detach().clone() for p in model.parameters()]
    recorder = UpdateRecorder([target])
    train(model, digits, order, lr=lr, callbacks=[recorder, snapshot], progress=False)
    assert sorted(recorder.updates) == order.steps_containing([target]) and len(recorder) == 2
    snapshots[0] = w0
    for step, update in recorder.updates.items():
        before, after = snapshots[step], snapshots[step + 1]
        for u, b, a in zip(update, before, after, strict=True):
            assert torch.equal(u, a - b)  # w_{s+1} − w_s exactly as applied
        # ... which is −η ∇L(w_s) (to rounding), and not −η ∇L(w_{s+1}) (a post-step gradient).
        x, y = batch_tensors(digits, order[step])
        probe = build_model("small_cnn", 10, seed=1)
        for which, close in ((before, True), (after, False)):
            with torch.no_grad():
                for p, w in zip(probe.parameters(), which, strict=True):
                    p.copy_(w)
            grads = torch.autograd.grad(F.cross_entropy(probe(x), y), list(probe.parameters()))
            gap = max(float((u + lr * g).abs().max()) for u, g in zip(update, grads, strict=True))
            assert (gap < 1e-6) == close


def test_subtracting_every_update_telescopes_to_w0(digits):
    w0 = build_model("small_cnn", 10, seed=2)
    order = BatchOrder(len(digits), 32, steps=12, seed=0)
    recorder = UpdateRecorder(steps=range(12), to_cpu=True)
    trained = train(copy.deepcopy(w0), digits, order, lr=0.1, callbacks=[recorder], progress=False).model
    assert verification_error(amnesiac_unlearn(trained, recorder), w0) < 1e-6
    # The same with updates given as flat tensors, in place.
    flat = [torch.cat([u.reshape(-1) for u in update]) for update in recorder.updates.values()]
    same = amnesiac_unlearn(trained, flat, inplace=True)
    assert same is trained and verification_error(trained, w0) < 1e-6


def test_own_loop_and_errors():
    model = torch.nn.Linear(3, 2)
    w0 = copy.deepcopy(model)
    recorder = UpdateRecorder(steps=[0])
    before = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.25)
    recorder.record(0, [p.detach() - b for p, b in zip(model.parameters(), before, strict=True)])
    assert verification_error(amnesiac_unlearn(model, recorder), w0) < 1e-7
    assert recorder.wants_update(0, np.array([1])) and not recorder.wants_update(1, np.array([1]))
    with pytest.raises(ParameterError, match="exactly one"):
        UpdateRecorder()
    with pytest.raises(ParameterError, match="updates\\[0\\]"):
        amnesiac_unlearn(model, [torch.zeros(3)])
    with pytest.raises(ParameterError, match="updates\\[0\\]"):
        amnesiac_unlearn(model, [[torch.zeros(2, 3)]])
    with pytest.raises(ParameterError, match="updates"):
        amnesiac_unlearn(model, 5)
