"""Turn the plain figure data of ``_info.py`` into plotly figures. No computation lives here."""

from __future__ import annotations

import math
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from search.dashboard import _info

TEMPLATE = "plotly_white"
# One colour per study, stable across every figure of the page; baselines are always grey/black.
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#d62728"]
BASELINE_COLOR = "#555555"
PUBLISHED_COLOR = "#d62728"
REPRODUCED_COLOR = "#7f7f7f"
ENGINE_DASH = {"optuna": "solid", "keras-tuner": "dash"}
# Parallel-coordinate and slice plots stop being readable past this many axes/panels; the most
# important parameters are shown (importance is known by then).
MAX_PARAMS_SHOWN = 8


class Colors:
    """One colour per study across every figure; baselines are always grey.

    A study appears under several names (``name``, ``name (engine/algorithm)``,
    ``best searched: name``, ``name trial 7``); :meth:`register` ties them to one colour and
    any other label that starts with a registered name followed by a space gets that colour too.
    """

    def __init__(self) -> None:
        self._by_label: dict[str, str] = {}
        self._n = 0

    def register(self, name: str, *aliases: str) -> None:
        color = self._by_label.get(name) or PALETTE[self._n % len(PALETTE)]
        if name not in self._by_label:
            self._n += 1
        for label in (name, *aliases):
            self._by_label[label] = color

    def __call__(self, label: str) -> str:
        if label.startswith("baseline") or label == "baselines":
            return BASELINE_COLOR
        if label in self._by_label:
            return self._by_label[label]
        for known in sorted(self._by_label, key=len, reverse=True):
            if label.startswith(known + " "):
                return self._by_label[known]
        self.register(label)
        return self._by_label[label]


def _add_marks(fig: go.Figure, marks: list[_info.RefMark]) -> None:
    """Horizontal reference lines, labelled in the right margin so labels never cover data.

    Published claims are labelled above their line and reproduced results below, which keeps
    the labels apart when the two are close (94% claimed, 94.3% reproduced).
    """
    for mark in marks:
        published = mark.kind == "published"
        color = PUBLISHED_COLOR if published else REPRODUCED_COLOR
        fig.add_hline(y=mark.value, line=dict(color=color, dash="dash" if published else "dot", width=1.5))
        fig.add_annotation(
            x=1.0, xref="paper", xanchor="left", y=mark.value, yref="y",
            yanchor="bottom" if published else "top", text=mark.label, showarrow=False,
            font=dict(size=11, color=color),
        )
    if marks:
        fig.update_layout(margin=dict(r=200))


def _accuracy_range(values: list[float | None], marks: list[_info.RefMark], top: float = 1.0) -> list[float]:
    """Zoom the accuracy axis on the data and marks; a 0-1 axis would hide every difference."""
    seen = [v for v in values if v is not None] + [m.value for m in marks]
    low = min(seen, default=0.0)
    return [max(0.0, math.floor((low - 0.05) * 20) / 20), top]


def make_leaderboard_figure(info: _info.LeaderboardInfo, colors: Colors) -> go.Figure:
    rows = info.rows
    # The value goes under each bar's name: text on the bars would collide with the reference
    # lines and diamonds, and the zoomed axis cuts off the bars' feet.
    names = [
        f"{r.model}<br><b>{r.test_accuracy:.1%}</b>" if r.test_accuracy is not None else f"{r.model}<br>(no test yet)"
        for r in rows
    ]
    fig = go.Figure()
    fig.add_bar(
        x=names,
        y=[r.test_accuracy for r in rows],
        marker_color=[colors(r.model) if r.kind == "search" else BASELINE_COLOR for r in rows],
        name="test accuracy",
        customdata=[[r.balanced_accuracy, r.params, r.wall_time_s, r.engine] for r in rows],
        hovertemplate="test accuracy %{y:.2%}<br>balanced %{customdata[0]:.2%}"
        "<br>params %{customdata[1]:,}<br>time %{customdata[2]:.0f} s<extra></extra>",
    )
    fig.add_scatter(
        x=names,
        y=[r.val_accuracy for r in rows],
        mode="markers",
        marker=dict(symbol="diamond", size=11, color="white", line=dict(color="black", width=1.5)),
        name="validation accuracy",
        hovertemplate="validation accuracy %{y:.2%}<extra></extra>",
    )
    _add_marks(fig, info.marks)
    fig.update_layout(
        template=TEMPLATE,
        title="Test accuracy of every model (bars), validation accuracy (diamonds)",
        yaxis=dict(title="accuracy", tickformat=".0%",
                   range=_accuracy_range([r.test_accuracy for r in rows] + [r.val_accuracy for r in rows], info.marks)),
        legend=dict(orientation="h", y=-0.15),
        height=460,
        bargap=0.35,
    )
    return fig


def make_tradeoff_figure(info: _info.TradeoffInfo, colors: Colors) -> go.Figure:
    fig = go.Figure()
    series: dict[str, list[_info.TradeoffPoint]] = {}
    for p in info.points:
        series.setdefault(p.series, []).append(p)
    unit = "params" if info.cost == "params" else "s"
    for label, points in series.items():
        baseline = label == "baselines"
        fig.add_scatter(
            x=[p.cost for p in points],
            y=[p.accuracy for p in points],
            text=[p.name for p in points],
            mode="markers+text" if baseline else "markers",
            textposition="top left",
            cliponaxis=False,  # a baseline at the edge keeps its whole label
            name=label,
            marker=dict(
                color=colors(label),
                size=16 if baseline else 8,
                symbol="star" if baseline else "circle",
                opacity=1.0 if baseline else 0.65,
            ),
            hovertemplate=f"%{{text}}<br>%{{x:,.0f}} {unit}<br>val accuracy %{{y:.2%}}<extra></extra>",
        )
    if info.front:
        fig.add_scatter(
            x=[p.cost for p in info.front],
            y=[p.accuracy for p in info.front],
            text=[p.name for p in info.front],
            mode="lines+markers",
            line=dict(color="black", width=1.5, shape="hv"),
            marker=dict(color="rgba(0,0,0,0)", size=13, line=dict(color="black", width=1.5)),
            name=f"Pareto front ({len(info.front)} models)",
            hovertemplate=f"Pareto: %{{text}}<br>%{{x:,.0f}} {unit}<br>val accuracy %{{y:.2%}}<extra></extra>",
        )
    title = "Accuracy against model size" if info.cost == "params" else "Accuracy against training time"
    if info.skipped:
        title += f" ({info.skipped} trials without a recorded {'size' if info.cost == 'params' else 'time'} left out)"
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        xaxis=dict(title=info.x_title, type="log"),
        yaxis=dict(title=info.y_title, tickformat=".0%"),
        legend=dict(orientation="h", y=-0.2),
        height=480,
    )
    return fig


def make_history_figure(info: _info.HistoryInfo, colors: Colors) -> go.Figure:
    fig = go.Figure()
    for s in info.series:
        color = colors(s.label)
        fig.add_scatter(
            x=s.numbers, y=s.values, mode="markers", legendgroup=s.label, showlegend=False,
            marker=dict(color=color, size=5, opacity=0.35), name=s.label,
            hovertemplate=f"{s.label}<br>trial %{{x}}<br>val accuracy %{{y:.2%}}<extra></extra>",
        )
        left_out = ", ".join(f"{n} {what}" for n, what in ((s.failed, "failed"), (s.pruned, "pruned")) if n)
        fig.add_scatter(
            x=s.numbers, y=s.best_so_far, mode="lines", legendgroup=s.label,
            name=s.label + (f" [{left_out} not shown]" if left_out else ""),
            line=dict(color=color, width=2.5, shape="hv", dash=ENGINE_DASH.get(s.engine, "dashdot")),
            hovertemplate=f"{s.label}<br>after trial %{{x}}: best %{{y:.2%}}<extra></extra>",
        )
    _add_marks(fig, info.marks)
    fig.update_layout(
        template=TEMPLATE,
        title="Best validation accuracy so far (lines; solid: Optuna, dashed: Keras Tuner) and each trial (dots)",
        xaxis=dict(title="trial number"),
        yaxis=dict(title="validation accuracy", tickformat=".0%"),
        legend=dict(orientation="h", y=-0.2),
        height=460,
    )
    return fig


def make_confusion_figure(panels: list[_info.ConfusionPanel]) -> go.Figure:
    fig = make_subplots(
        rows=1, cols=len(panels), horizontal_spacing=0.08,
        subplot_titles=[f"{p.title}<br><sup>test accuracy {p.accuracy:.1%}</sup>" for p in panels],
    )
    for i, p in enumerate(panels, start=1):
        fig.add_trace(
            go.Heatmap(
                z=p.row_fraction, x=p.classes, y=p.classes, text=p.counts, texttemplate="%{text}",
                colorscale="Blues", zmin=0, zmax=1, showscale=i == len(panels),
                colorbar=dict(title=dict(text="share of the true class", side="right"), tickformat=".0%"),
                hovertemplate="true %{y}<br>predicted %{x}<br>%{text} images (%{z:.1%} of the class)<extra></extra>",
            ),
            row=1, col=i,
        )
        fig.update_xaxes(title_text="predicted", row=1, col=i, tickangle=-35)
        fig.update_yaxes(autorange="reversed", row=1, col=i, showticklabels=i == 1, title_text="true" if i == 1 else None)
    fig.update_layout(template=TEMPLATE, height=440, margin=dict(t=90))
    return fig


def make_per_class_figure(info: _info.PerClassInfo, colors: Colors) -> go.Figure:
    fig = go.Figure()
    shades = ["#555555", "#aaaaaa", "#333333", "#cccccc"]
    n_baselines = 0
    for title, recalls in info.models:
        if title.startswith("baseline"):
            color, n_baselines = shades[n_baselines % len(shades)], n_baselines + 1
        else:
            color = colors(title.removeprefix("best searched: "))
        fig.add_bar(
            x=info.classes, y=recalls, name=title, marker_color=color,
            text=[f"{r:.0%}" if r is not None else "" for r in recalls], textposition="outside",
            hovertemplate=f"{title}<br>%{{x}}: recall %{{y:.1%}}<extra></extra>",
        )
    values = [r for _, recalls in info.models for r in recalls if r is not None]
    fig.update_layout(
        template=TEMPLATE,
        title="Per-class test accuracy (recall): which classes each model gets wrong",
        barmode="group",
        yaxis=dict(title="recall", tickformat=".0%", range=_accuracy_range(values, [], top=1.06)),
        legend=dict(orientation="h", y=-0.15),
        height=440,
    )
    return fig


def make_learning_curve_figure(curves: list[_info.LearningCurve], colors: Colors) -> go.Figure:
    cols = len(curves) if len(curves) <= 4 else 3
    rows = math.ceil(len(curves) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[c.title for c in curves],
                        shared_yaxes=True, horizontal_spacing=0.04, vertical_spacing=0.16)
    for i, c in enumerate(curves):
        row, col = i // cols + 1, i % cols + 1
        color = colors(c.title if c.title.startswith("baseline") else c.title.split(" trial ")[0])
        fig.add_scatter(x=list(range(1, len(c.train_accuracy) + 1)), y=c.train_accuracy, mode="lines",
                        line=dict(color=color, dash="dot"), name="train", showlegend=False, row=row, col=col,
                        hovertemplate=f"{c.title}<br>epoch %{{x}} train %{{y:.2%}}<extra></extra>")
        fig.add_scatter(x=list(range(1, len(c.val_accuracy) + 1)), y=c.val_accuracy, mode="lines+markers",
                        line=dict(color=color), marker=dict(size=4), name="validation", showlegend=False,
                        row=row, col=col,
                        hovertemplate=f"{c.title}<br>epoch %{{x}} validation %{{y:.2%}}<extra></extra>")
        if c.phase_change_epoch:
            fig.add_vline(x=c.phase_change_epoch - 0.5, line=dict(color="#999999", dash="dash"),
                          annotation=dict(text="fine-tuning starts", font=dict(size=10)),
                          annotation_position="bottom right", row=row, col=col)
        fig.update_xaxes(title_text="epoch", row=row, col=col)
    fig.update_yaxes(tickformat=".0%", col=1, title_text="accuracy")
    fig.update_layout(template=TEMPLATE, height=330 * rows + 80,
                      title="Train accuracy (dotted) and validation accuracy (solid) per epoch")
    return fig


def _precomputed_evaluator(importances: dict[str, float]):
    """An optuna importance evaluator that returns importances computed earlier.

    ``_get_param_study_info`` already ran fANOVA once; handing its result to
    ``optuna.visualization.plot_param_importances`` keeps optuna's figure without paying for
    the forest twice (seconds on a 500-trial study).
    """
    from optuna.importance import BaseImportanceEvaluator

    class PrecomputedImportances(BaseImportanceEvaluator):
        def evaluate(self, study, params=None, *, target=None):  # noqa: ANN001 - optuna's signature
            return dict(importances)

    return PrecomputedImportances()


def make_param_figures(info: _info.ParamStudyInfo) -> list[tuple[str, go.Figure]]:
    """optuna.visualization's importance, parallel-coordinate and slice plots for one study."""
    from optuna import visualization

    study, target_name = info.optuna_study, "val accuracy"
    shown = list(info.importances)[:MAX_PARAMS_SHOWN]
    figures = [
        ("parameter importance (fANOVA)",
         visualization.plot_param_importances(study, evaluator=_precomputed_evaluator(info.importances),
                                              target_name=target_name)),
        ("parallel coordinates", visualization.plot_parallel_coordinate(study, params=shown, target_name=target_name)),
        ("slices", visualization.plot_slice(study, params=shown, target_name=target_name)),
    ]
    for title, fig in figures:
        fig.update_layout(template=TEMPLATE, title=f"{info.label}: {title}")
    figures[0][1].update_layout(height=max(280, 60 + 34 * len(info.importances)))
    figures[1][1].update_layout(height=420)
    # optuna sizes the slice plot at 300 px per parameter; let it follow the page width instead.
    figures[2][1].update_layout(height=380, width=None, autosize=True)
    return figures
