"""The error-curve experiment (§6.1, §8.1, §8.2) against an independent training loop, its checkpoints, its
errors, and the section summaries against hand-computed values."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from unrolling_lib.data import BatchOrder, load_dataset, paper_table
from unrolling_lib.experiments import ablation, sd_loss, strawmen
from unrolling_lib.experiments.error_curves import (
    CURVE_COLUMNS,
    ERROR_CURVE_DEFAULTS,
    error_curves,
    final_rows,
    paper_beside_ours,
)
from unrolling_lib.losses import make_loss
from unrolling_lib.models import build_model
from unrolling_lib.validation import ParameterError

TINY = dict(settings=[["digits", "small_cnn"]], pretrain_steps=[3], steps=6, batch_size=16, lr=0.05,
            sigma_every=3, record_every=2, hessian_batch_size=16, train_subset=128, test_subset=60, progress=False)


def _reference(gamma: float, l2: float, form: str, pretrain: int, steps: int, record_every: int) -> list[dict]:
    """The same cell by hand: torch.optim.SGD over the same seeded orders, the penalty written out."""
    data = load_dataset("digits", subset=128, seed=0)
    test = load_dataset("digits", train=False, subset=60, seed=0)
    model = build_model("small_cnn", 10, seed=0, in_channels=1)
    params = list(model.parameters())
    decay = l2 if form == "weight_decay" else 0.0
    opt = torch.optim.SGD(params, lr=0.05, weight_decay=decay)
    data_loss = make_loss(gamma, "code")

    def step(idx: np.ndarray) -> None:
        idx = torch.as_tensor(idx)
        loss = data_loss(model(data.x[idx]), data.y[idx])
        if form == "norm" and l2:
            loss = loss + l2 * torch.sqrt(sum((p ** 2).sum() for p in params))
        opt.zero_grad()
        loss.backward()
        opt.step()

    for idx in BatchOrder(len(data), 16, steps=pretrain, seed=0):
        step(idx)
    w0 = torch.cat([p.detach().flatten() for p in params]).clone()
    opt = torch.optim.SGD(params, lr=0.05, weight_decay=decay)
    rows = []
    for t, idx in enumerate(BatchOrder(len(data), 16, steps=steps, seed=1), start=1):
        step(idx)
        if t % record_every == 0:
            w = torch.cat([p.detach().flatten() for p in params])
            with torch.no_grad():
                acc = (model(test.x).argmax(1) == test.y).double().mean().item()
            rows.append({"t": t, "weight_change": float((w - w0).norm()), "weight_norm": float(w.norm()),
                         "initial_norm": float(w0.norm()), "accuracy": acc})
    return rows


@pytest.mark.parametrize(("gamma", "l2", "form"), [(0.0, 0.0, "weight_decay"), (5.0, 0.0, "weight_decay"),
                                                   (0.0, 0.3, "weight_decay"), (0.0, 0.3, "norm")])
def test_a_cell_matches_an_independent_loop(gamma: float, l2: float, form: str) -> None:
    result = error_curves(**{**TINY, "gammas": [gamma], "l2s": [l2], "l2_form": form})
    table = result.table
    assert list(table.columns) == list(CURVE_COLUMNS)
    assert table["t"].tolist() == [0, 2, 4, 6] and (table["pretrain_steps"] == 3).all()
    ref = pd.DataFrame(_reference(gamma, l2, form, 3, 6, 2))
    got = table[table["t"] > 0].reset_index(drop=True)
    for column in ("weight_change", "weight_norm", "initial_norm", "accuracy"):
        np.testing.assert_allclose(got[column], ref[column], rtol=1e-5, atol=1e-7, err_msg=column)
    # σ_avg is the mean of the σ samples taken so far (every 3 steps and at w₀); e is Eq. 9 of the row
    samples = result.sigma.sort_values("t")
    for _, row in got.iterrows():
        expected = samples.loc[samples["t"] <= row["t"], "sigma"].mean()
        assert row["sigma_avg"] == pytest.approx(expected, rel=1e-12)
        t = row["t"]
        assert row["e"] == pytest.approx(0.05 ** 2 * row["weight_change"] / t * row["sigma_avg"] * (t * t - t) / 2)
        assert row["eta_t_sigma"] == pytest.approx(0.05 * t * row["sigma_avg"])
    assert table.loc[table["t"] == 0, "e"].item() == 0.0 and table.loc[table["t"] == 0, "weight_change"].item() == 0


def test_the_penalty_forms_differ_as_their_gradients_do() -> None:
    # Weight decay adds λ·w to the gradient, the norm λ·w/‖w‖: with ‖w‖ ≠ 1 the two runs part.
    a = error_curves(**{**TINY, "l2s": [0.3], "l2_form": "weight_decay"}).table
    b = error_curves(**{**TINY, "l2s": [0.3], "l2_form": "norm"}).table
    assert not np.allclose(a["weight_norm"].iloc[1:], b["weight_norm"].iloc[1:])


def test_pretraining_is_shared_along_n_without_changing_any_cell() -> None:
    grid = error_curves(**{**TINY, "pretrain_steps": [0, 3, 5]}).table
    alone = error_curves(**{**TINY, "pretrain_steps": [3]}).table
    cell = grid[grid["pretrain_steps"] == 3].reset_index(drop=True)
    pd.testing.assert_frame_equal(cell, alone)
    # N = 0 starts from the seeded initial weights: ‖w₀‖ is the initial model's
    init = build_model("small_cnn", 10, seed=0, in_channels=1)
    norm = float(torch.cat([p.detach().flatten() for p in init.parameters()]).norm())
    assert grid.loc[grid["pretrain_steps"] == 0, "initial_norm"].iloc[0] == pytest.approx(norm, rel=1e-6)
    assert sorted(grid["pretrain_steps"].unique()) == [0, 3, 5]


def test_every_gamma_and_l2_of_a_seed_sees_the_same_start_and_batches() -> None:
    result = error_curves(**{**TINY, "gammas": [0.0, 5.0], "l2s": [0.0, 0.1]})
    starts = result.table[result.table["t"] == 0]
    assert len(starts) == 4 and starts["initial_norm"].nunique() == 4  # pre-training differs with the loss
    zero = error_curves(**{**TINY, "pretrain_steps": [0], "gammas": [0.0, 5.0], "l2s": [0.0, 0.1]}).table
    assert zero.loc[zero["t"] == 0, "initial_norm"].nunique() == 1  # from M₀ they all start alike


def test_results_are_checkpointed_resumed_and_the_folder_is_guarded(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "runs"
    params = {**TINY, "gammas": [0.0, 5.0]}
    first = error_curves(**params, checkpoint_dir=folder)
    files = sorted(p.name for p in folder.glob("*.csv"))
    assert len(files) == 4  # a table and σ samples per run
    # A second call trains nothing: every run is read back
    import unrolling_lib.experiments.error_curves as ec

    monkeypatch.setattr(ec, "train", lambda *a, **k: pytest.fail("a finished cell was trained again"))
    again = error_curves(**params, checkpoint_dir=folder)
    pd.testing.assert_frame_equal(again.table, first.table, check_dtype=False)
    monkeypatch.undo()
    # Lose one run (an interruption): only it is trained again, and it comes out the same
    (folder / next(f for f in files if "gamma_5.0" in f and not f.startswith("sigma"))).unlink()
    resumed = error_curves(**params, checkpoint_dir=folder)
    pd.testing.assert_frame_equal(resumed.table, first.table, check_dtype=False)
    # Other parameters in the same folder are refused, and a bad value leaves the folder as it was
    with pytest.raises(ParameterError, match="checkpoint_dir"):
        error_curves(**{**params, "steps": 8}, checkpoint_dir=folder)
    fresh = tmp_path / "fresh"
    with pytest.raises(ParameterError, match="hessian_batch_size=500"):
        error_curves(**{**params, "hessian_batch_size": 500}, checkpoint_dir=fresh)
    assert not fresh.exists()


@pytest.mark.parametrize(("override", "match"), [
    ({"settings": [["mnist", "small_vgg"]]}, r"settings\[0\] dataset='mnist' is not allowed"),
    ({"settings": [["digits", "resnet50"]]}, r"settings\[0\] model='resnet50' is not allowed"),
    ({"settings": []}, r"settings=\[\] is not allowed"),
    ({"gammas": [-1.0]}, r"gammas"),
    ({"gammas": []}, r"gammas"),
    ({"l2s": [-0.1]}, r"l2s"),
    ({"pretrain_steps": [-1]}, r"pretrain_steps"),
    ({"steps": 0}, r"steps=0"),
    ({"l2_form": "squared"}, r"l2_form='squared' is not allowed; choose one of 'weight_decay', 'norm'"),
    ({"lr": [0.1]}, r"lr"),
    ({"batch_size": 0}, r"batch_size=0"),
])
def test_bad_input_is_refused_before_any_work(override: dict, match: str, monkeypatch) -> None:
    import unrolling_lib.experiments.error_curves as ec

    monkeypatch.setattr(ec, "load_dataset", lambda *a, **k: pytest.fail("work started before the check"))
    with pytest.raises(ParameterError, match=match):
        error_curves(**{**TINY, **override})


def test_unknown_parameters_are_named() -> None:
    with pytest.raises(ParameterError, match="gamma is not a parameter"):
        strawmen_params = {**strawmen.STRAWMEN_DEFAULTS["quick"], "gamma": 1.0}
        from unrolling_lib.experiments.error_curves import check_error_curve_params

        check_error_curve_params(**strawmen_params)


def test_a_diverging_run_keeps_its_rows_and_says_so() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = error_curves(**{**TINY, "lr": 1e4, "pretrain_steps": [0]})
    assert any("diverged" in str(w.message) for w in caught)
    assert result.diverged and all(len(k) == 6 for k in result.diverged)
    assert len(result.table) >= 1 and result.table["t"].max() < 6


def test_the_cifar_models_run_on_cifar_shaped_batches() -> None:
    # CIFAR cannot be downloaded here: the ResNet-18 / VGG-19 path on synthetic CIFAR-shaped data, one
    # pre-training step and two more, the SD loss, σ capped at two products (each costs seconds on a CPU)
    with pytest.warns(RuntimeWarning, match="no convergence after max_iter=2"):  # the cap says so
        result = error_curves(settings=[["synthetic_cifar", "resnet18"], ["synthetic_cifar", "vgg19"]],
                              gammas=[20.0], pretrain_steps=[1], steps=2, batch_size=4, lr=0.01, sigma_every=100,
                              record_every=1, hessian_batch_size=4, sigma_max_iter=2, train_subset=16,
                              test_subset=8, progress=False)
    table = result.table
    assert (result.sigma["hvp_count"] <= 3).all()  # the cap holds (a product for the start vector at most)
    assert len(table) == 2 * 3 and np.isfinite(table[["e", "sigma_avg", "accuracy"]].to_numpy()).all()
    assert (table.loc[table["t"] > 0, "weight_change"] > 0).all()


# ---------------------------------------------------------------------------------------------------
# The section summaries, on tables whose answers are known
# ---------------------------------------------------------------------------------------------------


def _table(rows: list[dict]) -> pd.DataFrame:
    base = {"seed": 0, "dataset": "digits", "model": "small_vgg", "gamma": 0.0, "l2": 0.0, "pretrain_steps": 0,
            "initial_norm": 1.0, "weight_norm": 1.0, "eta_t_sigma": 0.0, "sigma_avg": 1.0, "accuracy": 0.5,
            "weight_change": 1.0}
    return pd.DataFrame([{**base, **r} for r in rows])[list(CURVE_COLUMNS)]


def test_growth_along_t_reads_a_straight_line_and_a_parabola() -> None:
    line = _table([{"t": t, "e": 3.0 * t} for t in range(0, 101, 10)])
    square = _table([{"t": t, "e": float(t * t), "model": "small_resnet"} for t in range(0, 101, 10)])
    out = strawmen.growth_along_t(pd.concat([line, square]))
    lin, sq = out.set_index("model").loc["small_vgg"], out.set_index("model").loc["small_resnet"]
    assert lin["pearson"] == pytest.approx(1.0) and lin["half_ratio"] == pytest.approx(2.0) and lin["n"] == 10
    assert sq["half_ratio"] == pytest.approx(4.0) and sq["pearson"] < 1.0
    assert lin["low"] <= lin["pearson"] <= lin["high"]


def test_l2_effect_and_sd_loss_effect_divide_by_their_own_baseline() -> None:
    rows = []
    for n, base in ((0, 10.0), (5, 4.0)):
        for lam, e in ((0.0, base), (0.1, 2 * base)):
            rows.append({"pretrain_steps": n, "l2": lam, "t": 6, "e": e, "accuracy": 0.9 - lam})
    effect = strawmen.l2_effect(_table(rows))
    assert effect.set_index(["pretrain_steps", "l2"])["e_ratio"].to_dict() == {(0, 0.0): 1.0, (0, 0.1): 2.0,
                                                                               (5, 0.0): 1.0, (5, 0.1): 2.0}
    rows = [{"gamma": g, "t": 6, "e": e, "accuracy": a} for g, e, a in ((0.0, 8.0, 0.9), (5.0, 6.0, 0.85),
                                                                        (20.0, 2.0, 0.4))]
    out = sd_loss.sd_loss_effect(_table(rows)).set_index("gamma")
    assert out["e_ratio"].tolist() == [1.0, 0.75, 0.25]
    assert out["accuracy_drop"].to_numpy() == pytest.approx([0.0, 0.05, 0.5])


def test_triangle_table_bounds_the_weight_change() -> None:
    rows = [{"t": 0, "e": 0.0, "weight_change": 0.0, "weight_norm": 2.0, "initial_norm": 2.0},
            {"t": 5, "e": 1.0, "weight_change": 1.0, "weight_norm": 1.5, "initial_norm": 2.0}]
    out = strawmen.triangle_table(_table(rows))
    assert out["bound"].tolist() == [4.0, 3.5] and out["bound_ratio"].tolist() == [math.inf, 3.5]


def test_sigma_spread_and_influence_of_n_with_seeds() -> None:
    rows = []
    for seed, wiggle in ((0, 0.0), (1, 0.1), (2, -0.1)):
        for n in (0, 10):
            for gamma, sigma, e in ((0.0, 2.0, 10.0), (5.0, 3.0, (5.0 if n == 0 else 9.0) + wiggle)):
                rows.append({"seed": seed, "pretrain_steps": n, "gamma": gamma, "t": 4, "e": e, "sigma_avg": sigma,
                             "weight_change": e / sigma})
    table = _table(rows)
    spread = ablation.sigma_spread(table)
    assert (spread["spread"] == 1.5).all() and (spread["n_gamma"] == 2).all()
    influence = ablation.influence_of_n(table).set_index("pretrain_steps")
    decreases = np.array([0.5, 0.49, 0.51])
    half = stats.t.ppf(0.975, 2) * decreases.std(ddof=1) / np.sqrt(3)
    assert influence.loc[0, "decrease"] == pytest.approx(0.5)
    assert influence.loc[0, "high"] - influence.loc[0, "decrease"] == pytest.approx(half)
    assert influence.loc[10, "decrease"] == pytest.approx(0.1) and influence.loc[10, "n_seeds"] == 3


def test_paper_beside_ours_pairs_rows_and_ratios() -> None:
    rows = [{"model": m, "gamma": g, "t": 6, "e": e, "accuracy": 0.9, "pretrain_steps": 10}
            for m in ("small_vgg", "small_resnet") for g, e in ((0.0, 4.0), (5.0, 3.0), (7.0, 1.0))]
    out = paper_beside_ours(_table(rows), paper_table("table1"), strength="gamma")
    assert len(out) == 4  # γ = 7 is not in the paper's grid
    row = out[(out["model"] == "small_resnet") & (out["gamma"] == 5.0)].iloc[0]
    assert row["paper_model"] == "resnet18" and row["e_paper"] == 98.3
    assert row["e_ratio_paper"] == pytest.approx(98.3 / 132.49) and row["e_ratio_ours"] == 0.75
    assert row["accuracy_ours"] == pytest.approx(90.0) and row["accuracy_paper"] == 73.21


def test_final_rows_take_the_last_t_of_each_cell() -> None:
    table = _table([{"t": t, "e": float(t), "gamma": g} for g in (0.0, 1.0) for t in (0, 5, 10)])
    last = final_rows(table)
    assert last["t"].tolist() == [10, 10] and last["gamma"].tolist() == [0.0, 1.0]


@pytest.mark.parametrize("defaults", [strawmen.STRAWMEN_DEFAULTS, sd_loss.SD_LOSS_DEFAULTS,
                                      ablation.ABLATION_DEFAULTS])
def test_every_profile_is_valid_and_named_alike(defaults: dict) -> None:
    from unrolling_lib.experiments.error_curves import check_error_curve_params

    assert set(defaults) == {"quick", "colab", "paper", "smoke"}
    for values in defaults.values():
        assert set(values) == set(ERROR_CURVE_DEFAULTS)
        check_error_curve_params(**values)
    assert all(d.startswith("cifar") for d, _ in defaults["colab"]["settings"])
    assert all(d in ("digits", "mnist5k") for d, _ in defaults["quick"]["settings"])


def test_the_cell_loss_is_cross_entropy_at_zero() -> None:
    logits, y = torch.randn(5, 10), torch.randint(0, 10, (5,))
    assert torch.equal(make_loss(0.0)(logits, y), F.cross_entropy(logits, y))


def test_the_papers_table4_read_along_n() -> None:
    out = ablation.paper_influence_of_n(paper_table("table4"))
    row = out[(out["model"] == "vgg19") & (out["gamma"] == 5.0)].set_index("pretrain_steps")
    # §8.2's own reading: VGG-19 on CIFAR-10 at γ = 5 lowers e by 20 % at N = 10 epochs and 4 % at N = 30
    assert row.loc[10, "decrease"] == pytest.approx(1 - 113.27 / 141.73) == pytest.approx(0.20, abs=0.005)
    assert row.loc[30, "decrease"] == pytest.approx(1 - 108.84 / 113.37) == pytest.approx(0.04, abs=0.005)
    assert row.loc[10, "accuracy_drop"] == pytest.approx((77.69 - 77.16) / 100)
    assert sorted(out["pretrain_steps"].unique()) == [0, 10, 20, 30, 40, 50] and len(out) == 2 * 2 * 6


def test_an_interrupted_run_resumes_from_its_last_snapshot(tmp_path, monkeypatch) -> None:
    import unrolling_lib.experiments.error_curves as ec

    params = {**TINY, "pretrain_steps": [0, 3, 5]}
    whole = error_curves(**params).table
    folder = tmp_path / "runs"
    real_train = ec.train
    calls: list[str] = []

    def crash_at_n5(*args, desc: str = "", **kwargs):
        calls.append(desc)
        if desc.startswith("N=5"):
            raise KeyboardInterrupt  # the session dies while the last cell runs
        return real_train(*args, desc=desc, **kwargs)

    monkeypatch.setattr(ec, "train", crash_at_n5)
    with pytest.raises(KeyboardInterrupt):
        error_curves(**params, checkpoint_dir=folder)
    assert sorted(p.name for p in folder.glob("*.pt")) == [f"pretrained_{ec._run_name(_key())}_N_5.pt"]
    assert len(list(folder.glob("seed_*_N_*.csv"))) == 2  # N = 0 and 3 were written as they finished
    calls.clear()
    monkeypatch.setattr(ec, "train", lambda *a, desc="", **k: (calls.append(desc), real_train(*a, desc=desc, **k))[1])
    resumed = error_curves(**params, checkpoint_dir=folder).table
    assert calls == ["N=5 digits/small_cnn γ=0 λ=0"]  # no pre-training, no finished cell again
    pd.testing.assert_frame_equal(resumed, whole, check_dtype=False)
    assert not list(folder.glob("*.pt"))  # the snapshot went once its cell was written


def _key() -> dict:
    return {"seed": 0, "dataset": "digits", "model": "small_cnn", "gamma": 0.0, "l2": 0.0}
