"""Figures for §4.3 (Figure 2) and §8.4 (Figure 13): the privacy risk score of the unlearned batch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..metrics import correlation
from .common import COLORS, TEMPLATE, correlation_panels

__all__ = ["attack_quality_figure", "prs_by_gamma_figure", "prs_vs_v_figure"]

_STATES = {"prs_trained": "before (M)", "prs_unlearned": "after single-gradient unlearning (M″)",
           "prs_retrained": "retrained without x̂₁ (M′)"}


def _panels(table: pd.DataFrame) -> list[tuple[str, str]]:
    return list(dict.fromkeys(zip(table["dataset"], table["model"], strict=True)))


def prs_by_gamma_figure(table: pd.DataFrame, *, mode: str = "softmax") -> go.Figure:
    """Figure 13: the mean PRS of x̂₁'s samples against γ, before and after single-gradient unlearning (and on
    M′, which never saw them), one panel per data set and model (rows of a
    :class:`~unrolling_lib.experiments.membership.MembershipGrid` table, one signal ``mode``), Spearman(γ, PRS)
    before and after in each panel's title."""
    rows = table[(table["mode"] == mode) & ~table["diverged"].astype(bool)]
    panels = _panels(rows)
    titles = []
    for dataset, model in panels:
        part = rows[(rows["dataset"] == dataset) & (rows["model"] == model)]
        rho = [correlation(part["gamma"], part[c], method="spearman").r if len(part) >= 3 else np.nan
               for c in ("prs_trained", "prs_unlearned")]
        titles.append(f"{dataset}, {model}<br>Spearman before {rho[0]:.2f}, after {rho[1]:.2f}")
    fig = make_subplots(rows=1, cols=max(len(panels), 1), subplot_titles=titles or [""], shared_yaxes=True,
                        horizontal_spacing=0.04)
    for col, (dataset, model) in enumerate(panels, 1):
        part = rows[(rows["dataset"] == dataset) & (rows["model"] == model)].sort_values("gamma")
        for k, (column, label) in enumerate(_STATES.items()):
            fig.add_trace(go.Scatter(x=part["gamma"], y=part[column], mode="lines+markers", name=label,
                                     legendgroup=label, showlegend=col == 1,
                                     line={"color": COLORS[k], "dash": "dot" if column == "prs_retrained" else None}),
                          row=1, col=col)
    fig.update_xaxes(title_text="γ")
    fig.update_yaxes(title_text="mean PRS of x̂₁", col=1)
    fig.update_annotations(font_size=11)
    fig.update_layout(template=TEMPLATE, height=430, legend={"orientation": "h", "y": -0.25}, margin={"t": 90},
                      title={"text": f"PRS of the unlearned batch ({mode} signal)"})
    return fig


def prs_vs_v_figure(table: pd.DataFrame, *, mode: str = "softmax", v: str = "v_amnesiac",
                    prs: str = "prs_amnesiac") -> go.Figure:
    """Figure 2: the PRS of x̂₁ on the unlearned model against the verification error, across settings, one
    panel per data set, Pearson with n and its 95% interval in each title."""
    rows = table[(table["mode"] == mode) & ~table["diverged"].astype(bool)]
    values = sorted(rows["dataset"].unique())
    fig = correlation_panels(rows, "dataset", v, prs, values)
    models = sorted(rows["model"].unique())
    for col, value in enumerate(values, 1):
        for k, model in enumerate(models):
            part = rows[(rows["dataset"] == value) & (rows["model"] == model)]
            fig.add_trace(go.Scatter(
                x=part[v], y=part[prs], mode="markers", name=model, legendgroup=model, showlegend=col == 1,
                marker={"color": COLORS[k % len(COLORS)], "size": 10}, customdata=part[["gamma"]].to_numpy(),
                hovertemplate="γ=%{customdata[0]:g}<br>v=%{x:.4g}<br>PRS=%{y:.3f}<extra></extra>"), row=1, col=col)
    fig.update_xaxes(title_text=f"verification error {v}")
    fig.update_yaxes(title_text="mean PRS of x̂₁ on M″", col=1)
    fig.update_layout(template=TEMPLATE, height=440, legend={"orientation": "h", "y": -0.25}, margin={"t": 110},
                      title={"text": f"PRS against verification error across settings ({mode} signal)"})
    return fig


def attack_quality_figure(shadows: pd.DataFrame, table: pd.DataFrame) -> go.Figure:
    """The attack's own quality: the ROC AUC of the membership signal on each shadow model's members against its
    non-members (0.5: chance), per signal mode, one point per shadow, labelled by its data set and model."""
    fig = go.Figure()
    settings = table.drop_duplicates("setting").set_index("setting")
    for k, (mode, part) in enumerate(shadows.groupby("mode", sort=True)):
        labels = [f"{settings.loc[s, 'dataset']}, {settings.loc[s, 'model']}, γ={settings.loc[s, 'gamma']:g}"
                  for s in part["setting"]]
        fig.add_trace(go.Scatter(x=part["auc"], y=labels, mode="markers", name=f"{mode} signal",
                                 marker={"color": COLORS[k], "size": 9},
                                 hovertemplate="AUC %{x:.3f}<extra>%{y}</extra>"))
    fig.add_vline(x=0.5, line={"dash": "dot", "color": "grey"})
    fig.update_xaxes(title_text="attack ROC AUC on the shadow split (0.5: chance)")
    fig.update_layout(template=TEMPLATE, height=140 + 22 * shadows["setting"].nunique(),
                      legend={"orientation": "h", "y": -0.15}, title={"text": "Is there a membership signal?"})
    return fig
