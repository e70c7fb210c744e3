"""§8.5: SISA's cost against one gradient, checked by hand and by brute force over a grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from unrolling_lib.theory import sisa
from unrolling_lib.validation import ParameterError


def test_costs_by_hand() -> None:
    assert sisa.sisa_cost(10, 19) == pytest.approx(1.0)  # 2·10/20
    assert sisa.sisa_cost(1, 3) == pytest.approx(0.5)
    assert sisa.sisa_cost(2, 3, cost_model="shard") == pytest.approx(4 / 12)  # (R+1)/(2RS)
    assert sisa.single_gradient_cost(100) == pytest.approx(0.01)
    assert sisa.sisa_storage(4, 5) == 20
    assert list(sisa.sisa_cost(np.array([1, 2]), np.array([1, 1]))) == pytest.approx([1.0, 2.0])


def test_cheaper_is_decided_exactly_and_matches_the_floats_away_from_the_boundary() -> None:
    grid = sisa.cost_grid([1, 2, 3, 5, 8], list(range(1, 200)), [1, 2, 5, 10, 50])
    away = (grid["ratio"] - 1).abs() > 1e-9
    assert (grid.loc[away, "cheaper"] == (grid.loc[away, "ratio"] < 1)).all()
    assert not grid.loc[~away, "cheaper"].any()  # equal costs: not cheaper
    # the exact condition R + 1 > 2SN, by brute force
    assert (grid["cheaper"] == (grid["slices"] + 1 > 2 * grid["shards"] * grid["steps"])).all()
    assert len(grid) == 5 * 199 * 5 and set(grid.columns) >= {"storage", "paper_bound", "single_gradient_cost"}


def test_the_papers_bound_holds_wherever_sisa_is_cheaper_and_ours_is_tight() -> None:
    powers = [2 ** k for k in range(21)]
    grid = sisa.cost_grid(powers[:10], powers, [10, 100, 1000, 100_000])
    cheaper = grid[grid["cheaper"]]
    assert len(cheaper) > 0
    assert (np.maximum(cheaper["shards"], cheaper["slices"]) >= cheaper["paper_bound"]).all()
    for n in (1, 7, 100, 100_000):
        r = sisa.fewest_slices(3, n)
        assert r == 6 * n and sisa.sisa_cheaper(3, r, n) and not sisa.sisa_cheaper(3, r - 1, n)
    assert sisa.paper_bound(100_000) == pytest.approx(np.sqrt(1e5) / 2 - 1)
    shard = sisa.cost_grid(list(range(1, 80)), [1, 10, 1000], [10, 50, 100], cost_model="shard")
    wins = shard[shard["cheaper"]]
    assert (2 * wins["shards"] > wins["steps"]).all() and len(wins) > 0


@pytest.mark.parametrize(("call", "match"), [
    (lambda: sisa.sisa_cost(0, 3), r"shards=0 is not allowed"),
    (lambda: sisa.sisa_cost(2, 1.5), r"slices=1.5 is not allowed"),
    (lambda: sisa.single_gradient_cost(0), r"steps=0 is not allowed"),
    (lambda: sisa.sisa_cost(2, 3, cost_model="sisa"), r"cost_model='sisa' is not allowed"),
    (lambda: sisa.fewest_slices(0, 10), r"shards=0 is not allowed"),
])
def test_bad_input_is_refused(call, match) -> None:
    with pytest.raises(ParameterError, match=match):
        call()


def test_calculator_figure_has_a_frame_per_n_and_marks_the_measured_one() -> None:
    from unrolling_lib.figures.sisa import sisa_calculator_figure, sisa_live

    fig = sisa_calculator_figure([1, 2, 4], [1, 16, 4096], [10, 1000], measured={1000: 0.0012}, active=1)
    assert [f.name for f in fig.frames] == ["10", "1000"]  # the active frame last
    assert "measured here" in fig.layout.title.text and "N = 1,000" in fig.layout.title.text
    assert fig.data[0].colorscale[0][1] == "rgb(5,48,97)"  # the low end, SISA cheaper, is blue
    z = np.asarray(fig.data[0].z)
    assert z.shape == (3, 3) and z[2, 0] == pytest.approx(np.log10((2 / 4097) / (1 / 1000)))
    box = sisa_live(shards=1, slices=4, steps=1)
    assert list(box.figure.data[0].y) == pytest.approx([0.4, 1.0])
    assert isinstance(sisa.cost_grid([1], [1], [1]), pd.DataFrame)


def test_unlearning_cost_times_both_and_refuses_bad_input() -> None:
    from unrolling_lib.experiments.unlearning_cost import COST_COLUMNS, UNLEARNING_COST_DEFAULTS, unlearning_cost

    out = unlearning_cost(**UNLEARNING_COST_DEFAULTS["smoke"], device="cpu")
    assert list(out.columns) == list(COST_COLUMNS) and len(out) == 2
    assert (out["measured_ratio"] == out["unlearn_seconds"] / out["retrain_seconds"]).all()
    assert (out["formula_ratio"] == 1 / 20).all() and (out["retrain_seconds"] > out["unlearn_seconds"]).all()
    assert set(UNLEARNING_COST_DEFAULTS) == {"quick", "colab", "paper", "smoke"}
    with pytest.raises(ParameterError, match="steps=0 is not allowed"):
        unlearning_cost(steps=0)
    with pytest.raises(ParameterError, match="model='mlp9' is not allowed"):
        unlearning_cost(model="mlp9")
