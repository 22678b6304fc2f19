"""Per-class test recall of the models the confusion matrices show: which classes each gets wrong."""

from __future__ import annotations

import dataclasses

from search.dashboard._builder import PageBuilder
from search.dashboard._confusion import _get_test_reports
from search.dashboard._style import BEST_SEARCHED, TEMPLATE, Colors, accuracy_range
from search.results import ResultsTree


@dataclasses.dataclass
class PerClassInfo:
    classes: list[str]
    models: list[
        tuple[str, list[float | None]]
    ]  # (model title, recall per class; None: class absent)


def _get_per_class_info(tree: ResultsTree) -> PerClassInfo:
    models = _get_test_reports(tree)
    classes: list[str] = []
    for m in models:
        classes += [c for c in m.report["classes"] if c not in classes]
    rows = []
    for m in models:
        per_class = m.report.get("per_class", {})
        rows.append(
            (m.title, [per_class[c]["recall"] if c in per_class else None for c in classes])
        )
    return PerClassInfo(classes=classes, models=rows)


def plot_per_class(info: PerClassInfo, colors: Colors):
    import plotly.graph_objects as go

    fig = go.Figure()
    shades = ["#555555", "#aaaaaa", "#333333", "#cccccc"]
    n_baselines = 0
    for title, recalls in info.models:
        if title.startswith("baseline"):
            color, n_baselines = shades[n_baselines % len(shades)], n_baselines + 1
        else:
            color = colors(title.removeprefix(BEST_SEARCHED))
        fig.add_bar(
            x=info.classes,
            y=recalls,
            name=title,
            marker_color=color,
            text=[f"{r:.0%}" if r is not None else "" for r in recalls],
            textposition="outside",
            hovertemplate=f"{title}<br>%{{x}}: recall %{{y:.1%}}<extra></extra>",
        )
    values = [r for _, recalls in info.models for r in recalls if r is not None]
    fig.update_layout(
        template=TEMPLATE,
        title="Per-class test accuracy (recall): which classes each model gets wrong",
        barmode="group",
        yaxis=dict(title="recall", tickformat=".0%", range=accuracy_range(values, [], top=1.06)),
        legend=dict(orientation="h", y=-0.15),
        height=440,
    )
    return fig


def section(page: PageBuilder) -> None:
    # Under the confusion matrices' heading, which already says when there is no test report.
    info = _get_per_class_info(page.tree)
    if info.models:
        page.figure("per-class", plot_per_class(info, page.colors))
