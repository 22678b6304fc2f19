"""Optimization history: each study's best validation accuracy so far, trial after trial."""

from __future__ import annotations

import dataclasses
import math

from search.dashboard._builder import PageBuilder
from search.dashboard._style import (
    ENGINE_DASH,
    TEMPLATE,
    Colors,
    RefMark,
    _get_reference_marks,
    add_marks,
)
from search.results import ResultsTree, completed_trials


@dataclasses.dataclass
class HistorySeries:
    label: str
    engine: str
    numbers: list[int]  # trial numbers of the completed trials, increasing
    values: list[float]  # each trial's val accuracy
    best_so_far: list[float]  # running maximum of values
    failed: int  # FAIL trials left out
    pruned: int  # PRUNED trials left out


@dataclasses.dataclass
class HistoryInfo:
    series: list[HistorySeries]
    marks: list[RefMark]  # reproduced baselines' validation accuracy


def _get_history_info(tree: ResultsTree) -> HistoryInfo:
    series = []
    for study in tree.studies:
        complete = sorted(completed_trials(study.trials), key=lambda t: t.number)
        running, best = [], -math.inf
        for t in complete:
            best = max(best, float(t.val_accuracy))
            running.append(best)
        series.append(
            HistorySeries(
                label=study.label,
                engine=study.engine,
                numbers=[t.number for t in complete],
                values=[float(t.val_accuracy) for t in complete],
                best_so_far=running,
                failed=sum(t.state == "FAIL" for t in study.trials),
                pruned=sum(t.state == "PRUNED" for t in study.trials),
            )
        )
    marks = [m for m in _get_reference_marks(tree, "val") if m.kind == "reproduced"]
    return HistoryInfo(series=series, marks=marks)


def plot_history(info: HistoryInfo, colors: Colors):
    import plotly.graph_objects as go

    fig = go.Figure()
    for s in info.series:
        color = colors(s.label)
        fig.add_scatter(
            x=s.numbers,
            y=s.values,
            mode="markers",
            legendgroup=s.label,
            showlegend=False,
            marker=dict(color=color, size=5, opacity=0.35),
            name=s.label,
            hovertemplate=f"{s.label}<br>trial %{{x}}<br>val accuracy %{{y:.2%}}<extra></extra>",
        )
        left_out = ", ".join(
            f"{n} {what}" for n, what in ((s.failed, "failed"), (s.pruned, "pruned")) if n
        )
        fig.add_scatter(
            x=s.numbers,
            y=s.best_so_far,
            mode="lines",
            legendgroup=s.label,
            name=s.label + (f" [{left_out} not shown]" if left_out else ""),
            line=dict(
                color=color, width=2.5, shape="hv", dash=ENGINE_DASH.get(s.engine, "dashdot")
            ),
            hovertemplate=f"{s.label}<br>after trial %{{x}}: best %{{y:.2%}}<extra></extra>",
        )
    add_marks(fig, info.marks)
    fig.update_layout(
        template=TEMPLATE,
        title="Best validation accuracy so far (lines; solid: Optuna, dashed: Keras Tuner) and each trial (dots)",
        xaxis=dict(title="trial number"),
        yaxis=dict(title="validation accuracy", tickformat=".0%"),
        legend=dict(orientation="h", y=-0.2),
        height=460,
    )
    return fig


def section(page: PageBuilder) -> None:
    page.add("<h2>Optimization history</h2>")
    history = _get_history_info(page.tree)
    if any(s.numbers for s in history.series):
        page.figure("history", plot_history(history, page.colors))
    else:
        page.empty("No study has a completed trial yet.")
