"""Where the errors are: test-set confusion matrices, best searched model beside each baseline."""

from __future__ import annotations

import dataclasses
from typing import Any

from search.dashboard._builder import PageBuilder
from search.dashboard._style import BEST_SEARCHED, TEMPLATE, baseline_label
from search.results import ResultsTree, best_model


@dataclasses.dataclass
class ReportModel:
    title: str
    report: dict[str, Any]


def _get_test_reports(tree: ResultsTree) -> list[ReportModel]:
    """The best searched model (search.results.best_model: by validation accuracy, as models
    are selected) first, then each baseline. Shared with the per-class figure."""
    models = []
    searched = best_model(m for m in tree.models() if m.kind == "study")
    if searched is not None:
        models.append(ReportModel(BEST_SEARCHED + searched.name, searched.test))
    for name, metrics in tree.baselines.items():
        if isinstance(metrics.get("test"), dict) and metrics["test"].get("confusion_matrix"):
            models.append(ReportModel(baseline_label(name), metrics["test"]))
    return models


@dataclasses.dataclass
class ConfusionPanel:
    title: str
    classes: list[str]
    counts: list[list[int]]  # rows: true class, columns: predicted class
    row_fraction: list[list[float]]  # counts / row total: the diagonal is each class's recall
    accuracy: float


def _get_confusion_info(tree: ResultsTree) -> list[ConfusionPanel]:
    panels = []
    for model in _get_test_reports(tree):
        counts = [[int(v) for v in row] for row in model.report["confusion_matrix"]]
        fractions = [[v / sum(row) if sum(row) else 0.0 for v in row] for row in counts]
        panels.append(
            ConfusionPanel(
                model.title,
                list(model.report["classes"]),
                counts,
                fractions,
                float(model.report["accuracy"]),
            )
        )
    return panels


def plot_confusion(panels: list[ConfusionPanel]):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1,
        cols=len(panels),
        horizontal_spacing=0.08,
        subplot_titles=[f"{p.title}<br><sup>test accuracy {p.accuracy:.1%}</sup>" for p in panels],
    )
    for i, p in enumerate(panels, start=1):
        fig.add_trace(
            go.Heatmap(
                z=p.row_fraction,
                x=p.classes,
                y=p.classes,
                text=p.counts,
                texttemplate="%{text}",
                colorscale="Blues",
                zmin=0,
                zmax=1,
                showscale=i == len(panels),
                colorbar=dict(
                    title=dict(text="share of the true class", side="right"), tickformat=".0%"
                ),
                hovertemplate="true %{y}<br>predicted %{x}<br>%{text} images (%{z:.1%} of the class)<extra></extra>",
            ),
            row=1,
            col=i,
        )
        fig.update_xaxes(title_text="predicted", row=1, col=i, tickangle=-35)
        fig.update_yaxes(
            autorange="reversed",
            row=1,
            col=i,
            showticklabels=i == 1,
            title_text="true" if i == 1 else None,
        )
    fig.update_layout(template=TEMPLATE, height=440, margin=dict(t=90))
    return fig


def section(page: PageBuilder) -> None:
    page.add("<h2>Where the errors are</h2>")
    panels = _get_confusion_info(page.tree)
    if panels:
        page.add(
            '<p class="lead">Test-set confusion matrices, best searched model against each baseline '
            "(colour: share of the true class; numbers: images).</p>"
        )
        page.figure("confusion", plot_confusion(panels))
    else:
        page.empty("No test report yet (baselines' metrics.json or a study's best.json).")
