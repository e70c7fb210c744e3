"""Counting the terms of the expansion (§5.2): which Hessian-gradient products contain a given batch.

Running the recursion of Eq. 4–5 on *symbols* lists every term of w_t − w₀: a term (i₁, …, i_{k−1}, j) stands
for (−η)^k H_{i₁} ⋯ H_{i_{k−1}} g_j. The first sum of Eq. 4 gives the terms (j,); f(i) prepends i to every term
of Δ_i = −η Σ_{j<i} g_j + Σ_{j<i} f(j). At order η^k the terms are the decreasing index sequences of length k:
C(t, k) of them, C(t−1, k−1) containing a given batch — t − 1 at k = 2, the paper's count of the terms of Eq. 6
that the unlearned batch x̂_{i*} enters. :func:`evaluate_terms` ties the bookkeeping to the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ...validation import check_int
from .problem import ExpansionProblem, eta2_coefficients, gradients_at_w0, hvp_at_w0

__all__ = [
    "ProductGrid",
    "SymbolicCheck",
    "count_terms_with",
    "evaluate_terms",
    "product_grid",
    "symbolic_check",
    "symbolic_terms",
    "term_count_table",
]


def symbolic_terms(t: int, max_order: int = 2) -> dict[int, list[tuple[int, ...]]]:
    """Run the recursion of Eq. 4–5 on symbols: every term of w_t − w₀ up to order η^``max_order``.

    A term is a tuple (i₁, …, i_{k−1}, j) standing for (−η)^k H_{i₁} ⋯ H_{i_{k−1}} g_j: the batch indices it
    involves, Hessians first. Returns {order k: terms}; order 2 is Eq. 6.
    """
    t = check_int("t", t, 1)
    max_order = check_int("max_order", max_order, 1, 64)
    f: list[list[tuple[int, ...]]] = [[] for _ in range(t)]
    for i in range(1, t):
        delta = [(j,) for j in range(i)] + [term for j in range(i) for term in f[j]]
        f[i] = [(i, *term) for term in delta if len(term) < max_order]
    by_order: dict[int, list[tuple[int, ...]]] = {k: [] for k in range(1, max_order + 1)}
    for term in [(j,) for j in range(t)] + [term for i in range(1, t) for term in f[i]]:
        by_order[len(term)].append(term)
    return by_order


def count_terms_with(terms: Sequence[tuple[int, ...]], batch: int | Sequence[int]) -> int:
    """How many terms involve batch index ``batch`` (or any of several indices: x* in more than one batch)."""
    wanted = {batch} if isinstance(batch, (int, np.integer)) else set(batch)
    return sum(1 for term in terms if wanted & set(term))


def term_count_table(steps: Sequence[int], max_order: int = 3) -> pd.DataFrame:
    """For every t in ``steps`` and every unlearned step i* < t: the terms of each order containing x̂_{i*}.

    Columns ``t``, ``unlearn_step`` (i*); ``order_k`` counts the terms with i* at order η^k (order 2: the
    paper's t − 1; order k in general: C(t−1, k−1)), ``paper_count`` = t − 1, ``total_order_2`` = t(t−1)/2.
    """
    rows = []
    for t in steps:
        terms = symbolic_terms(t, max_order)
        for unlearn_step in range(t):
            row = {"t": t, "unlearn_step": unlearn_step, "paper_count": t - 1,
                   "total_order_2": len(terms.get(2, []))}
            for k in range(1, max_order + 1):
                row[f"order_{k}"] = count_terms_with(terms[k], unlearn_step)
            rows.append(row)
    return pd.DataFrame(rows)


def evaluate_terms(problem: ExpansionProblem, lr: float, terms: Sequence[tuple[int, ...]],
                   grads: torch.Tensor | None = None) -> torch.Tensor:
    """Σ over ``terms`` of (−η)^k H_{i₁} ⋯ H_{i_{k−1}} g_j, numerically (flat vector).

    Ties the symbolic bookkeeping to the numbers: the order-2 terms sum to η² c_t (Eq. 6), and all orders to
    the recursion's Σ f(i) (Eq. 5).
    """
    grads = gradients_at_w0(problem) if grads is None else grads
    total = torch.zeros_like(problem.w0)
    for term in terms:
        v = grads[term[-1]]
        for i in reversed(term[:-1]):
            v = hvp_at_w0(problem, i, v)
        total = total + (-lr) ** len(term) * v
    return total


@dataclass
class SymbolicCheck:
    """The order-2 symbolic terms of the first ``t`` steps evaluated one by one against c_t of Eq. 6.

    ``terms``: how many there are (t(t−1)/2); ``c_norm``: ‖c_t‖ from :func:`eta2_coefficients`;
    ``relative_difference``: ‖Σ terms − c_t‖ / ‖c_t‖.
    """

    t: int
    terms: int
    c_norm: float
    relative_difference: float


def symbolic_check(problem: ExpansionProblem, steps: int | None = None) -> SymbolicCheck:
    """Evaluate the order-2 symbolic terms of the first ``steps`` batches (default all, at most 16) term by term
    and compare them with c_t from :func:`eta2_coefficients`: the bookkeeping and the numbers are one recursion.
    """
    steps = min(problem.steps, 16) if steps is None else check_int("steps", steps, 2, problem.steps)
    sub = problem.head(steps)
    grads = gradients_at_w0(sub)
    terms = symbolic_terms(steps, 2)[2]
    by_terms = evaluate_terms(sub, 1.0, terms, grads)
    direct = eta2_coefficients(sub, grads)[-1]
    return SymbolicCheck(t=steps, terms=len(terms), c_norm=float(direct.norm()),
                         relative_difference=float((by_terms - direct).norm() / direct.norm()))


@dataclass
class ProductGrid:
    """The t(t − 1)/2 products H_i·g_j (i > j) of Eq. 6 on one problem, and which of them hold x̂_{i*}.

    ``table``: one row per product, columns ``i``, ``j``, ``norm`` = ‖H_i·g_j‖ and ``with_unlearned``
    (i = i* or j = i*: the t − 1 terms behind v). ``c_norm`` = ‖Σ_{i>j} H_i·g_j‖ = ‖c_t‖ (the whole η² term,
    over η²); ``unlearned_norm`` = ‖Σ of the products with x̂_{i*}‖ (v/η² to leading order); ``eq9_norm`` =
    ‖Σ_j g_j‖/t · σ_avg · t(t − 1)/2, Eq. 9 over η² with its weight change taken as η‖Σ g‖ (the consistent
    power of η; ``nan`` without ``sigma_avg``): a bound of the kind of Eq. 8 on ‖c_t‖, whichever batch is
    forgotten.
    """

    unlearn_step: int
    t: int
    table: pd.DataFrame
    c_norm: float
    unlearned_norm: float
    eq9_norm: float


def product_grid(problem: ExpansionProblem, unlearn_step: int, sigma_avg: float | None = None) -> ProductGrid:
    """Every product H_i·g_j of Eq. 6 (i > j) on ``problem`` with its norm, x̂_{``unlearn_step``}'s row and
    column marked (§5.2: what e bounds against what v is made of). t − 1 matrix-vector products of
    :class:`~unrolling_lib.curvature.HVPOperator` (one ``matmat`` per Hessian)."""
    t = problem.steps
    unlearn_step = check_int("unlearn_step", unlearn_step, 0, t - 1)
    grads = gradients_at_w0(problem)
    rows, total, unlearned = [], torch.zeros_like(problem.w0), torch.zeros_like(problem.w0)
    for i in range(1, t):
        products = hvp_at_w0(problem, i, grads[:i])  # row j: H_i · g_j
        total = total + products.sum(0)
        for j, norm in enumerate(products.norm(dim=1).tolist()):
            marked = unlearn_step in (i, j)
            rows.append({"i": i, "j": j, "norm": norm, "with_unlearned": marked})
            if marked:
                unlearned = unlearned + products[j]
    eq9 = (float(grads.sum(0).norm()) / t * float(sigma_avg) * t * (t - 1) / 2 if sigma_avg is not None
           else float("nan"))
    return ProductGrid(unlearn_step=unlearn_step, t=t, table=pd.DataFrame(rows), c_norm=float(total.norm()),
                       unlearned_norm=float(unlearned.norm()), eq9_norm=eq9)
