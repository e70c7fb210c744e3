"""Lemma 1, Corollary 1 and the reverse direction of Appendix A (§4.1), checked by enumeration.

The set-up of §4.1: SGD with batch size 1 for m epochs over n points, from a fixed w₀. An *ordering* I is
the sequence of m·n point indices SGD visits (m permutations of the n points, so (n!)^m orderings in all);
I′ is I with every visit of x* removed in place, an ordering of D′ = D \\ {x*} ((n−1)!^m of them, each the
image of n^m orderings I). Training is deterministic given I, so w_I and w_{I′} are numbers, and
d_I = w_I − w_{I′}. Gaussian noise g ~ N(0, s²·Id) on the final weights turns them into densities

    P(w)  = (1/n!^m)      Σ_I  φ_s(w − w_I),
    P′(w) = (1/(n−1)!^m)  Σ_I′ φ_s(w − w_I′)   ( = (1/n!^m) Σ_I φ_s(w − w_{I′(I)}) ),

and Lemma 1 (Eq. 2, Eq. 14) says sup_w |P(w) − P′(w)| ≤ L·d with L the Lipschitz constant of φ_s and
d = (1/n!^m) Σ_I ‖d_I‖₂. Corollary 1 (Eq. 3, Eq. 15) is the same with w_I replaced by w_I + u_I for an
unlearning update u_I that depends only on w₀ and I, and d by v = mean ‖d_I + u_I‖₂. The reverse direction
(Eq. 16) bounds ψ = ‖E_{P″}[w] − E_{P′}[w]‖₂ by b·a, b the sup-norm and a = ∫_W ‖w‖₂ dw over a bounded
support W.

Everything here is exact enumeration on a least-squares model small enough to list every ordering: the
loss of a point (x, y) is ½(wᵀx − y)², so one SGD step is w ← w − η (wᵀx − y) x, in closed form. This module
enumerates the orderings and trains on each (:func:`lemma1_case`); the densities of a case, their sup-norms
and the bounds are in :mod:`unrolling_lib.theory.weight_densities`; :func:`lemma1_table` puts them side by
side, one row per (n, m, s).

What the bound reaches: it beats the trivial bound sup φ_s only while the mean shift is below √e·s
(:func:`informative_below`), and it controls an L^p distance only for p > 1 (:func:`lp_bound`; at p = 1, the
total variation, it gives nothing). :func:`lp_distance_table` puts the L^p bounds beside the L^p distances of
a 1-D case.

Numerics only: :mod:`unrolling_lib.figures.lemma1` draws the table and the densities.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..validation import ParameterError, check_instance, check_int, check_ints, check_keys, check_number, check_numbers
from .weight_densities import DensityCase, density_distances, gaussian_lipschitz, mixture_density

__all__ = [
    "LEMMA1_DEFAULTS",
    "Lemma1Case",
    "Lemma1Summary",
    "check_lemma1_params",
    "gaussian_sup",
    "informative_below",
    "lemma1_case",
    "lemma1_summary",
    "lemma1_table",
    "lp_bound",
    "lp_distance_table",
    "tv_bound",
    "ordering_table",
    "orderings",
    "regression_data",
    "remove_point",
    "sgd_final_weights",
    "unique_retrained_orderings",
    "unlearning_update",
]

_QUICK: dict[str, Any] = {
    "ns": [2, 3, 4],
    "epochs": [1, 2],
    "noise_scales": [0.003, 0.01, 0.03, 0.1, 0.3],
    "dim": 1,
    "lr": 0.1,
    "x_star": 0,
}
# (n!)^m stays ≤ 14,400 orderings; 2-D grids cost about 10 s per (n, m) and noise scale at n = 4, m = 2.
LEMMA1_DEFAULTS: dict[str, dict[str, Any]] = {
    "quick": dict(_QUICK),
    "colab": {**_QUICK, "dim": 2},
    "paper": {**_QUICK, "ns": [2, 3, 4, 5], "noise_scales": [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]},
    # the same code path in seconds (CI's nbval run): two n, one epoch, two noise scales
    "smoke": {**_QUICK, "ns": [2, 3], "epochs": [1], "noise_scales": [0.01, 0.1]},
}
_MAX_ORDERINGS = 200_000
_SQRT_E = math.sqrt(math.e)  # sup φ_s / L = √e·s in every dimension (see informative_below)


# ----------------------------------------------------------------------------------------------- checks
def _check_dim(dim: Any) -> int:
    # the densities are evaluated on a grid: 1-D and 2-D only
    return check_int("dim", dim, 1, 2)


def _check_count(n: int, m: int, names: tuple[str, str] = ("n", "m")) -> int:
    count = math.factorial(n) ** m
    if count > _MAX_ORDERINGS:
        raise ParameterError(f"{names[0]}={n}, {names[1]}={m} give {count} orderings; keep (n!)^m <= {_MAX_ORDERINGS}")
    return count


def check_lemma1_params(**params: Any) -> dict[str, Any]:
    """Check the §4.1 parameters (the keys of :data:`LEMMA1_DEFAULTS`) before any ordering is trained; return
    them normalised (Python ints, noise scales as floats). The one set of rules: :func:`lemma1_table` applies
    it, and the chapter's ``setup(..., check=check_lemma1_params)`` too. ``ns``, ``epochs`` and ``noise_scales``
    are distinct (one table row per (n, m, s)); ``x_star`` is a point of the smallest n; the largest case
    must stay enumerable."""
    check_keys("§4.1", params, _QUICK, kind="table")
    q = params
    ns, epochs = check_ints("ns", q["ns"], 2, distinct=True), check_ints("epochs", q["epochs"], 1, distinct=True)
    out = {
        "ns": ns,
        "epochs": epochs,
        "noise_scales": check_numbers("noise_scales", q["noise_scales"], distinct=True),
        "dim": _check_dim(q["dim"]),
        "lr": check_number("lr", q["lr"]),
        "x_star": check_int("x_star", q["x_star"], 0, min(ns) - 1),
    }
    _check_count(max(ns), max(epochs), names=("ns", "epochs"))  # the largest case, before any work starts
    return out


# ----------------------------------------------------------------------------------------- orderings
def orderings(n: int, m: int) -> np.ndarray:
    """Every ordering I of §4.1: shape ((n!)^m, m·n), row = the point indices SGD visits over m epochs.

    Each epoch is a permutation of ``range(n)``; the rows enumerate all m-tuples of permutations.
    """
    n, m = check_int("n", n, 1), check_int("m", m, 1)
    count = _check_count(n, m)
    perms = np.array(list(itertools.permutations(range(n))), dtype=np.int64)
    picks = np.array(list(itertools.product(range(len(perms)), repeat=m)), dtype=np.int64)
    return perms[picks].reshape(count, m * n)


def remove_point(orders: np.ndarray, x_star: int) -> np.ndarray:
    """I′ for every I: each row with every visit of ``x_star`` removed in place (shape (N, m·(n−1)))."""
    orders = np.asarray(orders)
    keep = orders != x_star
    per_row = keep.sum(axis=1)
    if len(orders) and not np.all(per_row == per_row[0]):
        raise ParameterError(f"x_star={x_star!r} must appear equally often in every ordering")
    if len(orders) and per_row[0] == orders.shape[1]:
        raise ParameterError(f"x_star={x_star!r} does not appear in the orderings")
    return orders[keep].reshape(len(orders), -1)


def unique_retrained_orderings(orders: np.ndarray, x_star: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct I′ (rows), for each I the index of its I′, and how many I map to each I′ (n^m each)."""
    reduced = remove_point(orders, x_star)
    unique, inverse, counts = np.unique(reduced, axis=0, return_inverse=True, return_counts=True)
    return unique, inverse.reshape(-1), counts


# ---------------------------------------------------------------------------------------------- model
def regression_data(n: int, dim: int = 1, seed: int = 0, noise: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points x ~ N(0, Id_dim) with y = xᵀw_true + noise·ε, w_true ~ N(0, Id); fixed by ``seed``."""
    n, dim = check_int("n", n, 1), _check_dim(dim)
    rng = np.random.default_rng([seed, n, dim])
    x = rng.normal(size=(n, dim))
    w_true = rng.normal(size=dim)
    return x, x @ w_true + noise * rng.normal(size=n)


def sgd_final_weights(x: np.ndarray, y: np.ndarray, orders: np.ndarray, lr: float,
                      w0: np.ndarray | None = None) -> np.ndarray:
    """w_I for every row of ``orders``: SGD with batch size 1 on ½(wᵀx − y)², w ← w − η (wᵀx_i − y_i) x_i.

    All orderings advance together (one vectorised step per position). ``w0`` defaults to zeros.
    Returns shape (N, dim).
    """
    lr = check_number("lr", lr)
    x, y, orders = np.asarray(x, np.float64), np.asarray(y, np.float64), np.asarray(orders)
    w = np.zeros((len(orders), x.shape[1])) if w0 is None else np.tile(np.asarray(w0, np.float64), (len(orders), 1))
    for s in range(orders.shape[1]):
        xs, ys = x[orders[:, s]], y[orders[:, s]]
        w = w - lr * ((xs * w).sum(axis=1) - ys)[:, None] * xs
    return w


def unlearning_update(x: np.ndarray, y: np.ndarray, x_star: int, lr: float, m: int,
                      w0: np.ndarray | None = None) -> np.ndarray:
    """Single-gradient unlearning (§5.1) for this model: u = +η·m·∇L(w₀; x*) = η·m·(w₀ᵀx* − y*)·x*.

    It depends on w₀ and on how often x* was visited (m), not on the ordering: the kind of update
    Corollary 1 allows.
    """
    lr, m = check_number("lr", lr), check_int("m", m, 1)
    x = np.asarray(x, np.float64)
    w0 = np.zeros(x.shape[1]) if w0 is None else np.asarray(w0, np.float64)
    return lr * m * (float(w0 @ x[x_star]) - float(y[x_star])) * x[x_star]


# --------------------------------------------------------------------------------------- one case
@dataclass
class Lemma1Case:
    """Everything enumerated for one (n, m, dim, lr) of §4.1: orderings, final weights, the update."""

    n: int
    m: int
    dim: int
    lr: float
    x_star: int
    x: np.ndarray
    y: np.ndarray
    orders: np.ndarray  # every I, (n!^m, m·n)
    retrained_orders: np.ndarray  # the distinct I′, ((n−1)!^m, m·(n−1))
    w_full: np.ndarray  # w_I, (n!^m, dim)
    w_retrained: np.ndarray  # w_{I′(I)} for every I, (n!^m, dim)
    unique_retrained: np.ndarray  # w_{I′} for each distinct I′ (rows of retrained_orders), ((n−1)!^m, dim)
    per_retrained: np.ndarray  # how many I map to each I′ (n^m each)
    update: np.ndarray  # u (single-gradient unlearning), (dim,)

    @property
    def d(self) -> np.ndarray:
        """d_I = w_I − w_{I′} for every I."""
        return self.w_full - self.w_retrained

    @property
    def w_unlearned(self) -> np.ndarray:
        """w″_I = w_I + u_I for every I (Corollary 1)."""
        return self.w_full + self.update[None, :]


def lemma1_case(n: int, m: int, *, dim: int = _QUICK["dim"], lr: float = _QUICK["lr"],
                x_star: int = _QUICK["x_star"], seed: int = 0) -> Lemma1Case:
    """Enumerate every ordering for n points and m epochs (§4.1) and train on each, with and without ``x_star``.

    w_{I′} is computed twice: once per I from I with x* removed in place, once per distinct I′ (the
    orderings of D′ themselves); the two agree by construction and the counts say each I′ has n^m
    preimages I (step 1 of the proof of Lemma 1, Appendix A). Defaults are the quick profile's.
    """
    n, m, dim = check_int("n", n, 2), check_int("m", m, 1), _check_dim(dim)
    x_star, seed = check_int("x_star", x_star, 0, n - 1), check_int("seed", seed, 0)
    lr = check_number("lr", lr)
    x, y = regression_data(n, dim, seed)
    orders = orderings(n, m)
    unique, inverse, counts = unique_retrained_orderings(orders, x_star)
    w_unique = sgd_final_weights(x, y, unique, lr)
    return Lemma1Case(n=n, m=m, dim=dim, lr=lr, x_star=x_star, x=x, y=y, orders=orders, retrained_orders=unique,
                      w_full=sgd_final_weights(x, y, orders, lr), w_retrained=w_unique[inverse],
                      unique_retrained=w_unique, per_retrained=counts,
                      update=unlearning_update(x, y, x_star, lr, m))


def ordering_table(case: Lemma1Case, every: int = 1) -> pd.DataFrame:
    """Every ``every``-th ordering I of ``case`` beside its I′ (x* removed in place), as space-separated point
    indices: columns ``ordering`` and ``retrained_ordering`` (§4.1)."""
    every = check_int("every", every, 1)
    shown = case.orders[::every]
    return pd.DataFrame({"ordering": [" ".join(map(str, r)) for r in shown],
                         "retrained_ordering": [" ".join(map(str, r)) for r in remove_point(shown, case.x_star)]})


def _case_row(case: Lemma1Case, scale: float) -> dict[str, Any]:
    """One row of :func:`lemma1_table`: the case's counts, then its :func:`density_distances` at ``scale``."""
    return {
        "n": case.n, "m": case.m, "dim": case.dim, "noise_scale": scale,
        "orderings": len(case.orders), "retrained_orderings": len(case.retrained_orders),
        "preimages_per_retrained": int(case.per_retrained[0]),
        **density_distances(case, scale),
    }


def lemma1_table(ns: Sequence[int] = tuple(_QUICK["ns"]), epochs: Sequence[int] = tuple(_QUICK["epochs"]),
                 noise_scales: Sequence[float] = tuple(_QUICK["noise_scales"]), *, dim: int = _QUICK["dim"],
                 lr: float = _QUICK["lr"], x_star: int = _QUICK["x_star"], seed: int = 0) -> pd.DataFrame:
    """One row per (n, m, noise scale): sup-norms, the bounds L·d (Eq. 2) and L·v (Eq. 3), tightness, Eq. 16.

    Columns: ``orderings`` (n!^m), ``retrained_orderings`` ((n−1)!^m), ``preimages_per_retrained`` (n^m, the
    orderings I behind each I′), ``lipschitz`` (L of the noise density), ``d``, ``sup_norm`` = ‖P − P′‖∞,
    ``triangle_bound`` = mean_I sup|φ(w) − φ(w − d_I)| (Eq. 13 before the Lipschitz step), ``bound`` = L·d,
    ``ratio`` = sup_norm / bound; the same with ``_unlearned`` for P″ (Corollary 1, v = mean ‖d_I + u‖);
    ``psi``, ``psi_on_box`` (ψ integrated over the grid's box W), ``a`` and ``reverse_bound`` = b·a for
    Eq. 16. Defaults are the quick profile's; every argument is checked (:func:`check_lemma1_params`) before any
    ordering is trained.
    """
    p = check_lemma1_params(ns=ns, epochs=epochs, noise_scales=noise_scales, dim=dim, lr=lr, x_star=x_star)
    seed = check_int("seed", seed, 0)
    rows = []
    for n in p["ns"]:
        for m in p["epochs"]:
            case = lemma1_case(n, m, dim=p["dim"], lr=p["lr"], x_star=p["x_star"], seed=seed)
            rows += [_case_row(case, s) for s in p["noise_scales"]]
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Lemma1Summary:
    """What a :func:`lemma1_table` says in a few numbers (§4.1): how tight Lemma 1 is and where it loses."""

    rows: int
    ratio_min: float  # smallest sup_norm / (L·d)
    ratio_max: float  # largest sup_norm / (L·d)
    step2_kept: float  # mean sup_norm / triangle_bound: the share of step 2's right side the sup-norm reaches
    step3_kept: float  # mean triangle_bound / bound: the share the Lipschitz step keeps
    unlearning_closer: int  # rows where single-gradient unlearning brings v below d
    median_v_over_d: float
    ratio_falls_with_epochs: bool  # at every (n, s) the ratio falls from each m to the next: more epochs loosen
    informative: int  # rows where L·d < sup φ_s (d < √e·s): Eq. 2 beats the trivial bound
    informative_unlearned: int  # rows where L·v < sup φ_s (v < √e·s): Eq. 3 beats it


def lemma1_summary(table: pd.DataFrame) -> Lemma1Summary:
    """The tightness of Lemma 1 (Eq. 2) and of its two steps (Eq. 13), the effect of unlearning (Eq. 3), and
    in how many rows each bound says more than the trivial sup φ_s (:func:`informative_below`), over the rows
    of a :func:`lemma1_table`."""
    missing = {"n", "m", "noise_scale", "ratio", "sup_norm", "triangle_bound", "bound", "v", "d"} - set(table)
    if missing:
        raise ParameterError(f"table lacks the column(s) {sorted(missing)}; pass a lemma1_table")
    by_m = table.pivot_table(index=["n", "noise_scale"], columns="m", values="ratio")
    falls = all((by_m[a] > by_m[b]).all() for a, b in zip(by_m.columns[:-1], by_m.columns[1:], strict=True))
    return Lemma1Summary(
        rows=len(table), ratio_min=float(table["ratio"].min()), ratio_max=float(table["ratio"].max()),
        step2_kept=float((table["sup_norm"] / table["triangle_bound"]).mean()),
        step3_kept=float((table["triangle_bound"] / table["bound"]).mean()),
        unlearning_closer=int((table["v"] < table["d"]).sum()),
        median_v_over_d=float((table["v"] / table["d"]).median()), ratio_falls_with_epochs=bool(falls),
        informative=int((table["d"] < _SQRT_E * table["noise_scale"]).sum()),
        informative_unlearned=int((table["v"] < _SQRT_E * table["noise_scale"]).sum()))


# -------------------------------------------------------------------------------- what the bound reaches
def gaussian_sup(scale: float, dim: int) -> float:
    """sup φ_s = φ_s(0) = (2π s²)^{−k/2}, the peak of the N(0, s²·Id_k) density.

    P, P′ and P″ are averages of translates of φ_s, so each lies in [0, sup φ_s] and so does |P − P′|: the
    trivial bound that Lemma 1 has to beat.
    """
    scale = check_number("scale", scale)
    dim = check_int("dim", dim, 1)
    return (2 * math.pi * scale**2) ** (-dim / 2)


def informative_below(scale: float) -> float:
    """The mean shift below which Lemma 1 says more than the trivial bound: √e·s.

    With L = (2π)^{−k/2} s^{−k−1} e^{−1/2} (:func:`~.weight_densities.gaussian_lipschitz`) and
    sup φ_s = (2π)^{−k/2} s^{−k} (:func:`gaussian_sup`), L / sup φ_s = e^{−1/2}/s in every dimension k, so
    L·d < sup φ_s exactly when d < √e·s ≈ 1.65·s (and L·v < sup φ_s when v < √e·s, Corollary 1).
    """
    return _SQRT_E * check_number("scale", scale)


def lp_bound(sup_bound: float, p: float) -> float:
    """The bound on ‖f‖_p that a bound b on ‖f‖_∞ gives when f is the difference of two probability densities:
    2^{1/p}·b^{1−1/p}, for 1 ≤ p < ∞.

    ‖f‖_1 ≤ 2 (each density integrates to 1), and |f|^p ≤ |f|·b^{p−1} integrates to
    ‖f‖_p ≤ ‖f‖_1^{1/p}·‖f‖_∞^{1−1/p} (the interpolation inequality, Folland Prop. 6.10). At p = 1 this is
    the trivial 2 whatever b is: a sup-norm bound says nothing about the total variation ½‖f‖_1.
    """
    b = check_number("sup_bound", sup_bound, inclusive=True)
    p = check_number("p", p, low=1.0, inclusive=True)
    return 2 ** (1 / p) * b ** (1 - 1 / p)


def tv_bound(mean_shift: float, scale: float) -> float:
    """A total-variation bound that the sup-norm route cannot give: TV(P, P′) ≤ min(1, v/(s·√(2π))).

    Under Lemma 1's own assumptions each density is an average of translates of one Gaussian N(·, s²I), and the
    orderings pair up (I with I′). TV is jointly convex, so TV(P, P′) ≤ mean_I TV(N(w_I, s²I), N(w′_I, s²I)),
    and for two Gaussians of one covariance TV = 2Φ(‖d_I‖/(2s)) − 1 ≤ ‖d_I‖/(s·√(2π)) (Φ′ ≤ 1/√(2π)); so
    the mean shift ``mean_shift`` = mean_I ‖d_I‖ (v, for P″ against P′) bounds it, in any dimension. This
    follows from v itself, not from Eq. 3's sup-norm bound.
    """
    v = check_number("mean_shift", mean_shift, inclusive=True)
    s = check_number("scale", scale)
    return min(1.0, v / (s * math.sqrt(2 * math.pi)))


def _lp_norm(centers_a: np.ndarray, centers_b: np.ndarray, scale: float, p: float) -> float:
    """‖P_a − P_b‖_p of two 1-D mixtures of N(c, s²): the trapezoid rule on a grid of spacing s/200 over every
    centre ± 10s (the mass left outside is below 1e-22)."""
    centres = np.concatenate([centers_a, centers_b]).ravel()
    lo, hi = float(centres.min()) - 10 * scale, float(centres.max()) + 10 * scale
    grid = np.linspace(lo, hi, int(np.ceil((hi - lo) / (scale / 200))) + 1)
    gap = np.abs(mixture_density(grid, centers_a, scale) - mixture_density(grid, centers_b, scale))
    return float(np.trapezoid(gap**p, grid)) ** (1 / p)


def lp_distance_table(case: DensityCase, noise_scales: Sequence[float] = tuple(_QUICK["noise_scales"]),
                      ps: Sequence[float] = (1.0, 1.5, 2.0, 4.0)) -> pd.DataFrame:
    """‖P − P′‖_p of a 1-D ``case`` (a :class:`Lemma1Case`) beside the bound Lemma 1 gives it (§4.1).

    One row per (noise scale s, p): ``lp_norm`` = ‖P − P′‖_p by the trapezoid rule, ``sup_bound`` = L·d (Eq. 2), and
    ``lp_bound`` = :func:`lp_bound` (L·d, p), which is 2 at p = 1 for every s, and ``tv_bound`` =
    :func:`tv_bound` (d, s), the bound on ½‖P − P′‖₁ that the mean shift gives directly. The noise scales
    default to the quick profile's.
    """
    check_instance("case", case, DensityCase)
    if case.dim != 1:
        raise ParameterError(f"case.dim={case.dim} is not allowed here; the L^p norms are integrated for dim=1")
    scales = check_numbers("noise_scales", noise_scales)
    ps = check_numbers("ps", ps, low=1.0, inclusive=True)
    d = float(np.linalg.norm(case.d, axis=1).mean())
    rows = []
    for s in scales:
        sup_bound = gaussian_lipschitz(s, 1) * d
        rows += [{"noise_scale": s, "p": p, "lp_norm": _lp_norm(case.w_full, case.unique_retrained, s, p),
                  "sup_bound": sup_bound, "lp_bound": lp_bound(sup_bound, p), "tv_bound": tv_bound(d, s)}
                 for p in ps]
    return pd.DataFrame(rows)
