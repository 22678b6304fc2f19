"""Read a whole results tree into plain objects; a missing or broken file becomes a note.

A half-written tree (a search still running, a baseline not trained yet) still reads: every
reader (the dashboard, ``search.export``) can say what is missing instead of crashing.

    results/baselines/<name>/metrics.json      a reproduced reference model (see REFERENCE_MODELS)
    results/searches/<study>/study.json, trials.jsonl, best.json
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from search.results._selection import REFERENCE_MODELS, is_number, is_tested, selected_trial
from search.results._table import (
    TrialRecord,
    describe_lines,
    read_json,
    read_table,
    results_root,
    study_dir,
)


@dataclasses.dataclass
class StudyResults:
    """One study as found on disk: ``study.json``, ``trials.jsonl`` and (maybe) ``best.json``."""

    name: str
    directory: Path
    meta: dict[str, Any]
    trials: list[TrialRecord]
    best: dict[str, Any] | None = None
    # Line numbers of trials.jsonl that hold no readable row (torn by a crash, garbled).
    unreadable_lines: list[int] = dataclasses.field(default_factory=list)
    # ensemble.json: the greedy ensemble of the study's trials, picked on validation.
    ensemble: dict[str, Any] | None = None

    @property
    def engine(self) -> str:
        return self._describe("engine")

    @property
    def algorithm(self) -> str:
        return self._describe("algorithm")

    @property
    def space(self) -> str:
        return self._describe("space")

    @property
    def label(self) -> str:
        return f"{self.name} ({self.engine}/{self.algorithm})"

    def selected_trial(self) -> TrialRecord | None:
        """The trial best.json names, else the best completed trial (see ``selected_trial``)."""
        return selected_trial(self.trials, self.best)

    def _describe(self, field: str) -> str:
        return str(self.meta.get(field) or (getattr(self.trials[0], field) if self.trials else "?"))


@dataclasses.dataclass
class ModelResult:
    """A model the tree offers: a reproduced baseline, or the trial a study selected."""

    kind: str  # "baseline" | "study"
    name: str  # the baseline's or the study's name
    val_accuracy: float | None  # what selects
    test: dict[str, Any] | None  # its one test report (classification_metrics); None until scored
    model_path: Path  # where its run saved it (models are not committed)
    params: int | None = None
    wall_time_s: float | None = None
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    trial_id: str | None = None  # studies: the selected trial
    study: StudyResults | None = None  # studies: where it comes from
    val_n: int | None = None  # validation images behind val_accuracy (for its standard error)
    # Where it ships (search.latency): median ms at batch 1 of its float TFLite file, and that
    # file's MB; None where it was not measured.
    latency_ms: float | None = None
    size_mb: float | None = None

    @property
    def tested(self) -> bool:
        return is_tested(self)


@dataclasses.dataclass
class ResultsTree:
    """Everything under a results folder, plus human-readable notes about what was missing."""

    root: Path
    baselines: dict[str, dict[str, Any]]  # name -> metrics.json content
    studies: list[StudyResults]
    notes: list[str] = dataclasses.field(default_factory=list)

    def models(self) -> list[ModelResult]:
        """The baselines (in ``REFERENCE_MODELS`` order), then each study's selected model;
        a study with neither a best.json nor a completed trial has none yet."""
        found = [
            _baseline_model(self.root, name, metrics) for name, metrics in self.baselines.items()
        ]
        return found + [m for m in map(_study_model, self.studies) if m is not None]


def _baseline_model(root: Path, name: str, metrics: dict[str, Any]) -> ModelResult:
    params = metrics.get("params") or {}
    return ModelResult(
        kind="baseline",
        name=name,
        val_accuracy=(metrics.get("val") or {}).get("accuracy"),
        test=metrics["test"],
        model_path=root / "baselines" / name / "model.keras",
        params=params.get("total") if isinstance(params, dict) else params,
        wall_time_s=metrics.get("wall_time_s"),
        config=metrics.get("config", {}),
        val_n=(metrics.get("val") or {}).get("n"),
        latency_ms=_first_number(metrics.get("latency_ms")),
        size_mb=_first_number(metrics.get("size_mb")),
    )


def _study_model(study: StudyResults) -> ModelResult | None:
    """What best.json records of the selected trial; the trial's own row fills the gaps (and is
    all there is while the search runs)."""
    trial, best = study.selected_trial(), study.best or {}
    if trial is None and not best:
        return None

    def recorded(key: str) -> Any:
        return best.get(key, getattr(trial, key, None))

    trial_id = recorded("trial_id")
    return ModelResult(
        kind="study",
        name=study.name,
        val_accuracy=_first_number(best.get("val_accuracy"), getattr(trial, "val_accuracy", None)),
        test=best["test"] if isinstance(best.get("test"), dict) else None,
        model_path=study.directory / "best_model.keras",
        params=recorded("params"),
        wall_time_s=recorded("wall_time_s"),
        config=recorded("config") or {},
        trial_id=None if trial_id in (None, "") else str(trial_id),
        study=study,
        val_n=best.get("val_n") or ((study.meta.get("data") or {}).get("counts") or {}).get("val"),
        latency_ms=_first_number(recorded("latency_ms")),
        size_mb=_first_number(recorded("size_mb")),
    )


def _first_number(*values: Any) -> float | None:
    return next((float(v) for v in values if is_number(v)), None)


def load_results(
    results: str | os.PathLike | None = None, studies: list[str] | None = None
) -> ResultsTree:
    """Load baselines and studies under ``results`` (default: :func:`search.results.results_root`).

    ``studies=None`` means every folder under ``<results>/searches/`` that holds a
    ``trials.jsonl`` or ``study.json``. What could not be read becomes a note, not an error.
    """
    root = results_root(results)
    notes: list[str] = []
    baselines = _load_baselines(root, notes)
    loaded = []
    for name in _study_names(root, studies, notes):
        directory = study_dir(name, root)
        if not directory.is_dir():
            notes.append(f"Study {name!r} not found ({directory} does not exist).")
            continue
        loaded.append(_load_study(name, directory, notes))
    return ResultsTree(root=root, baselines=baselines, studies=loaded, notes=notes)


def _load_baselines(root: Path, notes: list[str]) -> dict[str, dict[str, Any]]:
    baselines: dict[str, dict[str, Any]] = {}
    for name in REFERENCE_MODELS:
        path = root / "baselines" / name / "metrics.json"
        data = _read_json_or_note(path, notes)
        if data is None:
            continue
        if not isinstance(data, dict) or not isinstance(data.get("test"), dict):
            notes.append(f"{path} has no test report; baseline {name!r} left out.")
            continue
        data.setdefault("name", name)
        baselines[name] = data
    missing = [n for n in REFERENCE_MODELS if n not in baselines]
    if missing:
        notes.append(
            f"No reproduced baseline for {', '.join(missing)} (expected "
            f"{root / 'baselines' / '<name>' / 'metrics.json'}); the leaderboard shows only their published accuracies."
        )
    return baselines


def _study_names(root: Path, studies: list[str] | None, notes: list[str]) -> list[str]:
    if studies is not None:
        return list(studies)
    searches = root / "searches"
    names = sorted(
        p.name
        for p in (searches.iterdir() if searches.is_dir() else [])
        if p.is_dir() and ((p / "trials.jsonl").exists() or (p / "study.json").exists())
    )
    if not names:
        notes.append(f"No studies yet under {searches}.")
    return names


def _load_study(name: str, directory: Path, notes: list[str]) -> StudyResults:
    meta = _read_json_or_note(directory / "study.json", notes) or {}
    table = read_table(directory / "trials.jsonl")
    trials = table.records
    if table.unreadable:
        notes.append(
            f"Study {name!r}: {describe_lines(table.unreadable_lines, of=table.path)}, "
            "left out here. Running the search again moves unreadable lines to "
            f"{table.path.name}.unreadable and re-derives the rows of finished trials from "
            "the engine's own records."
        )
    aside = directory / "trials.jsonl.unreadable"
    kept = (
        sum(1 for line in aside.read_bytes().split(b"\n") if line.strip()) if aside.exists() else 0
    )
    if kept:
        notes.append(
            f"Study {name!r}: {kept} earlier unreadable line{'s' if kept != 1 else ''} "
            f"{'are' if kept != 1 else 'is'} kept in {aside} (set aside by the search; "
            "check and delete it once you no longer need it)."
        )
    if not trials:
        notes.append(f"Study {name!r} has no finished trials yet.")
    best = None
    if (directory / "best.json").exists():
        best = _read_json_or_note(directory / "best.json", notes)
        best = best if isinstance(best, dict) else None
    elif trials:
        notes.append(
            f"Study {name!r} has no best.json yet (search still running?): its best trial is "
            "listed by validation accuracy only."
        )
    ensemble = _read_json_or_note(directory / "ensemble.json", notes)
    return StudyResults(
        name,
        directory,
        meta if isinstance(meta, dict) else {},
        trials,
        best,
        unreadable_lines=table.unreadable_lines,
        ensemble=ensemble if isinstance(ensemble, dict) else None,
    )


def _read_json_or_note(path: Path, notes: list[str]) -> Any:
    if not path.exists():
        return None
    try:
        return read_json(path)
    except (OSError, json.JSONDecodeError) as exc:
        notes.append(f"Could not read {path}: {exc}")
        return None
