"""The unlearning-error monitor: e(t) is Eq. 9 of its own σ samples and weights, in our loop or in yours."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from unrolling_lib.curvature import sigma, top_eigenvalue
from unrolling_lib.data import BatchOrder, batch_tensors, load_digits_dataset
from unrolling_lib.losses import make_loss
from unrolling_lib.models import build_model
from unrolling_lib.params import unflatten
from unrolling_lib.training import train
from unrolling_lib.unlearning_error import (
    MONITOR_COLUMNS,
    UnlearningErrorMonitor,
    eq8_bound,
    eq8_consistent_bound,
    eq8_rigorous_bound,
    sigma_avg,
    unlearning_error,
)
from unrolling_lib.validation import ParameterError

LR = 0.05


@pytest.fixture(scope="module")
def setting():
    data = load_digits_dataset(train=True, subset=600, seed=0)
    order = BatchOrder(len(data), 32, steps=60, seed=1)
    hessian_batch = (data.x[:64], data.y[:64])
    return data, order, hessian_batch


def flat(model: torch.nn.Module) -> np.ndarray:
    return np.concatenate([p.detach().double().reshape(-1).numpy() for p in model.parameters() if p.requires_grad])


class WeightLog:
    """An independent record of the weights after every step (float64 copies)."""

    every = 1

    def __init__(self) -> None:
        self.weights: dict[int, np.ndarray] = {}

    def on_start(self, model):
        self.weights[0] = flat(model)

    def on_step(self, state):
        self.weights[state.t] = flat(state.model)


def test_e_is_eq9_of_recorded_sigmas_and_weights(setting):
    data, order, hb = setting
    loss_fn = make_loss(5.0)
    monitor = UnlearningErrorMonitor(LR, *hb, loss_fn=loss_fn, every=10)
    log = WeightLog()
    train(build_model("small_cnn", 10, seed=0), data, order, lr=LR, loss_fn=loss_fn, callbacks=[monitor, log],
          progress=False)
    frame = monitor.frame()
    assert list(frame.columns) == list(MONITOR_COLUMNS)
    assert frame["t"].tolist() == [0, 10, 20, 30, 40, 50, 60]
    sigmas = frame["sigma"].to_numpy()
    for i, row in frame.iterrows():
        t = int(row["t"])
        sigma_avg = sigmas[: i + 1].mean()  # σ_avg: mean of the samples taken so far (t = 0 included)
        change = float(np.linalg.norm(log.weights[t] - log.weights[0]))
        expected = LR**2 * change / t * sigma_avg * (t * t - t) / 2 if t else 0.0
        assert row["sigma_avg"] == pytest.approx(sigma_avg, rel=1e-12)
        assert row["weight_change"] == pytest.approx(change, rel=1e-9)
        assert row["e"] == pytest.approx(expected, rel=1e-9)
        assert row["sigma"] == pytest.approx(abs(row["eigenvalue"]), rel=1e-12)
    assert frame["e"].iloc[-1] > frame["e"].iloc[1] > 0
    assert monitor.sigma_avg == pytest.approx(sigmas.mean())


def test_sigma_sample_matches_a_direct_computation(setting):
    data, order, hb = setting
    model = build_model("small_cnn", 10, seed=0)
    monitor = UnlearningErrorMonitor(LR, *hb, every=30, sigma_mode="paper")
    train(model, data, order, lr=LR, callbacks=[monitor], progress=False)
    direct = top_eigenvalue(model, torch.nn.functional.cross_entropy, *hb)
    assert monitor.latest["t"] == 60
    assert monitor.latest["sigma"] == pytest.approx(sigma(direct, "paper"), rel=2e-3)
    assert monitor.latest["sigma"] == pytest.approx(math.sqrt(monitor.latest["eigenvalue"]), rel=1e-12)


def test_own_loop_gives_the_same_records_as_the_callback(setting):
    data, order, hb = setting
    w0 = build_model("small_cnn", 10, seed=0)
    ours = UnlearningErrorMonitor(LR, *hb, every=20)
    train(copy.deepcopy(w0), data, order, lr=LR, callbacks=[ours], progress=False)

    model = copy.deepcopy(w0)
    params = list(model.parameters())
    yours = UnlearningErrorMonitor(LR, *hb, every=20).start(model)
    for t, indices in enumerate(order, start=1):
        x, y = batch_tensors(data, indices)
        grads = torch.autograd.grad(torch.nn.functional.cross_entropy(model(x), y), params)
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                p.add_(g, alpha=-LR)
        yours.step(model, t)
    a, b = ours.frame().drop(columns="seconds"), yours.frame().drop(columns="seconds")
    assert a["t"].tolist() == b["t"].tolist() == [0, 20, 40, 60]
    np.testing.assert_allclose(a[["e", "sigma", "sigma_avg", "weight_change"]].to_numpy(),
                               b[["e", "sigma", "sigma_avg", "weight_change"]].to_numpy(), rtol=1e-5)


def test_warm_start_saves_hessian_vector_products(setting):
    data, order, hb = setting
    counts = {}
    for warm in (True, False):
        monitor = UnlearningErrorMonitor(LR, *hb, every=5, warm_start=warm)
        train(build_model("small_cnn", 10, seed=0), data, order, lr=LR, callbacks=[monitor], progress=False)
        counts[warm] = monitor.frame()["hvp_count"].iloc[1:].sum()
    assert counts[True] < counts[False]


def dense_sigma(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """|λ|max of the dense Hessian of the mean cross entropy, in float64 (a separate path from the monitor's)."""
    m = copy.deepcopy(model).double().eval()
    names, like = zip(*[(n, p.detach()) for n, p in m.named_parameters()], strict=True)
    flat0 = torch.cat([p.reshape(-1) for p in like])

    def loss_of(flat: torch.Tensor) -> torch.Tensor:
        params = dict(zip(names, unflatten(flat, like), strict=True))
        return torch.nn.functional.cross_entropy(torch.func.functional_call(m, params, (x.double(),)), y)

    hessian = torch.autograd.functional.hessian(loss_of, flat0, vectorize=True)
    return float(torch.linalg.eigvalsh(hessian).abs().max())


class DenseReference:
    """The exact σ at the weights of every monitor sample."""

    def __init__(self, every: int, x: torch.Tensor, y: torch.Tensor) -> None:
        self.every, self.x, self.y, self.sigmas = every, x, y, {}

    def on_start(self, model):
        self.sigmas[0] = dense_sigma(model, self.x, self.y)

    def on_step(self, state):
        self.sigmas[state.t] = dense_sigma(state.model, self.x, self.y)


@pytest.fixture(scope="module")
def tiny():
    """A tanh MLP with 310 weights on digits: small enough for a dense Hessian at every sample."""
    data = load_digits_dataset(train=True, subset=600, seed=0)
    model = build_model("mlp", 10, seed=0, in_features=64, hidden=(4,))
    return data, model, (data.x[:64], data.y[:64])


def test_every_sample_is_within_1e_2_of_the_dense_hessian(tiny):
    data, model, hb = tiny
    order = BatchOrder(len(data), 32, steps=60, seed=2)
    reference, counts = DenseReference(5, *hb), {}
    for warm in (True, False):  # the same weights at every sample: the reference is taken once
        monitor = UnlearningErrorMonitor(0.5, *hb, every=5, warm_start=warm)
        extra = [reference] if warm else []
        train(copy.deepcopy(model), data, order, lr=0.5, callbacks=[monitor, *extra], progress=False)
        frame = monitor.frame()
        exact = np.array([reference.sigmas[t] for t in frame["t"]])
        assert len(frame) == 13 and frame["converged"].all()
        assert np.all(np.abs(frame["sigma"].to_numpy() - exact) <= 1e-2 * exact)
        counts[warm] = frame["hvp_count"].iloc[1:].sum()
    assert counts[True] < counts[False]  # warm-started samples need fewer products than cold ones


def test_a_big_weight_change_between_samples_is_not_missed(tiny):
    """The previous eigenvector is useless after the weights jump; the sample must still find σ."""
    _, model, hb = tiny
    model = copy.deepcopy(model)
    monitor = UnlearningErrorMonitor(0.5, *hb, every=10).start(model)
    with torch.no_grad():
        for p, q in zip(model.parameters(), build_model("mlp", 10, seed=7, in_features=64, hidden=(4,)).parameters(),
                        strict=True):
            p.copy_(3 * q)
    record = monitor.step(model, 1, force=True)
    exact = dense_sigma(model, *hb)
    assert record["converged"] and abs(record["sigma"] - exact) <= 1e-2 * exact


def test_step_forced_off_grid_and_errors(setting):
    data, order, hb = setting
    model = build_model("small_cnn", 10, seed=0)
    monitor = UnlearningErrorMonitor(LR, *hb, every=50, sample_at_start=False)
    with pytest.raises(RuntimeError, match="start"):
        monitor.step(model, 1)
    monitor.start(model)
    assert monitor.records == [] and math.isnan(monitor.sigma_avg)
    assert monitor.step(model, 7) is None
    record = monitor.step(model, 7, force=True)
    assert record["t"] == 7 and record["weight_change"] == 0.0 and record["e"] == 0.0
    assert monitor.step(model, 7, force=True) is record  # the same t is not sampled twice
    for kwargs, name in [({"every": 0}, "every"), ({"sigma_mode": "sqrt"}, "mode"), ({"tol": 2.0}, "tol"),
                         ({"fresh": -1.0}, "fresh")]:
        with pytest.raises(ParameterError, match=name):
            UnlearningErrorMonitor(LR, *hb, **kwargs)
    with pytest.raises(ParameterError, match="lr"):
        UnlearningErrorMonitor(0.0, *hb)
    with pytest.raises(ParameterError, match="t="):
        monitor.step(model, -1)


def test_paper_mode_leaves_negative_eigenvalues_out_of_the_mean(setting, monkeypatch):
    """sqrt(λ) has no value for λ < 0: that sample is nan, and σ_avg (hence e) averages the others."""
    from unrolling_lib import unlearning_error as monitor_module
    from unrolling_lib.curvature import EigenResult

    values = iter([4.0, -1.0, 9.0])

    def fake_top_eigenvalue(*args, **kwargs):
        return EigenResult(value=next(values), vector=torch.zeros(1), hvp_count=1, converged=True,
                           error_estimate=0.0)

    monkeypatch.setattr(monitor_module, "top_eigenvalue", fake_top_eigenvalue)
    data, _, hessian_batch = setting
    model = build_model("small_cnn", 10, seed=0)
    mon = UnlearningErrorMonitor(LR, *hessian_batch, every=1, sigma_mode="paper").start(model)
    with pytest.warns(RuntimeWarning, match="negative"):
        mon.step(model, 1)
    mon.step(model, 2)
    sigmas = [r["sigma"] for r in mon.records]
    assert sigmas[0] == 2.0 and math.isnan(sigmas[1]) and sigmas[2] == 3.0
    assert [r["sigma_avg"] for r in mon.records] == [2.0, 2.0, 2.5]
    assert mon.records[2]["e"] == pytest.approx(LR**2 * mon.records[2]["weight_change"] / 2 * 2.5 * (4 - 2) / 2)


def test_unlearning_error_by_hand() -> None:
    # e = η² · (‖w_t − w₀‖/t) · σ_avg · (t² − t)/2 = 0.01 · 0.2 · 3 · 45
    assert unlearning_error(0.1, 10, 2.0, 3.0) == pytest.approx(0.27, rel=1e-12)
    assert unlearning_error(0.5, 4, 8.0, 0.25) == pytest.approx(0.25 * 2.0 * 0.25 * 6.0, rel=1e-12)
    assert unlearning_error(0.1, 1, 5.0, 7.0) == 0.0  # one step: no second-order term
    assert unlearning_error(0.1, np.int64(10), np.float64(2.0), 3) == pytest.approx(0.27)


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"lr": -0.1}, "lr="), ({"steps": 0}, "steps="), ({"steps": 2.5}, "steps="),
    ({"weight_change": -1.0}, "weight_change="), ({"sigma_avg": float("nan")}, "sigma_avg="),
])
def test_unlearning_error_rejects(kwargs: dict, name: str) -> None:
    args = {"lr": 0.1, "steps": 10, "weight_change": 1.0, "sigma_avg": 1.0} | kwargs
    with pytest.raises(ValueError, match=name):
        unlearning_error(**args)


def test_eq8_bounds_by_hand() -> None:
    # Eq. 8 as printed is Eq. 9 with σ = max σ_i; the consistent version has η instead of η².
    assert eq8_bound(0.1, 10, 2.0, 3.0) == pytest.approx(0.27, rel=1e-12)
    assert eq8_consistent_bound(0.1, 10, 2.0, 3.0) == pytest.approx(2.7, rel=1e-12)
    # η² Σ_{i≥1} σ_i ‖Σ_{j<i} g_j‖ = 0.01 · (2·1 + 3·4) (entry 0 never counts: no gradient before step 0)
    assert eq8_rigorous_bound(0.1, [100.0, 2.0, 3.0], [0.0, 1.0, 4.0]) == pytest.approx(0.14, rel=1e-12)
    with pytest.raises(ValueError, match="^sigmas and partial_gradient_norms must be 1-D of one length"):
        eq8_rigorous_bound(0.1, [1.0, 2.0], [0.0])
    with pytest.raises(ValueError, match="^sigma_max=-1"):
        eq8_bound(0.1, 10, 2.0, -1.0)


def test_sigma_avg_leaves_undefined_samples_out() -> None:
    assert sigma_avg([1.0, float("nan"), 3.0]) == 2.0  # the paper's sqrt of a negative eigenvalue is nan
    assert math.isnan(sigma_avg([float("nan")])) and math.isnan(sigma_avg([]))
