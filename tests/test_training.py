"""Plain SGD over a batch order: lockstep retraining bit for bit, determinism, the divergence guard, callbacks."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unrolling_lib.data import BatchOrder, batch_tensors, load_digits_dataset
from unrolling_lib.losses import make_loss, sd_loss
from unrolling_lib.models import build_model
from unrolling_lib.training import (
    Callback,
    StepState,
    TrainingDiverged,
    deterministic_mode,
    noise_floor,
    train,
    train_lockstep,
)
from unrolling_lib.validation import ParameterError


@pytest.fixture(scope="module")
def digits():
    return load_digits_dataset(train=True, subset=512, seed=0)


def same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """Every parameter and buffer bit for bit equal."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("step", [0, 7, 39])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_lockstep_retrained_equals_separate_retraining_bit_for_bit(digits, step, batch_norm):
    w0 = build_model("small_cnn", 10, seed=3, batch_norm=batch_norm)
    order = BatchOrder(len(digits), 32, steps=40, seed=1)
    pair = train_lockstep(copy.deepcopy(w0), digits, order, unlearn_step=step, lr=0.1, gamma=5.0, progress=False)
    alone = train(copy.deepcopy(w0), digits, order.without(step), lr=0.1, gamma=5.0, progress=False)
    full = train(copy.deepcopy(w0), digits, order, lr=0.1, gamma=5.0, progress=False)
    assert same_state(pair.retrained, alone.model)  # M′ = retraining on the order without step `step`
    assert same_state(pair.model, full.model)  # and M is untouched by running beside it
    assert not same_state(pair.model, pair.retrained)
    assert np.isnan(pair.retrained_losses[step]) and np.isfinite(np.delete(pair.retrained_losses, step)).all()
    np.testing.assert_array_equal(np.delete(pair.retrained_losses, step), alone.losses)
    assert pair.unlearn_step == step and pair.unlearn_steps == (step,)


def tiny_problem(seed: int = 0) -> tuple[torch.nn.Module, tuple[torch.Tensor, torch.Tensor], BatchOrder]:
    """A float64 two-layer network, 24 random samples of 5 features in 3 classes, 12 steps of 6 samples."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)).double()
    data = (torch.randn(24, 5, generator=gen, dtype=torch.float64), torch.randint(0, 3, (24,), generator=gen))
    return model, data, BatchOrder(24, 6, steps=12, seed=seed)


@pytest.mark.parametrize(("momentum", "weight_decay"), [(0.9, 5e-4), (0.9, 0.0), (0.0, 5e-4), (0.5, 0.1)])
@pytest.mark.parametrize("foreach", [False, True])
def test_momentum_and_weight_decay_are_torch_sgd(momentum, weight_decay, foreach):
    model, data, order = tiny_problem()
    reference = copy.deepcopy(model)
    plain = train(copy.deepcopy(model), data, order, lr=0.1, progress=False).model
    train(model, data, order, lr=0.1, momentum=momentum, weight_decay=weight_decay, progress=False)
    opt = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=momentum, weight_decay=weight_decay,
                          foreach=foreach)
    for indices in order:
        x, y = batch_tensors(data, indices)
        opt.zero_grad()
        F.cross_entropy(reference(x), y).backward()
        opt.step()
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-12)
    assert not same_state(model, plain)  # the options do change the run (so the comparison can fail)


def test_zero_momentum_and_weight_decay_are_the_plain_sgd_bits(digits):
    w0 = build_model("small_cnn", 10, seed=2, batch_norm=True)
    order = BatchOrder(len(digits), 32, steps=20, seed=3)
    default = train(copy.deepcopy(w0), digits, order, lr=0.1, gamma=5.0, progress=False).model
    zeros = train(copy.deepcopy(w0), digits, order, lr=0.1, gamma=5.0, momentum=0.0, weight_decay=0, progress=False)
    # The update written out: w ← w − η ∇L, one fused foreach addition (what the library did before the options).
    manual = copy.deepcopy(w0).train()
    params = [p for p in manual.parameters() if p.requires_grad]
    for indices in order:
        x, y = batch_tensors(digits, indices)
        grads = torch.autograd.grad(sd_loss(manual(x), y, 5.0), params)
        with torch.no_grad():
            torch._foreach_add_(params, grads, alpha=-0.1)
    assert same_state(zeros.model, default) and same_state(default, manual)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_lockstep_with_several_skips_and_momentum_equals_separate_retraining(digits, batch_norm):
    """The released set-up: momentum, weight decay and the forgotten block skipped at the front of every epoch."""
    w0 = build_model("small_cnn", 10, seed=5, batch_norm=batch_norm)
    seeded = BatchOrder(len(digits), 32, epochs=3, seed=2)
    block = seeded[5]
    # Each epoch opens with the block and then has 15 of its own batches (the 6th of each is dropped).
    batches = list(seeded)
    order = BatchOrder.from_batches([b for e in range(3) for b in [block, *batches[16 * e:16 * e + 5],
                                                                  *batches[16 * e + 6:16 * (e + 1)]]], len(digits))
    skips = order.steps_of(block)
    assert skips == [0, 16, 32] and order.times_used(block) == 3
    kwargs = dict(lr=0.05, gamma=5.0, momentum=0.9, weight_decay=5e-4, progress=False)
    pair = train_lockstep(copy.deepcopy(w0), digits, order, unlearn_step=skips, **kwargs)
    alone = train(copy.deepcopy(w0), digits, order.without(skips), **kwargs)
    full = train(copy.deepcopy(w0), digits, order, **kwargs)
    assert same_state(pair.retrained, alone.model) and same_state(pair.model, full.model)
    assert pair.unlearn_step == 0 and pair.unlearn_steps == (0, 16, 32)
    assert np.isnan(pair.retrained_losses[skips]).all()
    np.testing.assert_array_equal(np.delete(pair.retrained_losses, skips), alone.losses)
    # Skipping once is not the same M′: the block seen in two epochs leaves its mark.
    once = train(copy.deepcopy(w0), digits, order.without(0), **kwargs)
    assert not same_state(once.model, alone.model)
    # Steps given in any order and counted from the end name the same steps.
    again = train_lockstep(copy.deepcopy(w0), digits, order, unlearn_step=(-16, 0, 16), **kwargs)
    assert again.unlearn_steps == (0, 16, 32) and same_state(again.retrained, alone.model)


class UpdateRecorder:
    """Records every step's weights and the update handed over at the steps in ``wanted``."""

    every = 1

    def __init__(self, wanted: set[int]) -> None:
        self.wanted, self.updates, self.weights = wanted, {}, []

    def on_start(self, model):
        self.weights.append([p.detach().clone() for p in model.parameters()])

    def wants_update(self, step, indices):
        return step in self.wanted

    def on_step(self, state: StepState) -> None:
        self.weights.append([p.detach().clone() for p in state.model.parameters()])
        if state.step in self.wanted:
            self.updates[state.step] = [u.clone() for u in state.update]


def test_update_handed_to_callbacks_is_the_applied_momentum_step():
    model, data, order = tiny_problem(seed=1)
    mu, wd, lr = 0.9, 5e-4, 0.1
    rec = UpdateRecorder({4, 5, 9})
    train_lockstep(model, data, order, unlearn_step=[2, 4], lr=lr, momentum=mu, weight_decay=wd, callbacks=rec,
                   progress=False)
    assert sorted(rec.updates) == [4, 5, 9] and len(rec.weights) == 13
    for s, update in rec.updates.items():
        for u, after, before in zip(update, rec.weights[s + 1], rec.weights[s], strict=True):
            assert torch.equal(u, after - before)
    # And it is the momentum step w₆ − w₅ = μ (w₅ − w₄) − η (∇L(w₅) + λ w₅), not a plain gradient step.
    at5 = copy.deepcopy(model)
    with torch.no_grad():
        for p, w in zip(at5.parameters(), rec.weights[5], strict=True):
            p.copy_(w)
    x, y = batch_tensors(data, order[5])
    grads = torch.autograd.grad(F.cross_entropy(at5(x), y), list(at5.parameters()))
    for u5, u4, g, w in zip(rec.updates[5], rec.updates[4], grads, rec.weights[5], strict=True):
        torch.testing.assert_close(u5, mu * u4 - lr * (g + wd * w), rtol=0, atol=1e-12)
        assert not torch.allclose(u5, -lr * (g + wd * w), rtol=0, atol=1e-6)


def test_bad_momentum_weight_decay_and_skipped_steps_refused():
    model, data, order = tiny_problem()
    bad = [({"momentum": 1.0}, r"^momentum=1\.0 is not allowed; use a finite number >= 0 and < 1$"),
           ({"momentum": -0.1}, r"^momentum=-0\.1 is not allowed"), ({"momentum": "x"}, r"^momentum='x' is not"),
           ({"weight_decay": -1}, r"^weight_decay=-1 is not allowed; use a finite number >= 0$"),
           ({"weight_decay": math.nan}, r"^weight_decay=nan")]
    for kwargs, match in bad:
        for fn in (train, noise_floor):
            with pytest.raises(ParameterError, match=match):
                fn(model, data, order, lr=0.1, progress=False, **kwargs)
        with pytest.raises(ParameterError, match=match):
            train_lockstep(model, data, order, unlearn_step=0, lr=0.1, progress=False, **kwargs)
    for steps, match in [([2, 2], r"^unlearn_step=\[2, 2\] is not allowed; give distinct steps"),
                         ([11, -1], r"^unlearn_step=\[11, -1\] is not allowed; give distinct"),
                         ([0, 12], r"^unlearn_step\[1\]=12 is not allowed; use an int in \[-12, 11\]$"),
                         ([0, 1.0], r"^unlearn_step\[1\]=1\.0 is not allowed"),
                         ([], r"^unlearn_step=\[\] is not allowed"), (12, r"^unlearn_step=12 is not allowed")]:
        with pytest.raises(ParameterError, match=match):
            train_lockstep(model, data, order, unlearn_step=steps, lr=0.1, progress=False)
    assert same_state(model, tiny_problem()[0])  # nothing was trained


def test_divergence_message_names_momentum_and_weight_decay():
    model, data, order = tiny_problem()
    calls = {"n": 0}

    def loss_fn(logits, targets):
        calls["n"] += 1
        return F.cross_entropy(logits, targets) * (math.inf if calls["n"] == 3 else 1.0)

    with pytest.raises(TrainingDiverged, match=r"step 2 .*\(lr=0.1, loss_fn=loss_fn, momentum=0.9, "
                                               r"weight_decay=0.0005\)"):
        train(model, data, order, lr=0.1, loss_fn=loss_fn, momentum=0.9, weight_decay=5e-4, progress=False,
              on_divergence="raise")


def test_one_step_is_plain_sgd(digits):
    model = build_model("small_cnn", 10, seed=0)
    w0 = copy.deepcopy(model)
    order = BatchOrder(len(digits), 16, steps=1, seed=2)
    train(model, digits, order, lr=0.05, gamma=10.0, scaling="equation", progress=False)
    x, y = batch_tensors(digits, order[0])
    grads = torch.autograd.grad(sd_loss(w0(x), y, 10.0, scaling="equation"), list(w0.parameters()))
    for p, p0, g in zip(model.parameters(), w0.parameters(), grads, strict=True):
        torch.testing.assert_close(p, p0 - 0.05 * g, rtol=0, atol=1e-7)


def test_deterministic_mode_same_seed_same_bits(digits):
    def run(seed: int) -> torch.nn.Module:
        model = build_model("small_cnn", 10, seed=seed, batch_norm=True)
        order = BatchOrder(len(digits), 32, steps=30, seed=seed)
        return train(model, digits, order, lr=0.1, gamma=5.0, deterministic=True, seed=seed, progress=False).model

    assert same_state(run(4), run(4))
    assert not same_state(run(4), run(5))
    assert not torch.are_deterministic_algorithms_enabled()  # restored


def test_deterministic_mode_restores_settings_and_random_state():
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark, torch.get_num_threads())
    state = torch.random.get_rng_state()
    with deterministic_mode(seed=1, threads=1):
        assert torch.are_deterministic_algorithms_enabled()
        first = torch.rand(3)
    with deterministic_mode(seed=1):
        assert torch.equal(first, torch.rand(3))
    assert torch.equal(state, torch.random.get_rng_state())
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
            torch.get_num_threads()) == before
    with pytest.raises(ParameterError, match="seed"):
        with deterministic_mode(seed=-1):
            pass


def test_noise_floor_is_zero_on_cpu(digits):
    w0 = build_model("small_cnn", 10, seed=0)
    before = copy.deepcopy(w0)
    order = BatchOrder(len(digits), 32, steps=20, seed=0)
    assert noise_floor(w0, digits, order, lr=0.1, gamma=5.0) == 0.0
    assert same_state(w0, before)  # w₀ itself is not trained


def test_noise_floor_measures_what_differs_between_two_retrainings(digits):
    """A loss with unseeded noise stands in for a non-deterministic GPU kernel: the floor must see it."""
    w0 = build_model("small_cnn", 10, seed=0)
    order = BatchOrder(len(digits), 32, steps=20, seed=0)

    def noisy_loss(logits, targets):
        return torch.nn.functional.cross_entropy(logits + 1e-3 * torch.randn_like(logits), targets)

    floor = noise_floor(w0, digits, order, lr=0.1, loss_fn=noisy_loss)
    torch.manual_seed(1)
    a = train(copy.deepcopy(w0), digits, order, lr=0.1, loss_fn=noisy_loss, progress=False).model
    b = train(copy.deepcopy(w0), digits, order, lr=0.1, loss_fn=noisy_loss, progress=False).model
    typical = torch.linalg.vector_norm(torch.cat([(p - q).detach().double().flatten()
                                                  for p, q in zip(a.parameters(), b.parameters(), strict=True)]))
    assert 0 < floor < 10 * typical.item() and typical > 0


def test_divergence_stops_with_message_and_keeps_history(digits):
    w0 = build_model("small_cnn", 10, seed=0)
    order = BatchOrder(len(digits), 32, steps=50, seed=0)
    with pytest.warns(RuntimeWarning) as caught:
        result = train(copy.deepcopy(w0), digits, order, lr=80.0, gamma=5.0, progress=False)
    assert result.diverged and 0 < result.steps < 50
    message = str(caught[0].message)
    assert result.message == message
    assert f"step {result.steps}" in message and "lr=80" in message and "gamma=5" in message
    assert len(result.losses) == result.steps and np.isfinite(result.losses).all()
    # The weights are those after the last good step: replaying that many steps gives the same bits.
    replay = train(copy.deepcopy(w0), digits, BatchOrder.from_batches(list(order)[:result.steps], len(digits)),
                   lr=80.0, gamma=5.0, progress=False)
    assert same_state(result.model, replay.model)


def test_nan_loss_stops_and_raise_mode_carries_the_partial_result(digits):
    calls = {"n": 0}

    def loss_fn(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        loss = F.cross_entropy(logits, targets)
        return loss * math.nan if calls["n"] == 6 else loss

    seen: list[int] = []
    order = BatchOrder(len(digits), 32, steps=20, seed=0)
    with pytest.raises(TrainingDiverged, match=r"step 5 \(t=6 of 20\).*nan.*lr=0.1, loss_fn=loss_fn") as info:
        train(build_model("small_cnn", 10, seed=0), digits, order, lr=0.1, loss_fn=loss_fn, progress=False,
              callbacks=[lambda s: seen.append(s.t)], on_divergence="raise")
    partial = info.value.result
    assert partial.steps == 5 and len(partial.losses) == 5 and seen == [1, 2, 3, 4, 5]
    assert all(torch.isfinite(p).all() for p in partial.model.parameters())


def test_lockstep_divergence_stops_both_models_at_the_same_step(digits):
    w0 = build_model("small_cnn", 10, seed=0)
    order = BatchOrder(len(digits), 32, steps=40, seed=0)
    with pytest.warns(RuntimeWarning, match=r"the loss of M′? is"):
        pair = train_lockstep(copy.deepcopy(w0), digits, order, unlearn_step=0, lr=80.0, progress=False)
    assert pair.diverged and 1 < pair.steps < 40
    assert len(pair.losses) == pair.steps == len(pair.retrained_losses)
    done = BatchOrder.from_batches(list(order)[:pair.steps], len(digits))
    assert same_state(pair.model, train(copy.deepcopy(w0), digits, done, lr=80.0, progress=False).model)
    assert same_state(pair.retrained,
                      train(copy.deepcopy(w0), digits, done.without(0), lr=80.0, progress=False).model)


class Recorder(Callback):
    def __init__(self, every: int) -> None:
        self.every = every
        self.ts: list[int] = []
        self.started = self.ended = None

    def on_start(self, model):
        self.started = model

    def on_step(self, state: StepState) -> None:
        assert state.t == state.step + 1 and state.total == 12 and state.lr == 0.1
        assert state.update is None and state.retrained is not None and np.isfinite(state.loss)
        self.ts.append(state.t)

    def on_end(self, state):
        self.ended = state.t


def test_callbacks_every_k_steps_with_start_and_end(digits):
    model = build_model("small_cnn", 10, seed=0)
    rec, plain = Recorder(every=5), []
    train_lockstep(model, digits, BatchOrder(len(digits), 32, steps=12, seed=0), unlearn_step=2, lr=0.1,
                   callbacks=[rec, plain.append], progress=False)
    assert rec.ts == [5, 10] and rec.started is model and rec.ended == 12
    assert [s.t for s in plain] == list(range(1, 13)) and all(isinstance(s, StepState) for s in plain)


def test_modes_restored_and_bad_arguments_refused(digits):
    model = build_model("small_cnn", 10, seed=0, batch_norm=True).eval()
    order = BatchOrder(len(digits), 32, steps=2, seed=0)
    train(model, digits, order, lr=0.1, progress=False)
    assert not any(m.training for m in model.modules())
    for kwargs, name in [({"lr": 0.0}, "lr"), ({"lr": 0.1, "on_divergence": "ignore"}, "on_divergence"),
                         ({"lr": 0.1, "gamma": -1.0}, "gamma"), ({"lr": 0.1, "scaling": "paper"}, "scaling"),
                         ({"lr": 0.1, "callbacks": [3]}, "callbacks")]:
        with pytest.raises(ParameterError, match=name):
            train(model, digits, order, progress=False, **kwargs)
    with pytest.raises(ParameterError, match=r"^order must be a BatchOrder; got list$"):
        train(model, digits, [[0, 1]], lr=0.1)
    with pytest.raises(ParameterError, match=r"^data must be a TensorData or an \(x, y\) pair of tensors; got int$"):
        train(model, 3, order, lr=0.1)
    with pytest.raises(ParameterError, match="unlearn_step"):
        train_lockstep(model, digits, order, unlearn_step=5, lr=0.1)
    with pytest.raises(ParameterError, match="order indexes"):
        train(model, digits, BatchOrder(10_000, 32, steps=1), lr=0.1)
    assert make_loss(0.0) is F.cross_entropy


@pytest.mark.parametrize(("progress", "env", "shown"), [(True, None, True), (True, "1", False), (False, None, False)])
def test_progress_bar_follows_progress_and_tqdm_disable(digits, capsys, monkeypatch, progress, env, shown):
    if env is None:
        monkeypatch.delenv("TQDM_DISABLE", raising=False)
    else:
        monkeypatch.setenv("TQDM_DISABLE", env)
    order = BatchOrder(len(digits), 32, steps=3, seed=0)
    train(build_model("small_cnn", 10, seed=0), digits, order, lr=0.1, progress=progress, desc="bar-check")
    assert ("bar-check" in capsys.readouterr().err) == shown
