"""The figures of §3, §4.1 and §4.2 draw exactly the results they are given (taxonomy, Lemma 1, symmetry)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unrolling_lib.figures.common import f32
from unrolling_lib.figures.lemma1 import lemma1_density_figure, lemma1_figure
from unrolling_lib.figures.symmetry import symmetry_figure
from unrolling_lib.figures.taxonomy import taxonomy_figure
from unrolling_lib.metrics import verification_error
from unrolling_lib.models import MLP
from unrolling_lib.theory import lemma1 as lm
from unrolling_lib.theory import symmetry as sym
from unrolling_lib.theory import taxonomy
from unrolling_lib.theory import weight_densities as wd
from unrolling_lib.validation import ParameterError


def test_taxonomy_figure_places_every_work_in_its_cell() -> None:
    works = taxonomy.works()
    fig = taxonomy_figure()
    (trace,) = fig.data
    assert len(trace.x) == len(works)
    assert list(trace.x) == [taxonomy.METHODS.index(m) for m in works["method"]]
    # a work sits within its metric's row (spread by at most half a row when works share a cell)
    rows = np.array([taxonomy.METRICS.index(m) for m in works["metric"]])
    assert np.all(np.abs(np.asarray(trace.y) - rows) < 0.5)
    assert len({(x, y) for x, y in zip(trace.x, trace.y, strict=True)}) == len(works)  # none hides another
    ours = list(works["cite"]).index("thudi2022unrolling")
    assert [c == "#d62728" for c in trace.marker.color] == [i == ours for i in range(len(works))]
    assert list(fig.layout.xaxis.tickvals) == list(range(len(taxonomy.METHODS)))
    # a subset is drawn as given
    assert len(taxonomy_figure(works.iloc[:3]).data[0].x) == 3


def test_lemma1_figure_draws_the_table() -> None:
    table = lm.lemma1_table([2, 3], [1], [0.01, 0.1], lr=0.2)
    fig = lemma1_figure(table)
    # the line of equality, two traces per (n, m) and the unlearned crosses
    assert len(fig.data) == 1 + 2 * 2 + 1
    equality, *groups, unlearned = fig.data
    assert list(equality.x) == list(equality.y) == [table[["sup_norm", "sup_norm_unlearned"]].min().min(),
                                                    table[["bound", "bound_unlearned"]].max().max()]
    for k, (_, g) in enumerate(table.groupby(["n", "m"])):
        points, ratio = groups[2 * k], groups[2 * k + 1]
        assert list(points.x) == list(g["bound"]) and list(points.y) == list(g["sup_norm"])
        assert list(ratio.x) == list(g["noise_scale"]) and list(ratio.y) == list(g["ratio"])
    assert list(unlearned.x) == list(table["bound_unlearned"])
    assert list(unlearned.y) == list(table["sup_norm_unlearned"])


def test_lemma1_density_figure_shows_the_middle_scale_last() -> None:
    case = lm.lemma1_case(3, 1, lr=0.2)
    curves = wd.density_curves(case, [0.01, 0.1, 0.3])
    fig = lemma1_density_figure(curves)
    assert len(fig.frames) == 3 and all(f.layout.yaxis.range is not None for f in fig.frames)
    # the slider starts on the middle scale; that frame is played last, so the page ends where the slider is
    assert fig.layout.sliders[0].active == 1
    assert [f.name for f in fig.frames] == ["s=0.01", "s=0.3", "s=0.1"]
    middle = curves[1]
    p, retrained, unlearned, gap, bound = fig.data
    assert np.array_equal(p.x, f32(middle.grid)) and np.array_equal(p.y, f32(middle.full))
    assert np.array_equal(retrained.y, f32(middle.retrained)) and np.array_equal(unlearned.y, f32(middle.unlearned))
    assert np.array_equal(gap.y, f32(np.abs(middle.full - middle.retrained)))
    assert list(bound.y) == [middle.lipschitz * middle.d] * 2
    assert f"L·d = {middle.bound:.3g}" in fig.layout.title.text
    with pytest.raises(ParameterError, match="dim"):
        wd.density_curves(lm.lemma1_case(2, 1, dim=2), [0.1])
    with pytest.raises(ParameterError, match=r"^curves must be a non-empty list of DensityCurves "
                                             r"\(from weight_densities\.density_curves\)$"):
        lemma1_density_figure([])


def _mlp(hidden: tuple[int, ...], seed: int = 0) -> MLP:
    torch.manual_seed(seed)
    return MLP(in_features=6, hidden=hidden, num_classes=4).double()


def test_symmetry_figure_has_both_panels() -> None:
    a = _mlp((4,))
    b = sym.permute_hidden(a, sym.random_permutation(4))
    x = torch.randn(10, 6, dtype=torch.float64)
    near = sym.interpolation_table(a, _mlp((4,), seed=1), x, sym.default_alphas(5))
    path = sym.interpolation_table(a, b, x, sym.linear_path_alphas(5))
    v = verification_error(a, b)
    fig = symmetry_figure(near, path, v)
    assert len(fig.data) == 3
    measured, linear, permuted = fig.data
    assert list(measured.x) == list(near["weight_difference"]) and list(measured.y) == list(near["output_difference"])
    assert np.allclose(linear.y, near["limit"].iloc[0] * near["weight_difference"], rtol=1e-15)
    assert list(permuted.x) == list(path["alpha"]) and list(permuted.y) == list(path["output_difference"])
    assert permuted.xaxis == "x2" and f"v = {v:.3g}" in fig.layout.annotations[1].text
