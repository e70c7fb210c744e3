"""The §6.2 figures (Figures 5 and 6, the training demonstration) carry the numbers of ``theory.toy``."""

import math

import numpy as np
import pytest

from unrolling_lib.figures import toy as figs
from unrolling_lib.theory import toy
from unrolling_lib.validation import ParameterError


@pytest.fixture(scope="module")
def run():
    return toy.train_toy([0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0], steps=300, lr=0.05, features=8,
                         scaling="equation", seed=0)


def test_landscape_slider_has_a_frame_per_gamma_and_both_scalings():
    gammas = toy.SLIDER_GAMMAS
    fig = figs.landscape_slider(gammas, grid=11, first_scaling="equation")
    assert len(fig.frames) == len(gammas)
    (slider,) = fig.layout.sliders
    assert [s.label for s in slider.steps] == [f"{g:g}" for g in gammas]
    assert {s.args[0][0] for s in slider.steps} == {f.name for f in fig.frames}
    assert gammas[0] == 0 and gammas[-1] >= 2 and np.min(np.diff([g for g in gammas if 0.8 <= g <= 1.2])) <= 0.05
    assert len(fig.data) == 1 + 2 * 3 and all(len(f.data) == 6 for f in fig.frames)
    (menu,) = fig.layout.updatemenus
    labels = [b.label for b in menu.buttons]
    assert labels == [figs.SCALING_LABELS["equation"], figs.SCALING_LABELS["code"]]  # the chapter's first
    eq_visible, code_visible = (b.args[0]["visible"] for b in menu.buttons)
    assert eq_visible == [True, True, True, True, False, False, False]
    assert code_visible == [True, False, False, False, True, True, True]
    frame = {f.name: f for f in fig.frames}["γ=0.5"]
    np.testing.assert_allclose(frame.data[0].z, toy.landscape(0.5, "equation", grid=11)[2], rtol=1e-6)
    np.testing.assert_allclose(frame.data[3].z, toy.landscape(0.5, "code", grid=11)[2], rtol=1e-6)
    assert frame.data[2].x[0] == pytest.approx(math.log(3) / 2, abs=1e-4)  # the marked minimiser, d*/2
    assert fig.frames[-1].name == f"γ={gammas[slider.active]:g}"  # plotly's auto-play ends on the active frame


def test_slider_first_scaling_orders_traces_buttons_and_title():
    fig = figs.landscape_slider([0.5, 1.0], grid=7, first_scaling="code")
    (menu,) = fig.layout.updatemenus
    assert [b.label for b in menu.buttons] == [figs.SCALING_LABELS["code"], figs.SCALING_LABELS["equation"]]
    assert [t.visible for t in fig.data[1:]] == [True] * 3 + [False] * 3  # code's traces shown on load
    frame = {f.name: f for f in fig.frames}["γ=0.5"]
    np.testing.assert_allclose(frame.data[0].z, toy.landscape(0.5, "code", grid=7)[2], rtol=1e-6)
    title = fig.layout.title.text
    assert title.index("code:") < title.index("equation:")
    with pytest.raises(ParameterError, match="first_scaling='std'"):
        figs.field_slider([0.5], arrows=3, first_scaling="std")
    with pytest.raises(ParameterError, match=r"gammas=\[\]"):
        figs.field_slider([], arrows=3)


def test_field_slider_frames_and_flip_lines():
    fig = figs.field_slider([0.0, 0.5, 1.0, 1.5], arrows=9, first_scaling="equation")
    assert len(fig.frames) == 4 and len(fig.layout.sliders[0].steps) == 4
    frame = {f.name: f for f in fig.frames}["γ=0.5"]
    flip_eq = frame.data[2]
    assert flip_eq.x[0] - flip_eq.y[0] == pytest.approx(math.log(3), abs=1e-3)
    assert "flip" in flip_eq.name and "equation" in fig.layout.title.text
    flip_code = frame.data[5]  # the code's flip: log(2√2/γ − 1)
    assert flip_code.x[0] - flip_code.y[0] == pytest.approx(math.log(2 * math.sqrt(2) / 0.5 - 1), abs=1e-3)


def test_single_figures_and_trajectory_figures(run):
    fig = figs.landscape_figure(0.3, "code", grid=11)
    assert "γ = 0.3" in fig.layout.title.text and "code" in fig.layout.title.text
    assert "equation" not in fig.layout.title.text
    assert len(figs.field_figure(1.2, arrows=5).data) == 4
    traj = figs.trajectory_figure(run, grid=11)
    assert len(traj.frames) == len(run.final) == len(traj.layout.sliders[0].steps)
    assert len(figs.weight_change_figure(run).data) == 2 + len(run.final)


def test_trajectory_figure_draws_the_run(run):
    traj = figs.trajectory_figure(run, grid=11)
    active = traj.layout.sliders[0].active
    gamma = sorted(run.final["gamma"])[active]
    assert traj.frames[-1].name == f"γ={gamma:g}"  # the active frame last
    last = run.final.set_index("gamma").loc[gamma]
    marker = traj.data[4]
    assert marker.x[0] == pytest.approx(last["a"], abs=1e-4) and marker.y[0] == pytest.approx(last["b"], abs=1e-4)


def test_weight_change_figure_carries_the_final_changes(run):
    fig = figs.weight_change_figure(run)
    fin = run.final.sort_values("gamma")
    np.testing.assert_allclose(fig.data[0].y, fin["weight_change"])
    # the Eq. 12 curve: sqrt(ε²/(2‖x‖²)) at ε = d*(γ), by hand, on its 60 γ from 0.05 to 2 (shown rounded)
    g = np.linspace(0.05, 2.0, 60)[10]
    assert fig.data[1].x[10] == pytest.approx(g, abs=5e-4)
    d_star = math.log(2 / g - 1) if g < 1 else 0.0
    assert fig.data[1].y[10] == pytest.approx(abs(d_star) / math.sqrt(2 * float(run.x @ run.x)), abs=1e-4)


def test_live_sliders_redraw_on_change():
    box = figs.live_sliders("field", gamma=0.3, scaling="equation", arrows=5)
    slider, toggle = box.children[0].children
    assert "γ = 0.3" in box.figure.layout.title.text and "equation" in box.figure.layout.title.text
    assert [v for _, v in toggle.options] == ["equation", "code"]
    slider.value = 0.7
    assert "γ = 0.7" in box.figure.layout.title.text
    toggle.value = "code"
    assert "code" in box.figure.layout.title.text and "equation" not in box.figure.layout.title.text
    with pytest.raises(ParameterError, match="kind='surface'"):
        figs.live_sliders("surface")
