"""The text experiment (§8.1 Table 2, §8.3 Figure 10): Table 2 from a hand-made §8.3 summary against hand-computed
means and standard deviations, beside the paper's numbers, the two figures' trace data, the encoder parameters'
checks, a small real encoder fine-tuning in a Trainer (e against Eq. 9 from its own columns, σ's running mean,
Cauchy interlacing, plain SGD) and the profiles' step counts against the epochs they stand for."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from unrolling_lib.experiments.text import (
    ENCODER_COLUMNS,
    ENCODER_DEFAULTS,
    TABLE2_COLUMNS,
    TEXT_DATA,
    TEXT_DEFAULTS,
    check_encoder_params,
    finetune_encoder,
    table2,
    table2_beside_paper,
)
from unrolling_lib.experiments.verification import SUMMARY_COLUMNS, VerificationSummary, check_verification_params
from unrolling_lib.figures.text import encoder_figure, table2_figure
from unrolling_lib.metrics import Correlation
from unrolling_lib.training.runtime import cpu_threads
from unrolling_lib.unlearning_error import unlearning_error
from unrolling_lib.validation import ParameterError

# ---------------------------------------------------------------------------------------------------
# Table 2 from a hand-made summary
# ---------------------------------------------------------------------------------------------------

# (seed, gamma, e, v, accuracy in [0, 1], eta_t_sigma), in no particular order; γ = 0.05 has one seed only.
_ROWS = [
    (1, 1.0, 0.5, 0.04, 0.80, 0.3),
    (0, 0.0, 2.0, 0.30, 0.85, 1.0),
    (0, 1.0, 0.3, 0.02, 0.84, 0.1),
    (1, 0.0, 4.0, 0.50, 0.87, 3.0),
    (0, 0.1, 1.0, 0.10, 0.90, 0.5),
    (1, 0.1, 1.6, 0.16, 0.86, 0.7),
    (0, 0.05, 1.2, 0.11, 0.88, 0.6),
]


def _summary(rows=_ROWS) -> VerificationSummary:
    table = pd.DataFrame(np.nan, index=range(len(rows)), columns=list(SUMMARY_COLUMNS))
    for i, (seed, gamma, e, v, acc, ets) in enumerate(rows):
        table.loc[i, ["seed", "gamma", "t", "e", "v", "accuracy", "eta_t_sigma", "n_t", "noise_floor"]] = [
            seed, gamma, 752, e, v, acc, ets, 16, 1e-3 * (seed + 1)]
    table["seed"] = table["seed"].astype(int)
    return VerificationSummary(table=table, across_gamma=pd.DataFrame(),
                               pooled=Correlation("pearson", 0.9, len(rows), 0.5, 0.99, 0.01))


def test_table2_is_the_mean_and_sample_sd_over_seeds_per_gamma() -> None:
    out = table2(_summary())
    assert tuple(out.columns) == TABLE2_COLUMNS
    assert out["gamma"].tolist() == [0.0, 0.05, 0.1, 1.0]
    s2 = math.sqrt(2.0)  # two values a, b: sample sd (ddof = 1) is |a − b| / √2
    expected = {
        #        n   e     e_sd          v     v_sd           acc (%)  acc_sd           η·t·σ
        0.0: (2, 3.0, 2.0 / s2, 0.40, 0.20 / s2, 86.0, 2.0 / s2, 2.0),
        0.05: (1, 1.2, 0.0, 0.11, 0.0, 88.0, 0.0, 0.6),
        0.1: (2, 1.3, 0.6 / s2, 0.13, 0.06 / s2, 88.0, 4.0 / s2, 0.6),
        1.0: (2, 0.4, 0.2 / s2, 0.03, 0.02 / s2, 82.0, 4.0 / s2, 0.2),
    }
    for _, row in out.iterrows():
        n, e, e_sd, v, v_sd, acc, acc_sd, ets = expected[row["gamma"]]
        assert row["n_seeds"] == n
        assert row["e"] == pytest.approx(e, rel=1e-12)
        assert row["e_sd"] == pytest.approx(e_sd, rel=1e-12, abs=1e-15)
        assert row["v"] == pytest.approx(v, rel=1e-12)
        assert row["v_sd"] == pytest.approx(v_sd, rel=1e-12, abs=1e-15)
        assert row["accuracy"] == pytest.approx(acc, rel=1e-12)
        assert row["accuracy_sd"] == pytest.approx(acc_sd, rel=1e-9, abs=1e-12)
        assert row["eta_t_sigma"] == pytest.approx(ets, rel=1e-12)
        # the noise floor v is read against: the largest over the seeds (seed s has 1e-3·(s + 1) here)
        assert row["noise_floor"] == pytest.approx(1e-3 * n, rel=1e-12)
    assert not out.isna().any().any()  # one seed: sd 0, not NaN


def test_table2_sd_matches_numpy_ddof1_for_three_seeds() -> None:
    rows = [(s, 0.0, e, v, a, 1.0) for s, e, v, a in [(0, 1.0, 0.1, 0.5), (1, 2.0, 0.4, 0.6), (2, 6.0, 0.7, 0.9)]]
    out = table2(_summary(rows))
    assert len(out) == 1 and out.loc[0, "n_seeds"] == 3
    assert out.loc[0, "e"] == pytest.approx(3.0)
    assert out.loc[0, "e_sd"] == pytest.approx(math.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + (6 - 3) ** 2) / 2))  # √7
    assert out.loc[0, "v_sd"] == pytest.approx(0.3)  # 0.1, 0.4, 0.7: deviations ±0.3, 0 → √(0.18 / 2)
    assert out.loc[0, "accuracy"] == pytest.approx(200 / 3)
    assert out.loc[0, "accuracy_sd"] == pytest.approx(float(np.std([50.0, 60.0, 90.0], ddof=1)))


def _ours() -> pd.DataFrame:
    return table2(_summary())  # γ 0.0, 0.05, 0.1, 1.0


def test_table2_beside_paper_puts_the_papers_values_on_their_gamma() -> None:
    beside = table2_beside_paper(_ours())
    gammas = beside["gamma"].tolist()
    assert gammas == sorted(gammas) == [0.0, 0.01, 0.05, 0.1, 0.5, 1.0, 1.25, 1.5]
    row = beside.set_index("gamma")
    paper = {0.0: (85.10, 4.35, 92.13), 0.01: (85.89, 4.27, 92.53), 0.1: (71.73, 3.43, 92.38),
             0.5: (31.98, 1.57, 92.71), 1.0: (8.91, 0.57, 92.09), 1.25: (5.60, 0.43, 87.22),
             1.5: (2.57, 0.48, 84.99)}
    for g, (e, v, acc) in paper.items():
        assert (row.loc[g, "e_paper"], row.loc[g, "v_paper"], row.loc[g, "accuracy_paper"]) == pytest.approx(
            (e, v, acc))
    # a γ only we have: the paper's columns are missing
    assert row.loc[0.05, ["e_paper", "v_paper", "accuracy_paper"]].isna().all()
    assert row.loc[0.05, "e"] == pytest.approx(1.2) and row.loc[0.05, "accuracy"] == pytest.approx(88.0)
    # a γ only the paper has: ours are missing
    for g in (0.01, 0.5, 1.25, 1.5):
        assert row.loc[g, list(TABLE2_COLUMNS[1:])].isna().all()
    # ours are untouched where both have the γ
    assert row.loc[1.0, "e"] == pytest.approx(0.4) and row.loc[0.1, "v"] == pytest.approx(0.13)
    assert set(TABLE2_COLUMNS) | {"e_paper", "v_paper", "accuracy_paper"} == set(beside.columns)


# ---------------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------------


def _traces(fig: go.Figure, name: str) -> list:
    return [t for t in fig.data if t.name == name]


def test_table2_figure_holds_ours_and_the_papers_relative_to_gamma0() -> None:
    beside = table2_beside_paper(_ours())
    fig = table2_figure(beside)
    ours, paper = _traces(fig, "ours"), _traces(fig, "paper (DistilBERT, IMDB)")
    assert len(ours) == len(paper) == 3
    # e / e(γ=0): ours at our γ (e(0) = 3.0), the paper's at its γ (e(0) = 85.10)
    np.testing.assert_allclose(ours[0].x, [0.0, 0.05, 0.1, 1.0])
    np.testing.assert_allclose(ours[0].y, [1.0, 1.2 / 3.0, 1.3 / 3.0, 0.4 / 3.0], rtol=1e-12)
    np.testing.assert_allclose(paper[0].x, [0.0, 0.01, 0.1, 0.5, 1.0, 1.25, 1.5])
    np.testing.assert_allclose(paper[0].y, np.array([85.10, 85.89, 71.73, 31.98, 8.91, 5.60, 2.57]) / 85.10,
                               rtol=1e-12)
    # v / v(γ=0): ours v(0) = 0.40, the paper's 4.35
    np.testing.assert_allclose(ours[1].y, [1.0, 0.11 / 0.40, 0.13 / 0.40, 0.03 / 0.40], rtol=1e-12)
    np.testing.assert_allclose(paper[1].y, np.array([4.35, 4.27, 3.43, 1.57, 0.57, 0.43, 0.48]) / 4.35, rtol=1e-12)
    # accuracy in percent, as is
    np.testing.assert_allclose(ours[2].y, [86.0, 88.0, 88.0, 82.0], rtol=1e-12)
    np.testing.assert_allclose(paper[2].y, [92.13, 92.53, 92.38, 92.71, 92.09, 87.22, 84.99], rtol=1e-12)
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type == "log"
    assert fig.layout.yaxis3.type != "log"
    # each trace in its panel
    assert [t.yaxis for t in ours] == [t.yaxis for t in paper] == ["y", "y2", "y3"]


def test_table2_figure_error_bars_belong_to_their_points() -> None:
    beside = table2_beside_paper(_ours())
    ours = _traces(table2_figure(beside), "ours")
    s2 = math.sqrt(2.0)
    # e_sd / e(0) at γ 0, 0.05, 0.1, 1.0
    assert len(ours[0].error_y.array) == len(ours[0].x) == 4
    np.testing.assert_allclose(ours[0].error_y.array, np.array([2.0 / s2, 0.0, 0.6 / s2, 0.2 / s2]) / 3.0)
    np.testing.assert_allclose(ours[2].error_y.array, [2.0 / s2, 0.0, 4.0 / s2, 4.0 / s2])


def test_table2_figure_error_bars_without_paper_only_rows() -> None:
    """Where every row has our values the bars are the sd relative to γ = 0 (accuracy: in percent)."""
    ours_only = table2_beside_paper(_ours())
    ours_only = ours_only[ours_only["e"].notna()].reset_index(drop=True)
    ours = _traces(table2_figure(ours_only), "ours")
    s2 = math.sqrt(2.0)
    np.testing.assert_allclose(ours[0].error_y.array, np.array([2.0 / s2, 0.0, 0.6 / s2, 0.2 / s2]) / 3.0)
    np.testing.assert_allclose(ours[1].error_y.array, np.array([0.2 / s2, 0.0, 0.06 / s2, 0.02 / s2]) / 0.4)
    np.testing.assert_allclose(ours[2].error_y.array, [2.0 / s2, 0.0, 4.0 / s2, 4.0 / s2])


def _encoder_frame() -> pd.DataFrame:
    rows = []
    for gamma, step in ((0.0, 0.5), (1.5, 0.25)):
        for over, cost in (("all", 4.0), ("head", 0.1)):
            for k, t in enumerate((10, 20)):
                rows.append({"gamma": gamma, "sigma_over": over, "t": t, "e": (1 + k) * (gamma + 1) * cost,
                             "sigma": 2.0, "sigma_avg": 2.0, "weight_change": 0.1 * t, "hvp_count": 3,
                             "sigma_seconds": cost * (1 + k), "step_seconds": step, "accuracy": 0.75})
    return pd.DataFrame(rows, columns=list(ENCODER_COLUMNS))


def test_encoder_figure_shows_e_along_t_and_sample_cost_in_steps() -> None:
    df = _encoder_frame()
    fig = encoder_figure(df)
    lines = [t for t in fig.data if isinstance(t, go.Scatter)]
    boxes = [t for t in fig.data if isinstance(t, go.Box)]
    assert [t.name for t in lines] == ["γ=0, σ over all", "γ=0, σ over head", "γ=1.5, σ over all",
                                       "γ=1.5, σ over head"]
    for trace in lines:
        gamma = 0.0 if trace.name.startswith("γ=0,") else 1.5
        over = trace.name.rsplit(" ", 1)[-1]
        part = df[(df["gamma"] == gamma) & (df["sigma_over"] == over)]
        np.testing.assert_allclose(trace.x, part["t"])
        np.testing.assert_allclose(trace.y, part["e"])
        assert trace.line.dash == ("solid" if over == "all" else "dot")
    assert [b.name for b in boxes] == ["σ over all", "σ over head"]
    # seconds of a sample / seconds of a step, by hand: all: 4, 8 at 0.5 s and 4, 8 at 0.25 s a step
    np.testing.assert_allclose(boxes[0].y, [8.0, 16.0, 16.0, 32.0])
    np.testing.assert_allclose(boxes[1].y, [0.2, 0.4, 0.4, 0.8])
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type == "log"
    assert all(b.xaxis == "x2" for b in boxes) and all(t.xaxis == "x" for t in lines)


# ---------------------------------------------------------------------------------------------------
# check_encoder_params
# ---------------------------------------------------------------------------------------------------


def test_check_encoder_params_passes_the_quick_defaults_through() -> None:
    quick = ENCODER_DEFAULTS["quick"]
    out = check_encoder_params(**quick)
    assert out == {**quick, "gammas": [0.0], "sigma_over": ["all", "head"]}
    assert check_encoder_params(**{**quick, "sigma_over": "all"})["sigma_over"] == ["all"]
    assert check_encoder_params(**{**quick, "sigma_over": ("head",)})["sigma_over"] == ["head"]
    assert check_encoder_params(**{**quick, "gammas": 0.5})["gammas"] == [0.5]
    assert check_encoder_params(**{**quick, "train_subset": None, "test_subset": None})["train_subset"] is None


@pytest.mark.parametrize(("change", "match"), [
    ({"retries": 3}, r"^retries is not a parameter of .*encoder fine-tuning experiment; known: batch_size, "),
    ({"sigma_over": "both"}, r"^sigma_over='both' is not allowed"),
    ({"sigma_over": ["all", "all"]}, r"^sigma_over=\['all', 'all'\] is not allowed"),
    ({"sigma_over": []}, r"^sigma_over must name at least one"),
    ({"steps": 0}, r"^steps=0 is not allowed"),
    ({"encoder": ""}, r"^encoder='' is not allowed"),
    ({"encoder": None}, r"^encoder=None is not allowed"),
    ({"pooling": "max"}, r"^pooling='max' is not allowed"),
    ({"source": "imdbx"}, r"^source='imdbx' is not allowed"),
    ({"gammas": [0.0, 0.0]}, r"^gammas=\[0.0, 0.0\] is not allowed"),
    ({"hessian_batch_size": 0}, r"^hessian_batch_size=0 is not allowed"),
    ({"train_subset": 0}, r"^train_subset=0 is not allowed"),
])
def test_check_encoder_params_refuses_bad_input_in_one_line(change, match) -> None:
    with pytest.raises(ParameterError, match=match) as err:
        check_encoder_params(**{**ENCODER_DEFAULTS["quick"], **change})
    assert "\n" not in str(err.value)


def test_check_encoder_params_names_a_missing_key() -> None:
    params = dict(ENCODER_DEFAULTS["quick"])
    del params["max_iter"]
    with pytest.raises(ParameterError, match=r"encoder fine-tuning parameters lack max_iter$"):
        check_encoder_params(**params)


def test_check_encoder_params_messages_say_the_once() -> None:
    with pytest.raises(ParameterError) as unknown:
        check_encoder_params(**{**ENCODER_DEFAULTS["quick"], "retries": 3})
    params = dict(ENCODER_DEFAULTS["quick"])
    del params["max_iter"]
    with pytest.raises(ParameterError) as missing:
        check_encoder_params(**params)
    assert "the the" not in str(unknown.value) and "the the" not in str(missing.value)


@pytest.mark.parametrize("value", [None, 3])
def test_check_encoder_params_refuses_a_non_list_sigma_over(value) -> None:
    with pytest.raises(ParameterError, match=r"sigma_over"):
        check_encoder_params(**{**ENCODER_DEFAULTS["quick"], "sigma_over": value})


# ---------------------------------------------------------------------------------------------------
# finetune_encoder, small and real
# ---------------------------------------------------------------------------------------------------

# The smoke profile made smaller still (two cores, maybe shared): 2 steps of 8 texts, σ at every step from 2
# Hessian-vector products on 2 texts.
_RUN = {**ENCODER_DEFAULTS["smoke"], "steps": 2, "sigma_every": 1, "max_iter": 2, "train_subset": 16,
        "test_subset": 8, "hessian_batch_size": 2}


@pytest.fixture(scope="module")
def encoder_run():
    """One fine-tuning run, with a probe on the Trainer that records each step's gradient norm before the
    optimizer step (what plain SGD moves the weights by, times η)."""
    import unrolling_lib.training.hf as hf

    grad_norms: list[float] = []

    class Probe(hf.SDLossTrainer):
        def training_step(self, model, inputs, *args, **kwargs):
            loss = super().training_step(model, inputs, *args, **kwargs)
            sq = sum(float(p.grad.detach().double().pow(2).sum()) for p in model.parameters() if p.grad is not None)
            grad_norms.append(math.sqrt(sq))
            return loss

    with pytest.MonkeyPatch.context() as mp, cpu_threads(1), pytest.warns(RuntimeWarning, match="no convergence"):
        mp.setattr(hf, "SDLossTrainer", Probe)
        df = finetune_encoder(**_RUN, progress=False, device="cpu")
    return df, grad_norms


def test_finetune_encoder_rows_and_eq9(encoder_run) -> None:
    df, _ = encoder_run
    assert tuple(df.columns) == ENCODER_COLUMNS
    ts = list(range(_RUN["sigma_every"], _RUN["steps"] + 1, _RUN["sigma_every"]))
    assert ts == [1, 2]
    for gamma in _RUN["gammas"]:
        for over in _RUN["sigma_over"]:
            part = df[(df["gamma"] == gamma) & (df["sigma_over"] == over)].sort_values("t")
            assert part["t"].tolist() == ts
            # σ_avg: the running mean of σ
            np.testing.assert_allclose(part["sigma_avg"], np.cumsum(part["sigma"]) / np.arange(1, len(part) + 1),
                                       rtol=1e-12)
            for _, r in part.iterrows():
                assert r["e"] == pytest.approx(
                    unlearning_error(_RUN["lr"], int(r["t"]), r["weight_change"], r["sigma_avg"]), rel=1e-9, abs=0)
                # Eq. 9 by hand as well: η² (‖Δw‖ / t) σ_avg (t² − t) / 2
                t = r["t"]
                assert r["e"] == pytest.approx(
                    _RUN["lr"] ** 2 * r["weight_change"] / t * r["sigma_avg"] * (t * t - t) / 2, rel=1e-9, abs=0)
            assert (part["sigma"] > 0).all() and (part["weight_change"] > 0).all()
            assert part["hvp_count"].between(1, _RUN["max_iter"]).all()
            assert (part["sigma_seconds"] > 0).all()
    assert len(df) == len(_RUN["gammas"]) * len(_RUN["sigma_over"]) * len(ts)


def test_finetune_encoder_head_is_a_lower_bound_and_accuracy_is_per_gamma(encoder_run) -> None:
    df, _ = encoder_run
    for _gamma, part in df.groupby("gamma"):
        wide = part.pivot(index="t", columns="sigma_over", values=["sigma", "weight_change"])
        # Cauchy interlacing: the head block's top eigenvalue is at most the whole Hessian's
        assert (wide["sigma"]["head"] <= wide["sigma"]["all"] * 1.01).all()
        # the head's weights are a part of all of them: ‖Δw_head‖ ≤ ‖Δw‖
        assert (wide["weight_change"]["head"] <= wide["weight_change"]["all"] * (1 + 1e-9)).all()
        assert part["accuracy"].nunique() == 1
        acc = float(part["accuracy"].iloc[0])
        assert 0.0 <= acc <= 1.0
        n = _RUN["test_subset"]
        assert acc * n == pytest.approx(round(acc * n), abs=1e-9)  # right answers out of the test texts
        assert part["step_seconds"].nunique() == 1 and (part["step_seconds"] > 0).all()


def test_finetune_encoder_steps_are_plain_sgd(encoder_run) -> None:
    df, grad_norms = encoder_run
    first = df[(df["sigma_over"] == "all") & (df["t"] == 1)].iloc[0]
    assert len(grad_norms) == _RUN["steps"] * len(_RUN["gammas"])
    # plain SGD: w_1 − w_0 = −η g_1, so ‖w_1 − w_0‖ = η ‖g_1‖
    assert first["weight_change"] == pytest.approx(_RUN["lr"] * grad_norms[0], rel=1e-4)


def test_finetune_encoder_refuses_a_hessian_batch_larger_than_the_training_texts(monkeypatch) -> None:
    import unrolling_lib.training.hf as hf

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(hf, "SDLossTrainer", no_training)
    with pytest.raises(ParameterError, match=r"^hessian_batch_size=9 is not allowed; the training texts number 8$"):
        finetune_encoder(**{**_RUN, "train_subset": 8, "hessian_batch_size": 9}, progress=False, device="cpu")


def test_finetune_encoder_refuses_bad_parameters_before_loading_anything(monkeypatch) -> None:
    import unrolling_lib.experiments.text as text

    def no_loading(*args, **kwargs):
        raise AssertionError("the encoder was loaded")

    monkeypatch.setattr(text, "load_encoder", no_loading)
    with pytest.raises(ParameterError, match=r"^sigma_over='both' is not allowed"):
        finetune_encoder(**{**_RUN, "sigma_over": "both"}, progress=False, device="cpu")
    with pytest.raises(ParameterError, match=r"^seed=-1 is not allowed"):
        finetune_encoder(**_RUN, seed=-1, progress=False, device="cpu")


# ---------------------------------------------------------------------------------------------------
# Profiles
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", sorted(TEXT_DEFAULTS))
def test_every_text_profile_passes_the_verification_checks(profile) -> None:
    params = TEXT_DEFAULTS[profile]
    out = check_verification_params(**params)
    assert out["gammas"] == [float(g) for g in params["gammas"]]
    assert out["model"] == "linear_head"


def test_the_quick_profile_is_three_epochs_then_one_of_the_lexicon() -> None:
    from unrolling_lib.data.text import load_vader_lexicon

    n = len(load_vader_lexicon(True))
    assert n == 6016
    quick = TEXT_DEFAULTS["quick"]
    per_epoch = n // quick["batch_size"]
    assert quick["pretrain_batch_size"] == quick["batch_size"] == 8
    assert quick["pretrain_steps"] == 3 * per_epoch == 2256
    assert quick["finetune_steps"] == per_epoch == 752
    assert quick["dataset"] == "vader_minilm"


def test_the_colab_profile_is_three_epochs_of_imdb() -> None:
    colab = TEXT_DEFAULTS["colab"]
    assert colab["pretrain_steps"] == math.ceil(3 * 25000 / colab["pretrain_batch_size"]) == 4688
    assert colab["finetune_steps"] == math.ceil(25000 / colab["batch_size"])  # t = 1 epoch
    assert TEXT_DEFAULTS["paper"]["pretrain_steps"] == 4688 and TEXT_DEFAULTS["paper"]["seeds"] == [0, 1, 2]


@pytest.mark.parametrize("profile", sorted(ENCODER_DEFAULTS))
def test_every_encoder_profile_passes_its_checks(profile) -> None:
    params = ENCODER_DEFAULTS[profile]
    out = check_encoder_params(**params)
    assert out["sigma_over"] == list(params["sigma_over"])
    assert out["steps"] == params["steps"] and out["steps"] >= out["sigma_every"]  # at least one σ sample


def test_text_data_describes_every_profile() -> None:
    assert set(TEXT_DATA) == set(TEXT_DEFAULTS)
    assert all(isinstance(v, str) and v for v in TEXT_DATA.values())


def test_gamma_effects_are_the_ratios_and_correlations_of_each_seed_by_hand() -> None:
    from scipy import stats

    from unrolling_lib.experiments.text import GAMMA_EFFECT_COLUMNS, gamma_effects

    out = gamma_effects(_summary()).set_index("seed")
    assert tuple(["seed", *out.columns]) == GAMMA_EFFECT_COLUMNS
    # seed 0 has γ = 0, 0.05, 0.1, 1.0: e 2.0, 1.2, 1.0, 0.3; v 0.30, 0.11, 0.10, 0.02 (from _ROWS)
    e0, v0 = [2.0, 1.2, 1.0, 0.3], [0.30, 0.11, 0.10, 0.02]
    row = out.loc[0]
    assert row["gamma_high"] == 1.0 and row["n"] == 4
    assert row["e_ratio"] == pytest.approx(0.3 / 2.0) and row["v_ratio"] == pytest.approx(0.02 / 0.30)
    assert row["pearson"] == pytest.approx(stats.pearsonr(e0, v0)[0], rel=1e-12)
    assert row["spearman"] == pytest.approx(1.0)
    assert row["pearson_low"] < row["pearson"] < row["pearson_high"]
    # seed 1: γ = 0, 0.1, 1.0 with e 4.0, 1.6, 0.5 and v 0.50, 0.16, 0.04
    assert out.loc[1, "e_ratio"] == pytest.approx(0.5 / 4.0) and out.loc[1, "v_ratio"] == pytest.approx(0.04 / 0.5)
    assert out.loc[1, "pearson"] == pytest.approx(stats.pearsonr([4.0, 1.6, 0.5], [0.50, 0.16, 0.04])[0], rel=1e-12)
    without_zero = _summary([r for r in _ROWS if r[1] != 0.0])
    with pytest.raises(ParameterError, match="no γ = 0 row"):
        gamma_effects(without_zero)
