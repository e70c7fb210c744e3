"""Expanding SGD (§5.1–5.3): Eq. 4–5 against real SGD, slopes, Eq. 6/8 bounds, term counts, σ modes."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import hessian

from unrolling_lib.data import BatchOrder, load_digits_dataset
from unrolling_lib.metrics import flat_params
from unrolling_lib.models import build_model
from unrolling_lib.profiles import ParameterError
from unrolling_lib.theory import expansion as ex
from unrolling_lib.training import train
from unrolling_lib.unlearning import single_gradient_unlearn


def _half_mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((out - y) ** 2).sum(dim=1).mean()


def _quadratic_problem(steps: int = 6, seed: int = 0) -> ex.ExpansionProblem:
    """Linear regression (a linear model and ½‖·‖² loss): the loss is quadratic in w, H_i is constant."""
    gen = torch.Generator().manual_seed(seed)
    model = nn.Linear(5, 2).double()
    batches = [(torch.randn(4, 5, generator=gen, dtype=torch.float64),
                torch.randn(4, 2, generator=gen, dtype=torch.float64)) for _ in range(steps)]
    return ex.problem_from(model, batches, _half_mse, name="linear")


def _dense_hessians(problem: ex.ExpansionProblem) -> list[torch.Tensor]:
    return [hessian(problem.loss_on)(problem.w0, x, y) for x, y in problem.batches]


def test_quadratic_loss_recursion_is_exact_and_matches_the_closed_form() -> None:
    problem = _quadratic_problem()
    lrs = [0.05, 0.2]
    grads = ex.gradients_at_w0(problem)
    real = ex.sgd_path(problem, lrs)
    second = ex.second_order_path(problem, lrs, grads)
    assert torch.allclose(real, second, rtol=0, atol=1e-10)  # Eq. 4–5 is exact for a quadratic loss
    hs = _dense_hessians(problem)
    for k, lr in enumerate(lrs):  # w_{i+1} − w₀ = (I − ηH_i)(w_i − w₀) − η g_i
        delta = torch.zeros_like(problem.w0)
        for h, g in zip(hs, grads, strict=True):
            delta = (torch.eye(len(delta), dtype=torch.float64) - lr * h) @ delta - lr * g
        assert torch.allclose(real[k, -1], problem.w0 + delta, rtol=0, atol=1e-10)


def test_quadratic_first_order_error_is_exactly_the_higher_order_terms() -> None:
    problem = _quadratic_problem(steps=6)
    lr = 0.1
    grads = ex.gradients_at_w0(problem)
    real = ex.sgd_path(problem, [lr])[0, -1]
    first = ex.first_order_path(problem, [lr], grads)[0, -1]
    terms = ex.symbolic_terms(problem.steps, max_order=problem.steps)
    higher = ex.evaluate_terms(problem, lr, [t for k in range(2, problem.steps + 1) for t in terms[k]], grads)
    assert torch.allclose(real - first, higher, rtol=0, atol=1e-12)
    eta2 = lr**2 * ex.eta2_coefficients(problem, grads)[-1]
    third_up = ex.evaluate_terms(problem, lr, [t for k in range(3, problem.steps + 1) for t in terms[k]], grads)
    assert torch.allclose(real - first - eta2, third_up, rtol=0, atol=1e-12)


def test_symbolic_order_two_terms_evaluate_to_eq6_on_a_nonquadratic_model() -> None:
    problem = ex.build_problem("mlp", subset=64, batch_size=8, steps=5)
    grads = ex.gradients_at_w0(problem)
    c = ex.eta2_coefficients(problem, grads)
    order2 = ex.evaluate_terms(problem, 1.0, ex.symbolic_terms(5, 2)[2], grads)
    assert torch.allclose(order2, c[-1], rtol=1e-10, atol=1e-14)
    _, f = ex.second_order_path(problem, [0.01], grads, return_f=True)
    all_orders = ex.evaluate_terms(problem, 0.01, [t for k in range(2, 6) for t in ex.symbolic_terms(5, 5)[k]], grads)
    assert torch.allclose(f[0].sum(0), all_orders, rtol=1e-9, atol=1e-16)


@pytest.mark.parametrize("model", ["mlp", "smooth_cnn"])
def test_slopes_are_two_and_three_on_smooth_models(model: str) -> None:
    problem = ex.build_problem(model, subset=64, batch_size=8, steps=5)
    table = ex.expansion_table(problem, [1e-4, 3e-4, 1e-3, 3e-3])
    slopes = ex.fit_slopes(table)
    assert np.allclose(slopes["first_order_slope"], 2.0, atol=0.03)
    assert np.allclose(slopes["second_order_slope"], 3.0, atol=0.05)


@pytest.mark.parametrize(("t", "max_order"), [(2, 2), (5, 3), (8, 4)])
def test_term_counts(t: int, max_order: int) -> None:
    terms = ex.symbolic_terms(t, max_order)
    for k in range(1, max_order + 1):
        assert len(terms[k]) == math.comb(t, k)
        assert all(list(term) == sorted(term, reverse=True) and len(set(term)) == k for term in terms[k])
    table = ex.term_count_table([t], max_order)
    assert (table["order_2"] == t - 1).all() and (table["paper_count"] == t - 1).all()
    for k in range(1, max_order + 1):
        assert (table[f"order_{k}"] == math.comb(t - 1, k - 1)).all()
    assert (table["total_order_2"] == t * (t - 1) // 2).all()
    if t >= 3:  # x* in two batches: every term with either index
        assert ex.count_terms_with(terms[2], [0, 1]) == math.comb(t, 2) - math.comb(t - 2, 2)


def test_sgd_path_is_the_library_training_loop() -> None:
    data = load_digits_dataset(subset=64, seed=0, dtype=torch.float64)
    order = BatchOrder(len(data), 8, steps=4, seed=0)
    problem = ex.build_problem("mlp", subset=64, batch_size=8, steps=4, seed=0)
    model = build_model("mlp", 10, seed=0).double()
    assert torch.equal(flat_params(model), problem.w0)
    trained = train(copy.deepcopy(model), data, order, lr=0.05, progress=False).model
    assert torch.allclose(flat_params(trained), ex.sgd_path(problem, [0.05])[0, -1], rtol=0, atol=1e-12)
    skipped = train(copy.deepcopy(model), data, order.without(2), lr=0.05, progress=False).model
    assert torch.allclose(flat_params(skipped), ex.sgd_path(problem, [0.05], skip=2)[0, -1], rtol=0, atol=1e-12)


def test_sigmas_in_both_modes_match_the_dense_hessian() -> None:
    problem = _quadratic_problem(steps=3)
    sig = ex.batch_sigmas(problem, tol=1e-6)
    for i, h in enumerate(_dense_hessians(problem)):
        eig = torch.linalg.eigvalsh(h)
        top = float(eig[eig.abs().argmax()])
        assert sig.loc[i, "eigenvalue"] == pytest.approx(top, rel=1e-5)
        assert sig.loc[i, "sigma_spectral"] == pytest.approx(abs(top), rel=1e-5)
        assert sig.loc[i, "sigma_paper"] == pytest.approx(math.sqrt(top), rel=1e-5)
    summary = ex.sigma_summary(sig)
    assert summary["sigma_max_spectral"] == pytest.approx(sig["sigma_spectral"].iloc[1:].max())
    assert summary["sigma_avg_paper"] == pytest.approx(sig["sigma_paper"].mean())


def test_rigorous_bound_holds_and_the_printed_eq8_misses_a_factor_of_eta() -> None:
    problem = ex.build_problem("mlp", subset=64, batch_size=8, steps=6)
    sig = ex.batch_sigmas(problem)
    table = ex.expansion_table(problem, [1e-4, 1e-3, 1e-2, 1e-1], sig)
    rows = table[table["t"] >= 2]
    assert (rows["eta2_term"] <= rows["eq8_rigorous"] * (1 + 1e-12)).all()
    last = rows[rows["t"] == 6].set_index("lr")
    ratio = last["eq8"] / last["eta2_term"]
    assert ratio[1e-3] / ratio[1e-4] == pytest.approx(10, rel=0.05)  # RHS ∝ η³, LHS ∝ η²
    assert np.allclose(last["eq8_consistent"], last["eq8"] / last.index, rtol=1e-12)


def test_single_gradient_unlearning_removes_the_first_sum_term() -> None:
    problem = ex.build_problem("mlp", subset=64, batch_size=8, steps=6)
    i_star, lr = 2, 1e-3
    grads = ex.gradients_at_w0(problem)
    final = problem.module_at(ex.sgd_path(problem, [lr])[0, -1])
    x, y = problem.batches[i_star]
    unlearned = single_gradient_unlearn(final, problem.w0, problem.loss_fn, x, y, lr=lr)
    assert torch.allclose(flat_params(unlearned), flat_params(final) + lr * grads[i_star], rtol=0, atol=1e-14)
    table = ex.unlearning_table(problem, [1e-4, 1e-3], i_star)
    assert (table["x_star_term_count"] == problem.steps - 1).all()
    assert table["v / x_star_terms"].iloc[0] == pytest.approx(1.0, abs=0.01)
    assert (table["v"] < 0.01 * table["v_nothing"]).all()


def test_bad_parameters_are_refused() -> None:
    problem = _quadratic_problem(steps=2)
    with pytest.raises(ParameterError, match="lrs"):
        ex.sgd_path(problem, [])
    with pytest.raises(ParameterError, match="i_star"):
        ex.unlearning_table(problem, [0.1], 5)
    with pytest.raises(ParameterError, match="t="):
        ex.symbolic_terms(0)
    with pytest.raises(ParameterError, match="BatchNorm"):
        ex.problem_from(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)), problem.batches, _half_mse)


def test_figures_carry_their_frames_and_ranges() -> None:
    problem = ex.build_problem("mlp", subset=64, batch_size=8, steps=4)
    sig = ex.batch_sigmas(problem)
    table = ex.expansion_table(problem, [1e-3, 1e-2, 1e-1], sig)
    fig = ex.slope_figure(table, ex.fit_slopes(table))
    assert len(fig.frames) == 3 and len(fig.layout.sliders[0].steps) == 3
    assert all(f.layout.yaxis.range is not None for f in fig.frames)  # plotly does not rescale while animating
    bounds = ex.bound_figure(table)
    assert len(bounds.frames) == 3 and bounds.layout.yaxis.range is not None
    unl = ex.unlearning_figure(ex.unlearning_table(problem, [1e-3, 1e-2], 1, sig))
    assert len(unl.data) == 4
    box = ex.live_explorer(problem, sig, lr=0.01)  # no kernel here: the figure is still built
    assert len(box.figure.data[0].x) == 8


def test_eq8_ratio_growth_is_the_power_of_eta_by_hand():
    import pandas as pd

    from unrolling_lib.theory.expansion import eq8_ratio_growth

    lr = np.array([1e-3, 1e-2, 1e-1])
    rows = [{"model": m, "t": 5, "lr": e, "eq8": 2.0 * e ** (2 + p), "eta2_term": 3.0 * e**2}
            for m, p in (("short_by_eta", 1), ("right_order", 0)) for e in lr]
    growth = eq8_ratio_growth(pd.DataFrame(rows), 5)
    assert growth["short_by_eta"] == pytest.approx(1.0) and growth["right_order"] == pytest.approx(0.0, abs=1e-12)
