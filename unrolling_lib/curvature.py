"""Curvature: the Hessian of a batch's loss as one linear operator, its top eigenvalue by Lanczos, and σ (§5.2).

The unlearning error (Eq. 9) needs σ, "the first singular value of the Hessian" of the loss on a batch,
with respect to all trainable parameters. For a symmetric matrix the largest singular value is the largest
|λ|, so :func:`top_eigenvalue` returns the signed eigenvalue of largest magnitude and :func:`sigma` turns it
into σ: ``sigma_mode="spectral"`` (default) gives |λ|, ``"paper"`` gives sqrt(λ) as the released code did.

The operator
    :class:`HVPOperator` is H, the Hessian of ``loss_fn(model(inputs), targets)`` (whatever reduction
    ``loss_fn`` applies; the library's losses are batch means) with respect to the trainable parameters
    (``requires_grad``, in ``model.parameters()`` order; BatchNorm buffers are not parameters), at the
    weights the model holds when the operator is built, in the mode the model is in then (build it inside
    :func:`~unrolling_lib.params.eval_mode` for BatchNorm's running statistics, as :func:`top_eigenvalue`
    does), in the parameters' dtype. H is symmetric and so its own adjoint. ``H @ v`` takes a flat vector,
    ``H @ M`` a matrix of column vectors, and :meth:`HVPOperator.to_scipy` hands SciPy a
    ``scipy.sparse.linalg.LinearOperator`` (``eigsh``, ``cg``, …).

How the products are computed
    Double backward through a cached first-order graph: the gradient is computed once with
    ``create_graph=True`` and every product H·v is one more backward pass through it. On a CPU this
    measured faster than ``torch.func`` forward-over-reverse (``jvp`` of ``grad``) on both a 6k-parameter
    CNN on 128 digits and the CIFAR ResNet-18 on 16 images: forward-over-reverse repeats the forward and
    backward passes for every product.

How the eigenvalue is found
    Lanczos with full re-orthogonalisation, not power iteration. Power iteration stopped on a relative
    change below 1e-3 (PyHessian's rule) typically stops 1e-3 to 1e-2 short of the eigenvalue (more when
    the top eigenvalues are close), because the change per step is small long before the error is. Here
    the stopping rule estimates the error itself: with Ritz value θ, residual r = β_k·|s_k| and gap g to
    the next Ritz value, the eigenvalue error is about min(r, r²/g); iteration stops when that, and the
    change of θ over the last step, are below ``tol/5``·|θ| (or r alone is, a rigorous bound). The margin
    and the second test cover the gap being over-estimated while the other Ritz values are still far from
    their eigenvalues. A warm start from a previous eigenvector (``init``) saves products: about half
    after one SGD step in ``python -m unrolling_lib bench hessian``. Scalar products are accumulated by
    ``torch.sum``: on a CPU, float32 ``torch.dot``/``torch.linalg.norm`` over millions of entries are off
    by up to 1e-2.

What no stopping rule can see
    A Krylov method only finds eigenvectors its start has a component along. Between two σ samples tens
    of SGD steps apart the top two eigenvalues can swap, and a new top eigenvector can rise from deeper in
    the spectrum; the previous eigenvector then has almost no component along it, and the iteration
    converges, with a small error estimate, to what is now the second eigenvalue (a few per cent low when
    the two are close). ``fresh`` mixes the cold start's vector (random plus gradient) into a warm start so
    that the new top eigenvector is represented; it lowers that risk without removing it (numbers in
    :class:`~unrolling_lib.unlearning_error.UnlearningErrorMonitor`). A cold start can end the same way, less
    often, when the top two eigenvalues are close and the start's component along the first is small; only
    more products (a smaller ``tol``) make it rarer.

:func:`top_eigenvalue` puts the model in eval mode (BatchNorm uses its running statistics, so the loss is a
fixed function of the weights and no running statistic is updated) and restores every module's own
train/eval flag afterwards, also when an error is raised. The model's ``.grad`` fields are not touched.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator
from torch import nn

from .losses import LossFn, batch_loss
from .params import eval_mode, flatten, trainable_parameters, unflatten
from .validation import ParameterError, check_choice, check_int, check_number

__all__ = ["DEFAULT_SIGMA_MODE", "SIGMA_MODES", "EigenResult", "HVPOperator", "check_batch", "hvp", "sigma",
           "top_eigenvalue"]

SIGMA_MODES = ("spectral", "paper")
DEFAULT_SIGMA_MODE = "spectral"  # |λ|: the spectral norm Eq. 8 needs; "paper" is the released code's sqrt(λ)
_SAFETY = 0.2  # the estimated error must be below tol * _SAFETY relative
_MAX_BASIS = 32  # Lanczos vectors kept before a restart from the current Ritz vector


@dataclass
class EigenResult:
    """The outcome of :func:`top_eigenvalue`.

    ``value``: the signed eigenvalue of largest magnitude. ``vector``: its unit eigenvector as a flat
    tensor over the trainable parameters (in ``model.parameters()`` order), to pass as ``init`` next time.
    ``hvp_count``: Hessian-vector products used. ``converged``: whether the error estimate met ``tol``.
    ``error_estimate``: the estimated relative error of ``value``.
    """

    value: float
    vector: torch.Tensor
    hvp_count: int
    converged: bool
    error_estimate: float


class HVPOperator:
    """H, the Hessian of one batch's loss over the trainable parameters, as a symmetric linear operator.

    ``H = ∇²_w loss_fn(model(inputs), targets)`` at the weights ``model`` holds now, in the mode it is in
    now; shape ``(numel, numel)`` with ``numel`` the number of trainable parameters, in their dtype and on
    their device. Building it costs one forward and one backward pass (``create_graph=True``); each product
    is then one backward pass through that graph. ``H @ v`` (or ``H(v)``) for a flat vector, ``H @ M`` for a
    ``(numel, k)`` matrix of columns; :meth:`to_scipy` for SciPy. ``count`` is the number of Hessian-vector
    products so far (a matrix of k columns counts k). ``gradient`` is the flat gradient of the loss.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, inputs: torch.Tensor, targets: torch.Tensor):
        self.params = trainable_parameters(model)
        self.numel = sum(p.numel() for p in self.params)
        self.shape = (self.numel, self.numel)
        self.dtype = self.params[0].dtype
        self.device = self.params[0].device
        self.count = 0
        loss = batch_loss(loss_fn, model(inputs), targets)
        grads = torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)
        self.gradient = flatten([g.detach() if g is not None else torch.zeros_like(p)
                                 for g, p in zip(grads, self.params, strict=True)])
        # Entries that do not depend on the parameters (or unused parameters) contribute nothing.
        self._grads = [g for g in grads if g is not None and g.requires_grad]
        self._idx = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]

    def matvec(self, vector: torch.Tensor) -> torch.Tensor:
        """H·``vector`` for a flat vector of length ``numel``."""
        if vector.shape != (self.numel,):
            raise ParameterError(f"vector must be flat with {self.numel} entries; got shape {tuple(vector.shape)}")
        self.count += 1
        if not self._grads:
            return torch.zeros(self.numel, dtype=self.dtype, device=self.device)
        pieces = unflatten(vector.to(device=self.device, dtype=self.dtype), self.params)
        outs = torch.autograd.grad(
            self._grads, self.params, grad_outputs=[pieces[i] for i in self._idx],
            retain_graph=True, allow_unused=True,
        )
        return flatten([o if o is not None else torch.zeros_like(p) for o, p in zip(outs, self.params, strict=True)])

    def matmat(self, matrix: torch.Tensor) -> torch.Tensor:
        """H·``matrix`` for a ``(numel, k)`` matrix, column by column."""
        if matrix.dim() != 2 or matrix.shape[0] != self.numel:
            raise ParameterError(f"matrix must have shape ({self.numel}, k); got {tuple(matrix.shape)}")
        return torch.stack([self.matvec(matrix[:, j]) for j in range(matrix.shape[1])], dim=1)

    def __matmul__(self, other: torch.Tensor) -> torch.Tensor:
        return self.matvec(other) if other.dim() == 1 else self.matmat(other)

    __call__ = matvec

    def to_scipy(self) -> LinearOperator:
        """H as a ``scipy.sparse.linalg.LinearOperator`` on float64 NumPy vectors (symmetric: ``rmatvec`` is
        ``matvec``). Products are computed in the parameters' dtype and returned as float64."""
        def product(v: np.ndarray) -> np.ndarray:
            x = torch.as_tensor(np.asarray(v, dtype=np.float64).reshape(-1), device=self.device, dtype=self.dtype)
            return self.matvec(x).detach().to("cpu", torch.float64).numpy()

        def products(m: np.ndarray) -> np.ndarray:
            return np.stack([product(m[:, j]) for j in range(m.shape[1])], axis=1)

        return LinearOperator(self.shape, matvec=product, rmatvec=product, matmat=products, rmatmat=products,
                              dtype=np.float64)


def hvp(model: nn.Module, loss_fn: LossFn, inputs: torch.Tensor, targets: torch.Tensor,
        vector: torch.Tensor) -> torch.Tensor:
    """One Hessian-vector product H·``vector`` (flat, over trainable parameters), model in eval mode.

    For many products on the same batch, build an :class:`HVPOperator` once instead.
    """
    with eval_mode(model):
        return HVPOperator(model, loss_fn, inputs, targets).matvec(vector.detach())


def top_eigenvalue(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    tol: float = 1e-3,
    max_iter: int = 100,
    init: torch.Tensor | EigenResult | None = None,
    seed: int = 0,
    fresh: float = 0.0,
) -> EigenResult:
    """The Hessian's eigenvalue of largest magnitude on one batch, by Lanczos (σ of §5.2 and Eq. 9).

    ``tol`` is the relative accuracy wanted for the eigenvalue; ``max_iter`` caps the Hessian-vector
    products; ``init`` (a flat vector or a previous :class:`EigenResult`) warm-starts the iteration, e.g.
    from the eigenvector found a few SGD steps earlier. Without ``init`` the start is a random vector drawn
    from a private generator seeded with ``seed`` (the global random state is left alone), plus the
    normalised gradient of the batch, which tends to lie in the top eigenspace (Gur-Ari et al., 2018) and
    saves a few products; the random part keeps every eigenvector represented in the start. ``fresh`` (≥ 0,
    used with ``init``): the weight of that cold start vector added to the unit ``init`` before the start
    is normalised, so that a warm start that has turned away from the top eigenvector still contains it
    (see "What no stopping rule can see" above); 0 starts from ``init`` alone.
    """
    tol = check_number("tol", tol, high=1.0)
    max_iter = check_int("max_iter", max_iter, 1)
    fresh = check_number("fresh", fresh, inclusive=True)
    check_batch(inputs, targets)
    with eval_mode(model):
        op = HVPOperator(model, loss_fn, inputs, targets)
        if not torch.isfinite(op.gradient).all():
            raise ParameterError("model and batch give a loss gradient with nan or inf entries; σ is not defined "
                                 "there (check the weights and the batch)")
        v0 = _start_vector(op, init, seed, fresh)
        result = _lanczos(op, v0, float(tol), max_iter)
    if not math.isfinite(result.value):  # a Hessian with nan entries where the gradient was finite
        result.converged = False
    return result


def check_batch(inputs: torch.Tensor, targets: torch.Tensor) -> None:
    """``inputs`` and ``targets`` must be tensors holding the same, non-zero number of samples."""
    if not (isinstance(inputs, torch.Tensor) and isinstance(targets, torch.Tensor)):
        raise ParameterError("inputs and targets must be tensors")
    if len(inputs) == 0 or len(inputs) != len(targets):
        raise ParameterError(f"inputs and targets must hold the same, non-zero number of samples; got "
                             f"{len(inputs)} and {len(targets)}")


def _start_vector(op: HVPOperator, init: torch.Tensor | EigenResult | None, seed: int,
                  fresh: float = 0.0) -> torch.Tensor:
    if isinstance(init, EigenResult):
        init = init.vector
    if init is not None:
        v = init.detach().reshape(-1).to(device=op.device, dtype=op.dtype)
        if v.numel() != op.numel:
            raise ParameterError(f"init must have {op.numel} entries (trainable parameters); got {v.numel()}")
        if torch.isfinite(v).all() and _norm(v) > 0:
            v = v / _norm(v)
            if fresh > 0:
                v = v + fresh * _cold_vector(op, seed)
            return v / _norm(v)
    return _cold_vector(op, seed)


def _cold_vector(op: HVPOperator, seed: int) -> torch.Tensor:
    """The unit start without ``init``: a seeded random vector plus the normalised gradient."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.randn(op.numel, generator=gen, dtype=torch.float64).to(device=op.device, dtype=op.dtype)
    v = v / _norm(v)
    g_norm = _norm(op.gradient)
    if math.isfinite(g_norm) and g_norm > 0:
        v = v + op.gradient / g_norm
    return v / _norm(v)


def _dot(a: torch.Tensor, b: torch.Tensor) -> float:
    """a·b by ``torch.sum`` (a cascade/tree reduction). On a CPU, ``torch.dot`` and ``torch.linalg.norm``
    of float32 vectors with millions of same-sign terms (v·Hv near an eigenvector, ‖v‖²) drift by 1e-3 to
    1e-2 relative (measured on ResNet-18 sized vectors), which would bias every Ritz value as much."""
    return float(torch.sum(a * b))


def _norm(a: torch.Tensor) -> float:
    return math.sqrt(_dot(a, a))


class _Basis:
    """Orthonormal Lanczos vectors as rows of a matrix grown in chunks."""

    def __init__(self, n: int, like: torch.Tensor):
        self.rows = torch.empty(0, n, dtype=like.dtype, device=like.device)
        self.k = 0

    def append(self, v: torch.Tensor) -> None:
        if self.k == self.rows.shape[0]:  # grow: copy the k rows held, not the new empty ones
            grown = torch.empty(self.k + max(8, self.k), self.rows.shape[1], dtype=v.dtype, device=v.device)
            grown[:self.k] = self.rows[:self.k]
            self.rows = grown
        self.rows[self.k] = v
        self.k += 1

    def orthogonalise(self, w: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Remove from ``w`` (in place) its components along the basis: classical Gram-Schmidt, repeated
        once when it cancelled most of ``w``. Returns ``w`` and its norm."""
        q = self.rows[:self.k]
        before = _norm(w)
        for _ in range(2):
            w.addmv_(q.T, q @ w, alpha=-1.0)
            after = _norm(w)
            if after > 0.7 * before:
                break
            before = after
        return w, after

    def combine(self, coeffs: np.ndarray) -> torch.Tensor:
        c = torch.as_tensor(coeffs, dtype=self.rows.dtype, device=self.rows.device)
        return c @ self.rows[:self.k]


def _ritz(alphas: list[float], betas: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors of the k×k tridiagonal Lanczos matrix."""
    k = len(alphas)
    t = np.zeros((k, k))
    t.flat[::k + 1] = alphas  # the diagonal; the two off-diagonals below
    if k > 1:
        t.flat[1::k + 1] = betas[:k - 1]
        t.flat[k::k + 1] = betas[:k - 1]
    return np.linalg.eigh(t)


def _error_estimates(theta: np.ndarray, s: np.ndarray, beta: float, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Residual norms of every Ritz pair (θ ascending) and, for pair ``i`` (elsewhere the residual), the
    eigenvalue error estimate min(r, r²/gap) with the gap to its neighbours."""
    resid = abs(beta) * np.abs(s[-1, :])
    err = resid.copy()
    below = theta[i] - theta[i - 1] if i > 0 else math.inf
    above = theta[i + 1] - theta[i] if i + 1 < len(theta) else math.inf
    gap = min(below, above)
    if 0 < gap < math.inf:  # with a single Ritz value there is no gap: the estimate is the residual
        err[i] = min(resid[i], resid[i] ** 2 / gap)
    return resid, err


@dataclass
class _Step:
    """The state of the Lanczos iteration after one more Hessian-vector product."""

    theta: np.ndarray  # Ritz values, ascending
    s: np.ndarray  # eigenvectors of the tridiagonal matrix (columns)
    resid: np.ndarray  # residual norm of each Ritz pair
    err: np.ndarray  # entry i: the error estimate of Ritz value i (elsewhere the residual)
    i: int  # index of the Ritz value of largest magnitude
    basis: _Basis
    invariant: bool  # the Krylov space is invariant: the Ritz values are exact eigenvalues

    @property
    def value(self) -> float:
        return float(self.theta[self.i])

    @property
    def rel_error(self) -> float:
        return float(self.err[self.i] / max(abs(self.theta[self.i]), np.finfo(np.float64).tiny))


def _lanczos_steps(op: HVPOperator, v0: torch.Tensor) -> Iterator[_Step]:
    """Lanczos with full re-orthogonalisation; yields after every product; restarts after _MAX_BASIS."""
    q = v0
    while True:
        basis, alphas, betas = _Basis(op.numel, q), [], []
        q_prev, beta_prev = None, 0.0
        while True:
            basis.append(q)
            w = op.matvec(q)  # a new tensor: updated in place below
            alpha = _dot(w, q)
            w.sub_(q, alpha=alpha)
            if q_prev is not None:
                w.sub_(q_prev, alpha=beta_prev)
            w, beta = basis.orthogonalise(w)
            alphas.append(alpha)
            theta, s = _ritz(alphas, betas)
            i = int(np.argmax(np.abs(theta)))
            resid, err = _error_estimates(theta, s, beta, i)
            invariant = beta <= 1e-12 * max(abs(float(theta[i])), 1e-300) or basis.k >= op.numel
            step = _Step(theta, s, resid, err, i, basis, invariant)
            yield step
            if basis.k >= _MAX_BASIS or invariant:
                break
            betas.append(beta)
            q_prev, beta_prev, q = q, beta, w / beta
        # Restart from the current Ritz vector: memory stays at _MAX_BASIS vectors.
        q = basis.combine(step.s[:, step.i])
        q = q / _norm(q)


def _lanczos(op: HVPOperator, v0: torch.Tensor, tol: float, max_iter: int) -> EigenResult:
    previous = math.nan
    for step in _lanczos_steps(op, v0):
        if step.invariant or _converged(step, previous, tol * _SAFETY):
            return _result(step, op.count, True)
        previous = step.value
        if op.count >= max_iter:
            warnings.warn(f"top_eigenvalue: no convergence after max_iter={max_iter} Hessian-vector "
                          f"products (estimated relative error {step.rel_error:.1e})",
                          RuntimeWarning, stacklevel=3)
            return _result(step, op.count, False)
    raise AssertionError("unreachable")


def _converged(step: _Step, previous: float, rtol: float) -> bool:
    """The largest-|θ| Ritz value is accurate, and the other end of the spectrum cannot overtake it.

    Accurate means: its residual is below ``rtol``·|θ| (a rigorous bound), or both its error estimate
    min(r, r²/gap) and its change since the previous step are. The second test guards against the gap
    being over-estimated while the second Ritz value is still far from λ₂ (early steps of a warm start).
    """
    theta, resid, i = step.theta, step.resid, step.i
    scale = rtol * abs(theta[i])
    if resid[i] > scale and (step.err[i] > scale or not abs(theta[i] - previous) <= scale):
        return False
    j = 0 if i == len(theta) - 1 else len(theta) - 1  # the Ritz value at the opposite end
    return j == i or abs(theta[j]) + resid[j] < abs(theta[i])


def _result(step: _Step, count: int, converged: bool) -> EigenResult:
    vec = step.basis.combine(step.s[:, step.i])
    vec = vec / _norm(vec)
    return EigenResult(value=step.value, vector=vec.detach(), hvp_count=count, converged=converged,
                       error_estimate=step.rel_error)


def sigma(result: EigenResult | float, sigma_mode: str = DEFAULT_SIGMA_MODE) -> float:
    """σ of Eq. 8–9 from a :func:`top_eigenvalue` result (or its eigenvalue).

    ``"spectral"``: |λ|, the largest singular value of the symmetric Hessian (the default).
    ``"paper"``: sqrt(λ), what the released code computed from PyHessian's top eigenvalue; when λ < 0 the
    square root is undefined and this returns nan with a RuntimeWarning (so that a long sweep that samples σ
    every few hundred steps keeps running and the bad sample stays visible).
    """
    check_choice("sigma_mode", sigma_mode, SIGMA_MODES)
    value = result.value if isinstance(result, EigenResult) else float(result)
    if sigma_mode == "spectral":
        return abs(value)
    if value < 0:
        warnings.warn(f"sigma(sigma_mode='paper'): the top eigenvalue {value:.4g} is negative; sqrt is nan",
                      RuntimeWarning, stacklevel=2)
        return math.nan
    return math.sqrt(value)
