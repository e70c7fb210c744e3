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
loss of a point (x, y) is ½(wᵀx − y)², so one SGD step is w ← w − η (wᵀx − y) x, in closed form.
The sup-norm is taken on a grid fine relative to s and then refined by a local optimiser from the best grid
point; a grid can only under-estimate a supremum, which is why the refinement is there.

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
from scipy.optimize import minimize

from ..validation import ParameterError, check_int, check_number, check_numbers

__all__ = [
    "LEMMA1_DEFAULTS",
    "DensityCurves",
    "Lemma1Case",
    "Lemma1Summary",
    "density_curves",
    "gaussian_lipschitz",
    "lemma1_case",
    "lemma1_summary",
    "lemma1_table",
    "mixture_density",
    "ordering_table",
    "orderings",
    "regression_data",
    "remove_point",
    "sgd_final_weights",
    "shift_sup",
    "sup_abs_difference",
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
}
_MAX_ORDERINGS = 200_000
_CHUNK = 4_000_000  # grid points × centres evaluated at once


# ----------------------------------------------------------------------------------------------- checks
def _check_dim(dim: Any) -> int:
    # the densities are evaluated on a grid: 1-D and 2-D only
    return check_int("dim", dim, 1, 2)


def _check_ints(name: str, values: Any, low: int) -> list[int]:
    """A non-empty list of ints >= ``low``; an entry's message names it as ``name[i]``."""
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if not isinstance(values, (list, tuple)) or not values:
        raise ParameterError(f"{name}={values!r} is not allowed; use a non-empty list of ints >= {low}")
    return [check_int(f"{name}[{i}]", v, low) for i, v in enumerate(values)]


def _check_count(n: int, m: int, names: tuple[str, str] = ("n", "m")) -> int:
    count = math.factorial(n) ** m
    if count > _MAX_ORDERINGS:
        raise ParameterError(f"{names[0]}={n}, {names[1]}={m} give {count} orderings; keep (n!)^m <= {_MAX_ORDERINGS}")
    return count


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


# --------------------------------------------------------------------------------------- densities
def gaussian_lipschitz(scale: float, dim: int) -> float:
    """Lipschitz constant of the N(0, s²·Id_k) density: max ‖∇φ‖ = (2π)^{−k/2} s^{−k−1} e^{−1/2}.

    ‖∇φ(w)‖ = (r/s²)·φ(w) with r = ‖w‖; r·e^{−r²/2s²} peaks at r = s.
    """
    scale = check_number("scale", scale)
    dim = check_int("dim", dim, 1)
    return (2 * math.pi) ** (-dim / 2) * scale ** (-dim - 1) * math.exp(-0.5)


def _as_points(points: np.ndarray, dim: int) -> np.ndarray:
    return np.asarray(points, np.float64).reshape(-1, dim)


def mixture_density(points: np.ndarray, centers: np.ndarray, scale: float,
                    weights: np.ndarray | None = None) -> np.ndarray:
    """Σ_c weight_c · φ_s(point − c) at every point, φ_s the isotropic Gaussian density (equal weights by
    default, summing to 1). ``points`` (P, k) or (P,) for k = 1, ``centers`` (C, k)."""
    centers = np.asarray(centers, np.float64)
    centers = centers.reshape(len(centers), -1)
    dim = centers.shape[1]
    pts = _as_points(points, dim)
    w = np.full(len(centers), 1.0 / len(centers)) if weights is None else np.asarray(weights, np.float64)
    norm = (2 * math.pi * scale**2) ** (-dim / 2)
    out = np.empty(len(pts))
    step = max(1, _CHUNK // max(1, len(centers)))
    for start in range(0, len(pts), step):
        p = pts[start:start + step]
        sq = ((p[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
        out[start:start + step] = norm * (np.exp(-sq / (2 * scale**2)) @ w)
    return out


def _box(centers: Sequence[np.ndarray], scale: float, pad: float) -> tuple[np.ndarray, np.ndarray]:
    allc = np.concatenate([np.asarray(c, np.float64).reshape(len(c), -1) for c in centers])
    return allc.min(axis=0) - pad * scale, allc.max(axis=0) + pad * scale


def _grid(lo: np.ndarray, hi: np.ndarray, scale: float) -> tuple[list[np.ndarray], np.ndarray]:
    """Axes and points of a grid over the box, spacing s/16 in 1-D and s/6 in 2-D (capped in size)."""
    dim = len(lo)
    per = scale / (16 if dim == 1 else 6)
    cap = 20_001 if dim == 1 else 301
    axes = [np.linspace(lo[i], hi[i], int(min(cap, max(51, math.ceil((hi[i] - lo[i]) / per) + 1))))
            for i in range(dim)]
    mesh = np.meshgrid(*axes, indexing="ij")
    return axes, np.stack([g.reshape(-1) for g in mesh], axis=1)


def _refine(diff: Any, points: np.ndarray, gap: np.ndarray, scale: float, starts: int = 5) -> tuple[float, np.ndarray]:
    """The grid's largest |diff|, then Nelder–Mead on −|diff| from the ``starts`` best grid points.

    A grid can only under-estimate a supremum; the local searches recover what falls between grid points.
    """
    dim = points.shape[1]
    best = np.argsort(gap)[::-1][:starts]
    value, where = float(gap[best[0]]), points[best[0]]
    for i in best:
        res = minimize(lambda p: -abs(float(diff(p.reshape(1, dim))[0])), points[i], method="Nelder-Mead",
                       options={"xatol": scale * 1e-6, "fatol": value * 1e-12 + 1e-300, "maxiter": 400})
        if -res.fun > value:
            value, where = float(-res.fun), np.asarray(res.x)
    return value, where


def _mixture_diff(centers_a: np.ndarray, centers_b: np.ndarray, scale: float, weights_a: np.ndarray | None,
                  weights_b: np.ndarray | None) -> Any:
    def diff(p: np.ndarray) -> np.ndarray:
        return mixture_density(p, centers_a, scale, weights_a) - mixture_density(p, centers_b, scale, weights_b)
    return diff


def sup_abs_difference(centers_a: np.ndarray, centers_b: np.ndarray, scale: float, *,
                       weights_a: np.ndarray | None = None, weights_b: np.ndarray | None = None,
                       refine: bool = True) -> tuple[float, np.ndarray]:
    """sup_w |P_a(w) − P_b(w)| for two Gaussian mixtures (the ‖·‖∞ of Lemma 1) and where it is reached.

    Grid over the centres' bounding box ± 6s (spacing s/16 in 1-D, s/6 in 2-D, at most 20,001 and 301²
    points), then Nelder–Mead refinements from the five best grid points; the largest value found is returned.
    """
    scale = check_number("scale", scale)
    lo, hi = _box([centers_a, centers_b], scale, 6.0)
    _, pts = _grid(lo, hi, scale)
    diff = _mixture_diff(centers_a, centers_b, scale, weights_a, weights_b)
    gap = np.abs(diff(pts))
    if not refine:
        best = int(np.argmax(gap))
        return float(gap[best]), pts[best]
    return _refine(diff, pts, gap, scale)


def shift_sup(delta: np.ndarray, scale: float, dim: int) -> np.ndarray:
    """sup_w |φ_s(w) − φ_s(w − δ)| for each shift length ‖δ‖ in ``delta`` (isotropic Gaussian, k = dim).

    The supremum lies on the line through the two centres, where the other coordinates add the factor
    (2πs²)^{−(k−1)/2}; along the line it is the 1-D problem, solved on a fine grid (the difference is
    antisymmetric about δ/2, so only u ≤ δ/2 is searched). The per-ordering term of Eq. 13 before the
    Lipschitz step: mean_I shift_sup(‖d_I‖) ≤ L·d.
    """
    delta = np.abs(np.asarray(delta, np.float64)) / scale
    unique, inverse = np.unique(np.round(delta, 12), return_inverse=True)
    vals = np.empty_like(unique)
    frac = np.linspace(0.0, 1.0, 6001)[None, :]
    for start in range(0, len(unique), 500):
        dl = unique[start:start + 500, None]
        u = -8.0 + (dl / 2 + 8.0) * frac  # the difference is antisymmetric about δ/2: search u ≤ δ/2
        diff = np.exp(-u**2 / 2) - np.exp(-(u - dl) ** 2 / 2)
        vals[start:start + 500] = np.abs(diff).max(axis=1) / math.sqrt(2 * math.pi)
    return vals[inverse.reshape(delta.shape)] / scale * (2 * math.pi * scale**2) ** (-(dim - 1) / 2)


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


def _trapezoid_weights(axes: list[np.ndarray]) -> np.ndarray:
    """Quadrature weights of the trapezoid rule on the grid spanned by ``axes`` (flattened, 'ij' order)."""
    weights = np.ones(1)
    for ax in axes:
        w1 = np.full(len(ax), ax[1] - ax[0])
        w1[[0, -1]] *= 0.5
        weights = np.outer(weights, w1).reshape(-1)
    return weights


def _case_row(case: Lemma1Case, scale: float) -> dict[str, Any]:
    """All quantities of Lemma 1, Corollary 1 and Eq. 16 for one case and one noise scale.

    P, P′ and P″ are evaluated once on a common grid over all centres ± 6s; each sup-norm is then refined
    locally. The reverse direction (Eq. 16) integrates over that grid's box W.
    """
    lip = gaussian_lipschitz(scale, case.dim)
    d_norm = np.linalg.norm(case.d, axis=1)
    v_norm = np.linalg.norm(case.d + case.update[None, :], axis=1)
    d, v = float(d_norm.mean()), float(v_norm.mean())
    lo, hi = _box([case.w_full, case.unique_retrained, case.w_unlearned], scale, 6.0)
    axes, pts = _grid(lo, hi, scale)
    p, p_retrained = mixture_density(pts, case.w_full, scale), mixture_density(pts, case.unique_retrained, scale)
    p_unlearned = mixture_density(pts, case.w_unlearned, scale)
    sups = []
    for centers, values in ((case.w_full, p), (case.w_unlearned, p_unlearned)):
        diff = _mixture_diff(centers, case.unique_retrained, scale, None, None)
        sups.append(_refine(diff, pts, np.abs(values - p_retrained), scale)[0])
    sup, sup_u = sups
    # Eq. 16 on W = the grid's box: ψ_W = ‖∫_W (P″ − P′) w dw‖ ≤ b·a, b = sup|P″ − P′|, a = ∫_W ‖w‖ dw.
    quad = _trapezoid_weights(axes)
    psi_box = float(np.linalg.norm((quad * (p_unlearned - p_retrained)) @ pts))
    a = float(quad @ np.linalg.norm(pts, axis=1))
    psi = float(np.linalg.norm(case.w_unlearned.mean(axis=0) - case.unique_retrained.mean(axis=0)))
    return {
        "n": case.n, "m": case.m, "dim": case.dim, "noise_scale": scale,
        "orderings": len(case.orders), "retrained_orderings": len(case.retrained_orders),
        "preimages_per_retrained": int(case.per_retrained[0]),
        "lipschitz": lip, "d": d, "sup_norm": sup,
        "triangle_bound": float(shift_sup(d_norm, scale, case.dim).mean()),
        "bound": lip * d, "ratio": sup / (lip * d) if d > 0 else math.nan,
        "v": v, "sup_norm_unlearned": sup_u, "bound_unlearned": lip * v,
        "ratio_unlearned": sup_u / (lip * v) if v > 0 else math.nan,
        "psi": psi, "psi_on_box": psi_box, "a": a, "reverse_bound": sup_u * a,
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
    Eq. 16. Defaults are the quick profile's; every argument is checked before any ordering is trained.
    """
    ns, epochs = _check_ints("ns", ns, 2), _check_ints("epochs", epochs, 1)
    scales = check_numbers("noise_scales", noise_scales)
    _check_dim(dim)
    x_star = check_int("x_star", x_star, 0, min(ns) - 1)
    check_number("lr", lr)
    check_int("seed", seed, 0)
    _check_count(max(ns), max(epochs), names=("ns", "epochs"))  # the largest case, before any work starts
    rows = []
    for n in ns:
        for m in epochs:
            case = lemma1_case(n, m, dim=dim, lr=lr, x_star=x_star, seed=seed)
            rows += [_case_row(case, s) for s in scales]
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


def lemma1_summary(table: pd.DataFrame) -> Lemma1Summary:
    """The tightness of Lemma 1 (Eq. 2) and of its two steps (Eq. 13), and the effect of unlearning (Eq. 3),
    over the rows of a :func:`lemma1_table`."""
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
        median_v_over_d=float((table["v"] / table["d"]).median()), ratio_falls_with_epochs=bool(falls))


# -------------------------------------------------------------------------------------- density curves
@dataclass(frozen=True)
class DensityCurves:
    """P, P′ and P″ of one 1-D case at one noise scale s, on a grid over every centre ± 4s (§4.1)."""

    n: int
    m: int
    noise_scale: float
    grid: np.ndarray
    full: np.ndarray  # P: the mixture over every w_I
    retrained: np.ndarray  # P′: the mixture over the distinct w_{I′}
    unlearned: np.ndarray  # P″: the mixture over w_I + u (single-gradient unlearning)
    lipschitz: float  # L of φ_s
    d: float  # mean_I ‖d_I‖₂

    @property
    def gap(self) -> np.ndarray:
        """|P − P′| on the grid."""
        return np.abs(self.full - self.retrained)

    @property
    def bound(self) -> float:
        """L·d, Lemma 1's bound on sup |P − P′| (Eq. 2)."""
        return self.lipschitz * self.d


def density_curves(case: Lemma1Case, noise_scales: Sequence[float] = tuple(_QUICK["noise_scales"]), *,
                   points: int = 400) -> list[DensityCurves]:
    """The three densities of Lemma 1 and Corollary 1 for a 1-D ``case``, one :class:`DensityCurves` per noise
    scale, each on ``points`` evenly spaced weights."""
    if not isinstance(case, Lemma1Case):
        raise ParameterError(f"case must be a Lemma1Case (from lemma1_case); got {type(case).__name__}")
    if case.dim != 1:
        raise ParameterError(f"case.dim={case.dim} is not allowed here; the densities are drawn for dim=1")
    scales = check_numbers("noise_scales", noise_scales)
    points = check_int("points", points, 2)
    d = float(np.linalg.norm(case.d, axis=1).mean())
    curves = []
    for s in scales:
        lo, hi = _box([case.w_full, case.unique_retrained, case.w_unlearned], s, 4.0)
        grid = np.linspace(lo[0], hi[0], points)
        curves.append(DensityCurves(
            n=case.n, m=case.m, noise_scale=s, grid=grid, full=mixture_density(grid, case.w_full, s),
            retrained=mixture_density(grid, case.unique_retrained, s),
            unlearned=mixture_density(grid, case.w_unlearned, s), lipschitz=gaussian_lipschitz(s, 1), d=d))
    return curves
