"""The densities P, P′ and P″ of §4.1 and their distance: Gaussian noise on the final weights of every ordering.

Gaussian noise g ~ N(0, s²·Id) added to the final weights w_I of every ordering I turns the enumerated weights
of :mod:`unrolling_lib.theory.lemma1` into mixtures of isotropic Gaussians φ_s,

    P(w)  = (1/n!^m)      Σ_I  φ_s(w − w_I),
    P′(w) = (1/(n−1)!^m)  Σ_I′ φ_s(w − w_I′),
    P″(w) = (1/n!^m)      Σ_I  φ_s(w − w_I − u_I),

and Lemma 1 (Eq. 2, Eq. 14) bounds sup_w |P(w) − P′(w)| by L·d, L the Lipschitz constant of φ_s and
d = mean_I ‖d_I‖₂; Corollary 1 (Eq. 3, Eq. 15) bounds sup |P″ − P′| by L·v; the proof's step 2 (Eq. 13) is
the per-ordering shift sup|φ_s(w) − φ_s(w − d_I)| before the Lipschitz step; the reverse direction (Eq. 16)
bounds ψ = ‖E_{P″}[w] − E_{P′}[w]‖₂ by b·a, b the sup-norm and a = ∫_W ‖w‖₂ dw over a bounded support W.

A sup-norm is taken on a grid fine relative to s and then refined by a local optimiser from the best grid
points; a grid can only under-estimate a supremum, which is why the refinement is there.

The module needs of a case only its weights (:class:`DensityCase`); a
:class:`~unrolling_lib.theory.lemma1.Lemma1Case` is one. Numerics only:
:mod:`unrolling_lib.figures.lemma1` draws the densities.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from scipy.optimize import minimize

from ..validation import ParameterError, check_instance, check_int, check_number, check_numbers

__all__ = [
    "DensityCase",
    "DensityCurves",
    "density_curves",
    "density_distances",
    "gaussian_lipschitz",
    "mixture_density",
    "shift_sup",
    "sup_abs_difference",
]

_CHUNK = 4_000_000  # grid points × centres evaluated at once
_NOISE_SCALES = (0.003, 0.01, 0.03, 0.1, 0.3)  # the quick profile's (lemma1.LEMMA1_DEFAULTS)


@runtime_checkable
class DensityCase(Protocol):
    """What the densities need of one enumerated case of §4.1: a :class:`~unrolling_lib.theory.lemma1.Lemma1Case`
    (from :func:`~unrolling_lib.theory.lemma1.lemma1_case`) is one."""

    n: int
    m: int
    dim: int
    w_full: np.ndarray  # w_I for every I, (n!^m, dim)
    unique_retrained: np.ndarray  # w_{I′} for each distinct I′, ((n−1)!^m, dim)
    update: np.ndarray  # u, (dim,)

    @property
    def d(self) -> np.ndarray:
        """d_I = w_I − w_{I′} for every I."""

    @property
    def w_unlearned(self) -> np.ndarray:
        """w_I + u_I for every I."""


# ----------------------------------------------------------------------------------------- densities
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


# ------------------------------------------------------------------------------------------- sup-norm
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


def _trapezoid_weights(axes: list[np.ndarray]) -> np.ndarray:
    """Quadrature weights of the trapezoid rule on the grid spanned by ``axes`` (flattened, 'ij' order)."""
    weights = np.ones(1)
    for ax in axes:
        w1 = np.full(len(ax), ax[1] - ax[0])
        w1[[0, -1]] *= 0.5
        weights = np.outer(weights, w1).reshape(-1)
    return weights


# ------------------------------------------------------------------------------------ one case's distances
def density_distances(case: DensityCase, scale: float) -> dict[str, float]:
    """The distances of Lemma 1, Corollary 1 and Eq. 16 for one ``case`` at one noise scale s.

    P, P′ and P″ are evaluated once on a common grid over all centres ± 6s; each sup-norm is then refined
    locally. The reverse direction (Eq. 16) integrates over that grid's box W. Keys, in this order:
    ``lipschitz`` (L of φ_s), ``d``, ``sup_norm`` = ‖P − P′‖∞, ``triangle_bound`` = mean_I sup|φ(w) − φ(w − d_I)|
    (Eq. 13 before the Lipschitz step), ``bound`` = L·d, ``ratio`` = sup_norm / bound; ``v``,
    ``sup_norm_unlearned`` = ‖P″ − P′‖∞, ``bound_unlearned`` = L·v, ``ratio_unlearned``; ``psi``,
    ``psi_on_box`` (ψ integrated over W), ``a`` and ``reverse_bound`` = b·a.
    """
    check_instance("case", case, DensityCase)
    scale = check_number("scale", scale)
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
        "lipschitz": lip, "d": d, "sup_norm": sup,
        "triangle_bound": float(shift_sup(d_norm, scale, case.dim).mean()),
        "bound": lip * d, "ratio": sup / (lip * d) if d > 0 else math.nan,
        "v": v, "sup_norm_unlearned": sup_u, "bound_unlearned": lip * v,
        "ratio_unlearned": sup_u / (lip * v) if v > 0 else math.nan,
        "psi": psi, "psi_on_box": psi_box, "a": a, "reverse_bound": sup_u * a,
    }


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


def density_curves(case: DensityCase, noise_scales: Sequence[float] = _NOISE_SCALES, *,
                   points: int = 400) -> list[DensityCurves]:
    """The three densities of Lemma 1 and Corollary 1 for a 1-D ``case`` (a
    :class:`~unrolling_lib.theory.lemma1.Lemma1Case`), one :class:`DensityCurves` per noise scale, each on
    ``points`` evenly spaced weights. The noise scales default to the quick profile's."""
    check_instance("case", case, DensityCase)
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
