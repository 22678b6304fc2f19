"""Learning curves: train and validation accuracy per epoch, each study's best trial and the baselines."""

from __future__ import annotations

import dataclasses
import math

from search.dashboard._builder import PageBuilder
from search.dashboard._style import TEMPLATE, Colors, baseline_label
from search.results import ResultsTree


@dataclasses.dataclass
class LearningCurve:
    title: str
    train_accuracy: list[float]
    val_accuracy: list[float]
    phase_change_epoch: int | None = None  # 1-based epoch where fine-tuning starts, if any


def _get_learning_curve_info(tree: ResultsTree) -> list[LearningCurve]:
    curves = []
    for study in tree.studies:
        trial = study.selected_trial()
        if trial and (trial.history.get("accuracy") or trial.history.get("val_accuracy")):
            curves.append(
                LearningCurve(
                    f"{study.name} trial {trial.number}",
                    list(trial.history.get("accuracy", [])),
                    list(trial.history.get("val_accuracy", [])),
                )
            )
    for name, metrics in tree.baselines.items():
        history = metrics.get("history") or {}
        if not (history.get("accuracy") or history.get("val_accuracy")):
            continue
        phases = history.get("phase") or []
        change = (
            next((i + 1 for i, p in enumerate(phases) if p != phases[0]), None) if phases else None
        )
        curves.append(
            LearningCurve(
                baseline_label(name),
                list(history.get("accuracy", [])),
                list(history.get("val_accuracy", [])),
                change,
            )
        )
    return curves


def plot_learning_curves(curves: list[LearningCurve], colors: Colors):
    from plotly.subplots import make_subplots

    cols = len(curves) if len(curves) <= 4 else 3
    rows = math.ceil(len(curves) / cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[c.title for c in curves],
        shared_yaxes=True,
        horizontal_spacing=0.04,
        # plotly refuses a spacing over 1 / (rows - 1): many studies make many rows.
        vertical_spacing=min(0.16, 0.6 / rows),
    )
    for i, c in enumerate(curves):
        row, col = i // cols + 1, i % cols + 1
        color = colors(c.title if c.title.startswith("baseline") else c.title.split(" trial ")[0])
        fig.add_scatter(
            x=list(range(1, len(c.train_accuracy) + 1)),
            y=c.train_accuracy,
            mode="lines",
            line=dict(color=color, dash="dot"),
            name="train",
            showlegend=False,
            row=row,
            col=col,
            hovertemplate=f"{c.title}<br>epoch %{{x}} train %{{y:.2%}}<extra></extra>",
        )
        fig.add_scatter(
            x=list(range(1, len(c.val_accuracy) + 1)),
            y=c.val_accuracy,
            mode="lines+markers",
            line=dict(color=color),
            marker=dict(size=4),
            name="validation",
            showlegend=False,
            row=row,
            col=col,
            hovertemplate=f"{c.title}<br>epoch %{{x}} validation %{{y:.2%}}<extra></extra>",
        )
        if c.phase_change_epoch:
            fig.add_vline(
                x=c.phase_change_epoch - 0.5,
                line=dict(color="#999999", dash="dash"),
                annotation=dict(text="fine-tuning starts", font=dict(size=10)),
                annotation_position="bottom right",
                row=row,
                col=col,
            )
        fig.update_xaxes(title_text="epoch", row=row, col=col)
    fig.update_yaxes(tickformat=".0%", col=1, title_text="accuracy")
    fig.update_layout(
        template=TEMPLATE,
        height=330 * rows + 80,
        title="Train accuracy (dotted) and validation accuracy (solid) per epoch",
    )
    return fig


def section(page: PageBuilder) -> None:
    page.add("<h2>Learning curves</h2>")
    curves = _get_learning_curve_info(page.tree)
    if curves:
        page.add('<p class="lead">Each study\'s best trial and the baselines, per epoch.</p>')
        page.figure("learning-curves", plot_learning_curves(curves, page.colors))
    else:
        page.empty("No per-epoch history recorded yet.")
