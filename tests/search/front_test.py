"""Accuracy against cost on hand-made rows: the fronts, the models kept, the best within
limits (search.results._front, issue #21)."""

from __future__ import annotations

from search.results import (
    TrialRecord,
    front_summary,
    non_dominated,
    trial_front,
    within_limits,
)


def row(number, val, latency=None, size=None, params=1000, state="COMPLETE"):
    return TrialRecord(
        study="s",
        engine="optuna",
        algorithm="nsga2",
        space="cnn",
        trial_id=str(number),
        number=number,
        state=state,
        config={"n": number},
        val_accuracy=val,
        params=params,
        latency_ms=latency,
        size_mb=size,
    )


ROWS = [
    row(0, 0.90, latency=10.0, size=8.0, params=2_000_000),  # the most accurate
    row(1, 0.85, latency=4.0, size=9.0, params=2_200_000),  # fast but big
    row(2, 0.80, latency=5.0, size=2.0, params=500_000),  # small
    row(3, 0.80, latency=6.0, size=3.0, params=700_000),  # beaten by 2 on everything
    row(4, 0.70, latency=2.0, size=1.0, params=200_000),  # the cheapest
    row(5, 0.95, latency=3.0, size=1.0, state="PRUNED"),  # not complete: never on a front
    row(6, 0.99, params=3_000_000),  # not measured: on the params front only
    row(7, 0.88, latency=4.0, size=9.0, params=2_200_000),  # beats 1 at the same costs
]


def numbers(rows):
    return [r.number for r in rows]


def test_a_front_against_each_cost():
    assert numbers(trial_front(ROWS, "latency_ms")) == [4, 7, 0]
    assert numbers(trial_front(ROWS, "size_mb")) == [4, 2, 0]
    assert numbers(trial_front(ROWS, "params")) == [4, 2, 0, 6]


def test_the_kept_set_holds_every_front_and_the_best_under_any_limits():
    kept = set(numbers(non_dominated(ROWS)))
    for cost in ("latency_ms", "size_mb", "params"):
        assert set(numbers(trial_front(ROWS, cost))) <= kept
    assert 3 not in kept and 1 not in kept and 5 not in kept
    # Latency <= 5 ms and size <= 3 MB: trial 2 (0.80) is on neither front but
    # the best under both limits, and it is kept.
    best = within_limits(ROWS, {"latency_ms": 5.0, "size_mb": 3.0})
    assert numbers(best) == [2, 4] and 2 in kept


def test_within_limits_needs_the_figure_and_ranks_by_validation():
    assert numbers(within_limits(ROWS, {"latency_ms": 4.0})) == [7, 1, 4]
    assert numbers(within_limits(ROWS, {})) == [6, 0, 7, 1, 2, 3, 4]
    assert within_limits(ROWS, {"latency_ms": 1.0}) == []


def test_best_json_front_summary():
    summary = front_summary(ROWS)
    assert list(summary) == ["latency_ms", "size_mb", "params"]
    assert summary["latency_ms"][1] == {
        "trial_id": "7",
        "number": 7,
        "val_accuracy": 0.88,
        "latency_ms": 4.0,
        "size_mb": 9.0,
        "params": 2_200_000,
    }
    assert front_summary([row(0, 0.5, params=None)]) == {}
