"""Lemma 1, Corollary 1 and Eq. 16 (§4.1, Appendix A): enumeration counts, SGD steps, L, and the bounds."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch

from unrolling_lib import setup
from unrolling_lib.theory import lemma1 as lm
from unrolling_lib.theory import weight_densities as wd
from unrolling_lib.validation import ParameterError


@pytest.mark.parametrize(("n", "m"), [(2, 1), (3, 1), (3, 2), (4, 2), (2, 3)])
def test_orderings_are_all_m_tuples_of_permutations(n: int, m: int) -> None:
    orders = lm.orderings(n, m)
    assert orders.shape == (math.factorial(n) ** m, m * n)
    assert len(np.unique(orders, axis=0)) == len(orders)
    for e in range(m):  # every epoch is a permutation of the n points
        assert np.all(np.sort(orders[:, e * n:(e + 1) * n], axis=1) == np.arange(n))


@pytest.mark.parametrize(("n", "m", "x_star"), [(3, 1, 0), (3, 2, 1), (4, 2, 3), (2, 3, 0)])
def test_each_retrained_ordering_has_n_to_the_m_preimages(n: int, m: int, x_star: int) -> None:
    orders = lm.orderings(n, m)
    unique, inverse, counts = lm.unique_retrained_orderings(orders, x_star)
    assert len(unique) == math.factorial(n - 1) ** m
    assert np.all(counts == n**m)
    assert np.array_equal(unique[inverse], lm.remove_point(orders, x_star))
    # the distinct I′ are exactly the orderings of D′ (relabelled remaining points)
    rest = np.array([i for i in range(n) if i != x_star])
    direct = rest[lm.orderings(n - 1, m)]
    assert {tuple(r) for r in direct} == {tuple(r) for r in unique}


def test_sgd_steps_match_the_least_squares_update_and_autograd() -> None:
    x, y = lm.regression_data(3, dim=2, seed=1)
    order = np.array([[2, 0, 1, 1, 2, 0]])
    lr = 0.15
    w = np.zeros(2)
    for i in order[0]:  # w ← w − η (wᵀx − y) x, the gradient of ½(wᵀx − y)²
        w = w - lr * (w @ x[i] - y[i]) * x[i]
    assert np.allclose(lm.sgd_final_weights(x, y, order, lr)[0], w, atol=1e-14)
    wt = torch.zeros(2, dtype=torch.float64)
    for i in order[0]:
        wt.requires_grad_(True)
        loss = 0.5 * (wt @ torch.tensor(x[i]) - float(y[i])) ** 2
        (g,) = torch.autograd.grad(loss, wt)
        wt = (wt - lr * g).detach()
    assert np.allclose(wt.numpy(), w, atol=1e-14)
    # closed form of the affine recursion: w_T = Π (I − η x xᵀ) w₀ + Σ_s Π_{r>s} (I − η x_r x_rᵀ) η y_s x_s
    w_closed = np.zeros(2)
    for i in order[0]:
        w_closed = (np.eye(2) - lr * np.outer(x[i], x[i])) @ w_closed + lr * y[i] * x[i]
    assert np.allclose(w_closed, w, atol=1e-14)


def test_unlearning_update_is_eta_m_gradient_at_w0() -> None:
    x, y = lm.regression_data(4, dim=2, seed=2)
    w0 = np.array([0.3, -0.2])
    u = lm.unlearning_update(x, y, 1, 0.1, 3, w0)
    assert np.allclose(u, 0.1 * 3 * (w0 @ x[1] - y[1]) * x[1])


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("scale", [0.05, 0.7])
def test_lipschitz_constant_is_the_max_gradient_norm(dim: int, scale: float) -> None:
    axis = np.linspace(-4 * scale, 4 * scale, 4001 if dim == 1 else 801)
    pts = np.stack(np.meshgrid(*[axis] * dim, indexing="ij"), axis=-1).reshape(-1, dim)
    phi = wd.mixture_density(pts, np.zeros((1, dim)), scale)
    grad_norm = np.linalg.norm(pts, axis=1) / scale**2 * phi  # ‖∇φ(w)‖ = ‖w‖/s² · φ(w)
    assert grad_norm.max() == pytest.approx(wd.gaussian_lipschitz(scale, dim), rel=1e-4)
    # and by finite differences in 1-D
    if dim == 1:
        assert np.abs(np.diff(phi) / np.diff(axis)).max() == pytest.approx(wd.gaussian_lipschitz(scale, 1), rel=1e-3)


def test_shift_sup_matches_a_brute_force_search() -> None:
    for dim, scale, delta in [(1, 0.1, 0.03), (1, 0.1, 0.5), (2, 0.2, 0.1)]:
        axis = np.linspace(-1.5, 1.5, 1201)
        pts = np.stack(np.meshgrid(*[axis] * dim, indexing="ij"), axis=-1).reshape(-1, dim)
        shift = np.zeros((1, dim))
        shift[0, 0] = delta
        brute = np.abs(wd.mixture_density(pts, np.zeros((1, dim)), scale)
                       - wd.mixture_density(pts, shift, scale)).max()
        assert wd.shift_sup(np.array([delta]), scale, dim)[0] == pytest.approx(brute, rel=2e-3)


def test_both_weighings_of_p_prime_agree() -> None:
    case = lm.lemma1_case(3, 2, dim=1, lr=0.1)
    grid = np.linspace(-1, 1, 301)
    by_i_prime = wd.mixture_density(grid, case.unique_retrained, 0.05)  # (1/(n−1)!^m) Σ_{I′}
    by_i = wd.mixture_density(grid, case.w_retrained, 0.05)  # (1/n!^m) Σ_I P′_{I′(I)}
    assert np.allclose(by_i_prime, by_i, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dim", [1, 2])
def test_the_bounds_hold_in_every_row(dim: int) -> None:
    table = lm.lemma1_table([2, 3], [1, 2], [0.01, 0.05, 0.3], dim=dim, lr=0.1)
    assert (table["orderings"] == [math.factorial(n) ** m for n, m in zip(table["n"], table["m"], strict=True)]).all()
    assert (table["preimages_per_retrained"] == table["n"] ** table["m"]).all()
    assert (table["retrained_orderings"] == [math.factorial(n - 1) ** m for n, m in
                                             zip(table["n"], table["m"], strict=True)]).all()
    assert (table["sup_norm"] <= table["triangle_bound"] * (1 + 1e-6)).all()
    assert (table["triangle_bound"] <= table["bound"] * (1 + 1e-9)).all()
    assert (table["sup_norm_unlearned"] <= table["bound_unlearned"] * (1 + 1e-9)).all()
    assert (table["psi"] <= table["v"] + 1e-15).all()  # ‖mean v_I‖ ≤ mean ‖v_I‖
    assert (table["psi"] <= table["reverse_bound"]).all()
    assert np.allclose(table["psi_on_box"], table["psi"], rtol=1e-6, atol=1e-9)
    # the bound tightens as the noise widens, and is nearly tight once s is several times d
    for _, g in table.groupby(["n", "m"]):
        assert np.all(np.diff(g.sort_values("noise_scale")["ratio"].to_numpy()) > 0)
    assert (table.loc[table["noise_scale"] >= 5 * table["d"], "ratio"] > 0.9).all()


def test_sup_norm_of_a_single_shift_is_found() -> None:
    value, where = wd.sup_abs_difference(np.zeros((1, 1)), np.full((1, 1), 0.02), 0.1)
    assert value == pytest.approx(wd.shift_sup(np.array([0.02]), 0.1, 1)[0], rel=1e-6)
    assert value <= wd.gaussian_lipschitz(0.1, 1) * 0.02


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ParameterError, match="dim"):
        lm.lemma1_case(3, 1, dim=3)
    with pytest.raises(ParameterError, match="dim"):
        lm.lemma1_case(3, 1, dim=True)  # a bool is not a dimension
    with pytest.raises(ParameterError, match="orderings"):
        lm.orderings(7, 2)
    with pytest.raises(ParameterError, match="x_star"):
        lm.lemma1_case(3, 1, x_star=5)
    with pytest.raises(ParameterError, match="x_star"):
        lm.lemma1_case(3, 1, x_star=1.0)
    with pytest.raises(ParameterError, match="noise_scales"):
        lm.lemma1_table([2], [1], [0.0])
    with pytest.raises(ParameterError, match="scale"):
        wd.gaussian_lipschitz(-1.0, 1)
    with pytest.raises(ParameterError, match="lr"):
        lm.lemma1_case(3, 1, lr=0.0)


def test_the_table_checks_every_argument_before_any_work() -> None:
    # the messages name the parameter as the table's caller spelled it, not the per-case n and m
    with pytest.raises(ParameterError, match=r"ns\[1\]=1"):
        lm.lemma1_table([2, 1], [1], [0.1])
    with pytest.raises(ParameterError, match=r"^epochs=\[\] is not allowed; use a non-empty list of distinct ints$"):
        lm.lemma1_table([2], [], [0.1])
    with pytest.raises(ParameterError, match=r"^ns=3 is not allowed; use a non-empty list of distinct ints$"):
        lm.lemma1_table(3, [1], [0.1])
    with pytest.raises(ParameterError, match=r"^epochs\[0\]=0 is not allowed; use an int >= 1$"):
        lm.lemma1_table([2], np.array([0]), [0.1])
    with pytest.raises(ParameterError, match="ns=7, epochs=2 give 25401600 orderings"):
        lm.lemma1_table([2, 7], [1, 2], [0.1])
    with pytest.raises(ParameterError, match="x_star"):
        lm.lemma1_table([2, 3], [1], [0.1], x_star=2)  # no point 2 when n = 2


@pytest.mark.parametrize(("override", "message"), [
    ({"epochs": [-1]}, "epochs[0]=-1 is not allowed; use an int >= 1"),
    ({"lr": float("nan")}, "lr=nan is not allowed; use a finite number > 0"),
    ({"dim": 3}, "dim=3 is not allowed; use an int in [1, 2]"),
    ({"noise_scales": []}, "noise_scales=[] is not allowed; use a non-empty list of distinct finite numbers > 0"),
    ({"ns": [2, 3, 2]}, "ns=[2, 3, 2] is not allowed; use a non-empty list of distinct ints"),
    ({"noise_scales": [0.1, 0.1]}, "noise_scales=[0.1, 0.1] is not allowed; use a non-empty list of distinct finite "
                                   "numbers > 0"),
    ({"x_star": 2}, "x_star=2 is not allowed; use an int in [0, 1]"),
    ({"ns": [2, 7], "epochs": [2]}, "ns=7, epochs=2 give 25401600 orderings; keep (n!)^m <= 200000"),
])
def test_setup_refuses_what_the_table_would_refuse(override, message) -> None:
    """setup(check=check_lemma1_params) applies lemma1_table's own rules to the chapter's values, before any work."""
    with pytest.raises(ParameterError) as err:
        setup("quick", defaults=lm.LEMMA1_DEFAULTS, check=lm.check_lemma1_params, verbose=False, **override)
    assert str(err.value) == message
    values = {**lm.LEMMA1_DEFAULTS["quick"], **override}
    with pytest.raises(ParameterError) as direct:  # the table itself refuses the same values
        lm.lemma1_table(values.pop("ns"), values.pop("epochs"), values.pop("noise_scales"), **values)
    assert str(direct.value) == message
    with pytest.raises(ParameterError, match=r"^noise_scales=\[\] is not allowed; use a non-empty list of distinct "
                                             r"finite numbers > 0$"):
        lm.check_lemma1_params(**{**lm.LEMMA1_DEFAULTS["quick"], "noise_scales": []})
    with pytest.raises(ParameterError, match="^seed is not a parameter of the §4.1 table; known: dim, epochs, lr, "):
        lm.check_lemma1_params(**lm.LEMMA1_DEFAULTS["quick"], seed=1)
    with pytest.raises(ParameterError, match="^the §4.1 parameters lack x_star$"):
        lm.check_lemma1_params(**{k: v for k, v in lm.LEMMA1_DEFAULTS["quick"].items() if k != "x_star"})


@pytest.mark.parametrize("profile", list(lm.LEMMA1_DEFAULTS))
def test_every_profile_passes_the_checker_unchanged(profile: str) -> None:
    cfg = setup(profile, defaults=lm.LEMMA1_DEFAULTS, check=lm.check_lemma1_params, verbose=False)
    assert cfg.params == lm.LEMMA1_DEFAULTS[profile]


def test_defaults_are_the_quick_profile() -> None:
    quick = lm.LEMMA1_DEFAULTS["quick"]
    case = lm.lemma1_case(3, 1)
    assert (case.lr, case.dim, case.x_star) == (quick["lr"], quick["dim"], quick["x_star"]) == (0.1, 1, 0)
    explicit = lm.lemma1_case(3, 1, lr=0.1, dim=1, x_star=0)
    assert np.array_equal(case.w_full, explicit.w_full)
    table = lm.lemma1_table(noise_scales=[0.1])
    assert sorted(set(table["n"])) == quick["ns"] and sorted(set(table["m"])) == quick["epochs"]
    # the densities module keeps its own copy of the quick noise scales: it cannot import this table
    assert list(inspect.signature(wd.density_curves).parameters["noise_scales"].default) == quick["noise_scales"]


def test_case_keeps_the_distinct_retrained_orderings_and_their_weights() -> None:
    case = lm.lemma1_case(3, 2, x_star=1)
    # the distinct I′ are the orderings of D′ = {x₀, x₂}, each trained on directly
    direct = np.array([0, 2])[lm.orderings(2, 2)]
    assert {tuple(r) for r in case.retrained_orders} == {tuple(r) for r in direct}
    assert np.allclose(case.unique_retrained, lm.sgd_final_weights(case.x, case.y, case.retrained_orders, case.lr),
                       rtol=0, atol=0)
    assert len(case.per_retrained) == len(case.retrained_orders) and case.per_retrained.sum() == len(case.orders)


def test_ordering_table_lists_orderings_beside_their_reduction() -> None:
    case = lm.lemma1_case(3, 2, x_star=0)
    table = lm.ordering_table(case, every=6)
    assert list(table.columns) == ["ordering", "retrained_ordering"] and len(table) == 6
    for k, row in table.iterrows():
        visits = [int(i) for i in row["ordering"].split()]
        assert visits == list(case.orders[6 * k])
        assert [int(i) for i in row["retrained_ordering"].split()] == [i for i in visits if i != 0]
    assert len(lm.ordering_table(case)) == 36
    with pytest.raises(ParameterError, match="every"):
        lm.ordering_table(case, every=0)


def test_summary_matches_the_table_row_by_row() -> None:
    table = lm.lemma1_table([2, 3], [1, 2], [0.01, 0.3])
    summary = lm.lemma1_summary(table)
    ratios = [r["sup_norm"] / r["bound"] for _, r in table.iterrows()]
    assert summary.rows == 8
    assert (summary.ratio_min, summary.ratio_max) == pytest.approx((min(ratios), max(ratios)), rel=1e-12)
    assert summary.step2_kept == pytest.approx(np.mean(table["sup_norm"].to_numpy() / table["triangle_bound"]))
    assert summary.step3_kept == pytest.approx(np.mean(table["triangle_bound"].to_numpy() / table["bound"]))
    assert summary.unlearning_closer == sum(r["v"] < r["d"] for _, r in table.iterrows())
    assert summary.median_v_over_d == pytest.approx(float(np.median(table["v"] / table["d"])))
    # more epochs loosen the bound at every (n, s), here; a table where m = 2 is tighter somewhere says no
    expected = all(table.query("n == @n and noise_scale == @s and m == 1")["ratio"].iloc[0]
                   > table.query("n == @n and noise_scale == @s and m == 2")["ratio"].iloc[0]
                   for n in (2, 3) for s in (0.01, 0.3))
    assert summary.ratio_falls_with_epochs == expected
    flipped = table.copy()
    flipped.loc[(flipped["m"] == 2) & (flipped["n"] == 3), "ratio"] = 2.0
    assert not lm.lemma1_summary(flipped).ratio_falls_with_epochs
    with pytest.raises(ParameterError, match="lemma1_table"):
        lm.lemma1_summary(table.drop(columns="ratio"))


def test_density_curves_are_the_gaussian_mixtures() -> None:
    case = lm.lemma1_case(3, 1)
    curves = wd.density_curves(case, [0.02, 0.2], points=101)
    assert [c.noise_scale for c in curves] == [0.02, 0.2]
    for c in curves:
        s = c.noise_scale
        assert len(c.grid) == 101
        centres = np.concatenate([case.w_full, case.unique_retrained, case.w_unlearned])[:, 0]
        assert c.grid[0] == pytest.approx(centres.min() - 4 * s) and c.grid[-1] == pytest.approx(centres.max() + 4 * s)

        def mixture(ws: np.ndarray, s: float = s, grid: np.ndarray = c.grid) -> np.ndarray:
            # independent: the average of N(w_c, s²) densities, written out
            z = (grid[:, None] - ws[None, :, 0]) / s
            return (np.exp(-z**2 / 2) / (s * np.sqrt(2 * np.pi))).mean(axis=1)

        assert np.allclose(c.full, mixture(case.w_full), rtol=1e-12)
        assert np.allclose(c.retrained, mixture(case.unique_retrained), rtol=1e-12)
        assert np.allclose(c.unlearned, mixture(case.w_full + case.update), rtol=1e-12)
        assert np.array_equal(c.gap, np.abs(c.full - c.retrained))
        d = np.abs(case.w_full - case.w_retrained)[:, 0].mean()
        assert c.bound == pytest.approx(np.exp(-0.5) / (np.sqrt(2 * np.pi) * s**2) * d, rel=1e-12)
        assert c.gap.max() <= c.bound  # Lemma 1 on the grid
    with pytest.raises(ParameterError, match="dim"):
        wd.density_curves(lm.lemma1_case(2, 1, dim=2), [0.1])
    with pytest.raises(ParameterError, match="noise_scales"):
        wd.density_curves(case, [])
    with pytest.raises(ParameterError, match=r"^case must be a DensityCase; got str$"):
        wd.density_curves("case", [0.1])


def test_a_table_row_is_the_case_counts_and_its_density_distances() -> None:
    case = lm.lemma1_case(3, 2, dim=2, x_star=1)
    assert isinstance(case, wd.DensityCase)
    table = lm.lemma1_table([3], [2], [0.02, 0.2], dim=2, x_star=1)
    for (_, row), s in zip(table.iterrows(), [0.02, 0.2], strict=True):
        distances = wd.density_distances(case, s)
        assert list(table.columns) == ["n", "m", "dim", "noise_scale", "orderings", "retrained_orderings",
                                       "preimages_per_retrained", *distances]
        assert row[list(distances)].tolist() == list(distances.values())
        # independent: d, v, ψ and L from the case's weights and the closed form of L
        assert distances["d"] == pytest.approx(np.linalg.norm(case.w_full - case.w_retrained, axis=1).mean())
        assert distances["v"] == pytest.approx(
            np.linalg.norm(case.w_full + case.update - case.w_retrained, axis=1).mean())
        assert distances["psi"] == pytest.approx(
            np.linalg.norm((case.w_full + case.update).mean(axis=0) - case.unique_retrained.mean(axis=0)))
        assert distances["lipschitz"] == pytest.approx(np.exp(-0.5) / (2 * np.pi * s**3))
    with pytest.raises(ParameterError, match=r"^case must be a DensityCase; got ndarray$"):
        wd.density_distances(case.w_full, 0.1)
    with pytest.raises(ParameterError, match=r"^scale=0\.0 is not allowed"):
        wd.density_distances(case, 0.0)


# ----------------------------------------------------------------------------- what the bound reaches
def _gaussian_pair_lp(delta: float, scale: float, p: float) -> float:
    """‖φ_s − φ_s(· − δ)‖_p in 1-D by adaptive quadrature (independent of the library's grid)."""
    from scipy.integrate import quad
    from scipy.stats import norm

    def integrand(w: float) -> float:
        return abs(norm.pdf(w, 0.0, scale) - norm.pdf(w, delta, scale)) ** p

    lo, hi = -14 * scale, delta + 14 * scale
    value, _ = quad(integrand, lo, hi, points=[0.0, delta / 2, delta], limit=400, epsabs=1e-14, epsrel=1e-11)
    return value ** (1 / p)


@pytest.mark.parametrize("p", [1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 8.0])
def test_lp_bound_holds_for_gaussian_pairs_and_is_nearly_tight_when_they_separate(p: float) -> None:
    scale = 0.2
    for delta in [0.002, 0.02, 0.1, 0.2, 0.5, 1.0, 3.0]:
        exact_sup = float(wd.shift_sup(np.array([delta]), scale, 1)[0])  # ‖φ_a − φ_b‖_∞
        lemma_sup = wd.gaussian_lipschitz(scale, 1) * delta  # Lemma 1's bound on it, L·δ
        norm_p = _gaussian_pair_lp(delta, scale, p)
        assert norm_p <= lm.lp_bound(exact_sup, p) * (1 + 1e-9)
        assert norm_p <= lm.lp_bound(lemma_sup, p) * (1 + 1e-9)
    # far apart the two bumps do not overlap: ‖f‖_p^p = 2∫φ^p and b = sup φ, so the ratio is p^(−1/(2p)) ≥ 0.83
    delta = 40 * scale
    ratio = _gaussian_pair_lp(delta, scale, p) / lm.lp_bound(lm.gaussian_sup(scale, 1), p)
    assert ratio == pytest.approx(p ** (-1 / (2 * p)), rel=1e-6)
    assert ratio > 0.83


def test_lp_bound_is_the_trivial_two_at_p_one() -> None:
    for b in [0.0, 1e-6, 0.3, 1.0, 50.0]:
        assert lm.lp_bound(b, 1) == 2.0  # no total-variation statement, whatever the sup-norm bound
    # and the L¹ distance of two separated Gaussians does reach it: a small sup-norm, total variation ≈ 1
    assert _gaussian_pair_lp(40.0, 1.0, 1.0) == pytest.approx(2.0, rel=1e-9)
    # above p = 1 the bound falls with b, as 2^{1/p}·b^{1−1/p}
    assert lm.lp_bound(0.25, 2) == pytest.approx(math.sqrt(2 * 0.25))
    assert lm.lp_bound(1e-4, 4) < lm.lp_bound(1e-2, 4) < lm.lp_bound(1.0, 4)


def test_lp_bound_refuses_bad_arguments() -> None:
    with pytest.raises(ParameterError, match=r"^p=0\.5 is not allowed; use a finite number >= 1$"):
        lm.lp_bound(1.0, 0.5)
    with pytest.raises(ParameterError, match=r"^p=inf is not allowed"):
        lm.lp_bound(1.0, math.inf)
    with pytest.raises(ParameterError, match=r"^sup_bound=-0\.1 is not allowed; use a finite number >= 0$"):
        lm.lp_bound(-0.1, 2)
    with pytest.raises(ParameterError, match="^sup_bound=True"):
        lm.lp_bound(True, 2)


@pytest.mark.parametrize("scale", [0.05, 0.3, 1.0])
def test_informative_below_matches_a_numerical_lipschitz_constant_and_peak(scale: float) -> None:
    # 1-D: L as max |φ′| by finite differences on a fine grid, sup φ as the grid's largest value
    grid = np.linspace(-6 * scale, 6 * scale, 400_001)
    phi = np.exp(-grid**2 / (2 * scale**2)) / (scale * math.sqrt(2 * math.pi))
    lipschitz = np.abs(np.diff(phi) / np.diff(grid)).max()
    peak = phi.max()
    assert peak == pytest.approx(1 / (scale * math.sqrt(2 * math.pi)), rel=1e-9)
    assert lm.gaussian_sup(scale, 1) == pytest.approx(peak, rel=1e-9)
    assert lipschitz == pytest.approx(1 / (scale**2 * math.sqrt(2 * math.pi * math.e)), rel=1e-6)
    assert lm.informative_below(scale) == pytest.approx(peak / lipschitz, rel=1e-6)
    assert lm.informative_below(scale) == pytest.approx(1.6487 * scale, rel=1e-4)
    # L·v < sup φ exactly below √e·s
    for v in [0.5, 0.99, 1.01, 2.0]:
        shift = v * lm.informative_below(scale)
        assert (lipschitz * shift < peak) == (v < 1)


def test_informative_below_does_not_depend_on_the_dimension() -> None:
    # 2-D: ‖∇φ‖ by central differences on a grid, its largest value over the peak
    scale = 0.4
    axis = np.linspace(-4 * scale, 4 * scale, 2001)
    w1, w2 = np.meshgrid(axis, axis, indexing="ij")
    phi = np.exp(-(w1**2 + w2**2) / (2 * scale**2)) / (2 * math.pi * scale**2)
    g1, g2 = np.gradient(phi, axis, axis)
    lipschitz, peak = np.hypot(g1, g2).max(), phi.max()
    assert lm.gaussian_sup(scale, 2) == pytest.approx(peak, rel=1e-9)
    assert lipschitz == pytest.approx(wd.gaussian_lipschitz(scale, 2), rel=1e-4)
    assert lm.informative_below(scale) == pytest.approx(peak / lipschitz, rel=1e-4)
    for dim in (1, 2, 3, 7):  # the closed forms: L / sup φ = e^{−1/2}/s in every dimension
        ratio = lm.gaussian_sup(scale, dim) / wd.gaussian_lipschitz(scale, dim)
        assert ratio == pytest.approx(lm.informative_below(scale), rel=1e-12)
    with pytest.raises(ParameterError, match=r"^scale=0 is not allowed"):
        lm.informative_below(0)
    with pytest.raises(ParameterError, match=r"^dim=0 is not allowed"):
        lm.gaussian_sup(0.1, 0)


@pytest.mark.parametrize("dim", [1, 2])
def test_the_trivial_bound_holds_and_the_summary_counts_where_lemma1_beats_it(dim: int) -> None:
    table = lm.lemma1_table([2, 3], [1, 2], [0.003, 0.01, 0.1], dim=dim)
    peak = np.array([lm.gaussian_sup(s, dim) for s in table["noise_scale"]])
    assert (table["sup_norm"] <= peak * (1 + 1e-9)).all()  # |P − P′| ≤ sup φ, for free
    beats = table["bound"] < peak  # L·d below the trivial bound ...
    assert (beats == (table["d"] < np.sqrt(np.e) * table["noise_scale"])).all()  # ... exactly when d < √e·s
    summary = lm.lemma1_summary(table)
    assert summary.informative == int(beats.sum())
    assert summary.informative_unlearned == int((table["bound_unlearned"] < peak).sum())
    assert 0 < summary.informative < summary.rows  # this grid has rows on both sides


def test_lp_distance_table_integrates_the_mixtures() -> None:
    case = lm.lemma1_case(3, 1)
    table = lm.lp_distance_table(case, [0.01, 0.1], ps=[1, 2])
    assert list(table.columns) == ["noise_scale", "p", "lp_norm", "sup_bound", "lp_bound", "tv_bound"]
    assert len(table) == 4
    from scipy.integrate import quad
    from scipy.stats import norm

    for _, row in table.iterrows():
        s, p = row["noise_scale"], row["p"]

        def gap(w: float, s: float = s, p: float = p) -> float:
            full = norm.pdf(w, case.w_full[:, 0], s).mean()
            retrained = norm.pdf(w, case.unique_retrained[:, 0], s).mean()
            return abs(full - retrained) ** p

        centres = np.concatenate([case.w_full, case.unique_retrained])[:, 0]
        value, _ = quad(gap, centres.min() - 12 * s, centres.max() + 12 * s, points=np.unique(centres),
                        limit=400, epsabs=1e-14, epsrel=1e-11)
        assert row["lp_norm"] == pytest.approx(value ** (1 / p), rel=1e-5)
        d = np.abs(case.d[:, 0]).mean()
        assert row["sup_bound"] == pytest.approx(np.exp(-0.5) / (np.sqrt(2 * np.pi) * s**2) * d, rel=1e-12)
        assert row["lp_norm"] <= row["lp_bound"]
    assert (table.query("p == 1")["lp_bound"] == 2).all()
    with pytest.raises(ParameterError, match="dim=1"):
        lm.lp_distance_table(lm.lemma1_case(2, 1, dim=2))
    with pytest.raises(ParameterError, match=r"^ps=\[0\.5\] is not allowed"):
        lm.lp_distance_table(case, ps=[0.5])


def test_tv_bound_holds_on_the_mixtures_and_is_tight_for_a_small_shift() -> None:
    """½‖P − P′‖₁ ≤ mean‖d_I‖/(s√(2π)) on Lemma 1's own mixtures; exact for one pair as the shift → 0."""
    from scipy.stats import norm

    for n, m in [(3, 1), (3, 2), (4, 1)]:
        table = lm.lp_distance_table(lm.lemma1_case(n, m), [0.003, 0.03, 0.3, 3.0], ps=[1])
        assert (table["lp_norm"] / 2 <= table["tv_bound"] * (1 + 1e-6)).all()
    for d, s in [(1e-3, 1.0), (0.1, 0.5), (2.0, 0.2)]:
        exact = 2 * norm.cdf(d / (2 * s)) - 1  # TV of N(0, s²) and N(d, s²)
        assert exact <= lm.tv_bound(d, s) + 1e-15
    assert lm.tv_bound(1e-4, 1.0) == pytest.approx(2 * norm.cdf(0.5e-4) - 1, rel=1e-6)
    assert lm.tv_bound(50.0, 1.0) == 1.0
    with pytest.raises(ParameterError, match="^mean_shift="):
        lm.tv_bound(-1.0, 1.0)
