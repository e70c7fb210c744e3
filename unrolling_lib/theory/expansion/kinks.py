"""Where a ReLU network leaves the Taylor expansion of §5: the branches of its ReLUs and max-pools near w₀.

The expansion of :mod:`.problem` assumes a loss that is smooth around w₀. A network with ReLUs and max-pools is
smooth only inside the region where every ReLU keeps its sign and every max-pool window keeps its winner; the
distance from w₀ to the nearest switch decides how small η must be before the first-order error shrinks like η².
:func:`kink_diagnostics` measures that region on the problem's own batches:

- at w₀, for every ReLU and max-pool the forward pass calls: pre-activations exactly 0 or within ε of it,
  windows whose top two entries are exactly equal, and the smallest non-zero margin (|pre-activation|, or the
  gap between a window's winner and the largest entry below it);
- which exact ties are kinks at all. A tie between two positions that are the same function of the weights
  (e.g. two receptive fields that see the same background pixels) is no kink, since max(f, f) = f; nor is a
  tie at 0 between entries an upstream ReLU clipped (the window is flat until that ReLU switches). Random
  weight probes separate these from ties a weight change breaks, the only ones that put a kink at w₀;
- the learning rate at which the first switch happens to first order, from each margin and its rate of change
  along the first-order path w₀ − η Σ_{j<s} g_j (a forward-mode derivative);
- the switches that real SGD makes: after one step, and along the t steps (batch s at w_s against w₀).

The forward pass is intercepted as a ``torch`` function mode, so ``F.relu`` / ``F.max_pool2d`` written inside
``forward`` count as well as ``nn.ReLU`` / ``nn.MaxPool2d`` modules. Other piecewise-linear functions (leaky
ReLU, adaptive or 1-D/3-D max-pools) are not looked at.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch.func import functional_call, jvp
from torch.overrides import TorchFunctionMode

from ...training import quiet_jvp
from ...validation import ParameterError, check_instance, check_int, check_number, check_numbers
from .bounds import expansion_table, fit_slopes
from .problem import ExpansionProblem, gradients_at_w0, sgd_path

__all__ = ["KinkDiagnostics", "kink_diagnostics", "slope_below_first_switch"]

_RELU = {F.relu, torch.relu, torch.Tensor.relu}
_MAX_POOL = {F.max_pool2d, F.max_pool2d_with_indices, torch.max_pool2d}
_POOL_ARGS = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")

SITE_COLUMNS = ["site", "kind", "units", "exact", "persistent", "at_zero", "breakable", "near", "min_margin",
                "first_switch_lr", "one_step_switches", "path_switches"]


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    value = tuple(int(v) for v in value)
    return value * 2 if len(value) == 1 else value  # type: ignore[return-value]


class _Recorder(TorchFunctionMode):
    """Collect, in call order, the input of every ReLU and max-pool of a forward pass (and the pool's geometry)."""

    def __init__(self) -> None:
        super().__init__()
        self.sites: list[tuple[str, torch.Tensor, tuple[Any, ...] | None]] = []

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in _RELU:
            x = args[0] if args else kwargs["input"]
            self.sites.append(("relu", x.clone() if kwargs.get("inplace") else x, None))
        elif func in _MAX_POOL:
            bound = dict(zip(_POOL_ARGS, args, strict=False)) | kwargs
            kernel = _pair(bound["kernel_size"])
            stride = bound.get("stride")
            stride = kernel if stride is None or (not isinstance(stride, int) and len(stride) == 0) else _pair(stride)
            if bound.get("ceil_mode", False):
                raise ParameterError("problem's model calls max_pool2d with ceil_mode=True; kink_diagnostics "
                                     "reads windows without it")
            geometry = (kernel, stride, _pair(bound.get("padding", 0)), _pair(bound.get("dilation", 1)))
            self.sites.append(("max_pool", bound["input"], geometry))
        return func(*args, **kwargs)


def _forward_sites(problem: ExpansionProblem, flat: torch.Tensor, x: torch.Tensor
                   ) -> list[tuple[str, torch.Tensor, tuple[Any, ...] | None]]:
    recorder = _Recorder()
    with recorder:
        functional_call(problem.model, problem.params(flat), (x,))
    return recorder.sites


def _windows(x: torch.Tensor, geometry: tuple[Any, ...], fill: float = -math.inf) -> torch.Tensor:
    """The entries of every max-pool window, shape (windows, kernel entries) in the pool's scan order. Padding
    holds ``fill``: −inf for values (the pool pads with it, so padded entries never win), 0 for their rates."""
    kernel, stride, padding, dilation = geometry
    if x.dim() == 3:
        x = x.unsqueeze(0)
    n, c = x.shape[:2]
    if any(padding):
        x = F.pad(x, (padding[1], padding[1], padding[0], padding[0]), value=fill)
    cols = F.unfold(x.reshape(n * c, 1, *x.shape[-2:]), kernel, dilation=dilation, stride=stride)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def _values(kind: str, x: torch.Tensor, geometry: tuple[Any, ...] | None, fill: float = -math.inf) -> torch.Tensor:
    """A site's values as rows: (units, 1) pre-activations of a ReLU, (windows, k) entries of a max-pool."""
    return x.reshape(-1, 1) if kind == "relu" else _windows(x, geometry, fill)


def _pattern(kind: str, v: torch.Tensor) -> torch.Tensor:
    """The branch each unit is on: ReLU active (z > 0, PyTorch's gradient is 0 at 0), or a window's winner
    (the first maximum, as the pool routes its gradient)."""
    return v[:, 0] > 0 if kind == "relu" else v.argmax(dim=1)


def _first_switch(kind: str, v: torch.Tensor, rate: torch.Tensor) -> float:
    """The smallest η ≥ 0 at which v + η·rate changes branch, to first order (inf: never). Entries that are the
    same function of the weights have the same value and rate, so they never overtake one another."""
    inf = torch.tensor(math.inf, dtype=v.dtype)
    if kind == "relu":
        z, dz = v[:, 0], rate[:, 0]
        eta = torch.where((z != 0) & (z * dz < 0), -z / dz, inf)  # moving towards 0 from either side
        eta = torch.where((z == 0) & (dz > 0), torch.zeros_like(z), eta)  # at 0 and becoming active: at once
    else:
        win = v.argmax(dim=1, keepdim=True)
        gap = v.gather(1, win) - v  # ≥ 0
        closing = rate - rate.gather(1, win)  # > 0: an entry gains on the winner
        eta = torch.where(closing > 0, gap / closing, inf).amin(dim=1)
    return float(eta.min()) if eta.numel() else math.inf


@dataclass
class KinkDiagnostics:
    """What :func:`kink_diagnostics` found at w₀ over a problem's batches.

    ``sites``: one row per ReLU / max-pool call of the forward pass (in call order), counted over all batches:
    ``site`` (``relu_0``, ``max_pool_0``, …), ``kind``, ``units`` (pre-activations, or pool windows), ``exact``
    (pre-activations exactly 0, or windows whose top two entries are exactly equal), of these ``persistent``
    (still exactly tied at every random weight probe: the same function of the weights, no kink), ``at_zero``
    (max-pool ties at value 0, kept apart from ``persistent``: entries clipped by a ReLU, flat until it
    switches) and
    ``breakable`` (the rest: kinks at w₀), ``near`` (non-zero margins ≤ ``eps``), ``min_margin`` (the
    smallest non-zero margin), ``first_switch_lr`` (the first-order prediction of the smallest η at which
    a unit of the site switches somewhere on the path), ``one_step_switches`` and ``path_switches`` (the
    switches SGD at ``lr`` makes, see below).

    ``switches``: one row per learning rate: ``lr``, ``one_step_switches`` (units of any batch whose branch
    differs at w₁ = w₀ − η g₀ from w₀) and ``path_switches`` (units of batch s whose branch differs at w_s,
    where SGD evaluates it, from w₀, summed over the t steps: the switches the expansion misses).

    ``lr`` is the smallest learning rate; ``kinks_at_w0`` the breakable ties and non-persistent exact zeros
    over all sites; ``min_margin`` and ``first_switch_lr`` the smallest over all sites; ``units`` all units.
    """

    lr: float
    eps: float
    units: int
    kinks_at_w0: int
    min_margin: float
    first_switch_lr: float
    sites: pd.DataFrame
    switches: pd.DataFrame

    def summary(self) -> dict[str, Any]:
        """The headline numbers as a flat dict (for a one-row table)."""
        s, sw = self.sites, self.switches.set_index("lr").loc[self.lr]
        return {"lr": self.lr, "units": self.units, "exact": int(s["exact"].sum()),
                "persistent": int(s["persistent"].sum()), "at_zero": int(s["at_zero"].sum()),
                "kinks_at_w0": self.kinks_at_w0, "near": int(s["near"].sum()), "min_margin": self.min_margin,
                "first_switch_lr": self.first_switch_lr, "one_step_switches": int(sw["one_step_switches"]),
                "path_switches": int(sw["path_switches"])}


def _site_rates(problem: ExpansionProblem, x: torch.Tensor, direction: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """d/dη of every site's input at w₀ + η·direction (forward mode)."""
    with quiet_jvp():
        _, rates = jvp(lambda w: tuple(t for _, t, _ in _forward_sites(problem, w, x)), (problem.w0,),
                       (direction,))
    return rates


def _tie_stats(kind: str, v: torch.Tensor, probed: list[torch.Tensor]) -> dict[str, Any]:
    """Exact ties (zeros) of one site on one batch, split by what the probes ``probed`` (the site's values at
    perturbed weights) make of them, and the non-zero margins."""
    top = v.amax(dim=1, keepdim=True)
    if kind == "relu":
        exact = v[:, 0] == 0
        margin = v[:, 0].abs()
        at_zero = torch.zeros_like(exact)
    else:
        below = torch.where(v < top, v, -math.inf).amax(dim=1, keepdim=True)
        exact = (v == top).sum(dim=1) > 1
        margin = (top - below)[:, 0]  # inf where every entry has the winner's value
        at_zero = exact & (top[:, 0] == 0)
    tied = v == top
    first = tied.to(torch.int64).argmax(dim=1, keepdim=True)
    persistent = exact & ~at_zero
    for pv in probed:  # still exactly tied: the entries tied at w₀ are all equal (a ReLU's stays exactly 0)
        same = pv[:, 0] == 0 if kind == "relu" else torch.where(tied, pv == pv.gather(1, first), True).all(dim=1)
        persistent &= same
    nonzero = margin[(margin > 0) & torch.isfinite(margin)]
    return {"exact": exact, "persistent": persistent, "at_zero": at_zero, "margins": nonzero}


def kink_diagnostics(problem: ExpansionProblem, lrs: Sequence[float], *, eps: float = 1e-6, probes: int = 2,
                     probe_scale: float = 1e-3, seed: int = 0) -> KinkDiagnostics:
    """Ties, margins and switches of every ReLU and max-pool at w₀ over the batches of ``problem``.

    ``lrs``: the learning rates to count SGD's switches at (the study's; the smallest one is ``lr`` of the
    result and of the per-site switch counts). ``eps``: the margin below which a non-zero one counts as
    ``near``. ``probes`` random weight perturbations of relative size ``probe_scale`` (times the rms of w₀,
    seeded by ``seed``) decide which exact ties persist. A model without ReLUs or max-pools gives no sites.
    """
    check_instance("problem", problem, ExpansionProblem)
    lrs = sorted(check_numbers("lrs", lrs, distinct=True))
    eps = check_number("eps", eps, inclusive=True)
    probes = check_int("probes", probes, 1)
    probe_scale = check_number("probe_scale", probe_scale)
    seed = check_int("seed", seed, 0)

    w0 = problem.w0
    gen = torch.Generator().manual_seed(seed)
    rms = float(w0.norm()) / math.sqrt(w0.numel()) or 1.0
    deltas = [probe_scale * rms * torch.randn(w0.shape, generator=gen, dtype=w0.dtype) for _ in range(probes)]
    grads = gradients_at_w0(problem)
    partial = torch.cat([torch.zeros_like(grads[:1]), grads.cumsum(0)[:-1]])  # Σ_{j<s} g_j
    paths = sgd_path(problem, lrs)  # (lrs, t+1, p): batch s is taken at paths[:, s]
    stepped = w0 - torch.tensor(lrs, dtype=w0.dtype)[:, None] * grads[0]  # w₁ for every η

    rows: list[dict[str, Any]] = []
    one_step = path = torch.zeros(0, len(lrs), dtype=torch.int64)  # switch counts [site, lr]
    for s, (x, _) in enumerate(problem.batches):
        with torch.no_grad():
            sites = _forward_sites(problem, w0, x)
            probed = [_forward_sites(problem, w0 + d, x) for d in deltas]
            at_w1 = [_forward_sites(problem, w, x) for w in stepped]
            on_path = [_forward_sites(problem, paths[k, s], x) for k in range(len(lrs))]
        if s == 0:
            seen = {"relu": 0, "max_pool": 0}
            for kind, _, _ in sites:
                rows.append({"site": f"{kind}_{seen[kind]}", "kind": kind, "units": 0, "exact": 0, "persistent": 0,
                             "at_zero": 0, "breakable": 0, "near": 0, "min_margin": math.inf,
                             "first_switch_lr": math.inf})
                seen[kind] += 1
            one_step = torch.zeros(len(sites), len(lrs), dtype=torch.int64)
            path = torch.zeros(len(sites), len(lrs), dtype=torch.int64)
        if [kind for kind, _, _ in sites] != [row["kind"] for row in rows]:
            raise ParameterError(f"problem's model calls other ReLUs / max-pools on batch {s} than on batch 0; "
                                 "kink_diagnostics needs the same forward pass for every batch")
        # batch 0 is taken at w₀ itself: nothing can switch before it
        rates = _site_rates(problem, x, -partial[s]) if s > 0 and sites else None
        for i, (kind, t, geometry) in enumerate(sites):
            row = rows[i]
            v = _values(kind, t, geometry)
            st = _tie_stats(kind, v, [_values(kind, probe[i][1], geometry) for probe in probed])
            row["units"] += len(v)
            for key in ("exact", "persistent", "at_zero"):
                row[key] += int(st[key].sum())
            row["breakable"] += int((st["exact"] & ~st["persistent"] & ~st["at_zero"]).sum())
            row["near"] += int((st["margins"] <= eps).sum())
            if st["margins"].numel():
                row["min_margin"] = min(row["min_margin"], float(st["margins"].min()))
            if rates is not None:
                rate = _values(kind, rates[i], geometry, fill=0.0)
                row["first_switch_lr"] = min(row["first_switch_lr"], _first_switch(kind, v, rate))
            before = _pattern(kind, v)
            for k in range(len(lrs)):
                one_step[i, k] += int((_pattern(kind, _values(kind, at_w1[k][i][1], geometry)) != before).sum())
                path[i, k] += int((_pattern(kind, _values(kind, on_path[k][i][1], geometry)) != before).sum())

    for i, row in enumerate(rows):
        row["one_step_switches"], row["path_switches"] = int(one_step[i, 0]), int(path[i, 0])
    table = pd.DataFrame(rows, columns=SITE_COLUMNS)
    switches = pd.DataFrame({"lr": lrs, "one_step_switches": one_step.sum(0).tolist(),
                             "path_switches": path.sum(0).tolist()})
    return KinkDiagnostics(lr=lrs[0], eps=eps, units=int(table["units"].sum()),
                           kinks_at_w0=int(table["breakable"].sum()),
                           min_margin=float(table["min_margin"].min()) if len(table) else math.inf,
                           first_switch_lr=float(table["first_switch_lr"].min()) if len(table) else math.inf,
                           sites=table, switches=switches)


def slope_below_first_switch(problem: ExpansionProblem, diagnostics: KinkDiagnostics,
                             factors: Sequence[float] = (100, 30, 10)) -> float:
    """The log-log slope in η of the first-order error at the full t, fitted over η = η*/k for k in ``factors``
    (η* = ``diagnostics.first_switch_lr``): below the first branch switch the loss is smooth along the path,
    so §5.1 predicts 2 for a ReLU network too."""
    check_instance("diagnostics", diagnostics, KinkDiagnostics)
    ks = check_numbers("factors", factors, low=1.0, distinct=True)
    if not math.isfinite(diagnostics.first_switch_lr):
        raise ParameterError("diagnostics has no branch switch along the path; there is no η* to go below")
    fits = fit_slopes(expansion_table(problem, [diagnostics.first_switch_lr / k for k in ks]))
    return float(fits.loc[fits["t"] == problem.steps, "first_order_slope"].item())
