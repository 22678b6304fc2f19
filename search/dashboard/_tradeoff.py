"""Accuracy against cost (parameters, training time), with the Pareto front."""

from __future__ import annotations

import dataclasses

from search.dashboard._builder import PageBuilder
from search.dashboard._style import TEMPLATE, Colors, baseline_label
from search.results import ResultsTree, completed_trials, is_number, pareto_front

COSTS = ("params", "time")


@dataclasses.dataclass
class TradeoffPoint:
    series: str  # legend group: a study label or "baselines"
    name: str  # hover label
    cost: float
    accuracy: float


@dataclasses.dataclass
class TradeoffInfo:
    cost: str  # "params" | "time"
    x_title: str
    y_title: str
    points: list[TradeoffPoint]
    front: list[TradeoffPoint]  # ordered by increasing cost
    skipped: int  # completed trials without a usable cost


def _get_tradeoff_info(tree: ResultsTree, cost: str) -> TradeoffInfo:
    if cost not in COSTS:
        raise ValueError(f"cost must be 'params' or 'time', not {cost!r}")
    points, skipped = [], 0
    for study in tree.studies:
        for t in completed_trials(study.trials):
            value = t.params if cost == "params" else t.wall_time_s
            if not is_number(value) or value <= 0:
                skipped += 1
                continue
            points.append(
                TradeoffPoint(
                    study.label,
                    f"{study.name} trial {t.number}",
                    float(value),
                    float(t.val_accuracy),
                )
            )
    for model in tree.models():
        value = model.params if cost == "params" else model.wall_time_s
        if (
            model.kind == "baseline"
            and is_number(model.val_accuracy)
            and is_number(value)
            and value > 0
        ):
            points.append(
                TradeoffPoint(
                    "baselines", baseline_label(model.name), float(value), float(model.val_accuracy)
                )
            )
    front = [points[i] for i in pareto_front([(p.cost, p.accuracy) for p in points])]
    x_title = "parameters (log scale)" if cost == "params" else "training time, s (log scale)"
    return TradeoffInfo(
        cost, x_title, "validation accuracy (every completed trial)", points, front, skipped
    )


def plot_tradeoff(info: TradeoffInfo, colors: Colors):
    import plotly.graph_objects as go

    fig = go.Figure()
    series: dict[str, list[TradeoffPoint]] = {}
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
    title = (
        "Accuracy against model size" if info.cost == "params" else "Accuracy against training time"
    )
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


def section(page: PageBuilder) -> None:
    page.add("<h2>Accuracy against cost</h2>")
    page.add(
        '<p class="lead">Every completed trial (validation accuracy) and the baselines (stars). '
        "The black staircase is the Pareto front: no other model is both smaller (or faster) and more accurate.</p>"
    )
    page.add('<div class="grid">')
    for cost in COSTS:
        tradeoff = _get_tradeoff_info(page.tree, cost)
        if tradeoff.points:
            page.figure(f"tradeoff-{cost}", plot_tradeoff(tradeoff, page.colors))
        else:
            page.empty(
                f"No completed trial or baseline with a recorded {'size' if cost == 'params' else 'training time'}."
            )
    page.add("</div>")
