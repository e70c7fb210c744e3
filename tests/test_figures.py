"""The book renderer: HTML without plotly.js or MathJax inside, only during a book build."""

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from unrolling_lib.figures.common import frames_slider
from unrolling_lib.figures.render import BOOK_BUILD_ENV, BookRenderer, use_book_renderer
from unrolling_lib.validation import ParameterError


def test_bundle_carries_html_and_json_but_no_library():
    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4]), layout={"title": "$x^2$"})
    bundle = BookRenderer().to_mimebundle(fig.to_dict())
    html = bundle["text/html"]
    assert "Plotly.newPlot" in html and '"x":[1,2]' in html
    assert "cdn" not in html.lower() and "mathjax" not in html.lower()
    assert len(html) < 20_000  # plotly.js (megabytes) is not embedded
    assert bundle["application/vnd.plotly.v1+json"]["data"][0]["y"] == [3, 4]


def test_renderer_only_during_book_build(monkeypatch):
    before = pio.renderers.default
    monkeypatch.delenv(BOOK_BUILD_ENV, raising=False)
    assert use_book_renderer() is False
    assert pio.renderers.default == before
    monkeypatch.setenv(BOOK_BUILD_ENV, "1")
    try:
        assert use_book_renderer() is True
        assert pio.renderers.default == "unrolling_book"
    finally:
        pio.renderers.default = before


def test_frames_slider_steps_follow_frames():
    frames = [go.Frame(name=f"g{i}", data=[go.Scatter(y=[i])]) for i in range(3)]
    (slider,) = frames_slider(frames, ["0", "1", "2"], prefix="γ = ")
    assert [s["args"][0] for s in slider["steps"]] == [["g0"], ["g1"], ["g2"]]
    assert slider["currentvalue"]["prefix"] == "γ = "
    with pytest.raises(ParameterError, match="^labels has 2 entries; frames has 3$"):
        frames_slider(frames, ["0", "1"])


def test_figures_with_frames_do_not_autoplay():
    frames = [go.Frame(name=f"g{i}", data=[go.Scatter(y=[i])]) for i in range(3)]
    fig = go.Figure(data=[go.Scatter(y=[0])], frames=frames)
    html = BookRenderer().to_mimebundle(fig.to_dict() | {"frames": [f.to_plotly_json() for f in frames]})["text/html"]
    assert "Plotly.addFrames" in html and "Plotly.animate" not in html


def test_verification_figures_plot_every_gamma_seed_and_the_regime():
    import pandas as pd

    from unrolling_lib.figures.verification import (
        components_figure,
        correlation_figure,
        finetuning_figure,
        regime_start,
        verification_figure,
    )

    df = pd.DataFrame({"seed": [0, 0, 0, 0, 1, 1], "gamma": [0.0, 0.0, 5.0, 5.0, 0.0, 0.0], "t": [10, 20] * 3,
                       "e": [0.1, 0.3, 0.05, 0.1, 0.2, 0.4], "v": [0.01, 0.02, 0.004, 0.005, 0.02, 0.03],
                       "weight_change": [1.0, 2.0, 0.5, 0.6, 1.0, 1.0], "sigma_avg": [4.0] * 6})
    df["eta_t_sigma"] = 0.01 * df["t"] * df["sigma_avg"]
    fig = verification_figure(df)
    assert [t.name for t in fig.data] == ["γ = 0", "γ = 0", "γ = 5"]  # γ = 0 at seeds 0 and 1
    assert [t.showlegend for t in fig.data] == [True, False, True]
    assert list(fig.data[2].x) == [0.05, 0.1] and list(fig.data[2].y) == [0.004, 0.005]
    assert "η·t·σ from 0.4 to 0.8" in fig.layout.title.text
    assert regime_start(df) == pytest.approx(1 / (0.01 * 4.0))
    comp = components_figure(df)
    assert len(comp.data) == 3 * 4  # one line per γ and seed in each of the four panels
    assert sum(t.showlegend for t in comp.data) == 2
    vlines = [s for s in comp.layout.shapes if s.x0 == s.x1]
    assert len(vlines) == 4 and all(s.x0 == pytest.approx(25.0) for s in vlines)
    assert comp.data[3].y.tolist() == df["eta_t_sigma"].iloc[:2].tolist()  # the η·t·σ panel
    summary = pd.DataFrame({"seed": [0, 0, 1], "gamma": [0.0, 5.0, 0.0], "n_t": [16, 16, 16],
                            "pearson_e_v_over_t": [0.7, 0.5, 0.9], "pearson_low": [0.3, 0.0, 0.7],
                            "pearson_high": [0.9, 0.8, 0.97], "pearson_increments": [0.1, -0.2, 0.3],
                            "increments_low": [-0.4, -0.6, -0.2], "increments_high": [0.6, 0.3, 0.7]})
    corr = correlation_figure(summary)
    levels = corr.data[0]
    assert list(levels.y) == [0.7, 0.5]
    assert np.allclose(levels.error_y.array, [0.2, 0.3]) and np.allclose(levels.error_y.arrayminus, [0.4, 0.5])
    assert list(corr.data[1].y) == [0.1, -0.2] and len(corr.data) == 4
    both = finetuning_figure(df, df.assign(v=df["v"] * 2))
    assert len(both.data) == 2 * 2 * 2  # plain and released, two γ at the first seed, v and e
    assert list(both.data[4].y) == [0.02, 0.04]  # released v at γ = 0


def test_live_figure_redraws_on_every_control_change():
    import ipywidgets as widgets

    from unrolling_lib.figures.live import live_figure

    slider = widgets.IntSlider(value=2, min=0, max=5)
    box = live_figure([slider], lambda: go.Figure(go.Scatter(y=[slider.value] * 3)))
    assert list(box.figure.data[0].y) == [2, 2, 2]
    slider.value = 4
    assert list(box.figure.data[0].y) == [4, 4, 4]


def test_live_widgets_only_where_a_frontend_can_show_them(monkeypatch):
    from unrolling_lib.figures.live import HEADLESS_ENV, live_session

    monkeypatch.delenv(BOOK_BUILD_ENV, raising=False)
    monkeypatch.delenv(HEADLESS_ENV, raising=False)
    assert live_session()
    monkeypatch.setenv(HEADLESS_ENV, "1")  # the chapter runner and nbval set it for their kernels
    assert not live_session()
    monkeypatch.delenv(HEADLESS_ENV)
    monkeypatch.setenv(BOOK_BUILD_ENV, "1")
    assert not live_session()


def test_the_test_session_runs_chapters_headless_and_bounded(pytestconfig):
    import os

    assert os.environ.get("UNROLLING_HEADLESS") == "1"  # inherited by the kernels nbval starts
    from unrolling_lib.book.runner import cell_timeout

    assert int(pytestconfig.option.nbval_cell_timeout) == cell_timeout()  # _config.yml's execute.timeout
    assert int(pytestconfig.option.nbval_cell_timeout) != 2000  # not nbval's own default


def test_live_figure_sets_the_output_state_without_capturing_messages(monkeypatch):
    """In a shell the figure becomes the Output widget's state; the widget's capture context (which re-routes
    the kernel's messages and stalled headless runs) is never entered."""
    import ipywidgets as widgets
    from IPython.core.interactiveshell import InteractiveShell

    from unrolling_lib.figures import live

    entered = []
    monkeypatch.setattr(widgets.Output, "__enter__", lambda self: entered.append(self))
    monkeypatch.setattr(pio.renderers, "default", "plotly_mimetype")  # what a Jupyter kernel renders with
    InteractiveShell.instance()
    try:
        slider = widgets.IntSlider(value=1, min=0, max=3)
        box = live.live_figure([slider], lambda: go.Figure(go.Scatter(y=[slider.value, 0])))
        slider.value = 3
        out = box.children[1]
        (only,) = out.outputs
        assert only["output_type"] == "display_data"
        assert list(only["data"]["application/vnd.plotly.v1+json"]["data"][0]["y"]) == [3, 0]
        assert entered == []
    finally:
        InteractiveShell.clear_instance()
