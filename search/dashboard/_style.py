"""What every figure of the page shares: colours, labels, reference-mark lines, axis ranges.

Nothing here imports plotly: the drawing helpers receive the figure they draw on.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from search.results import (
    REFERENCE_MODELS,
    ResultsTree,
    is_number,
    published_accuracy,
    reference_title,
)

TEMPLATE = "plotly_white"
# One colour per study, stable across every figure of the page; baselines are always grey/black.
PALETTE = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#d62728",
]
BASELINE_COLOR = "#555555"
PUBLISHED_COLOR = "#d62728"
REPRODUCED_COLOR = "#7f7f7f"
ENGINE_DASH = {"optuna": "solid", "keras-tuner": "dash"}
# How the page titles the best searched model beside the baselines.
BEST_SEARCHED = "best searched: "


def baseline_label(name: str) -> str:
    """How every figure names a reproduced baseline, e.g. ``baseline: scratch CNN``."""
    return f"baseline: {reference_title(name)}"


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


@dataclasses.dataclass
class RefMark:
    """A horizontal reference line on accuracy plots."""

    label: str
    value: float
    kind: str  # "published" | "reproduced"
    baseline: str  # which reference model: "cnn" | "mobilenet"


def _get_reference_marks(tree: ResultsTree, split: str = "test") -> list[RefMark]:
    """Published accuracies (always) and the reproduced baselines' accuracy on ``split``."""
    marks = []
    for name in REFERENCE_MODELS:
        published = published_accuracy(name, tree.baselines.get(name))
        if published is not None:
            marks.append(
                RefMark(
                    f"published {reference_title(name)} {published:.0%}",
                    published,
                    "published",
                    name,
                )
            )
    for name, metrics in tree.baselines.items():
        report = metrics.get(split)
        if isinstance(report, dict) and is_number(report.get("accuracy")):
            value = float(report["accuracy"])
            marks.append(
                RefMark(
                    f"reproduced {reference_title(name)} {value:.1%}", value, "reproduced", name
                )
            )
    return marks


def add_marks(fig: Any, marks: list[RefMark]) -> None:
    """Horizontal reference lines, labelled in the right margin so labels never cover data.

    Published claims are labelled above their line and reproduced results below, which keeps
    the labels apart when the two are close (94% claimed, 94.3% reproduced).
    """
    for mark in marks:
        published = mark.kind == "published"
        color = PUBLISHED_COLOR if published else REPRODUCED_COLOR
        fig.add_hline(
            y=mark.value, line=dict(color=color, dash="dash" if published else "dot", width=1.5)
        )
        fig.add_annotation(
            x=1.0,
            xref="paper",
            xanchor="left",
            y=mark.value,
            yref="y",
            yanchor="bottom" if published else "top",
            text=mark.label,
            showarrow=False,
            font=dict(size=11, color=color),
        )
    if marks:
        fig.update_layout(margin=dict(r=200))


def accuracy_range(
    values: list[float | None], marks: list[RefMark], top: float = 1.0
) -> list[float]:
    """Zoom the accuracy axis on the data and marks; a 0-1 axis would hide every difference."""
    seen = [v for v in values if v is not None] + [m.value for m in marks]
    low = min(seen, default=0.0)
    return [max(0.0, math.floor((low - 0.05) * 20) / 20), top]
