"""Figures of §5: frames, per-frame axis ranges, that every figure plots the numbers of its table, and where
the figures put η·t·σ = 1."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from unrolling_lib.figures import expansion as fx
from unrolling_lib.figures.common import log_range
from unrolling_lib.theory import expansion as ex
from unrolling_lib.unlearning_error import eta_t_sigma


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


@pytest.fixture(scope="module")
def regime(mlp):
    """The regime rows as the study builds them: the quadratic's closed forms (long enough to pass η·t·σ = 1)
    beside the model measured at the same η and σ."""
    problem, sig, _ = mlp
    sigma = float(sig["sigma_spectral"].mean())
    closed = [ex.quadratic_regime(lr, sigma, list(range(2, 41)), g=0.5) for lr in (0.01, 0.1)]
    return pd.concat([*closed, ex.regime_table(problem, [0.01, 0.1], sigma)], ignore_index=True)


def _study_sigmas(sig):
    """σ per batch with a ``model`` column, and another model of much larger σ the figures must not read."""
    return pd.concat([sig.assign(model="mlp"), sig.assign(model="other", sigma_spectral=1e3)], ignore_index=True)


def _vertical_lines(fig):
    return [s for s in fig.layout.shapes if s.type == "line" and s.x0 == s.x1]


def test_regime_figure_plots_the_regime_columns_against_eta_t_sigma(regime) -> None:
    fig = fx.regime_figure(regime)
    assert len(fig.data) == 4 * 4  # (quadratic, mlp) × two η × four curves
    for (model, lr), g in regime.groupby(["model", "lr"]):
        g = g.sort_values("t")
        kind = "closed form" if model == "quadratic" else "measured"
        name = f"{model}, {kind}, η = {lr:g}"
        mine = {(tr.xaxis, tr.name): tr for tr in fig.data if tr.name.startswith(name)}
        expected = {("x", name): g["eta2_over_remainder"], ("x2", name): g["v"] / g["v_limit"],
                    ("x2", f"{name}: η² part of v"): g["v_eta2"] / g["v_limit"], ("x3", name): g["e_over_v"]}
        assert set(mine) == set(expected)
        for key, y in expected.items():
            assert np.allclose(mine[key].x, g["eta_t_sigma"], rtol=1e-15), key
            assert np.allclose(mine[key].y, y, rtol=1e-15), key
        assert all(tr.mode == ("lines" if model == "quadratic" else "markers") for tr in mine.values())
    lines = _vertical_lines(fig)
    assert sorted(s.xref for s in lines) == ["x", "x2", "x3"] and all(s.x0 == 1 for s in lines)
    assert sorted(s.yref for s in fig.layout.shapes if s.y0 == s.y1 == 1) == ["y", "y2"]  # ratio 1 in (a), (b)
    assert [a.text for a in fig.layout.annotations].count("η·t·σ = 1") == 1
    assert regime["eta_t_sigma"].min() < 1 < regime["eta_t_sigma"].max()  # the line falls inside the data


def test_product_grid_figure_is_the_grid_with_the_unlearned_products_outlined(mlp) -> None:
    problem, sig, _ = mlp
    grid = ex.product_grid(problem, 1, sigma_avg=float(sig["sigma_spectral"].mean()))
    fig = fx.product_grid_figure(grid)
    z, t = np.asarray(fig.data[0].z, dtype=np.float64), grid.t
    assert z.shape == (t, t)
    for row in grid.table.itertuples():
        assert z[row.i, row.j] == pytest.approx(np.log10(row.norm), rel=1e-15)
    assert np.isnan(z[np.triu_indices(t)]).all()  # the diagonal and above: no product
    assert np.isfinite(z[np.tril_indices(t, -1)]).all()
    cells = sorted((round(s.y0 + 0.5), round(s.x0 + 0.5)) for s in fig.layout.shapes if s.type == "rect")
    marked = grid.table[grid.table["with_unlearned"]]
    assert cells == sorted(zip(marked["i"], marked["j"], strict=True)) and len(cells) == t - 1
    assert all(1 in cell for cell in cells)  # x̂₁'s row and column
    title = fig.layout.title.text
    assert f"all {t * (t - 1) // 2} products" in title and f"the {t - 1} outlined" in title
    for value in (grid.c_norm, grid.unlearned_norm, grid.eq9_norm, grid.c_norm / grid.unlearned_norm):
        assert f"{value:.3g}" in title
    assert "holds x̂_1" in fig.data[0].text[2][1] and "without x̂_1" in fig.data[0].text[2][0]


def test_bound_figure_marks_eta_t_sigma_one_in_the_frames_where_it_falls(mlp) -> None:
    _, sig, table = mlp
    sigma = float(sig["sigma_spectral"].mean())
    plain = fx.bound_figure(table, "mlp")
    fig = fx.bound_figure(table, "mlp", _study_sigmas(sig))
    assert all(len(f.data) == 6 for f in plain.frames) and all(len(f.data) == 7 for f in fig.frames)
    for frame, before in zip(fig.frames, plain.frames, strict=True):
        lr = float(frame.name.removeprefix("η="))
        line = frame.data[-1]
        if 2 <= 1 / (lr * sigma) <= 4:
            assert list(line.x) == pytest.approx([1 / (lr * sigma)] * 2)
            assert list(np.log10(line.y)) == pytest.approx(list(frame.layout.yaxis.range))
        else:
            assert len(line.x) == 0
        assert f"η·t·σ = {eta_t_sigma(lr, 4, sigma):.3g} at t = 4" in frame.layout.title.text
        assert list(frame.layout.yaxis.range) == list(before.layout.yaxis.range)  # the line leaves the range
    frames = {f.name: f for f in fig.frames}
    assert len(frames["η=0.01"].data[-1].x) == 0 and len(frames["η=0.1"].data[-1].x) == 2  # t = 33 out, 3.3 in


def test_slope_and_unlearning_figures_give_eta_t_sigma_with_sigmas(mlp) -> None:
    problem, sig, table = mlp
    sigma, sigmas = float(sig["sigma_spectral"].mean()), _study_sigmas(sig)
    slopes = ex.fit_slopes(table)
    plain, fig = fx.slope_figure(table, slopes), fx.slope_figure(table, slopes, sigmas)
    assert len(fig.data) == len(plain.data) and "η·t·σ" not in plain.layout.title.text
    for frame in fig.frames:
        t = int(frame.name.removeprefix("t="))
        assert f"mlp {eta_t_sigma(0.1, t, sigma):.3g} (η = 0.1)" in frame.layout.title.text
    unl = ex.unlearning_table(problem, [1e-3, 1e-2, 1e-1], 1, sig)
    plain, fig = fx.unlearning_figure(unl), fx.unlearning_figure(unl, sigmas)
    assert len(fig.data) == len(plain.data) == 4 and not plain.layout.shapes
    (line,) = _vertical_lines(fig)
    assert line.x0 == pytest.approx(1 / (4 * sigma)) and line.xref == "x"
    for tr in fig.data:
        assert np.allclose(tr.customdata, eta_t_sigma(unl["lr"].to_numpy(), 4, sigma), rtol=1e-15)
        assert "η·t·σ" in tr.hovertemplate
