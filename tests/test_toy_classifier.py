"""The binary toy classifier of §6.2 (Eq. 10–12, Figures 5 and 6) against ground truth."""

import math

import numpy as np
import pytest
import torch

from unrolling_lib import losses, setup, theory
from unrolling_lib import toy_classifier as toy
from unrolling_lib.profiles import ParameterError

GAMMAS = [0.05, 0.3, 0.5, 0.9, 0.99, 1.0, 1.2, 1.41, 1.5, 2.0, 3.0]


def _direct(a, b, gamma, scaling):
    """Eq. 11 written out: CE of label 0 plus γ·std of {a, b} (population: |a−b|/2; code: |a−b|/√2 / 2)."""
    factor = 0.5 if scaling == "equation" else 1 / (2 * math.sqrt(2))
    return np.logaddexp(0.0, b - a) + gamma * factor * np.abs(a - b)


def _torch_loss(a, b, gamma, scaling):
    logits = torch.tensor([[a, b]], dtype=torch.float64, requires_grad=True)
    loss = losses.sd_loss(logits, torch.zeros(1, dtype=torch.long), gamma, scaling=scaling)
    (grad,) = torch.autograd.grad(loss, logits)
    return loss.item(), grad[0].numpy()


@pytest.mark.parametrize("scaling", toy.SCALINGS)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0])
def test_landscape_matches_the_formula_and_the_library_loss(gamma, scaling):
    a, b, z = toy.landscape(gamma, scaling, grid=21, extent=3.0)
    assert z.shape == (21, 21) and a[0] == -3.0 and b[-1] == 3.0
    big_a, big_b = np.meshgrid(a, b)
    np.testing.assert_allclose(z, _direct(big_a, big_b, gamma, scaling), rtol=1e-12, atol=1e-12)
    for i, j in [(0, 0), (3, 17), (20, 5), (10, 10)]:  # (10, 10) is on a = b
        value, _ = _torch_loss(a[j], b[i], gamma, scaling)
        assert value == pytest.approx(z[i, j], rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("scaling", toy.SCALINGS)
def test_gradient_matches_autograd_and_finite_differences(scaling):
    rng = np.random.default_rng(0)
    for a, b in rng.uniform(-4, 4, size=(20, 2)):
        for gamma in (0.0, 0.7, 1.6):
            ga, gb = toy.loss_gradient(a, b, gamma, scaling)
            _, auto = _torch_loss(a, b, gamma, scaling)
            np.testing.assert_allclose([ga, gb], auto, rtol=1e-10, atol=1e-12)
            h = 1e-6
            fd_a = (theory.toy_sd_loss(a + h, b, gamma, scaling=scaling)
                    - theory.toy_sd_loss(a - h, b, gamma, scaling=scaling)) / (2 * h)
            assert float(ga) == pytest.approx(float(fd_a), abs=1e-6)


def test_slope_at_the_kink_is_the_smallest_subgradient():
    assert float(toy.loss_slope(0.0, 0.0)) == -0.5
    assert float(toy.loss_slope(0.0, 0.6)) == pytest.approx(-0.2)
    assert float(toy.loss_slope(0.0, 1.0)) == 0.0 and float(toy.loss_slope(0.0, 3.0)) == 0.0


@pytest.mark.parametrize("scaling", toy.SCALINGS)
@pytest.mark.parametrize("gamma", GAMMAS)
def test_flip_of_the_gradient_is_the_minimum(gamma, scaling):
    d_star = float(theory.toy_sd_minimum(gamma, scaling=scaling))
    assert toy.gradient_flip(gamma, scaling) == pytest.approx(d_star, abs=1e-9)
    assert toy.numeric_minimum(gamma, scaling) == pytest.approx(d_star, abs=1e-5)
    threshold = 1.0 if scaling == "equation" else math.sqrt(2)
    assert (d_star == 0) == (gamma >= threshold - 1e-12)


def test_no_flip_without_the_sd_term():
    assert toy.gradient_flip(0.0) == math.inf
    assert not math.isfinite(float(theory.toy_sd_minimum(0.0, scaling="equation")))


@pytest.mark.parametrize("gamma", [0.2, 0.8, 1.0, 1.7])
def test_field_arrows_point_towards_the_flip(gamma):
    f = toy.gradient_field(gamma, arrows=15, extent=4.0)
    assert len(f) == 225 and not np.any(f["a"] == f["b"])  # no arrow on the kink
    d = f["a"] - f["b"]
    flip = toy.gradient_flip(gamma)
    assert np.all(f.loc[d < flip, "da"] > 0) and np.all(f.loc[d > flip, "da"] < 0)
    np.testing.assert_allclose(f["da"], -f["db"])  # every arrow is parallel to (1, −1)


@pytest.mark.parametrize("eps", [0.3, -1.2, 2.0])
def test_min_norm_update_solves_eq_12(eps):
    x = np.random.default_rng(1).normal(size=6) * 1.7
    u1, u2 = toy.min_norm_update(x, eps)
    assert (u1 - u2) @ x == pytest.approx(eps)  # the constraint
    size = u1 @ u1 + u2 @ u2
    assert size == pytest.approx(eps**2 / (2 * x @ x)) == pytest.approx(toy.min_norm_squared(x, eps))
    assert size != pytest.approx(eps**2 / 2 * (x @ x))  # the printed ‖x‖² factor is a typo
    for method in ("kkt", "slsqp"):
        n1, n2 = toy.min_norm_update_numeric(x, eps, method=method)
        np.testing.assert_allclose(np.concatenate([n1, n2]), np.concatenate([u1, u2]), atol=1e-7)
    # any other feasible update (add a null-space direction of the constraint) is larger
    v = np.random.default_rng(2).normal(size=12)
    c = np.concatenate([x, -x])
    v -= (v @ c) / (c @ c) * c
    assert np.sum((np.concatenate([u1, u2]) + 0.1 * v) ** 2) > size


def test_min_norm_update_refuses_bad_input():
    with pytest.raises(ParameterError, match="x has shape"):
        toy.min_norm_update(np.zeros(3), 1.0)
    with pytest.raises(ParameterError, match="method='newton'"):
        toy.min_norm_update_numeric([1.0, 2.0], 1.0, method="newton")


@pytest.fixture(scope="module")
def run():
    return toy.train_toy([0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0], steps=300, lr=0.05, features=8, seed=0)


def test_training_starts_on_the_kink_with_a_finite_loss(run):
    start = run.trajectories[run.trajectories["step"] == 0]
    assert np.all(start["a"] == start["b"])  # constant weights: a₀ = b₀ exactly
    assert np.all(np.isfinite(start[["loss", "grad_norm"]].to_numpy()))
    assert np.all(np.isfinite(run.trajectories[["a", "b", "loss", "grad_norm", "weight_change"]].to_numpy()))
    assert start["loss"].to_numpy() == pytest.approx(math.log(2))


def test_weight_change_shrinks_with_gamma(run):
    fin = run.final.sort_values("gamma")
    below = fin[fin["gamma"] < 1]
    assert np.all(np.diff(below["weight_change"]) < 0)
    above = fin[fin["gamma"] >= 1]
    assert np.all(above["weight_change"] < below["weight_change"].min())
    assert np.all(np.abs(above["d"]) <= above["d_step_bound"])  # never classified with a margin
    # SGD from a = b moves along the Eq. 12 direction, so its change is exactly the minimum-norm one
    np.testing.assert_allclose(fin["weight_change"], fin["min_norm_to_final"], rtol=1e-9)
    converging = fin[(fin["gamma"] > 0) & (fin["gamma"] < 1)]
    assert np.all(converging["d"] <= converging["d_star"] + 1e-9)
    assert np.all(converging["weight_change"] <= converging["min_norm_to_minimum"] + 1e-9)


def test_without_sd_the_weights_keep_moving(run):
    t = run.trajectories[run.trajectories["gamma"] == 0.0]
    assert np.all(np.diff(t["weight_change"]) > 0)


def test_training_refuses_bad_parameters():
    with pytest.raises(ParameterError, match="gammas=-1"):
        toy.train_toy([-1.0])
    with pytest.raises(ParameterError, match="steps=0"):
        toy.train_toy([0.5], steps=0)
    with pytest.raises(ParameterError, match="scaling='std'"):
        toy.train_toy([0.5], scaling="std")


def test_landscape_slider_has_a_frame_per_gamma_and_both_scalings():
    gammas = toy.SLIDER_GAMMAS
    fig = toy.landscape_slider(gammas, grid=11)
    assert len(fig.frames) == len(gammas)
    (slider,) = fig.layout.sliders
    assert [s.label for s in slider.steps] == [f"{g:g}" for g in gammas]
    assert {s.args[0][0] for s in slider.steps} == {f.name for f in fig.frames}
    assert gammas[0] == 0 and gammas[-1] >= 2 and np.min(np.diff([g for g in gammas if 0.8 <= g <= 1.2])) <= 0.05
    assert len(fig.data) == 1 + 2 * 3 and all(len(f.data) == 6 for f in fig.frames)
    (menu,) = fig.layout.updatemenus
    labels = [b.label for b in menu.buttons]
    assert labels == [toy.SCALING_LABELS[s] for s in toy.SCALINGS]
    eq_visible, code_visible = (b.args[0]["visible"] for b in menu.buttons)
    assert eq_visible == [True, True, True, True, False, False, False]
    assert code_visible == [True, False, False, False, True, True, True]
    frame = {f.name: f for f in fig.frames}["γ=0.5"]
    np.testing.assert_allclose(frame.data[0].z, toy.landscape(0.5, "equation", grid=11)[2], rtol=1e-6)
    np.testing.assert_allclose(frame.data[3].z, toy.landscape(0.5, "code", grid=11)[2], rtol=1e-6)
    assert frame.data[2].x[0] == pytest.approx(math.log(3) / 2, abs=1e-4)  # the marked minimiser, d*/2
    assert fig.frames[-1].name == f"γ={gammas[slider.active]:g}"  # plotly's auto-play ends on the active frame


def test_field_slider_frames_and_flip_lines():
    fig = toy.field_slider([0.0, 0.5, 1.0, 1.5], arrows=9)
    assert len(fig.frames) == 4 and len(fig.layout.sliders[0].steps) == 4
    frame = {f.name: f for f in fig.frames}["γ=0.5"]
    flip_eq = frame.data[2]
    assert flip_eq.x[0] - flip_eq.y[0] == pytest.approx(math.log(3), abs=1e-3)
    assert "flip" in flip_eq.name and "equation" in fig.layout.title.text


def test_single_figures_and_trajectory_figures(run):
    fig = toy.landscape_figure(0.3, "code", grid=11)
    assert "γ = 0.3" in fig.layout.title.text and "code" in fig.layout.title.text
    assert len(toy.field_figure(1.2, arrows=5).data) == 4
    traj = toy.trajectory_figure(run, grid=11)
    assert len(traj.frames) == len(run.final) == len(traj.layout.sliders[0].steps)
    assert len(toy.weight_change_figure(run).data) == 2 + len(run.final)


def test_live_sliders_redraw_on_change():
    box = toy.live_sliders("field", gamma=0.3, arrows=5)
    slider, toggle = box.children[0].children
    assert "γ = 0.3" in box.figure.layout.title.text
    slider.value = 0.7
    assert "γ = 0.7" in box.figure.layout.title.text
    toggle.value = "code"
    assert "code" in box.figure.layout.title.text
    with pytest.raises(ParameterError, match="kind='surface'"):
        toy.live_sliders("surface")


@pytest.mark.parametrize("profile", ["quick", "colab", "paper"])
def test_defaults_pass_setup(profile):
    cfg = setup(profile, defaults=toy.DEFAULTS, verbose=False, gammas=None, steps=None, lr=None)
    assert cfg.steps > 0 and cfg.gammas[0] == 0.0 and cfg.grid >= 21
    with pytest.raises(ParameterError, match="lr='fast'"):
        setup(profile, defaults=toy.DEFAULTS, verbose=False, lr="fast")


def test_refuses_bad_scaling_and_gamma():
    with pytest.raises(ParameterError, match="scaling='paper'"):
        toy.landscape(0.5, "paper")
    with pytest.raises(ParameterError, match="gamma=-0.1"):
        toy.loss_slope(0.0, -0.1)


def test_minimum_check_agrees_three_ways():
    table = toy.minimum_check((0.3, 1.0, 2.0))
    assert len(table) == 2 * 3
    np.testing.assert_allclose(table["closed form d*"], table["numeric minimiser"], atol=1e-5)
    np.testing.assert_allclose(table["closed form d*"], table["slope changes sign at"], atol=1e-9)
    eq = table[table["scaling"] == "equation"].set_index("γ")["closed form d*"]
    assert eq[0.3] == pytest.approx(np.log(2 / 0.3 - 1)) and eq[1.0] == 0 and eq[2.0] == 0
