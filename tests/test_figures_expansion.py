"""Figures of §5: frames, per-frame axis ranges, and that every figure plots the numbers of its table."""

from __future__ import annotations

import numpy as np
import pytest

from unrolling_lib.figures import expansion as fx
from unrolling_lib.figures.common import log_range
from unrolling_lib.theory import expansion as ex


@pytest.fixture(scope="module")
def mlp():
    problem = ex.build_problem("mlp", subset=64, batch_size=8, steps=4)
    sig = ex.batch_sigmas(problem)
    return problem, sig, ex.expansion_table(problem, [1e-3, 1e-2, 1e-1], sig)


def test_figures_carry_their_frames_and_ranges(mlp) -> None:
    problem, sig, table = mlp
    fig = fx.slope_figure(table, ex.fit_slopes(table))
    assert len(fig.frames) == 3 and len(fig.layout.sliders[0].steps) == 3
    assert all(f.layout.yaxis.range is not None for f in fig.frames)  # plotly does not rescale while animating
    bounds = fx.bound_figure(table)
    assert len(bounds.frames) == 3 and bounds.layout.yaxis.range is not None
    unl = fx.unlearning_figure(ex.unlearning_table(problem, [1e-3, 1e-2], 1, sig))
    assert len(unl.data) == 4
    box = fx.live_explorer(problem, sig, lr=0.01)  # no kernel here: the figure is still built
    assert len(box.figure.data[0].x) == 8


def test_slope_figure_plots_the_table_and_ends_on_the_active_frame(mlp) -> None:
    _, _, table = mlp
    fig = fx.slope_figure(table, ex.fit_slopes(table))
    slider = fig.layout.sliders[0]
    assert slider.active == 2 and fig.frames[-1].name == "t=4"  # plotly plays every frame: the active one last
    last = table[table["t"] == 4].sort_values("lr")
    assert np.allclose(fig.data[0].y, last["first_order_error"], rtol=1e-15)
    assert np.allclose(fig.data[1].y, last["second_order_error"], rtol=1e-15)
    lr = last["lr"].to_numpy()  # the reference lines: slope 2 and 3 through the first point
    assert np.allclose(fig.data[2].y, last["first_order_error"].iloc[0] * (lr / lr[0]) ** 2, rtol=1e-12)
    for frame in fig.frames:
        ys = np.concatenate([tr.y for tr in frame.data[:4]])  # the first panel's four traces
        assert list(frame.layout.yaxis.range) == pytest.approx(log_range(ys))


def test_bound_figure_frames_are_the_bound_columns_over_t(mlp) -> None:
    _, _, table = mlp
    fig = fx.bound_figure(table, "mlp")
    frame = next(f for f in fig.frames if f.name == "η=0.01")
    rows = table[np.isclose(table["lr"], 0.01) & (table["t"] >= 2)].sort_values("t")
    for tr, col in zip(frame.data, ["eta2_term", "eq8_rigorous", "eq8", "eq8_consistent", "eq9", "eq8_paper_sigma"],
                       strict=True):
        assert np.allclose(tr.y, rows[col], rtol=1e-15), col
    assert fig.frames[-1].name == "η=0.01" and fig.layout.sliders[0].active == 1


def test_unlearning_figure_and_live_explorer_plot_the_library_numbers(mlp) -> None:
    problem, sig, _ = mlp
    unl = ex.unlearning_table(problem, [1e-3, 1e-2], 1, sig)
    fig = fx.unlearning_figure(unl)
    for tr, col in zip(fig.data, ["v_nothing", "v", "unlearned_terms", "e"], strict=True):
        assert np.allclose(tr.y, unl[col], rtol=1e-15), col
    box = fx.live_explorer(problem, sig, lr=0.01)
    row = ex.expansion_table(problem, [0.01], sig).iloc[-1]
    assert np.allclose(box.figure.data[0].y, [row[c] for c in box.figure.data[0].x], rtol=1e-12)
