"""The binary toy classifier of §6.2 (Eq. 10–12) against ground truth: its loss ties to ``sd_loss``, its
minimum to a numeric search, the Eq. 12 update to a pseudo-inverse, and SGD on it to hand computations."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar

from unrolling_lib import losses, setup
from unrolling_lib.figures import toy as toy_figures
from unrolling_lib.losses import sd_loss
from unrolling_lib.theory import toy
from unrolling_lib.theory.toy import toy_sd_loss, toy_sd_minimum
from unrolling_lib.validation import ParameterError

GAMMAS = [0.05, 0.3, 0.7, 0.99, 1.0, 1.2, 1.5, 2.0, 5.0]
FLIP_GAMMAS = [0.05, 0.3, 0.5, 0.9, 0.99, 1.0, 1.2, 1.41, 1.5, 2.0, 3.0]


def _direct(a, b, gamma, scaling):
    """Eq. 11 written out: CE of label 0 plus γ·std of {a, b} (population: |a−b|/2; code: |a−b|/√2 / 2)."""
    factor = 0.5 if scaling == "equation" else 1 / (2 * math.sqrt(2))
    return np.logaddexp(0.0, b - a) + gamma * factor * np.abs(a - b)


def _torch_loss(a, b, gamma, scaling):
    logits = torch.tensor([[a, b]], dtype=torch.float64, requires_grad=True)
    loss = losses.sd_loss(logits, torch.zeros(1, dtype=torch.long), gamma, scaling=scaling)
    (grad,) = torch.autograd.grad(loss, logits)
    return loss.item(), grad[0].numpy()


# ------------------------------------------------------------------------------------- Eq. 11 closed form
@pytest.mark.parametrize("scaling", ["equation", "code"])
def test_toy_loss_is_sd_loss_on_two_outputs(scaling: str) -> None:
    rng = np.random.default_rng(0)
    for a, b in rng.normal(scale=3, size=(10, 2)):
        for gamma in (0.0, 0.4, 2.0):
            logits = torch.tensor([[a, b]], dtype=torch.float64)
            expected = sd_loss(logits, torch.tensor([0]), gamma, scaling=scaling).item()
            assert toy_sd_loss(a, b, gamma, scaling=scaling) == pytest.approx(expected, rel=1e-12)


def test_toy_loss_formula_and_types() -> None:
    assert toy_sd_loss(1.0, 0.0, 0.5, scaling="equation") == pytest.approx(math.log1p(math.exp(-1)) + 0.25)
    code = math.log1p(math.exp(-1)) + 0.5 / (2 * math.sqrt(2))
    assert toy_sd_loss(1.0, 0.0, 0.5, scaling="code") == pytest.approx(code)
    assert toy_sd_loss(1.0, 0.0, 0.5) == pytest.approx(code)  # the default is losses.DEFAULT_SCALING, "code"
    grid = toy_sd_loss(np.zeros((2, 3)), np.ones((2, 3)), 1.0)
    assert isinstance(grid, np.ndarray) and grid.shape == (2, 3)
    a = torch.tensor([0.5, -1.0], requires_grad=True)
    out = toy_sd_loss(a, torch.tensor([0.0, 0.0]), 1.0)
    out.sum().backward()
    assert isinstance(out, torch.Tensor) and torch.isfinite(a.grad).all()
    assert toy_sd_loss(1e4, -1e4, 0.0) == pytest.approx(0.0, abs=1e-300)  # no overflow


def test_sd_coefficient_is_the_std_of_two_outputs_per_scaling() -> None:
    assert set(toy.SD_COEFFICIENT) == set(losses.SCALINGS)
    logits = torch.tensor([[1.7, -0.3]], dtype=torch.float64)  # d = 2
    assert toy.SD_COEFFICIENT["equation"] * 2 == pytest.approx(losses.logit_std(logits).item())
    assert toy.SD_COEFFICIENT["code"] * 2 == pytest.approx(losses.logit_std(logits, unbiased=True).item() / 2)


@pytest.mark.parametrize("scaling", ["equation", "code"])
@pytest.mark.parametrize("gamma", GAMMAS)
def test_toy_minimum_matches_numeric_minimum(scaling: str, gamma: float) -> None:
    found = minimize_scalar(lambda d: toy_sd_loss(d, 0.0, gamma, scaling=scaling), bounds=(-10.0, 40.0),
                            method="bounded", options={"xatol": 1e-10})
    d_star = toy_sd_minimum(gamma, scaling=scaling)
    assert d_star == pytest.approx(found.x, abs=1e-4)
    # and the value there is no worse than anything the search saw
    assert toy_sd_loss(d_star, 0.0, gamma, scaling=scaling) <= found.fun + 1e-12


def test_toy_minimum_closed_forms() -> None:
    for gamma in (0.1, 0.5, 0.9):
        assert toy_sd_minimum(gamma, scaling="equation") == pytest.approx(math.log(2 / gamma - 1))
    for gamma in (0.1, 1.0, 1.4):
        assert toy_sd_minimum(gamma, scaling="code") == pytest.approx(math.log(2 * math.sqrt(2) / gamma - 1))
        assert toy_sd_minimum(gamma) == toy_sd_minimum(gamma, scaling="code")  # the default scaling
    assert toy_sd_minimum(1.0, scaling="equation") == 0.0 and toy_sd_minimum(3.0, scaling="equation") == 0.0
    assert toy_sd_minimum(math.sqrt(2), scaling="code") == pytest.approx(0.0, abs=1e-12)
    assert toy_sd_minimum(0.0) == math.inf
    assert np.allclose(toy_sd_minimum(np.array([0.5, 2.0]), scaling="equation"), [math.log(3), 0.0])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="gamma="):
        toy_sd_minimum(-1.0)
    with pytest.raises(ValueError, match="gamma="):
        toy_sd_minimum(np.array([0.5, -1.0]))
    with pytest.raises(ValueError, match="scaling='paper'"):
        toy_sd_minimum(1.0, scaling="paper")
    with pytest.raises(ValueError, match="gamma="):
        toy_sd_loss(0.0, 0.0, -0.5)


# ----------------------------------------------------------------------------- one scaling definition
_SCALED = [
    lambda s: toy.toy_sd_loss(0.0, 0.0, 0.5, scaling=s),
    lambda s: toy.toy_sd_minimum(0.5, scaling=s),
    lambda s: toy.landscape(0.5, s),
    lambda s: toy.loss_slope(0.0, 0.5, s),
    lambda s: toy.gradient_field(0.5, s),
    lambda s: toy.gradient_flip(0.5, s),
    lambda s: toy.numeric_minimum(0.5, s),
    lambda s: toy.train_toy([0.5], steps=1, scaling=s),
    lambda s: toy_figures.landscape_figure(0.5, s, grid=5),
    lambda s: toy_figures.field_figure(0.5, s, arrows=3),
    lambda s: toy_figures.live_sliders("field", scaling=s, arrows=3),
]


@pytest.mark.parametrize("call", _SCALED)
def test_a_bad_scaling_gets_the_losses_message(call) -> None:
    with pytest.raises(ParameterError) as expected:
        losses.check_scaling("bogus")
    with pytest.raises(ParameterError) as got:
        call("bogus")
    assert str(got.value) == str(expected.value) and str(got.value).startswith("scaling='bogus'")


def test_every_scaling_default_is_the_library_default() -> None:
    found = 0
    for module in (toy, toy_figures):
        for name in module.__all__:
            obj = getattr(module, name)
            if callable(obj) and not inspect.isclass(obj) and "scaling" in inspect.signature(obj).parameters:
                assert inspect.signature(obj).parameters["scaling"].default == losses.DEFAULT_SCALING, name
                found += 1
    assert found >= 9  # toy_sd_loss … train_toy, the single figures and the live widget
    assert not hasattr(toy, "_check_scaling") and toy.SCALINGS is losses.SCALINGS  # no copy of its own


def test_ordered_scalings_puts_the_first_first() -> None:
    assert toy.ordered_scalings() == ("code", "equation")  # losses.DEFAULT_SCALING first
    assert toy.ordered_scalings("equation") == ("equation", "code")  # the chapter's
    assert toy.ordered_scalings("code") == ("code", "equation")
    assert sorted(toy.ordered_scalings("code")) == sorted(losses.SCALINGS)
    with pytest.raises(ParameterError, match="first_scaling='std'"):
        toy.ordered_scalings("std")


# ------------------------------------------------------------------------------------- Eq. 11 landscape
@pytest.mark.parametrize("scaling", losses.SCALINGS)
@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0])
def test_landscape_matches_the_formula_and_the_library_loss(gamma, scaling):
    a, b, z = toy.landscape(gamma, scaling, grid=21, extent=3.0)
    assert z.shape == (21, 21) and a[0] == -3.0 and b[-1] == 3.0
    big_a, big_b = np.meshgrid(a, b)
    np.testing.assert_allclose(z, _direct(big_a, big_b, gamma, scaling), rtol=1e-12, atol=1e-12)
    for i, j in [(0, 0), (3, 17), (20, 5), (10, 10)]:  # (10, 10) is on a = b
        value, _ = _torch_loss(a[j], b[i], gamma, scaling)
        assert value == pytest.approx(z[i, j], rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("scaling", losses.SCALINGS)
def test_gradient_matches_autograd_and_finite_differences(scaling):
    rng = np.random.default_rng(0)
    for a, b in rng.uniform(-4, 4, size=(20, 2)):
        for gamma in (0.0, 0.7, 1.6):
            ga, gb = toy.loss_gradient(a, b, gamma, scaling)
            _, auto = _torch_loss(a, b, gamma, scaling)
            np.testing.assert_allclose([ga, gb], auto, rtol=1e-10, atol=1e-12)
            h = 1e-6
            fd_a = (toy.toy_sd_loss(a + h, b, gamma, scaling=scaling)
                    - toy.toy_sd_loss(a - h, b, gamma, scaling=scaling)) / (2 * h)
            assert float(ga) == pytest.approx(float(fd_a), abs=1e-6)


def test_slope_at_the_kink_is_the_smallest_subgradient():
    assert float(toy.loss_slope(0.0, 0.0, "equation")) == -0.5
    assert float(toy.loss_slope(0.0, 0.6, "equation")) == pytest.approx(-0.2)
    assert float(toy.loss_slope(0.0, 1.0, "equation")) == 0.0 and float(toy.loss_slope(0.0, 3.0, "equation")) == 0.0
    assert float(toy.loss_slope(0.0, 1.0, "code")) == pytest.approx(1 / (2 * math.sqrt(2)) - 0.5)
    assert float(toy.loss_slope(0.0, math.sqrt(2), "code")) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("scaling", losses.SCALINGS)
@pytest.mark.parametrize("gamma", FLIP_GAMMAS)
def test_flip_of_the_gradient_is_the_minimum(gamma, scaling):
    d_star = float(toy.toy_sd_minimum(gamma, scaling=scaling))
    assert toy.gradient_flip(gamma, scaling) == pytest.approx(d_star, abs=1e-9)
    assert toy.numeric_minimum(gamma, scaling) == pytest.approx(d_star, abs=1e-5)
    threshold = 1.0 if scaling == "equation" else math.sqrt(2)
    assert (d_star == 0) == (gamma >= threshold - 1e-12)


def test_no_flip_without_the_sd_term():
    assert toy.gradient_flip(0.0) == math.inf
    assert not math.isfinite(float(toy.toy_sd_minimum(0.0, scaling="equation")))


@pytest.mark.parametrize("gamma", [0.2, 0.8, 1.0, 1.7])
def test_field_arrows_point_towards_the_flip(gamma):
    f = toy.gradient_field(gamma, arrows=15, extent=4.0)
    assert len(f) == 225 and not np.any(f["a"] == f["b"])  # no arrow on the kink
    d = f["a"] - f["b"]
    flip = toy.gradient_flip(gamma)
    assert np.all(f.loc[d < flip, "da"] > 0) and np.all(f.loc[d > flip, "da"] < 0)
    np.testing.assert_allclose(f["da"], -f["db"])  # every arrow is parallel to (1, −1)


def test_refuses_bad_scaling_and_gamma():
    with pytest.raises(ParameterError, match="scaling='paper'"):
        toy.landscape(0.5, "paper")
    with pytest.raises(ParameterError, match="gamma=-0.1"):
        toy.loss_slope(0.0, -0.1)


def test_minimum_check_agrees_three_ways():
    table = toy.minimum_check((0.3, 1.0, 2.0))
    assert list(table.columns) == ["scaling", "gamma", "d_star", "numeric_minimiser", "slope_sign_change"]
    assert len(table) == 2 * 3
    np.testing.assert_allclose(table["d_star"], table["numeric_minimiser"], atol=1e-5)
    np.testing.assert_allclose(table["d_star"], table["slope_sign_change"], atol=1e-9)
    eq = table[table["scaling"] == "equation"].set_index("gamma")["d_star"]
    assert eq[0.3] == pytest.approx(np.log(2 / 0.3 - 1)) and eq[1.0] == 0 and eq[2.0] == 0
    code = table[table["scaling"] == "code"].set_index("gamma")["d_star"]
    assert code[1.0] == pytest.approx(np.log(2 * np.sqrt(2) - 1)) and code[2.0] == 0


def test_minimum_check_orders_rows_by_first_scaling():
    assert list(toy.minimum_check((0.5, 1.5), first_scaling="equation")["scaling"]) == ["equation", "equation",
                                                                                         "code", "code"]
    assert list(toy.minimum_check((0.5,), first_scaling="code")["scaling"]) == ["code", "equation"]
    with pytest.raises(ParameterError, match="gammas="):
        toy.minimum_check(())


# ------------------------------------------------------------------------------ Eq. 12 minimum-norm update
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
    with pytest.raises(ParameterError, match="eps=nan"):
        toy.min_norm_check([1.0, 2.0], float("nan"))


@pytest.mark.parametrize(("k", "eps"), [(8, 1.0986), (3, -0.4), (20, 2.5)])
def test_min_norm_check_against_the_pseudo_inverse(k, eps):
    x = np.random.default_rng(k).normal(size=k) * 0.8
    check = toy.min_norm_check(x, eps)
    # independent: the minimum-norm solution of the one-row system c·u = ε is pinv(c) ε
    c = np.concatenate([x, -x])[None, :]
    expected = (np.linalg.pinv(c) @ np.array([eps])).ravel()
    np.testing.assert_allclose(np.concatenate([check.u1, check.u2]), expected, rtol=1e-12, atol=1e-15)
    assert set(check.numeric) == {"kkt", "slsqp"}
    for u in check.numeric.values():
        np.testing.assert_allclose(u, expected, atol=1e-7)
    recomputed = max(np.max(np.abs(u - expected)) for u in check.numeric.values())
    assert check.max_deviation == pytest.approx(recomputed, abs=1e-12) and check.max_deviation < 1e-7
    norm2 = float(np.sum(x**2))
    assert check.x_norm_squared == pytest.approx(norm2)
    assert check.margin == pytest.approx(eps) and check.eps == eps
    assert check.size == pytest.approx(eps**2 / (2 * norm2)) == pytest.approx(float(expected @ expected))
    assert check.printed_size == pytest.approx(eps**2 / 2 * norm2)


def test_min_norm_point_is_the_chapters_numpy_draw():
    x = toy.min_norm_point(8, 0)
    np.testing.assert_array_equal(x, np.random.default_rng(0).normal(size=8))
    assert f"{x @ x:.4f}" == "3.4695"  # the ‖x‖² the chapter prints
    # a different draw from the training point (see min_norm_point's docstring)
    assert not np.allclose(x, toy.training_point(8, 0))
    with pytest.raises(ParameterError, match="features=0"):
        toy.min_norm_point(0)


# ----------------------------------------------------------------------------- training demonstration
def test_training_point_is_a_seeded_normal_scaled_by_root_k():
    gen = torch.Generator().manual_seed(3)
    expected = torch.randn(5, generator=gen, dtype=torch.float64).numpy() / math.sqrt(5)
    np.testing.assert_array_equal(toy.training_point(5, 3), expected)
    assert not np.array_equal(toy.training_point(5, 3), toy.training_point(5, 4))
    with pytest.raises(ParameterError, match="seed=-1"):
        toy.training_point(5, -1)


@pytest.fixture(scope="module")
def run():
    return toy.train_toy([0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0], steps=300, lr=0.05, features=8,
                         scaling="equation", seed=0)


def test_training_uses_the_training_point_and_machine_columns(run):
    np.testing.assert_array_equal(run.x, toy.training_point(8, 0))
    start = run.trajectories[run.trajectories["step"] == 0]
    # constant weights 0.1: both outputs are 0.1·Σx (a hand computation of w·x)
    np.testing.assert_allclose(start["a"], 0.1 * run.x.sum(), rtol=1e-12)
    assert list(run.trajectories.columns) == ["step", "gamma", "a", "b", "d", "loss", "grad_norm", "weight_change"]
    assert list(run.final.columns) == [*run.trajectories.columns, "d_star", "min_norm_to_final",
                                       "min_norm_to_minimum", "d_step_bound"]
    assert run.scaling == "equation" and run.steps == 300 and run.lr == 0.05 and run.init == 0.1


def test_first_step_moves_d_by_d_step_of_the_ce_slope(run):
    # At a = b the SD term's gradient is 0 (losses.safe_sqrt) and CE's slope in d is −1/2, so the first SGD step
    # moves d by lr · 2‖x‖² · 1/2 = lr‖x‖² for every γ.
    first = run.trajectories[run.trajectories["step"] == 1]["d"]
    np.testing.assert_allclose(first, 0.05 * float(run.x @ run.x), rtol=1e-12)
    assert toy.d_step(0.05, run.x, -0.5) == pytest.approx(0.05 * float(run.x @ run.x), rel=1e-15)
    with pytest.raises(ParameterError, match="lr=0"):
        toy.d_step(0, run.x, 1.0)


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
    with pytest.raises(ParameterError, match=r"gammas=\[-1\.0\]"):
        toy.train_toy([-1.0])
    with pytest.raises(ParameterError, match=r"gammas=\[\]"):
        toy.train_toy([])
    with pytest.raises(ParameterError, match="steps=0"):
        toy.train_toy([0.5], steps=0)
    with pytest.raises(ParameterError, match="scaling='std'"):
        toy.train_toy([0.5], scaling="std")
    with pytest.raises(ParameterError, match="init=inf"):
        toy.train_toy([0.5], init=math.inf)


@pytest.mark.parametrize("profile", ["quick", "colab", "paper"])
def test_defaults_pass_setup(profile):
    cfg = setup(profile, defaults=toy.TOY_DEFAULTS, check=toy.check_toy_params, verbose=False, gammas=None,
                steps=None, lr=None)
    assert cfg.params == toy.TOY_DEFAULTS[profile]  # the checker keeps every profile's values as they are
    assert cfg.steps > 0 and cfg.gammas[0] == 0.0 and cfg.grid >= 21
    assert cfg.scaling == "equation"  # the chapter's scaling, stated in TOY_DEFAULTS (see the module docstring)
    with pytest.raises(ParameterError, match="lr='fast'"):
        setup(profile, defaults=toy.TOY_DEFAULTS, verbose=False, lr="fast")


def _train(**values):
    return toy.train_toy(values.pop("gammas"), **values)


# where the library itself takes each §6.2 parameter (the slider γ as the sliders' ``gammas``)
_TAKES = {
    "steps": lambda v: _train(gammas=[0.5], steps=v), "lr": lambda v: _train(gammas=[0.5], lr=v),
    "scaling": lambda v: _train(gammas=[0.5], scaling=v), "gammas": lambda v: _train(gammas=v),
    "init": lambda v: _train(gammas=[0.5], init=v), "features": lambda v: _train(gammas=[0.5], features=v),
    "slider_gammas": lambda v: toy_figures.landscape_slider(v, grid=3), "grid": lambda v: toy.landscape(0.5, grid=v),
    "arrows": lambda v: toy.gradient_field(0.5, arrows=v), "extent": lambda v: toy.landscape(0.5, grid=3, extent=v),
}


@pytest.mark.parametrize(("override", "message"), [
    ({"steps": -5}, "steps=-5 is not allowed; use an int >= 1"),
    ({"lr": float("nan")}, "lr=nan is not allowed; use a finite number > 0"),
    ({"scaling": "eq"}, "scaling='eq' is not allowed; choose one of 'code', 'equation'"),
    ({"gammas": []}, "gammas=[] is not allowed; use a non-empty list of distinct finite numbers >= 0"),
    ({"gammas": [0.5, 0.5]}, "gammas=[0.5, 0.5] is not allowed; use a non-empty list of distinct finite numbers >= 0"),
    ({"slider_gammas": [0.0, -1.0]}, "slider_gammas=[0.0, -1.0] is not allowed; use a non-empty list of distinct "
                                     "finite numbers >= 0"),
    ({"grid": 1}, "grid=1 is not allowed; use an int >= 2"),
    ({"arrows": 0}, "arrows=0 is not allowed; use an int >= 2"),
    ({"extent": 0.0}, "extent=0.0 is not allowed; use a finite number > 0"),
    ({"init": math.inf}, "init=inf is not allowed; use a finite number > -inf"),
    ({"features": 0}, "features=0 is not allowed; use an int >= 1"),
])
def test_setup_refuses_what_the_toy_functions_would_refuse(override, message):
    """setup(check=check_toy_params) applies the §6.2 functions' own rules to the chapter's values, before any
    work; the function that takes the value refuses it with the same line."""
    with pytest.raises(ParameterError) as err:
        setup("quick", defaults=toy.TOY_DEFAULTS, check=toy.check_toy_params, verbose=False, **override)
    assert str(err.value) == message
    ((name, value),) = override.items()
    with pytest.raises(ParameterError) as direct:
        _TAKES[name](value)
    assert str(direct.value) == message.replace("slider_gammas=", "gammas=")
    with pytest.raises(ParameterError, match="^seed is not a parameter of the §6.2 toy classifier; known: arrows, "):
        toy.check_toy_params(**toy.TOY_DEFAULTS["quick"], seed=1)
    with pytest.raises(ParameterError, match="^the §6.2 parameters lack grid$"):
        toy.check_toy_params(**{k: v for k, v in toy.TOY_DEFAULTS["quick"].items() if k != "grid"})
