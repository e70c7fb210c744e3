"""The binary toy classifier of §6.2: how the SD loss (Eq. 10) shrinks the weight change ‖w_t − w₀‖.

A linear model ``M(x) = w x`` with a 2 × k weight matrix sees one point ``x`` of label 0; its outputs are
``a = w₁·x`` and ``b = w₂·x``. Eq. 11 writes the SD loss as a function of (a, b), and it depends on the margin
``d = a − b`` only:

    L(a, b) = log(1 + e^{−d}) + γ · c · |d|.

**The coefficient c** (:data:`SD_COEFFICIENT`) depends on the scaling of the SD term (``losses.SCALINGS``). Under
Eq. 10 as printed (``"equation"``) the term is γ times the population std of the two outputs, whose deviations
from their mean (a + b)/2 are ±d/2, so the std is |d|/2 and c = 1/2. The released code (``"code"``) adds
γ · Σ_i std_unbiased(logits_i) / (B·C); for B = 1 sample and C = 2 classes the unbiased std is
sqrt(2·(d/2)²/(2 − 1)) = |d|/√2, divided by C = 2: c = 1/(2√2).

Every function here defaults to ``losses.DEFAULT_SCALING`` (``"code"``, the scaling of the paper's γ grids), as
the rest of the library does. The §6.2 chapter passes ``"equation"`` explicitly (``TOY_DEFAULTS``), because the
paper states its analysis of Eq. 11, d* = log(2/γ − 1) and the threshold γ < 1, for Eq. 10 as printed.

What the chapter shows, computed here (its figures are in :mod:`unrolling_lib.figures.toy`):

- Eq. 11 in closed form (:func:`toy_sd_loss`) and its minimum along d (:func:`toy_sd_minimum`), checked against
  a numeric minimiser and the point where the slope changes sign (:func:`minimum_check`);
- the loss landscape over an (a, b) grid (Figure 6) and its negative gradient field (Figure 5);
- the minimum-norm weight update that moves d by ε (Eq. 12), in closed form and numerically (:func:`min_norm_check`);
- a training demonstration: plain SGD from constant weights (so a = b exactly) for several γ (:func:`train_toy`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.optimize import brentq, minimize, minimize_scalar
from scipy.special import expit

from ..losses import DEFAULT_SCALING, SCALINGS, check_scaling, sd_loss
from ..validation import ParameterError, check_choice, check_int, check_keys, check_number, check_numbers

__all__ = [
    "SD_COEFFICIENT", "SLIDER_GAMMAS", "TOY_DEFAULTS", "MinNormCheck", "ToyTraining",
    "check_gamma_grid", "check_toy_params", "ordered_scalings", "toy_sd_loss", "toy_sd_minimum",
    "landscape", "loss_slope", "loss_gradient", "gradient_field", "gradient_flip", "numeric_minimum", "minimum_check",
    "min_norm_update", "min_norm_squared", "min_norm_update_numeric", "min_norm_check", "min_norm_point",
    "training_point", "d_step", "train_toy",
]

# The SD term of Eq. 11 is γ · SD_COEFFICIENT[scaling] · |a − b| (derived in the module docstring).
SD_COEFFICIENT = {"equation": 0.5, "code": 1.0 / (2.0 * math.sqrt(2.0))}

# γ for the static sliders: [0, 2], finer around 1 (the equation's threshold) and √2 (the code's).
SLIDER_GAMMAS: tuple[float, ...] = (
    0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2,
    1.3, 1.35, 1.4, 1.45, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0,
)

_QUICK: dict[str, Any] = {
    # Not losses.DEFAULT_SCALING: the paper's §6.2 analysis (Eq. 11, d* and its threshold γ < 1) is stated for
    # Eq. 10 as printed, so the chapter trains and shows that scaling first (the code's is one button away).
    "scaling": "equation",
    "gammas": [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0],  # training demonstration
    "steps": 400,
    "lr": 0.05,
    "features": 8,  # k: the model is a 2 × k matrix
    "init": 0.1,  # every weight starts at this constant, so a₀ = b₀
    "slider_gammas": list(SLIDER_GAMMAS),
    "grid": 41,  # landscape resolution (grid × grid)
    "arrows": 15,  # gradient-field resolution (arrows × arrows)
    "extent": 4.0,  # a, b ∈ [−extent, extent]
}
TOY_DEFAULTS: dict[str, dict[str, Any]] = {
    "quick": dict(_QUICK),
    "colab": dict(_QUICK),
    "paper": {**_QUICK, "gammas": [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.25, 1.5, 2.0], "steps": 2000,
              "grid": 61, "arrows": 21},
    "smoke": {**_QUICK, "gammas": [0.0, 0.5, 2.0], "steps": 50, "grid": 11, "arrows": 5},
}


# ------------------------------------------------------------------------------------------------ checks
def check_gamma_grid(name: str, gammas: Any) -> list[float]:
    """A list of γ to train or draw, one run or frame each: non-empty, finite, ≥ 0 and distinct; returns floats."""
    return check_numbers(name, gammas, inclusive=True, distinct=True)


def _check_resolution(name: str, points: Any) -> int:
    """Points along each axis of a grid over [−extent, extent] (``grid``, ``arrows``): at least two."""
    return check_int(name, points, 2)


def _check_extent(extent: Any) -> float:
    return check_number("extent", extent)


def _check_features(features: Any) -> int:
    return check_int("features", features, 1)


def _check_init(init: Any) -> float:
    return check_number("init", init, low=-math.inf)  # any finite constant, of either sign


def check_toy_params(**params: Any) -> dict[str, Any]:
    """Check the §6.2 parameters (the keys of :data:`TOY_DEFAULTS`) before any work; return them normalised
    (Python ints, floats, γ as lists of floats). The one set of rules: :func:`train_toy`, the landscape and
    gradient-field functions and the sliders of :mod:`unrolling_lib.figures.toy` apply the same checks, and the
    chapter's ``setup(..., check=check_toy_params)`` too."""
    check_keys("§6.2", params, _QUICK, kind="toy classifier")
    q = params
    return {
        "scaling": check_scaling(q["scaling"]),
        "gammas": check_gamma_grid("gammas", q["gammas"]),
        "steps": check_int("steps", q["steps"], 1),
        "lr": check_number("lr", q["lr"]),
        "features": _check_features(q["features"]),
        "init": _check_init(q["init"]),
        "slider_gammas": check_gamma_grid("slider_gammas", q["slider_gammas"]),
        "grid": _check_resolution("grid", q["grid"]),
        "arrows": _check_resolution("arrows", q["arrows"]),
        "extent": _check_extent(q["extent"]),
    }


def ordered_scalings(first_scaling: str = DEFAULT_SCALING) -> tuple[str, ...]:
    """All of ``losses.SCALINGS``, ``first_scaling`` first: the order of a table's rows and a figure's buttons."""
    check_choice("first_scaling", first_scaling, SCALINGS)
    return (first_scaling, *(s for s in SCALINGS if s != first_scaling))


# ------------------------------------------------------------------------------------- Eq. 11 closed form
def toy_sd_loss(a: Any, b: Any, gamma: float, scaling: str = DEFAULT_SCALING) -> Any:
    """Eq. 11: the SD loss of the binary toy classifier at outputs ``a``, ``b`` (label 0).

    log(1 + e^{b−a}) + γ·c·|a − b| with c = ``SD_COEFFICIENT[scaling]``. Works elementwise on floats, numpy
    arrays (returns numpy) and torch tensors (returns torch, differentiable).
    """
    check_scaling(scaling)
    coeff = check_number("gamma", gamma, inclusive=True) * SD_COEFFICIENT[scaling]
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        a_t = torch.as_tensor(a)
        b_t = torch.as_tensor(b, dtype=a_t.dtype if a_t.is_floating_point() else None)
        return torch.nn.functional.softplus(b_t - a_t) + coeff * (a_t - b_t).abs()
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    value = np.logaddexp(0.0, -d) + coeff * np.abs(d)
    return float(value) if value.ndim == 0 else value


def toy_sd_minimum(gamma: Any, scaling: str = DEFAULT_SCALING) -> Any:
    """The d = a − b where Eq. 11 is smallest.

    Along d the loss is log(1 + e^{−d}) + γc|d|: decreasing for d < 0, with slope −1/(1+e^d) + γc for
    d > 0 and subgradient [−1/2 − γc, −1/2 + γc] at 0. Hence d* = log(1/(γc) − 1) when γc < 1/2 and d* = 0
    otherwise: log(2/γ − 1) for γ < 1 under ``"equation"``, log(2√2/γ − 1) for γ < √2 under ``"code"``.
    γ = 0 gives +inf (cross entropy alone has no minimum). Accepts a float or an array of γ.
    """
    check_scaling(scaling)
    if np.ndim(gamma) == 0:
        check_number("gamma", gamma.item() if isinstance(gamma, np.ndarray) else gamma, inclusive=True)
    else:
        check_numbers("gamma", np.ravel(gamma), inclusive=True)
    gc = np.asarray(gamma, dtype=np.float64) * SD_COEFFICIENT[scaling]
    with np.errstate(divide="ignore"):
        d = np.where(gc < 0.5, np.log(np.where(gc < 0.5, 1.0 / gc - 1.0, 1.0)), 0.0)
    return float(d) if d.ndim == 0 else d


# ------------------------------------------------------------------------------------- Eq. 11 landscape
def _axis(grid: int, extent: float, name: str = "grid") -> np.ndarray:
    """The values of a (or b) on a grid: ``grid`` points evenly spaced over [−extent, extent]; ``name``: the
    caller's name for ``grid``."""
    grid, extent = _check_resolution(name, grid), _check_extent(extent)
    return np.linspace(-extent, extent, grid)


def landscape(gamma: float, scaling: str = DEFAULT_SCALING, *, grid: int = 41,
              extent: float = 4.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eq. 11 over a grid of (a, b) (Figure 6): ``(a, b, L)`` with ``L[i, j] = L_SD(a[j], b[i])``."""
    gamma = check_number("gamma", gamma, inclusive=True)
    check_scaling(scaling)
    a = _axis(grid, extent)
    big_a, big_b = np.meshgrid(a, a)
    return a, a.copy(), np.asarray(toy_sd_loss(big_a, big_b, gamma, scaling=scaling), dtype=float)


def loss_slope(d: np.ndarray | float, gamma: float, scaling: str = DEFAULT_SCALING) -> np.ndarray:
    """dL/dd of Eq. 11 along d = a − b: ``−1/(1 + e^d) + γ·c·sign(d)`` with c = ``SD_COEFFICIENT[scaling]``.

    At d = 0 the SD term has a kink; there the slope is the subgradient of smallest magnitude,
    ``min(0, γc − 1/2)``, i.e. the direction steepest descent takes.
    """
    gamma = check_number("gamma", gamma, inclusive=True)
    check_scaling(scaling)
    d = np.asarray(d, dtype=float)
    c = gamma * SD_COEFFICIENT[scaling]
    slope = -expit(-d) + c * np.sign(d)
    return np.where(d == 0, min(0.0, c - 0.5), slope)


def loss_gradient(a: np.ndarray | float, b: np.ndarray | float, gamma: float,
                  scaling: str = DEFAULT_SCALING) -> tuple[np.ndarray, np.ndarray]:
    """(∂L/∂a, ∂L/∂b) of Eq. 11; since L depends on a − b only, ∂L/∂b = −∂L/∂a."""
    slope = loss_slope(np.asarray(a, dtype=float) - np.asarray(b, dtype=float), gamma, scaling)
    return slope, -slope


def gradient_field(gamma: float, scaling: str = DEFAULT_SCALING, *, arrows: int = 15,
                   extent: float = 4.0) -> pd.DataFrame:
    """The negative gradient −∇L of Eq. 11 on a grid of arrows (Figure 5): columns a, b, da, db, slope.

    The b-axis is shifted by half a cell so no arrow sits on the kink a = b.
    """
    a = _axis(arrows, extent, "arrows")
    b = a + (a[1] - a[0]) / 2
    big_a, big_b = (m.ravel() for m in np.meshgrid(a, b))
    ga, gb = loss_gradient(big_a, big_b, gamma, scaling)
    return pd.DataFrame({"a": big_a, "b": big_b, "da": -ga, "db": -gb, "slope": ga})


def gradient_flip(gamma: float, scaling: str = DEFAULT_SCALING, *, extent: float = 40.0, points: int = 801) -> float:
    """Where −∇L flips direction along d = a − b (Figure 5), found numerically; ``inf`` when it never does.

    Scans the slope for a change from negative to non-negative and refines the bracket with Brent's method.
    """
    check_number("extent", extent)
    check_int("points", points, 3)
    d = np.linspace(-extent, extent, 2 * (points // 2) + 1)  # odd: d = 0 is on the grid
    s = loss_slope(d, gamma, scaling)
    hits = np.flatnonzero((s[:-1] < 0) & (s[1:] >= 0))
    if not hits.size:
        return math.inf
    i = int(hits[0])
    if s[i + 1] == 0:
        return float(d[i + 1])
    return float(brentq(lambda t: float(loss_slope(t, gamma, scaling)), d[i], d[i + 1], xtol=1e-12))


def numeric_minimum(gamma: float, scaling: str = DEFAULT_SCALING, *, bound: float = 50.0) -> float:
    """The minimiser of Eq. 11 along d = a − b by a bounded scalar search (an independent check of d*)."""
    gamma = check_number("gamma", gamma, inclusive=True)
    check_scaling(scaling)
    check_number("bound", bound)
    found = minimize_scalar(lambda t: float(toy_sd_loss(t, 0.0, gamma, scaling=scaling)),
                            bounds=(-bound, bound), method="bounded", options={"xatol": 1e-10})
    return float(found.x)


def minimum_check(gammas: Sequence[float] = (0.1, 0.5, 0.9, 1.0, 1.2, 1.5, 2.0), *,
                  first_scaling: str = DEFAULT_SCALING) -> pd.DataFrame:
    """The minimum of Eq. 11 along d = a − b three ways, for each scaling (``first_scaling``'s rows first) and γ.

    Columns: ``scaling``, ``gamma``, ``d_star`` (the closed form, :func:`toy_sd_minimum`), ``numeric_minimiser``
    (:func:`numeric_minimum`) and ``slope_sign_change`` (:func:`gradient_flip`).
    """
    gammas = check_numbers("gammas", gammas, inclusive=True)
    rows = [{"scaling": s, "gamma": g, "d_star": toy_sd_minimum(g, scaling=s),
             "numeric_minimiser": numeric_minimum(g, s), "slope_sign_change": gradient_flip(g, s)}
            for s in ordered_scalings(first_scaling) for g in gammas]
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ Eq. 12 minimum-norm update
def _check_x(x: np.ndarray | Sequence[float]) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)) or not np.any(x):
        raise ParameterError(f"x has shape {x.shape}; use a finite, non-zero 1-D vector")
    return x


def _check_eps(eps: float) -> float:
    return check_number("eps", eps, low=-math.inf)  # any finite margin, of either sign


def min_norm_update(x: np.ndarray | Sequence[float], eps: float) -> tuple[np.ndarray, np.ndarray]:
    """The solution of Eq. 12: ``u₁ = εx / (2‖x‖²)``, ``u₂ = −u₁`` (the smallest change moving a − b by ε)."""
    x, eps = _check_x(x), _check_eps(eps)
    u1 = eps * x / (2.0 * float(x @ x))
    return u1, -u1


def min_norm_squared(x: np.ndarray | Sequence[float], eps: float) -> float:
    """‖u₁‖² + ‖u₂‖² at the solution of Eq. 12: ε² / (2‖x‖²) (the paper prints (ε²/2)‖x‖², a typo)."""
    x, eps = _check_x(x), _check_eps(eps)
    return eps ** 2 / (2.0 * float(x @ x))


def min_norm_update_numeric(x: np.ndarray | Sequence[float], eps: float,
                            method: str = "kkt") -> tuple[np.ndarray, np.ndarray]:
    """Eq. 12 solved numerically: the KKT linear system (``"kkt"``) or SLSQP with an equality constraint."""
    x, eps = _check_x(x), _check_eps(eps)
    check_choice("method", method, ("kkt", "slsqp"))
    k = x.size
    c = np.concatenate([x, -x])  # the constraint (u₁ − u₂)·x = ε is c·u = ε with u = (u₁, u₂)
    if method == "kkt":
        # Stationarity of ‖u‖² + λ(c·u − ε): 2u + λc = 0; feasibility: c·u = ε.
        kkt = np.block([[2.0 * np.eye(2 * k), c[:, None]], [c[None, :], np.zeros((1, 1))]])
        u = np.linalg.solve(kkt, np.concatenate([np.zeros(2 * k), [eps]]))[: 2 * k]
    else:
        found = minimize(lambda u: float(u @ u), np.zeros(2 * k), jac=lambda u: 2 * u, method="SLSQP",
                         constraints=[{"type": "eq", "fun": lambda u: c @ u - eps, "jac": lambda u: c}],
                         options={"ftol": 1e-14, "maxiter": 200})
        u = found.x
    return u[:k], u[k:]


@dataclass(frozen=True)
class MinNormCheck:
    """Eq. 12 at one (x, ε): the closed form, both numeric solutions and the sizes the chapter prints."""

    x: np.ndarray
    eps: float
    u1: np.ndarray  # closed form; u₂ = −u₁
    u2: np.ndarray
    numeric: dict[str, np.ndarray]  # method → (u₁, u₂) concatenated
    max_deviation: float  # largest |numeric − closed form| entry over both methods
    margin: float  # (u₁ − u₂)·x: ε when the update reaches the minimum
    size: float  # ‖u₁‖² + ‖u₂‖² of the closed form: ε²/(2‖x‖²)
    printed_size: float  # (ε²/2)‖x‖², the size as the paper prints it

    @property
    def x_norm_squared(self) -> float:
        return float(self.x @ self.x)


def min_norm_check(x: np.ndarray | Sequence[float], eps: float) -> MinNormCheck:
    """Solve Eq. 12 in closed form, by its KKT system and by SLSQP, and measure how far the solutions differ."""
    x, eps = _check_x(x), _check_eps(eps)
    u1, u2 = min_norm_update(x, eps)
    closed = np.concatenate([u1, u2])
    numeric = {m: np.concatenate(min_norm_update_numeric(x, eps, method=m)) for m in ("kkt", "slsqp")}
    deviation = max(float(np.max(np.abs(u - closed))) for u in numeric.values())
    return MinNormCheck(x=x, eps=eps, u1=u1, u2=u2, numeric=numeric, max_deviation=deviation,
                        margin=float((u1 - u2) @ x), size=float(u1 @ u1 + u2 @ u2),
                        printed_size=eps ** 2 / 2 * float(x @ x))


def min_norm_point(features: int = 8, seed: int = 0) -> np.ndarray:
    """The point of the chapter's Eq. 12 check: N(0, I) from ``numpy.random.default_rng(seed)``.

    Not :func:`training_point` (another generator and N(0, I/k)): the chapter has printed its Eq. 12 numbers
    from this draw, so it stays until a change that may move those numbers makes the two one.
    """
    _check_features(features)
    check_int("seed", seed, 0)
    return np.random.default_rng(seed).normal(size=features)


# ----------------------------------------------------------------------------- training demonstration
def training_point(features: int = 8, seed: int = 0) -> np.ndarray:
    """The one training point x of :func:`train_toy`: N(0, I/k) from ``torch.Generator().manual_seed(seed)``."""
    _check_features(features)
    check_int("seed", seed, 0)
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(features, generator=gen, dtype=torch.float64) / math.sqrt(features)).numpy()


@dataclass
class ToyTraining:
    """Plain SGD on one point from constant weights (§6.2): trajectories, final values and the set-up."""

    trajectories: pd.DataFrame  # step, gamma, a, b, d, loss, grad_norm, weight_change
    final: pd.DataFrame  # one row per γ: the last step, with d_star, the Eq. 12 sizes and d_step_bound
    x: np.ndarray
    lr: float
    steps: int
    init: float
    scaling: str


def d_step(lr: float, x: np.ndarray, slope: float) -> float:
    """How far one SGD step moves d = a − b: ``lr · 2‖x‖² · |dL/dd|`` (both rows of w move along ±x)."""
    x = _check_x(x)
    lr = check_number("lr", lr)
    slope = check_number("slope", slope, low=-math.inf)
    return float(lr * 2.0 * float(x @ x) * abs(slope))


def _train_one(x: torch.Tensor, gamma: float, steps: int, lr: float, init: float, scaling: str) -> pd.DataFrame:
    """SGD on (x, label 0) with ``losses.sd_loss``; one row per step (before its update) and one after the last."""
    w = torch.full((2, x.numel()), float(init), dtype=torch.float64, requires_grad=True)
    w0 = w.detach().clone()
    target = torch.zeros(1, dtype=torch.long)
    rows = []
    for step in range(steps + 1):
        logits = (w @ x).unsqueeze(0)
        loss = sd_loss(logits, target, gamma, scaling=scaling)
        (grad,) = torch.autograd.grad(loss, w)
        a, b = (float(v) for v in logits.detach()[0])
        rows.append((step, gamma, a, b, a - b, loss.item(), float(grad.norm()), float((w.detach() - w0).norm())))
        if step < steps:
            with torch.no_grad():
                w -= lr * grad
    return pd.DataFrame(rows, columns=["step", "gamma", "a", "b", "d", "loss", "grad_norm", "weight_change"])


def train_toy(gammas: Sequence[float], *, steps: int = 400, lr: float = 0.05, features: int = 8,
              init: float = 0.1, scaling: str = DEFAULT_SCALING, seed: int = 0) -> ToyTraining:
    """Train the 2 × k linear model of §6.2 on one point, once per γ, from the same constant weights.

    ``x`` is :func:`training_point` (features, seed). Every run starts at a₀ = b₀ (so the SD term starts at its
    kink) and takes ``steps`` plain SGD steps of size ``lr`` on ``losses.sd_loss``. The arguments are checked by
    the rules of :func:`check_toy_params` (the γ distinct: one run each).
    """
    gammas = check_gamma_grid("gammas", gammas)
    steps = check_int("steps", steps, 1)
    lr = check_number("lr", lr)
    init = _check_init(init)
    check_scaling(scaling)
    x = training_point(features, seed)
    x_t = torch.from_numpy(x)
    traj = pd.concat([_train_one(x_t, g, steps, lr, init, scaling) for g in gammas], ignore_index=True)
    return ToyTraining(traj, _final(traj, x, lr, scaling), x, lr, steps, init, scaling)


def _final(traj: pd.DataFrame, x: np.ndarray, lr: float, scaling: str) -> pd.DataFrame:
    """The last step of each run, with d*, the Eq. 12 sizes and one SGD step's reach in d."""
    final = traj[traj["step"] == traj["step"].max()].reset_index(drop=True)
    d0 = traj[traj["step"] == 0].set_index("gamma")["d"]
    final["d_star"] = [float(toy_sd_minimum(g, scaling=scaling)) for g in final["gamma"]]
    final["min_norm_to_final"] = [math.sqrt(min_norm_squared(x, d - d0[g])) for g, d in
                                  zip(final["gamma"], final["d"], strict=True)]
    final["min_norm_to_minimum"] = [math.sqrt(min_norm_squared(x, s - d0[g])) if math.isfinite(s) else math.inf
                                    for g, s in zip(final["gamma"], final["d_star"], strict=True)]
    # |dL/dd| ≤ 1 + γc everywhere (the CE slope is below 1 in size), so this bounds one step's move in d
    final["d_step_bound"] = [d_step(lr, x, 1.0 + g * SD_COEFFICIENT[scaling]) for g in final["gamma"]]
    return final
