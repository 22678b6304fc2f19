"""Each study as an ``optuna.Study``, the input of optuna.visualization's parameter figures.

Optuna studies are read from their own storage, so the figures are exactly optuna's. Keras
Tuner studies, and Optuna studies whose storage cannot be found, are rebuilt in memory from
the common table with ``optuna.trial.create_trial`` + ``study.add_trials``, so both engines
get the same figures from the same code. optuna is imported only when a study is converted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from search._urls import sqlite_path, without_password
from search.results import StudyResults, completed_trials

if TYPE_CHECKING:
    import optuna

# Keras Tuner bookkeeping keys that land in a trial's config but are not hyperparameters.
_TUNER_BOOKKEEPING_PREFIX = "tuner/"


def _get_optuna_study(study: StudyResults) -> tuple[optuna.Study, bool, str | None]:
    """``(optuna study, loaded from its storage?, why an Optuna study had to be rebuilt)``."""
    loaded, fallback_reason = None, None
    if study.engine == "optuna":
        loaded, fallback_reason = _load_optuna_study(study)
    if loaded is not None:
        return loaded, True, fallback_reason
    return _rebuild_study(study), False, fallback_reason


def _resolve_storage(study: StudyResults) -> str | None:
    # search.run records a --storage URL under config; without one the engine used the
    # default, optuna.db beside trials.jsonl.
    url = _recorded_url(study) or "sqlite:///optuna.db"
    path = sqlite_path(url)
    if path is None:
        return url  # another RDB (postgres, mysql): use as given
    # The URL is usually relative to the directory the search ran from, so it breaks when the
    # results tree moves or the dashboard runs elsewhere. The database beside trials.jsonl is
    # surely this study's, so it is tried first; the URL as written only after.
    for candidate in (study.directory / path.name, path):
        if candidate.is_file():
            return f"sqlite:///{candidate}"
    return None


def _recorded_url(study: StudyResults) -> str | None:
    """The storage URL the study recorded; None: the default file beside trials.jsonl."""
    url = study.meta.get("storage") or (study.meta.get("config") or {}).get("storage")
    return url if isinstance(url, str) and url else None


def _load_optuna_study(study: StudyResults) -> tuple[optuna.Study | None, str | None]:
    import optuna

    url = _resolve_storage(study)
    if url is None:
        recorded = _recorded_url(study)
        if recorded is None:
            # The default optuna.db is git-ignored: a committed study is read from its table,
            # which is the normal case, not something to note.
            return None, None
        return None, f"Optuna storage {without_password(recorded)} not found"
    try:
        stored = optuna.load_study(
            study_name=study.meta.get("optuna_study_name") or study.name, storage=url
        )
        # Snapshot into memory: the three figures each read every trial, and a snapshot keeps
        # them consistent while a search is still writing to the database. Trials whose values
        # a later version of the space no longer contains are refused by add_trials: that too
        # degrades to the study rebuilt from the table.
        snapshot = optuna.create_study(directions=stored.directions)
        snapshot.add_trials(stored.get_trials(deepcopy=False))
    except Exception as exc:  # noqa: BLE001 - any storage problem degrades to the rebuilt study
        return None, f"could not load Optuna study from {url}: {type(exc).__name__}: {exc}"
    return snapshot, None


def _infer_distributions(configs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Search-space distributions that cover every value seen, one per hyperparameter.

    Strings, booleans and mixed types become categorical; ints and floats numeric ranges. A
    range is put on a log scale when it is positive, spans a decade or more for floats (a factor
    16 for ints, so block counts such as 1..10 stay linear) and the values look log-spread: their
    median sits nearer the middle of the range in log space than in linear space. That tells a
    learning rate drawn log-uniformly from 1e-4..1e-2 (median near 1e-3) from a dropout drawn
    uniformly from 0..0.5 whose smallest draw happened to be 0.001 (median near 0.25).
    """
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    seen: dict[str, list[Any]] = {}
    for config in configs:
        for name, value in config.items():
            if value is not None and not name.startswith(_TUNER_BOOKKEEPING_PREFIX):
                seen.setdefault(name, []).append(value)
    distributions = {}
    for name, values in seen.items():
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numeric and all(math.isfinite(v) for v in values):
            low, high = min(values), max(values)
            integer = all(isinstance(v, int) for v in values)
            log = low > 0 and high / low >= (16 if integer else 10) and _looks_log_spread(values)
            if integer:
                distributions[name] = IntDistribution(int(low), int(high), log=log)
            else:
                distributions[name] = FloatDistribution(float(low), float(high), log=log)
        else:
            choices = list(dict.fromkeys(_categorical_value(v) for v in values))
            distributions[name] = CategoricalDistribution(choices)
    return distributions


def _looks_log_spread(values: Sequence[float]) -> bool:
    ordered = sorted(values)
    median = (
        ordered[len(ordered) // 2]
        if len(ordered) % 2
        else (ordered[len(ordered) // 2 - 1] + ordered[len(ordered) // 2]) / 2
    )
    low, high = ordered[0], ordered[-1]
    linear_position = (median - low) / (high - low)
    log_position = (math.log(median) - math.log(low)) / (math.log(high) - math.log(low))
    return abs(log_position - 0.5) < abs(linear_position - 0.5)


def _categorical_value(value: Any) -> Any:
    return value if isinstance(value, (str, bool, int, float)) else str(value)


def _rebuild_study(study: StudyResults) -> optuna.Study:
    import optuna

    usable = completed_trials(study.trials)
    distributions = _infer_distributions([t.config for t in usable])
    rebuilt = optuna.create_study(direction="maximize", study_name=study.name)
    frozen = []
    for t in usable:
        params = {
            k: (
                _categorical_value(v)
                if isinstance(distributions[k], optuna.distributions.CategoricalDistribution)
                else v
            )
            for k, v in t.config.items()
            if k in distributions and v is not None
        }
        frozen.append(
            optuna.trial.create_trial(
                value=float(t.val_accuracy),
                params=params,
                distributions={k: distributions[k] for k in params},
                user_attrs={"trial_id": t.trial_id, "number": t.number},
            )
        )
    rebuilt.add_trials(frozen)
    return rebuilt
