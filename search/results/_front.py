"""Accuracy against cost: the Pareto front of a study's trials, and the best trial within
limits (validation accuracy still decides; a cost only bounds or orders).

A trial's costs are its row's ``latency_ms`` (median ms of its float TFLite file, batch 1),
``size_mb`` (that file's size) and ``params``: all smaller is better.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from search.results._selection import completed_trials, is_number, ranked_trials
from search.results._table import TrialRecord

# The row fields a front can be drawn against, smaller is better.
COST_FIELDS = ("latency_ms", "size_mb", "params")


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the ``(cost, accuracy)`` points no other point beats on both axes (lower or
    equal cost and higher accuracy, or lower cost and equal accuracy), in order of
    increasing cost. Exact duplicates keep only the first one."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1], i))
    front, best_accuracy = [], -math.inf
    for i in order:
        # Sorted by cost, so a point is undominated iff it is strictly more accurate than every
        # cheaper-or-equal point already seen.
        if points[i][1] > best_accuracy:
            front.append(i)
            best_accuracy = points[i][1]
    return front


def trial_front(records: Iterable[TrialRecord], cost: str) -> list[TrialRecord]:
    """The completed trials on the front of validation accuracy against ``cost`` (one of
    :data:`COST_FIELDS`), cheapest first; trials without that figure are left out."""
    rows = [r for r in completed_trials(records) if is_number(getattr(r, cost))]
    return [rows[i] for i in pareto_front([(getattr(r, cost), r.val_accuracy) for r in rows])]


def non_dominated(
    records: Iterable[TrialRecord], costs: Sequence[str] = COST_FIELDS
) -> list[TrialRecord]:
    """The completed trials that no other beats on validation accuracy and every one of
    ``costs`` at once (a missing figure counts as the worst). This set holds every
    two-dimensional front and the best trial under any combination of limits, so a study
    that keeps their models can export the best model under any limit. Of trials equal on
    everything, the earliest (lowest ``number``) stands for them."""
    rows = sorted(completed_trials(records), key=lambda r: r.number)

    def key(r: TrialRecord) -> list[float]:
        return [-r.val_accuracy] + [
            float(getattr(r, c)) if is_number(getattr(r, c)) else math.inf for c in costs
        ]

    keys = [key(r) for r in rows]

    def beaten(i: int) -> bool:
        return any(
            all(x <= y for x, y in zip(keys[j], keys[i], strict=True))
            and (keys[j] != keys[i] or j < i)
            for j in range(len(rows))
            if j != i
        )

    return [r for i, r in enumerate(rows) if not beaten(i)]


def within_limits(records: Iterable[TrialRecord], bounds: dict[str, float]) -> list[TrialRecord]:
    """The completed trials whose every bounded figure (row field -> its maximum) is known
    and within its bound, ranked by validation accuracy (``ranked_trials``)."""
    return [
        r
        for r in ranked_trials(records)
        if all(is_number(getattr(r, f)) and getattr(r, f) <= limit for f, limit in bounds.items())
    ]


def front_summary(records: Sequence[TrialRecord]) -> dict[str, list[dict[str, Any]]]:
    """Per cost with at least one measured trial, its front as plain rows (trial id, number,
    validation accuracy and every cost): what best.json records."""
    summary = {}
    for cost in COST_FIELDS:
        front = trial_front(records, cost)
        if front:
            summary[cost] = [
                {
                    "trial_id": r.trial_id,
                    "number": r.number,
                    "val_accuracy": r.val_accuracy,
                    **{c: getattr(r, c) for c in COST_FIELDS},
                }
                for r in front
            ]
    return summary
