"""Which trial a study selects, which model is best, and the published claims to beat.

Validation accuracy selects, everywhere: the trial a study keeps (``best_trial``), the best
model of a results tree (``best_model``: the dashboard's leaderboard and summary, and
``python -m search.export --best``). The test split only reports, so the chosen model's test
score is never the luckiest of several.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar

from search.results._table import TrialRecord


class ReferenceModel(NamedTuple):
    title: str  # how pages and reports name it
    published_accuracy: float  # what its publication claims on the art-images test set


# The two published reference models, by baseline name. Their accuracies are the claims this
# project sets out to beat, not our results (they were measured on splits that leak).
REFERENCE_MODELS: dict[str, ReferenceModel] = {
    "cnn": ReferenceModel("scratch CNN", 0.85),
    "mobilenet": ReferenceModel("MobileNetV2", 0.94),
}


def reference_title(name: str) -> str:
    """A baseline's human name (``"cnn"`` -> ``"scratch CNN"``); an unknown name stays as it is."""
    model = REFERENCE_MODELS.get(name)
    return model.title if model else name


def published_accuracy(name: str, metrics: dict[str, Any] | None = None) -> float | None:
    """The accuracy baseline ``name`` claims: its metrics.json's ``published_accuracy`` when it
    restates one, else :data:`REFERENCE_MODELS`'; ``None`` when neither knows it."""
    claimed = (metrics or {}).get("published_accuracy")
    if claimed is None and name in REFERENCE_MODELS:
        claimed = REFERENCE_MODELS[name].published_accuracy
    return float(claimed) if is_number(claimed) else None


def is_number(value: Any) -> bool:
    """A usable score or cost: a finite int or float (not a bool, ``None`` or NaN)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def standard_error(accuracy: float | None, n: int | None) -> float | None:
    """Binomial standard error of an accuracy measured on ``n`` images (None when unknown).

    One standard error on the 1,081 validation or 1,092 test images of this split is about
    0.8 points at 90%: differences smaller than two are noise, and the best of many
    validation scores is an optimistic pick."""
    if not is_number(accuracy) or not n:
        return None
    return math.sqrt(float(accuracy) * (1.0 - float(accuracy)) / int(n))


def completed_trials(records: Iterable[TrialRecord]) -> list[TrialRecord]:
    """The trials selection looks at: COMPLETE, with a finite validation accuracy (in order)."""
    return [r for r in records if r.state == "COMPLETE" and is_number(r.val_accuracy)]


def ranked_trials(records: Iterable[TrialRecord]) -> list[TrialRecord]:
    """The one rule for ranking a study's trials: completed trials by validation accuracy,
    highest first, ties to the earlier trial (lower ``number``)."""
    return sorted(completed_trials(records), key=lambda r: (-r.val_accuracy, r.number))


def best_trial(records: Iterable[TrialRecord]) -> TrialRecord | None:
    """A study's best trial: the first of :func:`ranked_trials`; ``None`` if none completed."""
    ranked = ranked_trials(records)
    return ranked[0] if ranked else None


def selected_trial(
    records: Sequence[TrialRecord], best: dict[str, Any] | None = None
) -> TrialRecord | None:
    """The trial a study selected: the one its ``best.json`` (``best``) names, written when the
    search ended; else, for a search still running, :func:`best_trial`."""
    trial_id = (best or {}).get("trial_id")
    if trial_id is not None:
        for record in records:
            if record.trial_id == str(trial_id):
                return record
    return best_trial(records)


class Scored(Protocol):
    """What ranking needs of a model (see ``search.results.ModelResult``)."""

    val_accuracy: float | None
    test: dict[str, Any] | None


M = TypeVar("M", bound=Scored)


def is_tested(model: Scored) -> bool:
    """Whether the model has its one test report (a search still running has none yet)."""
    return isinstance(model.test, dict) and is_number(model.test.get("accuracy"))


def rank_models(models: Iterable[M]) -> list[M]:
    """Best first: the tested models by validation accuracy, then the untested ones, also by
    validation accuracy; a model without one comes last of its group. The test accuracy never
    decides; ties keep the given order (``ResultsTree.models`` lists the baselines first, so a
    searched model must beat a baseline, not tie it)."""

    def key(model: M) -> tuple[int, float]:
        val = model.val_accuracy
        return (0 if is_tested(model) else 1, -(float(val) if is_number(val) else -1.0))

    return sorted(models, key=key)


def best_model(models: Iterable[M]) -> M | None:
    """The model selection picks: the first of :func:`rank_models`, if it has a test report."""
    ranked = rank_models(models)
    return ranked[0] if ranked and is_tested(ranked[0]) else None
