"""The expansion problem of §5.1 and the paths it compares: real SGD, first order, Eq. 4–5 and Eq. 6.

t steps of plain SGD from w₀ over the batches x̂₀ … x̂_{t−1} give w_t. With g_i = ∇L(w₀; x̂_i) and
H_i = ∇²L(w₀; x̂_i), all taken at the *initial* weights, the paper writes (Eq. 4–5)

    w_t ≈ w₀ − η Σ_{i<t} g_i + Σ_{i=1}^{t−1} f(i),    f(i) = −η H_i ( −η Σ_{j<i} g_j + Σ_{j<i} f(j) ),  f(0) = 0.

The recursion is SGD on the second-order Taylor model of every batch's loss around w₀: with
Δ_i = −η Σ_{j<i} g_j + Σ_{j<i} f(j) (the approximate w_i − w₀), Δ_{i+1} = Δ_i − η (g_i + H_i Δ_i). So its
error against real SGD comes from third and higher derivatives only and is O(η³); the first-order
approximation w₀ − η Σ g_i drops Σ f(i) = η² c_t + O(η³) and errs by O(η²). The η² part is Eq. 6,

    η² c_t = η² Σ_{i=1}^{t−1} H_i Σ_{j<i} g_j.

How it is computed. Gradients and real SGD use ``torch.func`` on the flat parameter vector: ``grad`` for g_i
and ``vmap`` of ``grad`` to advance every learning rate at once. Hessian-vector products H_i·v go through the
library's one HVP engine, :class:`unrolling_lib.curvature.HVPOperator` (double backward through a cached
gradient graph), built once per batch on a float64 copy of the model at w₀ and reused for every vector. Use
float64 so that rounding does not flatten the η³ slope at small η.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from ...curvature import HVPOperator
from ...data import BatchOrder, batch_tensors, load_digits_dataset
from ...losses import LossFn
from ...models import MODELS, build_model
from ...params import eval_mode, flat_weights, unflatten, with_weights
from ...validation import ParameterError, check_choice, check_int, check_numbers

__all__ = [
    "ExpansionProblem",
    "build_problem",
    "eta2_coefficients",
    "first_order_path",
    "gradients_at_w0",
    "hvp_at_w0",
    "problem_from",
    "second_order_path",
    "sgd_path",
]


class _Hessians:
    """H_i at w₀ for the batches asked for so far, all on one float64 copy of the model at w₀."""

    def __init__(self) -> None:
        self.model: nn.Module | None = None
        self.operators: dict[int, HVPOperator] = {}

    # The operators hold autograd graphs, which neither copy nor pickle: a copy starts empty and rebuilds them.
    def __deepcopy__(self, memo: dict[int, Any]) -> _Hessians:
        return _Hessians()

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()


@dataclass
class ExpansionProblem:
    """A model at w₀, a loss and the batches x̂₀ … x̂_{t−1} of a fixed order (float64 throughout).

    ``loss_on(w, x, y)`` is the loss of a batch at the flat weights w (a pure function, for ``torch.func``).
    :meth:`hvp_operator` is H_i at w₀, built on first use and kept: every product with H_i reuses its graph.
    Treat a problem as fixed once built: the kept operators belong to the w₀ and batches it started with
    (:meth:`head` for fewer batches).
    """

    model: nn.Module
    w0: torch.Tensor
    batches: list[tuple[torch.Tensor, torch.Tensor]]
    loss_fn: LossFn
    name: str = "model"
    _hessians: _Hessians = field(default_factory=_Hessians, init=False, repr=False, compare=False)

    @property
    def steps(self) -> int:
        """t, the number of batches (SGD steps) of the order."""
        return len(self.batches)

    def params(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """The flat vector as the model's named parameters (views, differentiable)."""
        names, like = zip(*self.model.named_parameters(), strict=True)
        return dict(zip(names, unflatten(flat, like, name="flat"), strict=True))

    def loss_on(self, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """L(w; (x, y)) at flat weights ``flat``."""
        return self.loss_fn(functional_call(self.model, self.params(flat), (x,)), y)

    def module_at(self, flat: torch.Tensor) -> nn.Module:
        """A copy of the model holding the flat weights ``flat`` (e.g. for ``curvature.top_eigenvalue``)."""
        return with_weights(self.model, flat, name="flat")

    def head(self, steps: int) -> ExpansionProblem:
        """The same problem over its first ``steps`` batches (H_i of a batch is the same: operators are shared)."""
        steps = check_int("steps", steps, 1, self.steps)
        sub = ExpansionProblem(self.model, self.w0, self.batches[:steps], self.loss_fn, self.name)
        sub._hessians = self._hessians
        return sub

    def hvp_operator(self, i: int) -> HVPOperator:
        """H_i = ∇²L(w₀; x̂_i) as an :class:`~unrolling_lib.curvature.HVPOperator` (built once per batch)."""
        cache = self._hessians
        if i not in cache.operators:
            if cache.model is None:
                cache.model = self.module_at(self.w0)
            x, y = self.batches[i]
            # No BatchNorm (problem_from refuses it), so the mode changes nothing; eval as everywhere else.
            with eval_mode(cache.model):
                cache.operators[i] = HVPOperator(cache.model, self.loss_fn, x, y)
        return cache.operators[i]


def problem_from(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]], loss_fn: LossFn, *,
                 name: str = "model") -> ExpansionProblem:
    """Wrap a model (its current weights are w₀) and explicit batches; everything is cast to float64.

    The expansion is over every parameter of the model: a frozen one (``requires_grad=False``) is made
    trainable in the float64 copy, so that w, g_i and H_i are over the same vector.
    """
    if not batches:
        raise ParameterError("batches must hold at least one (inputs, targets) pair")
    model = copy.deepcopy(model).to(torch.float64)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            raise ParameterError("model has BatchNorm; the expansion needs a loss that is a function of w alone")
    for p in model.parameters():
        p.requires_grad_(True)
    w0 = flat_weights(model)
    cast = [(x.to(torch.float64), y if not y.is_floating_point() else y.to(torch.float64)) for x, y in batches]
    return ExpansionProblem(model=model, w0=w0, batches=cast, loss_fn=loss_fn, name=name)


def build_problem(model: str = "mlp", *, subset: int = 256, batch_size: int = 16, steps: int = 12, seed: int = 0,
                  **model_kwargs: Any) -> ExpansionProblem:
    """A model from :func:`unrolling_lib.models.build_model` at its seeded initialisation (w₀), cross entropy,
    and the first ``steps`` batches of a seeded :class:`~unrolling_lib.data.BatchOrder` over ``subset`` digits.

    ``"mlp"`` is 64→32→10 with tanh (smooth); ``"smooth_cnn"`` is :class:`unrolling_lib.models.SmoothCNN`;
    ``"small_cnn"`` is the tiny ReLU CNN of the quick profile (piecewise smooth: its Taylor expansion only holds
    until a ReLU or a max-pool switches, which on digits happens within steps of ~1e-4).
    """
    steps = check_int("steps", steps, 1)
    data = load_digits_dataset(subset=subset, seed=seed, dtype=torch.float64)
    order = BatchOrder(len(data), batch_size, steps=steps, seed=seed)
    check_choice("model", model, tuple(MODELS))
    net = build_model(model, 10, seed=seed, **model_kwargs)
    batches = [batch_tensors(data, order[i]) for i in range(steps)]
    return problem_from(net, batches, F.cross_entropy, name=model)


def gradients_at_w0(problem: ExpansionProblem) -> torch.Tensor:
    """g_i = ∇L(w₀; x̂_i) for every batch, shape (t, p): the terms of the first sum of Eq. 4."""
    g = grad(problem.loss_on)
    return torch.stack([g(problem.w0, x, y).detach() for x, y in problem.batches])


def hvp_at_w0(problem: ExpansionProblem, i: int, vectors: torch.Tensor) -> torch.Tensor:
    """H_i · v at w₀ for a single vector v (p,) or for each row v of ``vectors`` (k, p); the result has the
    shape of ``vectors``. One :class:`~unrolling_lib.curvature.HVPOperator` per batch serves every call."""
    i = check_int("i", i, 0, problem.steps - 1)
    op = problem.hvp_operator(i)
    if vectors.dim() == 1:
        return op.matvec(vectors).detach()
    return op.matmat(vectors.T).T.detach()  # the operator takes columns; the paths keep one vector per row


def sgd_path(problem: ExpansionProblem, lrs: Sequence[float], *, unlearn_step: int | None = None) -> torch.Tensor:
    """Real SGD from w₀ for every η at once: shape (len(lrs), t+1, p), entry [k, s] = w_s for lrs[k].

    ``unlearn_step`` leaves that step out (the order without x̂_{unlearn_step}, §8.3's retrained M′); the path
    then has t entries after w₀ (row s is the weights after the s-th *taken* step).
    """
    lrs_t = torch.tensor(check_numbers("lrs", lrs), dtype=torch.float64)
    if unlearn_step is not None:
        unlearn_step = check_int("unlearn_step", unlearn_step, 0, problem.steps - 1)
    g = vmap(grad(problem.loss_on), in_dims=(0, None, None))
    w = problem.w0.expand(len(lrs_t), -1).clone()
    path = [w]
    for i, (x, y) in enumerate(problem.batches):
        if i == unlearn_step:
            continue
        w = w - lrs_t[:, None] * g(w, x, y).detach()
        path.append(w)
    return torch.stack(path, dim=1)


def first_order_path(problem: ExpansionProblem, lrs: Sequence[float], grads: torch.Tensor) -> torch.Tensor:
    """w₀ − η Σ_{i<s} g_i for every s ≤ t and every η: shape (len(lrs), t+1, p)."""
    lrs_t = torch.tensor(check_numbers("lrs", lrs), dtype=torch.float64)
    csum = torch.cat([torch.zeros_like(grads[:1]), grads.cumsum(0)])
    return problem.w0 - lrs_t[:, None, None] * csum[None]


def second_order_path(problem: ExpansionProblem, lrs: Sequence[float], grads: torch.Tensor,
                      *, return_f: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Eq. 4 with the recursion of Eq. 5 for every s ≤ t and every η: shape (len(lrs), t+1, p).

    f(0) = 0 and f(i) = −η H_i (−η Σ_{j<i} g_j + Σ_{j<i} f(j)); the approximation after s steps is
    w₀ − η Σ_{i<s} g_i + Σ_{i=1}^{s−1} f(i). With ``return_f`` also returns f, shape (len(lrs), t, p).
    One operator per step, applied to the vectors of all η together.
    """
    lrs_t = torch.tensor(check_numbers("lrs", lrs), dtype=torch.float64)[:, None]
    t, p = grads.shape
    f = torch.zeros(len(lrs_t), t, p, dtype=torch.float64)
    g_sum = torch.zeros(p, dtype=torch.float64)
    f_sum = torch.zeros(len(lrs_t), p, dtype=torch.float64)
    for i in range(t):
        if i > 0:
            f[:, i] = -lrs_t * hvp_at_w0(problem, i, -lrs_t * g_sum + f_sum)
        g_sum = g_sum + grads[i]
        f_sum = f_sum + f[:, i]
    # after s steps: the gradients of steps < s and f(i) for 1 ≤ i ≤ s − 1
    zeros = torch.zeros(len(lrs_t), 1, p, dtype=torch.float64)
    f_cum = torch.cat([zeros, f.cumsum(1)], dim=1)
    path = first_order_path(problem, lrs_t[:, 0].tolist(), grads) + f_cum
    return (path, f) if return_f else path


def eta2_coefficients(problem: ExpansionProblem, grads: torch.Tensor) -> torch.Tensor:
    """c_s = Σ_{i=1}^{s−1} H_i Σ_{j<i} g_j for every s ≤ t (Eq. 6 without η²): shape (t+1, p).

    Independent of η: one Hessian-vector product per batch.
    """
    t, p = grads.shape
    terms = torch.zeros(t, p, dtype=torch.float64)
    partial = grads.cumsum(0)
    for i in range(1, t):
        terms[i] = hvp_at_w0(problem, i, partial[i - 1])
    return torch.cat([torch.zeros(1, p, dtype=torch.float64), terms.cumsum(0)])
