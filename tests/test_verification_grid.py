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
def run() -> vg.VerificationGrid:
    return vg.verification_grid(SPEC, progress=False)


@pytest.fixture(scope="module")
def grid(run) -> pd.DataFrame:
    return run.table


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
    pd.testing.assert_frame_equal(again.table, first.table, check_dtype=False)
    pd.testing.assert_frame_equal(again.curves, first.curves, check_dtype=False)
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
    assert sizes == {"quick": 20, "colab": 16, "paper": 160, "smoke": 4}  # the paper ran 160 of 288
    quick = vg.grid_settings(vg.VERIFICATION_GRIDS["quick"])
    assert {s["dataset"] for s in quick} == {"digits", "mnist5k"} and {s["model"] for s in quick} == {
        "small_vgg", "small_resnet"}
    assert all(s["seeds"] == [0] for s in quick)
    per_gamma = {name: len(vg.grid_settings(spec)) for name, spec in vg.GAMMA_GRIDS.items()}
    assert per_gamma == {"quick": 14, "colab": 8, "paper": 14, "smoke": 3}
    quick = vg.grid_settings(vg.GAMMA_GRIDS["quick"])
    trained = [s for s in quick if s["pretrain_steps"] > 0]
    assert {(s["model"], s["gammas"][0]) for s in trained} == {
        (m, g) for m in ("small_vgg", "small_resnet") for g in (0.0, 1.0, 5.0, 10.0, 15.0, 20.0)}
    assert sorted((s["model"], s["gammas"][0]) for s in quick if s["pretrain_steps"] == 0) == [
        ("small_resnet", 0.0), ("small_vgg", 0.0)]


def test_a_sample_is_a_seeded_subset_of_the_product_in_its_order() -> None:
    spec = {"base": dict(SPEC["base"]), "axes": {"gamma": [0.0, 5.0, 20.0], "batch_size": [16, 32], "lr": [0.01, 0.1]}}
    every = [(s["gammas"][0], s["batch_size"], s["lr"]) for s in vg.grid_settings(spec)]
    picked = [(s["gammas"][0], s["batch_size"], s["lr"]) for s in vg.grid_settings({**spec, "sample": 5})]
    assert len(every) == 12 and len(set(picked)) == 5 and set(picked) <= set(every)
    assert picked == sorted(picked, key=every.index)  # the product's order
    again = [(s["gammas"][0], s["batch_size"], s["lr"]) for s in vg.grid_settings({**spec, "sample": 5})]
    other = [(s["gammas"][0], s["batch_size"], s["lr"])
             for s in vg.grid_settings({**spec, "sample": 5, "sample_seed": 1})]
    assert again == picked and other != picked
    for bad, match in (({**spec, "sample": 13}, "sample=13 is not allowed; the axes have 12"),
                       ({"base": spec["base"], "settings": [{"gamma": 0.0}], "sample": 1}, "sample is not allowed"),
                       ({**spec, "samples": 2}, r"spec keys \['samples'\] are not allowed")):
        with pytest.raises(ParameterError, match=match):
            vg.grid_settings(bad)


def test_the_curves_are_the_protocols_rows_and_end_in_the_table(run) -> None:
    assert sorted(run.curves["setting"].unique()) == [0, 1, 2, 3]
    for i, row in run.table.iterrows():
        curve = run.curves[run.curves["setting"] == i]
        assert curve["t"].is_monotonic_increasing and curve["t"].iloc[-1] == row["t"]
        assert curve["v"].iloc[-1] == row["v"] and (curve["gamma"] == row["gamma"]).all()
    one = vg.grid_settings(SPEC)[1]
    alone = verification_experiment(**one, progress=False).table
    mine = run.curves[run.curves["setting"] == 1]
    assert mine["e"].tolist() == pytest.approx(alone["e"].tolist(), rel=1e-12)
    assert run.provenance["settings"] == 4 and "torch" in run.provenance


def test_settings_that_differ_after_pretraining_share_one_pretrained_model(monkeypatch) -> None:
    from unrolling_lib.experiments import verification as ver

    first, second = vg.grid_settings(SPEC)[2:4]  # γ = 20, batch 16 and 32: the same pre-training
    assert first["pretrain_steps"] > 0
    alone = verification_experiment(**second, progress=False).table
    cache: dict = {}
    verification_experiment(**first, progress=False, pretrained_cache=cache)
    assert len(cache) == 1
    real = ver.train

    def no_pretraining(*args, **kw):
        assert not kw.get("desc", "").startswith("pre-train"), "pre-trained again"
        return real(*args, **kw)

    monkeypatch.setattr(ver, "train", no_pretraining)
    shared = verification_experiment(**second, progress=False, pretrained_cache=cache).table
    pd.testing.assert_frame_equal(shared, alone)
    with pytest.raises(ParameterError, match="pretrained_cache=list is not allowed"):
        verification_experiment(**second, progress=False, pretrained_cache=[])


def test_grid_and_methods_figures(grid) -> None:
    from unrolling_lib.figures.verification import grid_figure, methods_figure

    fig = grid_figure(grid)
    assert len(fig.data) == 2 and {t.name for t in fig.data} == {"cross entropy (γ = 0)", "SD loss (γ > 0)"}
    assert fig.layout.annotations[0].text.startswith("digits<br>Pearson") and "n = 4" in fig.layout.annotations[0].text
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


def _synthetic(e: list[float], v: list[float], **columns) -> pd.DataFrame:
    """A grid table by hand: every axis a constant unless given, e and v as given (v = v_final = v_amnesiac)."""
    n = len(e)
    base = {"setting": list(range(n)), "dataset": "digits", "model": "small_vgg", "gamma": 0.0,
            "pretrain_steps": 0, "batch_size": 32, "lr": 0.01, "hessian_batch_size": 32, "unlearn_step": 0,
            "seed": 0, "t": 10, "noise_floor": 0.0, "eta_t_sigma": 1.0, "weight_change": 1.0, "sigma_avg": 1.0,
            "accuracy": 0.5, "diverged": False}
    table = pd.DataFrame({**base, **columns, "e": e, "v": v, "v_final": v, "v_amnesiac": v})
    return table[list(vg.GRID_COLUMNS)]


def test_along_t_and_across_gamma_correlations_by_hand() -> None:
    e, v = [1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 3.0, 2.0, 5.0, 4.0]
    curves = _synthetic(e, v, setting=7, t=[2, 4, 6, 8, 10]).drop(columns=["diverged"])
    out = vg.along_t_correlations(curves)
    assert len(out) == 3 and (out["setting"] == 7).all() and (out["n"] == 5).all()
    assert out["pearson"].tolist() == pytest.approx([0.8] * 3)  # Σ(dx·dy) = 8, Σdx² = Σdy² = 10
    table = _synthetic(e + [9.0], v + [9.0], gamma=[0.0, 1.0, 5.0, 10.0, 15.0, 20.0])
    table = pd.concat([table, _synthetic([1.0, 2.0], [2.0, 1.0], model="small_resnet", gamma=[0.0, 5.0])])
    out = vg.across_gamma_correlations(table)
    assert set(out["model"]) == {"small_vgg"}  # two γ are too few for a correlation
    row = out[out["method"] == "single_gradient"].iloc[0]
    assert row["gammas"] == 6 and row["pearson"] == pytest.approx(correlation(e + [9.0], v + [9.0]).r)


def test_breaking_settings_are_the_leave_one_out_influences() -> None:
    e = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    v = [1.1, 2.0, 2.9, 4.2, 5.0, 0.5]  # the last setting breaks an almost straight line
    table = _synthetic(e, v, eta_t_sigma=[1, 2, 3, 4, 5, 600])
    out = vg.breaking_settings(table, top=2)
    assert len(out) == 2 and out["setting"].iloc[0] == 5 and out["eta_t_sigma"].iloc[0] == 600
    r = correlation(e, v).r
    assert out["r_without"].iloc[0] == pytest.approx(correlation(e[:5], v[:5]).r)
    assert out["influence"].iloc[0] == pytest.approx(r - correlation(e[:5], v[:5]).r) and out["influence"].iloc[0] < 0
    with pytest.raises(ParameterError, match="method='v' is not allowed"):
        vg.breaking_settings(table, method="v")


def test_paper_reports_put_each_reported_value_beside_its_measurement() -> None:
    gammas = [0.0, 1.0, 5.0, 10.0, 15.0, 20.0]
    rows, curves = [], []
    for model, slope in (("small_vgg", 1.0), ("small_resnet", -1.0)):
        e = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        rows.append(_synthetic(e, [1.0 + slope * x for x in e], model=model, gamma=gammas, pretrain_steps=60))
    rows.append(_synthetic([1.0, 2.0], [1.0, 2.0], model=["small_vgg", "small_resnet"], pretrain_steps=0))
    table = pd.concat(rows, ignore_index=True).assign(setting=range(14))
    for _, row in table.iterrows():  # along t: v = e² on every setting
        ts = [1, 2, 3, 4]
        curves.append(pd.DataFrame({**row.drop(["t", "e", "v", "v_final", "v_amnesiac", "diverged"]).to_dict(),
                                    "t": ts, "e": ts, "v": [t * t for t in ts], "v_final": ts, "v_amnesiac": ts}))
    per_gamma = vg.VerificationGrid(table=table, curves=pd.concat(curves, ignore_index=True), settings=[])
    across = pd.concat([_synthetic([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.5], unlearn_step=[0, 0, 20, 20]),
                        _synthetic([1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0], dataset="mnist5k",
                                   unlearn_step=[0, 20, 20, 20])], ignore_index=True)
    out = vg.paper_reports(per_gamma, vg.VerificationGrid(table=across, curves=pd.DataFrame(), settings=[]))
    assert out["paper"].tolist() == [0.934, 0.9668, 0.96, 0.81, 0.9028, 0.8813, 0.91, 0.81]
    along = correlation([1, 2, 3, 4], [1, 4, 9, 16]).r
    assert out["pearson"].iloc[:2].tolist() == pytest.approx([along, along])
    assert out["measured_setting"].iloc[0] == "small_resnet, N = 0, γ = 0"  # Figure 9 is ResNet-18's
    assert out["pearson"].iloc[2:4].tolist() == pytest.approx([-1.0, 1.0])  # ResNet-18's stand-in, then VGG-19's
    assert out["pearson"].iloc[4] == pytest.approx(correlation([1, 2, 3, 4], [1, 2, 3, 4.5]).r)
    assert out["pearson"].iloc[5] == pytest.approx(-1.0) and out["n"].iloc[4] == 4
    # amnesiac: only the settings where x̂₁ is not first (two on digits: too few; three on MNIST-5k)
    assert out["n"].iloc[6:].tolist() == [2, 3] and out["pearson"].iloc[7] == pytest.approx(-1.0)
    assert out["measured_setting"].iloc[7] == "mnist5k (x̂₁ not first)"


def test_along_t_and_across_gamma_figures(run) -> None:
    from unrolling_lib.figures.verification import across_gamma_figure, along_t_figure, grid_figure

    fig = along_t_figure(run.curves[run.curves["setting"].isin([0, 2])])
    assert len(fig.data) == 2 and list(fig.data[0].marker.color) == run.curves.loc[
        run.curves["setting"] == 0, "t"].tolist()
    assert "not measured" in fig.layout.title.text  # SPEC skips the noise floor
    curves = _synthetic([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 5.0], t=[5, 10, 15, 20], noise_floor=0.1)
    fig = along_t_figure(curves.assign(setting=3))
    assert correlation(curves["e"], curves["v"]).describe() in fig.layout.annotations[0].text
    assert "noise floor 0.1" in fig.layout.title.text and len(fig.layout.shapes) == 1
    table = _synthetic([1.0, 2.0, 3.0], [1.0, 2.5, 3.0], gamma=[0.0, 10.0, 20.0], noise_floor=0.5)
    fig = across_gamma_figure(table)
    assert len(fig.data) == 1 and list(fig.data[0].text) == ["γ=0", "γ=10", "γ=20"]
    assert fig.layout.annotations[0].text.startswith("small_vgg<br>Pearson") and len(fig.layout.shapes) == 1
    fig = grid_figure(table.assign(unlearn_step=[0, 20, 0]), noise_floor=0.0)
    assert "noise floor 0" in fig.layout.title.text and "x̂₁ halfway" in fig.layout.title.text
    assert list(fig.data[1].marker.symbol) == ["circle", "diamond"] and not fig.layout.shapes


def test_chapter_specs_set_the_seed_and_the_sample() -> None:
    per_gamma, across = vg.chapter_specs("quick", seed=3)
    assert all(s["seeds"] == [3] for s in vg.grid_settings(per_gamma) + vg.grid_settings(across))
    assert len(vg.grid_settings(across)) == 20 and vg.GRID_CHAPTER_DEFAULTS["quick"] == {"sample": 20}
    assert len(vg.grid_settings(vg.chapter_specs("quick", sample=0)[1])) == 2 * 2 * 2 * 3 * 3 * 2 * 2 * 2
    assert len(vg.grid_settings(vg.chapter_specs("quick", sample=7)[1])) == 7
    assert "seed" not in vg.VERIFICATION_GRIDS["quick"]["base"]  # the profile's spec is left alone
    with pytest.raises(ParameterError, match="profile='fast' is not allowed"):
        vg.chapter_specs("fast")
    with pytest.raises(ParameterError, match="sample=-1 is not allowed"):
        vg.chapter_specs("quick", sample=-1)


def test_stand_ins_and_the_reports_figure() -> None:
    from unrolling_lib.figures.verification import reports_figure

    assert vg.stand_in_for(["small_vgg", "small_resnet"], "resnet18") == "small_resnet"
    assert vg.stand_in_for(["resnet18", "vgg19"], "vgg19") == "vgg19"
    assert vg.stand_in_for(["small_cnn"], "vgg19") == "small_cnn"
    assert vg.stand_in_for(["small_cnn"], "vgg19", fallback=False) is None
    reports = pd.DataFrame({"figure": ["Figure 9", "Figure 11"], "paper_setting": ["a", "b"], "paper": [0.934, 0.81],
                            "measured_setting": ["x", "no stand-in"], "n": [12, float("nan")],
                            "pearson": [0.7, float("nan")], "low": [0.3, float("nan")], "high": [0.9, float("nan")]})
    fig = reports_figure(reports)
    assert list(fig.data[1].x) == [0.81, 0.934] and list(fig.data[0].y) == ["Figure 11: b", "Figure 9: a"]
    assert list(fig.data[0].error_x.arrayminus)[1] == pytest.approx(0.4)
    fig.to_json()  # a missing measurement still serialises
