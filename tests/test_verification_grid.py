"""§8.3 across settings: the grid spec, one row per setting from the protocol itself, checkpoints, the
correlations per data set and method."""

from __future__ import annotations

import pandas as pd
import pytest

from unrolling_lib.experiments import verification_grid as vg
from unrolling_lib.experiments.verification import verification_experiment
from unrolling_lib.metrics import correlation
from unrolling_lib.validation import ParameterError

SPEC = {"base": {**vg.VERIFICATION_GRIDS["smoke"]["base"], "noise_floor": False},
        "axes": {"gamma": [0.0, 20.0], "batch_size": [16, 32]}}


@pytest.fixture(scope="module")
def grid() -> pd.DataFrame:
    return vg.verification_grid(SPEC, progress=False)


def test_each_row_is_the_protocols_last_step_for_that_setting(grid) -> None:
    assert list(grid.columns) == list(vg.GRID_COLUMNS) and len(grid) == 4
    assert grid[["gamma", "batch_size"]].values.tolist() == [[0.0, 16], [0.0, 32], [20.0, 16], [20.0, 32]]
    one = vg.grid_settings(SPEC)[3]
    alone = verification_experiment(**one, progress=False).table.sort_values("t").iloc[-1]
    row = grid.iloc[3]
    for column in ("t", "e", "v", "v_final", "v_amnesiac", "sigma_avg", "accuracy"):
        assert row[column] == pytest.approx(alone[column], rel=1e-12), column
    assert not grid["diverged"].any()


def test_grid_correlations_are_pearson_per_method_with_n(grid) -> None:
    table = pd.concat([grid, grid.assign(setting=grid["setting"] + 4, e=grid["e"] * 1.5, v=grid["v"] * 2.0)])
    out = vg.grid_correlations(table)
    row = out[(out["runs"] == "all") & (out["method"] == "single_gradient")].iloc[0]
    expected = correlation(table["e"], table["v"])
    assert row["n"] == 8 and row["pearson"] == pytest.approx(expected.r) and row["low"] == pytest.approx(expected.low)
    assert set(out["method"]) == set(vg.METHODS) and set(out["runs"]) == {"all", "ce", "sd"}
    assert out.loc[out["runs"] == "ce", "n"].max() == 4


def test_diverged_settings_are_kept_and_left_out(grid) -> None:
    table = grid.assign(diverged=[False, False, False, True])
    out = vg.grid_correlations(table)
    row = out[(out["runs"] == "all") & (out["method"] == "amnesiac")].iloc[0]
    assert row["n"] == 3 and row["left_out"] == 1


def test_a_grid_resumes_from_its_folder_and_refuses_another_spec(tmp_path, monkeypatch) -> None:
    first = vg.verification_grid(SPEC, progress=False, checkpoint_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.glob("setting_*.csv")) == [f"setting_{i}.csv" for i in range(4)]
    monkeypatch.setattr(vg, "verification_experiment", lambda **k: pytest.fail("a finished setting ran again"))
    again = vg.verification_grid(SPEC, progress=False, checkpoint_dir=tmp_path)
    pd.testing.assert_frame_equal(again, first, check_dtype=False)
    other = {**SPEC, "axes": {"gamma": [0.0]}}
    with pytest.raises(ParameterError, match="checkpoint_dir"):
        vg.verification_grid(other, progress=False, checkpoint_dir=tmp_path)


@pytest.mark.parametrize(("spec", "match"), [
    ({"axes": {"gamma": [0.0]}}, "spec must be a dict with 'base'"),
    ({"base": {}, "axes": {"gamma": []}}, r"axes\['gamma'\]=\[\] is not allowed"),
    ({"base": {}, "settings": []}, r"settings=\[\] is not allowed"),
    ({"base": dict(SPEC["base"]), "axes": {"batch_size": [32]}}, "setting 0 has no gamma"),
    ({"base": dict(SPEC["base"]), "axes": {"gamma": [0.0], "batch_size": [0]}}, r"setting 0 .*batch_size=0"),
    ({"base": dict(SPEC["base"]), "axes": {"gamma": [0.0], "momentm": [0.9]}}, r"setting 0 .*momentm"),
])
def test_bad_specs_are_refused_before_any_work(spec, match, monkeypatch) -> None:
    monkeypatch.setattr(vg, "verification_experiment", lambda **k: pytest.fail("work started"))
    with pytest.raises(ParameterError, match=match):
        vg.verification_grid(spec, progress=False)


def test_every_profile_grid_is_valid() -> None:
    sizes = {name: len(vg.grid_settings(spec)) for name, spec in vg.VERIFICATION_GRIDS.items()}
    assert sizes == {"quick": 36, "colab": 16, "paper": 288, "smoke": 4}
    quick = vg.grid_settings(vg.VERIFICATION_GRIDS["quick"])
    combos = {(s["pretrain_steps"], s["batch_size"], s["gammas"][0], s["lr"]) for s in quick}
    assert len(combos) == 36  # every combination of the axes, once
    assert {s["lr"] for s in quick} == {0.01, 0.03} and all(s["seeds"] == [0] for s in quick)


def test_grid_and_methods_figures(grid) -> None:
    from unrolling_lib.figures.verification import grid_figure, methods_figure

    fig = grid_figure(grid)
    assert len(fig.data) == 2 and {t.name for t in fig.data} == {"cross entropy (γ = 0)", "SD loss (γ > 0)"}
    assert fig.layout.annotations[0].text.startswith("digits: Pearson") and "n = 4" in fig.layout.annotations[0].text
    assert sum(len(t.x) for t in fig.data) == 4
    fig = grid_figure(grid.assign(diverged=[False, False, False, True]), method="v_amnesiac")
    assert "1 diverged, left out" in fig.layout.title.text and sum(len(t.x) for t in fig.data) == 3
    one = vg.grid_settings(SPEC)[0]
    table = verification_experiment(**{**one, "gammas": [0.0, 20.0]}, progress=False).table
    fig = methods_figure(table)
    assert len(fig.data) == 3 * 2 and [a.text for a in fig.layout.annotations][:3] == [
        "single-gradient at w₀", "single-gradient at w_{N+t}", "amnesiac"]
    assert list(fig.data[2].y) == pytest.approx(table.loc[table["gamma"] == 0, "v_amnesiac"].tolist())
    assert "not measured" in fig.layout.title.text  # this spec skips the noise floor
    floored = methods_figure(table.assign(noise_floor=1e-3))
    assert "noise floor 0.001" in floored.layout.title.text and len(floored.layout.shapes) == 3


def test_method_correlations_along_t() -> None:
    from unrolling_lib.experiments.verification import method_correlations

    one = vg.grid_settings(SPEC)[0]
    table = verification_experiment(**{**one, "gammas": [0.0, 20.0], "finetune_steps": 20}, progress=False).table
    out = method_correlations(table)
    assert len(out) == 2 * 3 and set(out["method"]) == {"single_gradient", "single_gradient_final", "amnesiac"}
    part = table[table["gamma"] == 20.0].sort_values("t")
    row = out[(out["gamma"] == 20.0) & (out["method"] == "single_gradient_final")].iloc[0]
    assert row["pearson"] == pytest.approx(correlation(part["e"], part["v_final"]).r)
    assert row["n"] == len(part) and row["v_last"] == part["v_final"].iloc[-1]
