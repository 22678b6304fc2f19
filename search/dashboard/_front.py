"""Accuracy against latency and size where the model ships (float TFLite, batch 1, LiteRT):
each study's Pareto front and the front across studies, with the baselines measured."""

from __future__ import annotations

import dataclasses
import html

from search.dashboard._builder import PageBuilder
from search.dashboard._style import TEMPLATE, Colors, baseline_label
from search.results import ResultsTree, completed_trials, is_number, pareto_front, trial_front

COSTS = ("latency_ms", "size_mb")
_TITLES = {"latency_ms": "latency, ms (batch 1, log scale)", "size_mb": "size, MB (log scale)"}


@dataclasses.dataclass
class FrontPoint:
    series: str  # legend group: a study label or "baselines"
    name: str  # hover label
    cost: float
    accuracy: float
    config: str  # the configuration, for the hover


@dataclasses.dataclass
class FrontInfo:
    cost: str  # one of COSTS
    x_title: str
    points: list[FrontPoint]
    fronts: dict[str, list[FrontPoint]]  # per study label, cheapest first
    overall: list[FrontPoint]  # across every study and baseline, cheapest first
    unmeasured: int  # completed trials without the figure (left out)


def _config_text(config: dict) -> str:
    """``k=v`` pairs, three per line, HTML-escaped for a plotly hover."""
    pairs = [html.escape(f"{k}={v}") for k, v in sorted(config.items())]
    return "<br>".join(", ".join(pairs[i : i + 3]) for i in range(0, len(pairs), 3))


def _get_front_info(tree: ResultsTree, cost: str) -> FrontInfo:
    """Every measured completed trial and baseline against ``cost``; the fronts (pure)."""
    if cost not in COSTS:
        raise ValueError(f"cost must be one of {', '.join(COSTS)}, not {cost!r}")
    points, fronts, unmeasured = [], {}, 0
    for study in tree.studies:
        done = completed_trials(study.trials)
        unmeasured += sum(not is_number(getattr(t, cost)) for t in done)
        own = [
            FrontPoint(
                study.label,
                f"{study.name} trial {t.number}",
                float(getattr(t, cost)),
                float(t.val_accuracy),
                _config_text(t.config),
            )
            for t in done
            if is_number(getattr(t, cost))
        ]
        points += own
        on_front = {f"{study.name} trial {t.number}" for t in trial_front(done, cost)}
        if on_front:
            fronts[study.label] = sorted(
                (p for p in own if p.name in on_front), key=lambda p: p.cost
            )
    for model in tree.models():
        value = getattr(model, cost)
        if model.kind == "baseline" and is_number(value) and is_number(model.val_accuracy):
            points.append(
                FrontPoint(
                    "baselines",
                    baseline_label(model.name),
                    float(value),
                    float(model.val_accuracy),
                    _config_text(model.config),
                )
            )
    overall = [points[i] for i in pareto_front([(p.cost, p.accuracy) for p in points])]
    return FrontInfo(cost, _TITLES[cost], points, fronts, overall, unmeasured)


def plot_front(info: FrontInfo, colors: Colors):
    import plotly.graph_objects as go

    unit = "ms" if info.cost == "latency_ms" else "MB"
    hover = f"%{{text}}<br>%{{x:.3g}} {unit}<br>val accuracy %{{y:.2%}}<br>%{{customdata}}"
    fig = go.Figure()
    series: dict[str, list[FrontPoint]] = {}
    for p in info.points:
        series.setdefault(p.series, []).append(p)
    for label, pts in series.items():
        baseline = label == "baselines"
        fig.add_scatter(
            x=[p.cost for p in pts],
            y=[p.accuracy for p in pts],
            text=[p.name for p in pts],
            customdata=[p.config for p in pts],
            mode="markers",
            name=label,
            legendgroup=label,
            marker=dict(
                color=colors(label),
                size=16 if baseline else 8,
                symbol="star" if baseline else "circle",
                opacity=1.0 if baseline else 0.6,
            ),
            hovertemplate=hover + "<extra></extra>",
        )
    for label, front in info.fronts.items():
        fig.add_scatter(
            x=[p.cost for p in front],
            y=[p.accuracy for p in front],
            mode="lines",
            line=dict(color=colors(label), width=1.5, shape="hv"),
            name=f"{label}: front",
            legendgroup=label,
            showlegend=False,
            hoverinfo="skip",
        )
    if info.overall:
        fig.add_scatter(
            x=[p.cost for p in info.overall],
            y=[p.accuracy for p in info.overall],
            text=[p.name for p in info.overall],
            customdata=[p.config for p in info.overall],
            mode="lines+markers",
            line=dict(color="black", width=2, shape="hv"),
            marker=dict(color="rgba(0,0,0,0)", size=13, line=dict(color="black", width=1.5)),
            name=f"front across studies ({len(info.overall)} models)",
            hovertemplate="front: " + hover + "<extra></extra>",
        )
    title = "Accuracy against " + ("latency" if info.cost == "latency_ms" else "size")
    if info.unmeasured:
        title += f" ({info.unmeasured} completed trials not measured, left out)"
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        xaxis=dict(title=info.x_title, type="log"),
        yaxis=dict(title="validation accuracy", tickformat=".0%"),
        legend=dict(orientation="h", y=-0.2),
        height=480,
    )
    return fig


def section(page: PageBuilder) -> None:
    infos = [_get_front_info(page.tree, cost) for cost in COSTS]
    if not any(info.points for info in infos):
        return  # no study or baseline measured yet: no section
    page.add("<h2>Accuracy against latency and size where it ships</h2>")
    page.add(
        '<p class="lead">Every measured completed trial and baseline: the median latency of its '
        "float TFLite file at batch 1 in LiteRT (one thread, on the machine that ran the "
        "search) and that file's size. Each study's staircase is its Pareto front; the black "
        "one is the front across studies and baselines. Hover a point for its configuration; "
        "<code>python -m search.export --study NAME --max-latency-ms MS</code> exports the "
        "most accurate model within a limit.</p>"
    )
    page.add('<div class="grid">')
    for info in infos:
        if info.points:
            page.figure(f"front-{info.cost}", plot_front(info, page.colors))
        else:
            page.empty(f"No completed trial or baseline with a measured {info.cost}.")
    page.add("</div>")
