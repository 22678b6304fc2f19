"""How a multi-fidelity search spent its time: best so far against wall time, each trial
marked by the rung it reached, and whether the low rungs predicted the top one."""

from __future__ import annotations

import dataclasses
import datetime
import html
import math

from search.dashboard._builder import PageBuilder
from search.dashboard._style import TEMPLATE, Colors, RefMark, _get_reference_marks, add_marks
from search.results import ResultsTree, recorded_top_rung, rung_report, rung_scores

# Marker per rung reached (a trial's highest): small and open low, large and filled at the top.
_SYMBOLS = ("circle-open", "diamond-open", "square-open", "triangle-up-open")


@dataclasses.dataclass
class RungPoint:
    minutes: float  # since the study's first trial started
    value: float  # its score at the highest rung it reached
    rung: int
    top: bool  # reached the top rung (its score is comparable with the best)
    number: int


@dataclasses.dataclass
class RungSeries:
    label: str
    points: list[RungPoint]
    best_minutes: list[float]  # the best top-rung score so far, as a staircase
    best_values: list[float]
    report: dict  # search.results.rung_report


@dataclasses.dataclass
class RungsInfo:
    series: list[RungSeries]
    marks: list[RefMark]


def _when(stamp: str | None) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(stamp) if stamp else None
    except ValueError:
        return None


def _get_rungs_info(tree: ResultsTree) -> RungsInfo:
    series = []
    for study in tree.studies:
        report = rung_report(study.trials, top=recorded_top_rung(study.meta))
        if report is None:
            continue
        top = len(report["reached"]) - 1
        starts = [_when(t.started_at) for t in study.trials]
        origin = min((s for s in starts if s is not None), default=None)
        points = []
        for trial in study.trials:
            scores, end = rung_scores(trial), _when(trial.finished_at)
            if not scores or end is None or origin is None:
                continue
            reached = max(scores)
            points.append(
                RungPoint(
                    (end - origin).total_seconds() / 60,
                    scores[reached],
                    reached,
                    reached == top and trial.state == "COMPLETE",
                    trial.number,
                )
            )
        points.sort(key=lambda p: p.minutes)
        best, xs, ys = -math.inf, [], []
        for p in points:
            if p.top and p.value > best:
                best = p.value
                xs.append(p.minutes)
                ys.append(best)
        series.append(RungSeries(study.label, points, xs, ys, report))
    marks = [m for m in _get_reference_marks(tree, "val") if m.kind == "reproduced"]
    return RungsInfo(series=series, marks=marks)


def plot_rungs(info: RungsInfo, colors: Colors):
    import plotly.graph_objects as go

    fig = go.Figure()
    for s in info.series:
        color = colors(s.label)
        for rung in sorted({p.rung for p in s.points}):
            pts = [p for p in s.points if p.rung == rung]
            fig.add_scatter(
                x=[p.minutes for p in pts],
                y=[p.value for p in pts],
                mode="markers",
                name=f"{s.label}: reached rung {rung}",
                legendgroup=s.label,
                marker=dict(color=color, size=6 + 3 * rung, symbol=_SYMBOLS[min(rung, 3)]),
                customdata=[p.number for p in pts],
                hovertemplate=(
                    f"{s.label}<br>trial %{{customdata}}, rung {rung}<br>"
                    "%{x:.1f} min: val %{y:.2%}<extra></extra>"
                ),
            )
        if s.best_minutes:
            end = max(p.minutes for p in s.points)
            fig.add_scatter(
                x=[*s.best_minutes, end],
                y=[*s.best_values, s.best_values[-1]],
                mode="lines",
                name=f"{s.label}: best at the top rung",
                legendgroup=s.label,
                line=dict(color=color, width=2.5, shape="hv"),
                hovertemplate=f"{s.label}<br>%{{x:.1f}} min: best %{{y:.2%}}<extra></extra>",
            )
    add_marks(fig, info.marks)
    fig.update_layout(
        template=TEMPLATE,
        title="Multi-fidelity searches: each trial at the rung it reached (larger: higher rung), "
        "and the best top-rung score so far against wall time",
        xaxis=dict(title="minutes since the study's first trial"),
        yaxis=dict(title="validation accuracy", tickformat=".0%"),
        legend=dict(orientation="h", y=-0.2),
        height=480,
    )
    return fig


def _report_table(info: RungsInfo) -> str:
    rows = []
    for s in info.series:
        reached = " / ".join(str(n) for n in s.report["reached"])
        corr = (
            "; ".join(
                f"rung {c['rung']}: "
                + ("n/a" if c["spearman"] is None else f"{c['spearman']:.2f}")
                + f" (n={c['n']})"
                for c in s.report["correlations"]
            )
            or "one rung"
        )
        warnings = "<br>".join(html.escape(w) for w in s.report["warnings"]) or "none"
        rows.append(
            f"<tr><td>{html.escape(s.label)}</td><td>{reached}</td>"
            f"<td>{html.escape(corr)}</td><td>{warnings}</td></tr>"
        )
    return (
        '<table class="rungs"><tr><th>study</th><th>trials per rung</th>'
        "<th>Spearman with the top rung</th><th>warnings</th></tr>" + "".join(rows) + "</table>"
    )


def section(page: PageBuilder) -> None:
    info = _get_rungs_info(page.tree)
    if not info.series:
        return  # no study climbed rungs: nothing to show
    page.add("<h2>How the search spent its time</h2>")
    page.figure("rungs", plot_rungs(info, page.colors))
    page.add(_report_table(info))
