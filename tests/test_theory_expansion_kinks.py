"""Kinks of ReLU / max-pool networks near w₀: exact ties, margins and switches against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from unrolling_lib.models import build_model
from unrolling_lib.theory import expansion as ex
from unrolling_lib.theory.expansion.kinks import KinkDiagnostics, kink_diagnostics
from unrolling_lib.validation import ParameterError


class _TieNet(nn.Module):
    """1×1 conv of two channels (weights 1, 1; bias 0) → nn.ReLU → nn.MaxPool2d(2) → linear: on a 2×8 image
    the pool has four 2×2 windows and each entry is z = a + b of its pixel's two channels (a, b)."""

    def __init__(self, bias: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size=1, bias=bias)
        with torch.no_grad():
            self.conv.weight.fill_(1.0)
            if bias:
                self.conv.bias.zero_()
        self.relu, self.pool, self.head = nn.ReLU(), nn.MaxPool2d(2), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.relu(self.conv(x))).flatten(1))


def _image(windows: list[list[tuple[float, float]]]) -> torch.Tensor:
    """A (1, 2, 2, 8) image: window w holds its four (a, b) pixels in the pool's scan order."""
    x = torch.zeros(1, 2, 2, 2 * len(windows), dtype=torch.float64)
    for w, entries in enumerate(windows):
        for e, pixel in enumerate(entries):
            r, c = divmod(e, 2)
            x[0, :, r, 2 * w + c] = torch.tensor(pixel, dtype=torch.float64)
    return x


# z per window: [2, 2, 2, 2] (one input everywhere), [1, 1, 0.5, 0.25] (two inputs, equal at w₀),
# [−1, −1, −2, −3] (all clipped by the ReLU), [2, 0, 0, 0.5] (two zero pixels: z = bias = 0 exactly).
TIES = [[(1, 1)] * 4, [(1, 0), (0, 1), (0.5, 0), (0, 0.25)], [(-1, 0), (0, -1), (-1, -1), (-3, 0)],
        [(2, 0), (0, 0), (0, 0), (0.5, 0)]]
# all z distinct and positive: no tie, no zero; pool gaps 1, 0.5, 5, 0.25; smallest |z| 0.5
NO_TIES = [[(1, 0), (2, 0), (3, 0), (4, 0)], [(5, 0), (6, 0), (7.5, 0), (8, 0)], [(2, 0), (9, 0), (4, 0), (3, 0)],
           [(1.25, 0), (0.5, 0), (0.75, 0), (1, 0)]]


def _tie_problem(windows: list[list[tuple[float, float]]], *, bias: bool = True) -> ex.ExpansionProblem:
    return ex.problem_from(_TieNet(bias=bias), [(_image(windows), torch.tensor([0]))], F.cross_entropy, name="tie")


def _site(d: KinkDiagnostics, name: str) -> dict:
    return d.sites.set_index("site").loc[name].to_dict()


def test_ties_and_zeros_built_in_are_counted_exactly() -> None:
    d = kink_diagnostics(_tie_problem(TIES), [1e-3], eps=0.3)
    assert list(d.sites["site"]) == ["relu_0", "max_pool_0"]
    pool, relu = _site(d, "max_pool_0"), _site(d, "relu_0")
    # windows 1–3 are tied: window 1 between equal inputs (persistent), window 3 at 0, window 2 breakable
    assert {k: pool[k] for k in ("units", "exact", "persistent", "at_zero", "breakable", "near")} == {
        "units": 4, "exact": 3, "persistent": 1, "at_zero": 1, "breakable": 1, "near": 0}
    assert pool["min_margin"] == 0.5  # window 2: 1 − 0.5 (window 4: 2 − 0.5; windows 1 and 3: all equal)
    # the two zero pixels of window 4 give z = bias = 0: a change of the bias moves them
    assert {k: relu[k] for k in ("units", "exact", "persistent", "at_zero", "breakable", "near")} == {
        "units": 16, "exact": 2, "persistent": 0, "at_zero": 0, "breakable": 2, "near": 1}
    assert relu["min_margin"] == 0.25
    assert d.kinks_at_w0 == 3 and d.min_margin == 0.25 and d.units == 20


def test_zero_without_a_bias_persists_for_any_weights() -> None:
    d = kink_diagnostics(_tie_problem(TIES, bias=False), [1e-3], eps=0.3)
    relu, pool = _site(d, "relu_0"), _site(d, "max_pool_0")
    assert (relu["exact"], relu["persistent"], relu["breakable"]) == (2, 2, 0)  # z = w·0 for every w
    assert (pool["exact"], pool["persistent"], pool["at_zero"], pool["breakable"]) == (3, 1, 1, 1)
    assert d.kinks_at_w0 == 1


def test_no_ties_by_construction() -> None:
    d = kink_diagnostics(_tie_problem(NO_TIES), [1e-3], eps=0.3)
    assert (d.sites[["exact", "persistent", "at_zero", "breakable"]] == 0).all().all()
    relu, pool = _site(d, "relu_0"), _site(d, "max_pool_0")
    assert relu["min_margin"] == 0.5 and relu["near"] == 0
    assert pool["min_margin"] == 0.25 and pool["near"] == 1
    assert d.kinks_at_w0 == 0


class _Unit(nn.Module):
    """z = w x + b with w = 1, b = 0.5, through ``F.relu`` (not a module)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(1, 1)
        with torch.no_grad():
            self.lin.weight.fill_(1.0)
            self.lin.bias.fill_(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.lin(x))


class _Pair(nn.Module):
    """Two entries w x₁ + b, w x₂ + b (w = 1, b = 0) through ``F.max_pool2d`` over a 1×2 window."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, kernel_size=1)
        with torch.no_grad():
            self.conv.weight.fill_(1.0)
            self.conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(self.conv(x), (1, 2)).flatten(1)


def _linear_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (out * y).sum()


def test_relu_switch_learning_rate_and_counts() -> None:
    # loss relu(w x + b): g₀ = (x, 1) = (1, 1) on batch 0 (x = 1, z = 1.5); at w₁ = (1 − η, 0.5 − η) batch 0
    # has z = 1.5 − 2η (switches for η > 3/4), batch 1 (x = 2) z = 2.5 − 3η (η > 5/6), where SGD takes it
    one = torch.ones(1, 1, dtype=torch.float64)
    problem = ex.problem_from(_Unit(), [(one, one), (2 * one, one)], _linear_loss)
    d = kink_diagnostics(problem, [0.9, 0.7, 0.8])
    assert d.lr == 0.7 and list(d.switches["lr"]) == [0.7, 0.8, 0.9]
    assert list(d.switches["one_step_switches"]) == [0, 1, 2]
    assert list(d.switches["path_switches"]) == [0, 0, 1]
    assert d.first_switch_lr == pytest.approx(5 / 6, rel=1e-12)
    assert d.min_margin == 1.5 and d.kinks_at_w0 == 0


def test_max_pool_switch_learning_rate_and_counts() -> None:
    # batch 0 [3, 1]: the first entry wins, g₀ = (3, 1); at w₁ = (1 − 3η, −η) batch 1 [2, 1.5] has
    # entries 2 − 7η and 1.5 − 5.5η: the gap 0.5 − 1.5η closes at η = 1/3 (batch 0's too: 2 − 6η)
    x0 = torch.tensor([[[[3.0, 1.0]]]], dtype=torch.float64)
    x1 = torch.tensor([[[[2.0, 1.5]]]], dtype=torch.float64)
    y = torch.ones(1, 1, dtype=torch.float64)
    d = kink_diagnostics(ex.problem_from(_Pair(), [(x0, y), (x1, y)], _linear_loss), [0.3, 0.4])
    assert list(d.sites["site"]) == ["max_pool_0"]
    assert d.first_switch_lr == pytest.approx(1 / 3, rel=1e-12)
    assert list(d.switches["one_step_switches"]) == [0, 2]
    assert list(d.switches["path_switches"]) == [0, 1]
    assert d.min_margin == 0.5


def test_persistent_ties_are_windows_of_identical_patches() -> None:
    # small_cnn (conv1 3×3 with padding 1 → ReLU → max-pool 2) on digit-like 8×8 images: a constant background
    # and a few strokes. A tie away from 0 persists exactly when the tied positions see the same 3×3 patch.
    gen = torch.Generator().manual_seed(0)
    x = torch.full((8, 1, 8, 8), -0.8, dtype=torch.float64)
    strokes = torch.rand(x.shape, generator=gen, dtype=torch.float64) < 0.3
    x = torch.where(strokes, torch.randn(x.shape, generator=gen, dtype=torch.float64), x)
    batches = [(x[:4], torch.arange(4)), (x[4:], torch.arange(4))]
    problem = ex.problem_from(build_model("small_cnn", seed=0), batches, F.cross_entropy)
    d = kink_diagnostics(problem, [1e-4])
    expected = 0
    for xb, _ in problem.batches:
        z = F.conv2d(xb, problem.model.conv1.weight, problem.model.conv1.bias, padding=1)
        a = F.relu(z)
        n, c = a.shape[:2]
        win = a.reshape(n, c, 4, 2, 4, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, 16, 4)
        patch = F.unfold(xb, 3, padding=1).transpose(1, 2).reshape(n, 8, 8, 9)
        patch = patch.reshape(n, 4, 2, 4, 2, 9).permute(0, 1, 3, 2, 4, 5).reshape(n, 1, 16, 4, 9)
        top = win.amax(-1, keepdim=True)
        tied = win == top
        first = tied.to(torch.int64).argmax(-1)
        ref = patch.expand(n, c, 16, 4, 9).gather(3, first[..., None, None].expand(n, c, 16, 1, 9))
        same = torch.where(tied, (patch == ref).all(-1), True).all(-1)
        expected += int(((tied.sum(-1) > 1) & (top[..., 0] > 0) & same).sum())
    assert expected > 0
    assert _site(d, "max_pool_0")["persistent"] == expected
    assert _site(d, "max_pool_0")["breakable"] == 0


def test_smooth_model_has_no_sites() -> None:
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    batches = [(x[:4], torch.arange(4)), (x[4:], torch.arange(4))]
    problem = ex.problem_from(build_model("mlp", seed=0), batches, F.cross_entropy)  # tanh: smooth
    d = kink_diagnostics(problem, [1e-3, 1e-2])
    assert d.sites.empty and d.kinks_at_w0 == 0 and math.isinf(d.first_switch_lr)
    assert list(d.switches["path_switches"]) == [0, 0]


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"problem": "small_cnn"}, "problem"), ({"lrs": []}, "lrs"), ({"lrs": [1e-3, 1e-3]}, "lrs"),
    ({"eps": -1.0}, "eps"), ({"probes": 0}, "probes"), ({"probe_scale": 0.0}, "probe_scale"), ({"seed": -1}, "seed"),
])
def test_parameters_are_checked(kwargs: dict, name: str) -> None:
    args = {"problem": _tie_problem(NO_TIES), "lrs": [1e-3]} | kwargs
    with pytest.raises(ParameterError, match=name):
        kink_diagnostics(args.pop("problem"), args.pop("lrs"), **args)


def test_below_the_first_switch_the_relu_net_has_slope_two() -> None:
    """§5.1's prediction where the loss is smooth along the path: first-order error ∝ η² below η*."""
    from unrolling_lib.theory.expansion import slope_below_first_switch

    problem = ex.build_problem("small_cnn", subset=64, batch_size=8, steps=4)
    d = kink_diagnostics(problem, [1e-3, 1e-2])
    assert math.isfinite(d.first_switch_lr)
    assert slope_below_first_switch(problem, d) == pytest.approx(2.0, abs=0.05)
    with pytest.raises(ParameterError, match="^factors"):
        slope_below_first_switch(problem, d, factors=[0.5])
