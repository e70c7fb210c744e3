"""Expanding SGD (§5.1–5.3): Eq. 4–5 against real SGD, slopes, Eq. 6/8 bounds, term counts, σ modes."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.func import hessian

from unrolling_lib import setup
from unrolling_lib.data import BatchOrder, load_digits_dataset
from unrolling_lib.models import build_model
from unrolling_lib.params import flat_weights
from unrolling_lib.theory import expansion as ex
from unrolling_lib.training import train
from unrolling_lib.unlearning import single_gradient_unlearn
from unrolling_lib.validation import ParameterError


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
    assert torch.equal(flat_weights(model), problem.w0)
    trained = train(copy.deepcopy(model), data, order, lr=0.05, progress=False).model
    assert torch.allclose(flat_weights(trained), ex.sgd_path(problem, [0.05])[0, -1], rtol=0, atol=1e-12)
    skipped = train(copy.deepcopy(model), data, order.without(2), lr=0.05, progress=False).model
    retrained = ex.sgd_path(problem, [0.05], unlearn_step=2)[0, -1]
    assert torch.allclose(flat_weights(skipped), retrained, rtol=0, atol=1e-12)


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
    assert summary.sigma_max_spectral == pytest.approx(sig["sigma_spectral"].iloc[1:].max())
    assert summary.sigma_avg_paper == pytest.approx(sig["sigma_paper"].mean())


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
    unlearn_step, lr = 2, 1e-3
    grads = ex.gradients_at_w0(problem)
    final = problem.module_at(ex.sgd_path(problem, [lr])[0, -1])
    x, y = problem.batches[unlearn_step]
    unlearned = single_gradient_unlearn(final, problem.w0, problem.loss_fn, x, y, lr=lr)
    assert torch.allclose(flat_weights(unlearned), flat_weights(final) + lr * grads[unlearn_step], rtol=0, atol=1e-14)
    table = ex.unlearning_table(problem, [1e-4, 1e-3], unlearn_step)
    assert (table["unlearned_term_count"] == problem.steps - 1).all()
    assert table["v_over_unlearned_terms"].iloc[0] == pytest.approx(1.0, abs=0.01)
    assert (table["v"] < 0.01 * table["v_nothing"]).all()


def test_bad_parameters_are_refused() -> None:
    problem = _quadratic_problem(steps=2)
    with pytest.raises(ParameterError, match="lrs"):
        ex.sgd_path(problem, [])
    with pytest.raises(ParameterError, match="unlearn_step"):
        ex.unlearning_table(problem, [0.1], 5)
    with pytest.raises(ParameterError, match="t="):
        ex.symbolic_terms(0)
    with pytest.raises(ParameterError, match="BatchNorm"):
        ex.problem_from(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)), problem.batches, _half_mse)


def test_eq8_ratio_growth_is_the_power_of_eta_by_hand():
    from unrolling_lib.theory.expansion import eq8_ratio_growth

    lr = np.array([1e-3, 1e-2, 1e-1])
    rows = [{"model": m, "t": 5, "lr": e, "eq8": 2.0 * e ** (2 + p), "eta2_term": 3.0 * e**2}
            for m, p in (("short_by_eta", 1), ("right_order", 0)) for e in lr]
    growth = eq8_ratio_growth(pd.DataFrame(rows), 5)
    assert growth["short_by_eta"] == pytest.approx(1.0) and growth["right_order"] == pytest.approx(0.0, abs=1e-12)


# ------------------------------------------------------------------ the HVP engine against dense Hessians
def _tanh_problem(steps: int = 4, seed: int = 0) -> ex.ExpansionProblem:
    """A tiny smooth classifier (4 → 3 → 2, tanh, cross entropy): non-quadratic, 23 weights, dense-Hessian sized."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # seeded weights, the global random state left alone
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()
    batches = [(torch.randn(6, 4, generator=gen, dtype=torch.float64), torch.randint(0, 2, (6,), generator=gen))
               for _ in range(steps)]
    return ex.problem_from(model, batches, nn.functional.cross_entropy, name="tanh")


def _autograd_hessian(problem: ex.ExpansionProblem, i: int) -> torch.Tensor:
    x, y = problem.batches[i]
    return torch.autograd.functional.hessian(lambda w: problem.loss_on(w, x, y), problem.w0)


def _autograd_gradient(problem: ex.ExpansionProblem, i: int) -> torch.Tensor:
    x, y = problem.batches[i]
    return torch.autograd.functional.jacobian(lambda w: problem.loss_on(w, x, y), problem.w0)


def test_hvp_at_w0_is_the_dense_hessian_times_the_vectors_in_float64() -> None:
    problem = _tanh_problem()
    gen = torch.Generator().manual_seed(1)
    rows = torch.randn(5, problem.w0.numel(), generator=gen, dtype=torch.float64)
    for i in range(problem.steps):
        h = _autograd_hessian(problem, i)
        assert torch.allclose(ex.hvp_at_w0(problem, i, rows), rows @ h, rtol=1e-12, atol=1e-14)
        assert torch.allclose(ex.hvp_at_w0(problem, i, rows[0]), h @ rows[0], rtol=1e-12, atol=1e-14)
    op = problem.hvp_operator(2)  # one operator per batch, reused by every later product and by a head
    count = op.count
    ex.hvp_at_w0(problem.head(3), 2, rows)
    assert problem.head(3).hvp_operator(2) is op and op.count == count + len(rows)
    with pytest.raises(ParameterError, match="i=4"):
        ex.hvp_at_w0(problem, 4, rows[0])


def test_second_order_path_and_eq6_match_the_recursion_with_dense_hessians() -> None:
    problem = _tanh_problem(steps=5)
    hs = [_autograd_hessian(problem, i) for i in range(problem.steps)]
    gs = [_autograd_gradient(problem, i) for i in range(problem.steps)]
    grads = ex.gradients_at_w0(problem)
    assert torch.allclose(grads, torch.stack(gs), rtol=1e-13, atol=1e-15)
    lrs = [0.05, 0.3]
    second = ex.second_order_path(problem, lrs, grads)
    for k, lr in enumerate(lrs):  # Δ_{i+1} = Δ_i − η (g_i + H_i Δ_i): SGD on the quadratic models at w₀
        delta = torch.zeros_like(problem.w0)
        for s, (h, g) in enumerate(zip(hs, gs, strict=True), start=1):
            delta = delta - lr * (g + h @ delta)
            assert torch.allclose(second[k, s], problem.w0 + delta, rtol=0, atol=1e-13)
    c = ex.eta2_coefficients(problem, grads)
    closed = sum(hs[i] @ sum(gs[:i]) for i in range(1, problem.steps))  # Eq. 6: Σ_i H_i Σ_{j<i} g_j
    assert torch.allclose(c[-1], closed, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_operator_norm_check_against_the_dense_hessian(sign: float) -> None:
    gen = torch.Generator().manual_seed(3)
    batches = [(torch.randn(5, 3, generator=gen, dtype=torch.float64),
                torch.randn(5, 2, generator=gen, dtype=torch.float64)) for _ in range(2)]
    x1 = batches[1][0]
    batches[1] = (x1 * torch.tensor([3.0, 1.0, 0.3], dtype=torch.float64), batches[1][1])  # a clear top eigenvalue
    problem = ex.problem_from(nn.Linear(3, 2).double(), batches, lambda out, y: sign * _half_mse(out, y))
    eig = torch.linalg.eigvalsh(_autograd_hessian(problem, 1))
    top = float(eig[eig.abs().argmax()])
    assert (top > 0) == (sign > 0)  # the concave loss: the top eigenvalue is negative, sqrt(λ) undefined
    check = ex.operator_norm_check(problem, 1)
    assert isinstance(check, ex.OperatorNormCheck) and check.batch == 1
    assert check.eigenvalue == pytest.approx(top, rel=1e-6)
    assert check.sigma_spectral == pytest.approx(abs(top), rel=1e-6)
    assert check.hv_norm == pytest.approx(abs(top), rel=1e-6)  # ‖H v̂‖ = |λ| along the top eigenvector
    if sign > 0:
        assert check.sigma_paper == pytest.approx(math.sqrt(top), rel=1e-6)
    else:
        assert math.isnan(check.sigma_paper)
    with pytest.raises(ParameterError, match="batch=2"):
        ex.operator_norm_check(problem, 2)


def test_symbolic_check_against_the_closed_form_of_eq6() -> None:
    problem = _quadratic_problem(steps=18)
    hs = [_autograd_hessian(problem, i) for i in range(problem.steps)]
    gs = [_autograd_gradient(problem, i) for i in range(problem.steps)]
    for steps, expected_t in ((None, 16), (3, 3), (6, 6)):  # by default at most 16 steps
        check = ex.symbolic_check(problem, steps)
        assert isinstance(check, ex.SymbolicCheck)
        assert check.t == expected_t and check.terms == expected_t * (expected_t - 1) // 2
        closed = sum(hs[i] @ sum(gs[:i]) for i in range(1, expected_t))
        assert check.c_norm == pytest.approx(float(closed.norm()), rel=1e-12)
        assert check.relative_difference < 1e-12
    with pytest.raises(ParameterError, match="steps=1"):
        ex.symbolic_check(problem, 1)


def test_sgd_path_refuses_an_unlearn_step_outside_the_order() -> None:
    with pytest.raises(ParameterError, match="unlearn_step=6"):
        ex.sgd_path(_quadratic_problem(steps=6), [0.1], unlearn_step=6)


# ------------------------------------------------------------------------------- the study, small
STUDY = {"subset": 64, "batch_size": 8, "steps": 4, "lrs": [1e-3, 1e-2], "bound_lrs": [0.01, 0.1, 1.0],
         "unlearn_step": 1}


@pytest.fixture(scope="module")
def study() -> ex.ExpansionStudy:
    return ex.expansion_study(["mlp"], **STUDY)


def _eigsh_top(problem: ex.ExpansionProblem, i: int) -> float:
    """The eigenvalue of largest magnitude by ARPACK on the operator: another eigensolver than the library's."""
    from scipy.sparse.linalg import eigsh

    from unrolling_lib.curvature import HVPOperator

    x, y = problem.batches[i]
    vals = eigsh(HVPOperator(problem.module_at(problem.w0), problem.loss_fn, x, y).to_scipy(), k=1, which="LM",
                 tol=1e-10, return_eigenvectors=False)
    return float(vals[0])


def _trained(problem: ex.ExpansionProblem, lr: float, unlearn_step: int | None = None) -> torch.Tensor:
    """w_t by the library's training loop over the same order (independent of torch.func)."""
    data = load_digits_dataset(subset=STUDY["subset"], seed=0, dtype=torch.float64)
    order = BatchOrder(len(data), STUDY["batch_size"], steps=STUDY["steps"], seed=0)
    order = order if unlearn_step is None else order.without(unlearn_step)
    model = build_model("mlp", 10, seed=0).double()
    return flat_weights(train(model, data, order, lr=lr, progress=False).model)


def test_expansion_study_against_the_training_loop_and_single_gradient_unlearning(study) -> None:
    assert study.models == ["mlp"] and study.smooth_models == ["mlp"]
    assert (study.steps, study.unlearn_step, study.lrs, study.bound_lrs) == (4, 1, [1e-3, 1e-2], [0.01, 0.1, 1.0])
    problem = study.problems["mlp"]
    assert list(study.sigmas["batch"]) == [0, 1, 2, 3] and (study.sigmas["model"] == "mlp").all()
    for lr in study.lrs:  # the displacement at the full t is the training loop's
        row = study.table[np.isclose(study.table["lr"], lr) & (study.table["t"] == 4)].iloc[0]
        assert row["displacement"] == pytest.approx(float((_trained(problem, lr) - problem.w0).norm()), rel=1e-12)
    # the two-point slope in η, by hand: (log e₂ − log e₁) / (log η₂ − log η₁)
    for t, g in study.table[study.table["t"] >= 2].groupby("t"):
        e = g.sort_values("lr")["first_order_error"].to_numpy()
        slope = math.log(e[1] / e[0]) / math.log(1e-2 / 1e-3)
        assert study.slopes.set_index("t").loc[t, "first_order_slope"] == pytest.approx(slope, rel=1e-10)
    unl = study.unlearning
    assert list(unl["lr"]) == sorted({*STUDY["lrs"], *STUDY["bound_lrs"]})
    assert (unl["unlearned_term_count"] == 3).all() and (unl["unlearn_step"] == 1).all()
    x, y = problem.batches[1]
    for _, row in unl.iterrows():
        final, retrained = _trained(problem, row["lr"]), _trained(problem, row["lr"], unlearn_step=1)
        unlearned = single_gradient_unlearn(problem.module_at(final), problem.w0, problem.loss_fn, x, y, lr=row["lr"])
        assert row["v_nothing"] == pytest.approx(float((final - retrained).norm()), rel=1e-9)
        assert row["v"] == pytest.approx(float((flat_weights(unlearned) - retrained).norm()), rel=1e-6, abs=1e-15)


def test_sigma_table_against_another_eigensolver_and_eq8_eq9_by_hand(study) -> None:
    problem = study.problems["mlp"]
    lam = np.array([_eigsh_top(problem, i) for i in range(4)])
    assert np.allclose(study.sigmas["eigenvalue"], lam, rtol=1e-4)
    table = ex.sigma_table(study, 0.1)
    assert list(table.columns) == ["model", "negative_top_eigenvalues", "sigma_max_spectral", "sigma_max_paper",
                                   "sigma_avg_spectral", "sigma_avg_paper", "eta2_term", "eq8", "eq8_paper_sigma",
                                   "eq9", "eq9_paper_sigma"]
    row = table.iloc[0]
    spectral, paper = np.abs(lam), np.where(lam >= 0, np.sqrt(np.abs(lam)), np.nan)
    assert row["negative_top_eigenvalues"] == int((lam < 0).sum())
    assert row["sigma_max_spectral"] == pytest.approx(spectral[1:].max(), rel=1e-4)  # Eq. 8: H_1 … H_{t−1}
    assert row["sigma_max_paper"] == pytest.approx(np.nanmax(paper[1:]), rel=1e-4)
    assert row["sigma_avg_spectral"] == pytest.approx(spectral.mean(), rel=1e-4)  # Eq. 9: all t samples
    assert row["sigma_avg_paper"] == pytest.approx(np.nanmean(paper), rel=1e-4)
    lr, t = 0.1, 4
    disp = float((_trained(problem, lr) - problem.w0).norm())
    by_hand = lr**2 * disp / t * t * (t - 1) / 2  # Eq. 8–9 without σ
    assert row["eq8"] == pytest.approx(by_hand * spectral[1:].max(), rel=1e-4)
    assert row["eq8_paper_sigma"] == pytest.approx(by_hand * np.nanmax(paper[1:]), rel=1e-4)
    assert row["eq9"] == pytest.approx(by_hand * spectral.mean(), rel=1e-4)
    assert row["eq9_paper_sigma"] == pytest.approx(by_hand * np.nanmean(paper), rel=1e-4)
    hvps = [problem.hvp_operator(i) for i in range(4)]
    gs = [op.gradient for op in hvps]  # the operators' own gradients: autograd on the module, not torch.func
    c = sum(hvps[i] @ sum(gs[:i]) for i in range(1, 4))
    assert row["eta2_term"] == pytest.approx(lr**2 * float(c.norm()), rel=1e-10)
    with pytest.raises(ParameterError, match="lr=0.05"):
        ex.sigma_table(study, 0.05)


def test_sigma_comparison_picks_the_lr_and_the_batch_of_largest_eigenvalue(study) -> None:
    problem = study.problems["mlp"]
    lam = np.array([_eigsh_top(problem, i) for i in range(4)])
    comparison = ex.sigma_comparison(study)
    assert comparison.model == "mlp" and comparison.lr == 0.1 and comparison.batches == 4
    assert comparison.top_batch == int(np.abs(lam).argmax())
    assert comparison.norm_check.batch == comparison.top_batch
    assert comparison.norm_check.hv_norm == pytest.approx(np.abs(lam).max(), rel=1e-6)
    assert comparison.negative_eigenvalues == int((lam < 0).sum())
    pd.testing.assert_frame_equal(comparison.table, ex.sigma_table(study, 0.1))
    assert ex.sigma_comparison(study, lr=1.0).table.iloc[0]["eq8"] == pytest.approx(
        study.bound_table.query("lr == 1.0 and t == 4")["eq8"].iloc[0], rel=1e-15)
    with pytest.raises(ParameterError, match="model='vgg'"):
        ex.sigma_comparison(study, model="vgg")


@pytest.mark.parametrize(("bound_lrs", "expected"), [([0.01, 0.1, 1.0], 0.1), ([0.1], 0.1),
                                                      ([0.01, 0.03, 0.3, 1.0], 0.3), ([0.5, 2.0], 2.0)])
def test_sigma_lr_is_0_1_or_the_middle_learning_rate(bound_lrs, expected) -> None:
    assert ex.sigma_lr(bound_lrs) == expected


def test_expansion_study_refuses_bad_parameters_before_any_work() -> None:
    for kwargs, name in (({"steps": 1}, "steps=1"), ({"unlearn_step": 4}, "unlearn_step=4"),
                         ({"lrs": []}, "lrs="), ({"bound_lrs": [0.1, -1.0]}, "bound_lrs=")):
        with pytest.raises(ParameterError, match=name):
            ex.expansion_study(["mlp"], **{**STUDY, **kwargs})
    with pytest.raises(ParameterError, match="models='mlp'"):
        ex.expansion_study("mlp", **STUDY)
    with pytest.raises(ParameterError, match="bound_lrs"):
        ex.sigma_lr([])


@pytest.mark.parametrize(("override", "message"), [
    ({"steps": -3}, "steps=-3 is not allowed; use an int >= 2"),
    ({"lrs": [1e-3, float("nan")]}, "lrs=[0.001, nan] is not allowed; use a non-empty list of distinct finite "
                                    "numbers > 0"),
    ({"models": ["mlp", "cnn"]}, "models[1]='cnn' is not allowed; choose one of 'resnet18', 'vgg19', 'small_cnn', "
                                 "'small_vgg', 'small_resnet', 'smooth_cnn', 'mlp', 'linear_head'"),
    ({"models": []}, "models=[] is not allowed; name at least one model in a list ('mlp', 'smooth_cnn', 'small_cnn')"),
    ({"models": ["mlp", "mlp"]}, "models=['mlp', 'mlp'] is not allowed; name each model once"),
    ({"bound_lrs": [0.1, 0.1]}, "bound_lrs=[0.1, 0.1] is not allowed; use a non-empty list of distinct finite numbers "
                                "> 0"),
    ({"unlearn_step": 12}, "unlearn_step=12 is not allowed; use an int in [0, 11]"),
    ({"batch_size": 300}, "batch_size=300 is not allowed; use an int in [1, 256]"),
])
def test_setup_refuses_what_the_study_would_refuse(override, message) -> None:
    """setup(check=check_expansion_params) applies expansion_study's own rules to the chapter's values, before
    any work; the study refuses the same values with the same line."""
    with pytest.raises(ParameterError) as err:
        setup("quick", defaults=ex.EXPANSION_DEFAULTS, check=ex.check_expansion_params, verbose=False, **override)
    assert str(err.value) == message
    with pytest.raises(ParameterError) as direct:
        ex.expansion_study(**{**ex.EXPANSION_DEFAULTS["quick"], **override})
    assert str(direct.value) == message
    with pytest.raises(ParameterError, match="^seed is not a parameter of the §5 study; known: batch_size, bound_lrs"):
        ex.check_expansion_params(**ex.EXPANSION_DEFAULTS["quick"], seed=1)
    with pytest.raises(ParameterError, match="^the §5 parameters lack steps$"):
        ex.check_expansion_params(**{k: v for k, v in ex.EXPANSION_DEFAULTS["quick"].items() if k != "steps"})


@pytest.mark.parametrize("profile", list(ex.EXPANSION_DEFAULTS))
def test_every_profile_passes_the_checker_unchanged(profile: str) -> None:
    cfg = setup(profile, defaults=ex.EXPANSION_DEFAULTS, check=ex.check_expansion_params, verbose=False)
    assert cfg.params == ex.EXPANSION_DEFAULTS[profile]
    assert ex.check_expansion_params(**{**cfg.params, "models": ("mlp",)})["models"] == ["mlp"]  # a tuple: a list


# ------------------------------------------------------------------ what the chapter reads off a study
def test_slope_regime_by_hand() -> None:
    rows = [("a", 2, 1.98, 2.97, 0.05), ("a", 3, 2.01, 3.02, 0.1), ("a", 4, 1.5, 2.0, 0.3),
            ("b", 2, 1.2, 1.1, 0.5), ("c", 5, 2.2, 2.9, 0.01)]
    slopes = pd.DataFrame(rows, columns=["model", "t", "first_order_slope", "second_order_slope", "next_order_ratio"])
    regime = ex.slope_regime(slopes, ["a", "b", "c"]).set_index("model")
    a = regime.loc["a"]  # t = 2 and 3 (ratio ≤ 0.1, the bound included), not t = 4
    assert (a["rows"], a["t_min"], a["t_max"]) == (2, 2, 3)
    assert (a["first_order_slope_min"], a["first_order_slope_max"]) == (1.98, 2.01)
    assert (a["second_order_slope_min"], a["second_order_slope_max"]) == (2.97, 3.02)
    assert a["first_order_deviation"] == pytest.approx(0.02) and a["second_order_deviation"] == pytest.approx(0.03)
    assert regime.loc["b", "rows"] == 0 and pd.isna(regime.loc["b", "t_min"])
    assert math.isnan(regime.loc["b", "first_order_deviation"])
    assert regime.loc["c", "first_order_deviation"] == pytest.approx(0.2)
    assert regime.loc["c", "second_order_deviation"] == pytest.approx(0.1)
    assert list(ex.slope_regime(slopes, ["a"], ratio_max=0.07)["rows"]) == [1]


def test_bound_summary_by_hand() -> None:
    def rows(lrs, ts, rig, eq8, cons):
        return pd.DataFrame([{"model": "m", "lr": lr, "t": t, "eta2_term": 3 * lr**2 * t,
                              "eq8_rigorous": rig(lr, t), "eq8": eq8(lr, t), "eq8_consistent": cons(lr, t),
                              "eq9": lr**3 * t} for lr in lrs for t in ts])

    # slope lrs: eq8 ∝ η³ against ‖η² c_t‖ ∝ η² (growth 1); the rigorous bound equal up to rounding in one row
    table = rows([1e-3, 1e-2, 1e-1], [1, 2, 3],
                 lambda lr, t: 3 * lr**2 * t * (1 - 1e-13 if (lr, t) == (1e-3, 2) else 1.5),
                 lambda lr, t: 2 * lr**3 * t, lambda lr, t: 2 * lr**2 * t)
    # bound lrs: eq8 = 2η³t ≥ 3η²t only at η = 2; the consistent one 4η²t always; the rigorous one fails at η = 2
    bound_table = rows([0.5, 2.0], [1, 2, 3], lambda lr, t: 3 * lr**2 * t * (1.5 if lr < 1 else 1 - 1e-9),
                       lambda lr, t: 2 * lr**3 * t, lambda lr, t: 4 * lr**2 * t)
    study = ex.ExpansionStudy(problems={}, sigmas=pd.DataFrame(), table=table, bound_table=bound_table,
                              slopes=pd.DataFrame(), unlearning=pd.DataFrame(), unlearn_step=0, steps=3,
                              lrs=[1e-3, 1e-2, 1e-1], bound_lrs=[0.5, 2.0])
    summary = ex.bound_summary(study)
    assert summary.rows == 3 * 2 + 2 * 2  # t ≥ 2 in both tables
    assert summary.rigorous_holds == summary.rows - 2  # η = 2 at t = 2, 3
    assert summary.eq8_holds == 2 and summary.eq8_consistent_holds == 2 * 2
    assert summary.rigorous_over_min == pytest.approx(1 - 1e-9, rel=1e-15)
    assert summary.rigorous_over_max == pytest.approx(1.5) and summary.rigorous_over_median == pytest.approx(1.5)
    assert summary.eq8_ratio_growth["m"] == pytest.approx(1.0)
    shown = summary.table
    assert list(shown.index) == list(bound_table.index[bound_table["t"] == 3])  # rows of the bound table at t
    assert list(shown["eq8_holds"]) == [False, True] and list(shown["eq8_consistent_holds"]) == [True, True]
    assert list(shown["eq8_ratio"]) == pytest.approx([2 * 0.5 / 3, 2 * 2.0 / 3])
    assert list(shown["eq9_ratio"]) == pytest.approx([0.5 / 3, 2.0 / 3])


def test_a_problem_with_built_operators_copies_and_pickles() -> None:
    import pickle

    problem = _tanh_problem(steps=3)
    v = torch.ones(problem.w0.numel(), dtype=torch.float64)
    before = ex.hvp_at_w0(problem, 1, v)  # builds H_1 (an autograd graph, which neither copies nor pickles)
    h = _autograd_hessian(problem, 1)
    for other in (copy.deepcopy(problem), pickle.loads(pickle.dumps(problem))):
        assert torch.allclose(ex.hvp_at_w0(other, 1, v), h @ v, rtol=1e-12, atol=1e-14)
        assert torch.equal(ex.hvp_at_w0(other, 1, v), before)


def test_study_defaults_are_the_quick_profile_and_model_names_are_checked_first():
    import inspect

    sig = inspect.signature(ex.expansion_study)
    quick = ex.EXPANSION_DEFAULTS["quick"]
    for name, value in quick.items():
        default = sig.parameters[name].default
        assert (list(default) if isinstance(default, tuple) else default) == value, name
    with pytest.raises(ParameterError, match="^models\\[1\\]='cnn' is not allowed; choose one of"):
        ex.expansion_study(["mlp", "cnn"])
    with pytest.raises(ParameterError, match="^model='cnn' is not allowed; choose one of"):
        ex.build_problem("cnn")


@pytest.mark.parametrize("unlearn_step", [0, 2, 4])
def test_product_grid_against_dense_hessians(unlearn_step: int) -> None:
    """Every H_i·g_j of Eq. 6 from the dense Hessian; x̂_{i*}'s row and column are the t − 1 terms behind v."""
    from unrolling_lib.theory.expansion.terms import product_grid

    problem = _tanh_problem(steps=5)
    hs = [_autograd_hessian(problem, i) for i in range(problem.steps)]
    gs = [_autograd_gradient(problem, i) for i in range(problem.steps)]
    grid = product_grid(problem, unlearn_step, sigma_avg=2.0)
    t = problem.steps
    assert len(grid.table) == t * (t - 1) // 2 and grid.table["with_unlearned"].sum() == t - 1
    total, marked = torch.zeros_like(gs[0]), torch.zeros_like(gs[0])
    for row in grid.table.itertuples():
        assert row.i > row.j
        product = hs[row.i] @ gs[row.j]
        assert row.norm == pytest.approx(float(product.norm()), rel=1e-10)
        total += product
        if unlearn_step in (row.i, row.j):
            marked += product
    assert grid.c_norm == pytest.approx(float(total.norm()), rel=1e-10)
    assert grid.unlearned_norm == pytest.approx(float(marked.norm()), rel=1e-10)
    assert grid.eq9_norm == pytest.approx(float(sum(gs).norm()) / t * 2.0 * t * (t - 1) / 2, rel=1e-10)
