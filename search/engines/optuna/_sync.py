"""The table from the storage: each finished trial's row as its worker stored it (or rebuilt
from Optuna's own record when none was), and study.json, so a machine that never ran a study,
or lost lines of its table, gets them back."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from typing import Any

from search._files import first_line
from search._urls import without_password
from search.engines.base import rederived_record
from search.engines.optuna._protocol import ROW, STUDY_JSON, WORKER, counts, retried_numbers
from search.engines.optuna._storage import check_storage, make_storage, password_hint
from search.study import SearchError, Study, mask_url, without_passwords


def stored_row(trial):
    """The whole row a worker stored with ``trial`` (None: none, or not readable)."""
    from search.results import TrialRecord

    row = trial.user_attrs.get(ROW)
    if not isinstance(row, dict):
        return None
    try:
        return TrialRecord.from_dict(row)
    except (TypeError, ValueError):
        return None


def missing_rows(trials: Iterable, have: set[int]):
    """``(trial, stored row or None)`` for every counting trial whose number is not in
    ``have`` (the table's rows)."""
    trials = list(trials)
    retried = retried_numbers(trials)
    for trial in trials:
        if counts(trial, retried) and trial.number not in have:
            yield trial, stored_row(trial)


def copy_missing_rows(runner, study: Study, trials, epochs: int):
    """Append a row for every counting trial the table lacks: the stored one, else one
    re-derived from the storage. Returns ``(copied, rederived)``."""
    copied, rederived = [], []
    for trial, row in missing_rows(trials, {r.number for r in study.records()}):
        if row is None:
            row = record_from_optuna(runner, trial, epochs)
            rederived.append(row)
        else:
            copied.append(row)
        study.append(row, stamp=False)
    return copied, rederived


def record_from_optuna(runner, trial, epochs: int):
    """A finished Optuna trial's row, rebuilt from the storage (its own row was lost)."""
    curve = [float(v) for _, v in sorted(trial.intermediate_values.items())]
    state = trial.state.name
    if state == "COMPLETE":
        accuracy = float(trial.values[0])  # validation accuracy is always the first
    else:
        accuracy = max(curve) if curve else None
    note = "row re-derived from the Optuna storage (trials.jsonl had no readable row): " + (
        "history lost, only the per-epoch val_accuracy reported to the pruner is kept"
        if curve
        else "history lost"
    )
    return rederived_record(
        runner,
        trial_id=str(trial.number),
        number=trial.number,
        state=state,
        config=trial.params,
        note=note,
        val_accuracy=accuracy,
        history={"val_accuracy": curve} if curve else {},
        epochs_run=len(curve) or (epochs if state == "COMPLETE" else 0),
        wall_time_s=round(trial.duration.total_seconds(), 3) if trial.duration else 0.0,
        started_at=_utc(trial.datetime_start),
        finished_at=_utc(trial.datetime_complete),
        worker=trial.user_attrs.get(WORKER),
    )


def _utc(moment) -> str | None:
    # Optuna records local naive datetimes; the table records UTC, to the second.
    if moment is None:
        return None
    return moment.astimezone(_dt.timezone.utc).isoformat(timespec="seconds")


def publish_study_meta(ostudy, study: Study) -> None:
    """Keep study.json in the storage too, so a machine that never ran the study can rebuild
    its folder (``sync_from_storage``)."""
    from search.results import read_json

    if study.study_json.exists():
        info = without_passwords(read_json(study.study_json))
        ostudy.set_user_attr(STUDY_JSON, {k: v for k, v in info.items() if k != "runs"})


def sync_from_storage(storage: str, name: str, results=None) -> dict[str, Any]:
    """Write study ``name``'s folder under ``results`` from ``storage`` alone: study.json (when
    the folder has none) and every counting trial's row that trials.jsonl lacks, so the
    dashboard and exports read a study whose workers ran on other machines. Returns
    ``{"study_dir", "added", "workers", "without_row"}``; ``without_row`` lists finished trials
    that an older version ran without storing their row (left out)."""
    from search.results import results_root, study_dir, write_json

    trials, meta = _read_study(storage, name)
    folder = study_dir(name, results_root(results))
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "study.json").exists() and isinstance(meta, dict):
        write_json(
            folder / "study.json",
            {**without_passwords(meta), "synced_from": without_password(storage)},
        )
    the_study = Study(
        name,
        engine="optuna",
        algorithm=str((meta or {}).get("algorithm", "?")),
        space=str((meta or {}).get("space", "?")),
        root=results_root(results),
    )
    added, without_row = [], []
    for trial, row in missing_rows(trials, {r.number for r in the_study.records()}):
        if row is None:
            without_row.append(trial.number)
            continue
        the_study.append(row, stamp=False)
        added.append(row)
    return {
        "study_dir": folder,
        "added": added,
        "without_row": without_row,
        "workers": sorted({r.worker for r in the_study.records() if r.worker}),
    }


def _read_study(storage: str, name: str):
    """``(trials, study.json as stored)`` of study ``name`` in ``storage``."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    check_storage(storage)
    try:
        storage_obj = make_storage(storage)
        known = optuna.get_all_study_names(storage_obj)
        if name not in known:
            raise SearchError(
                f"--storage {mask_url(storage)} holds no study {name!r}; it holds: "
                f"{', '.join(sorted(known)) or 'none'}"
            )
        ostudy = optuna.load_study(study_name=name, storage=storage_obj)
        return ostudy.get_trials(deepcopy=False), ostudy.user_attrs.get(STUDY_JSON)
    except SQLAlchemyError as exc:
        hint = password_hint(storage, str(exc))
        raise SearchError(
            f"could not open the Optuna storage {mask_url(storage)}: {mask_url(first_line(exc))}"
            + (f"; {hint}" if hint else "")
        ) from None
