"""Figures of §6.1, §8.1 and §8.2 on a real (tiny) run: one trace per strength, seed and setting, the
panels and labels the chapters rely on."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import pytest

from unrolling_lib.data import paper_table
from unrolling_lib.experiments import ablation, sd_loss, strawmen
from unrolling_lib.experiments.error_curves import error_curves, paper_beside_ours
from unrolling_lib.figures.evaluation import (
    curves_figure,
    influence_of_n_figure,
    norms_figure,
    paper_ratio_figure,
    pieces_figure,
    setting_label,
    tradeoff_figure,
    training_for_less_figure,
)
from unrolling_lib.validation import ParameterError

GRID = dict(settings=[["digits", "small_cnn"], ["digits", "small_vgg"]], pretrain_steps=[0, 3], steps=4,
            batch_size=16, lr=0.05, sigma_every=2, record_every=2, hessian_batch_size=16, train_subset=96,
            test_subset=40, seeds=[0, 1], progress=False)


@pytest.fixture(scope="module")
def sd() -> object:
    return error_curves(**GRID, gammas=[0.0, 5.0])


@pytest.fixture(scope="module")
def l2() -> object:
    return error_curves(**GRID, l2s=[0.0, 0.1])


def _names(fig: go.Figure) -> set[str]:
    return {t.name for t in fig.data}


def test_curves_figure_draws_every_strength_seed_and_setting(sd, l2) -> None:
    fig = curves_figure(sd.table, strength="gamma")
    assert len(fig.data) == 2 * 2 * 2  # settings × γ × seeds, at the largest N
    assert _names(fig) == {"γ = 0", "γ = 5"}
    assert [a.text for a in fig.layout.annotations] == [setting_label("digits", "small_cnn"),
                                                        setting_label("digits", "small_vgg")]
    assert "N = 3" in fig.layout.title.text
    assert sum(t.showlegend for t in fig.data) == 2  # one legend entry per strength
    assert {t.line.width for t in fig.data} == {2.5, 1}  # first seed thick, the other thin
    assert _names(curves_figure(l2.table, strength="l2", pretrain_steps=0)) == {"λ = 0", "λ = 0.1"}
    with pytest.raises(ParameterError, match="strength='lambda'"):
        curves_figure(sd.table, strength="lambda")


def test_training_for_less_and_tradeoff(sd, l2) -> None:
    fig = training_for_less_figure(l2.table)
    assert len(fig.data) == 2 * 2 * 2  # settings × seeds × (e, accuracy)
    assert all(len(t.x) == 3 for t in fig.data)  # t = 0, 2, 4 from N = 0
    effect = sd_loss.sd_loss_effect(sd)
    fig = tradeoff_figure(effect, strength="gamma")
    assert len(fig.data) == 2 and list(fig.data[0].customdata) == ["γ=0", "γ=5"]
    assert list(fig.data[0].text) == ["γ=0", "γ=5"]  # the two ends are labelled (here every point)
    assert fig.layout.xaxis.type == "log"
    assert len(tradeoff_figure(strawmen.l2_effect(l2), strength="l2").data) == 2


def test_norms_pieces_and_influence(sd, l2) -> None:
    fig = norms_figure(strawmen.triangle_table(l2), l2.sigma, dataset="digits", model="small_vgg")
    assert len(fig.data) == 2 * 4 and len(fig.layout.annotations) == 3  # per λ: ‖w‖, ‖Δw‖, bound, σ
    assert len(norms_figure(strawmen.triangle_table(l2), dataset="digits", model="small_vgg").data) == 2 * 3
    fig = pieces_figure(sd.table, sd.sigma, dataset="digits", model="small_cnn")
    assert len(fig.data) == 2 * 2 * 3  # γ × seeds × (σ, σ_avg, ‖Δw‖)
    influence = ablation.influence_of_n(sd)
    fig = influence_of_n_figure(influence)
    assert len(fig.data) == 2  # one γ > 0 per setting
    assert fig.data[0].error_y.array is not None  # two seeds: an interval
    assert list(fig.data[0].x) == [0, 3]


def test_paper_ratio_figure_puts_ours_beside_the_papers(sd) -> None:
    table = sd.table.assign(model=sd.table["model"].replace({"small_cnn": "small_resnet"}))
    beside = paper_beside_ours(table, paper_table("table1"), strength="gamma")
    fig = paper_ratio_figure(beside, strength="gamma")
    names = _names(fig)
    assert "paper: ResNet-18 · CIFAR-10" in names and "paper: VGG-19 · CIFAR-10" in names
    assert "ours: small VGG · digits" in names
    paper = next(t for t in fig.data if t.name == "paper: ResNet-18 · CIFAR-10")
    assert list(paper.y) == pytest.approx([1.0, 98.3 / 132.49])
    assert isinstance(beside, pd.DataFrame) and len(beside) == 4
