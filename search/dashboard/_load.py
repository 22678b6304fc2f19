"""Read a results tree into plain objects; every missing or broken file becomes a note, never a crash.

Reading is kept apart from the figure computations in ``_info.py`` so those can be tested on
hand-made inputs, and so that a half-written results tree (a search still running, a baseline
not trained yet) still gives a page that says what is missing.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from search.results import TrialRecord, read_json, read_trials, results_root, study_dir

BASELINE_NAMES = ("cnn", "mobilenet")


@dataclasses.dataclass
class StudyResults:
    """One study as found on disk: ``study.json``, ``trials.jsonl`` and (maybe) ``best.json``."""

    name: str
    directory: Path
    meta: dict[str, Any]
    trials: list[TrialRecord]
    best: dict[str, Any] | None = None

    @property
    def engine(self) -> str:
        return str(self.meta.get("engine") or (self.trials[0].engine if self.trials else "?"))

    @property
    def algorithm(self) -> str:
        return str(self.meta.get("algorithm") or (self.trials[0].algorithm if self.trials else "?"))

    @property
    def space(self) -> str:
        return str(self.meta.get("space") or (self.trials[0].space if self.trials else "?"))

    @property
    def label(self) -> str:
        return f"{self.name} ({self.engine}/{self.algorithm})"


@dataclasses.dataclass
class DashboardInputs:
    """Everything the page is drawn from, plus human-readable notes about what was missing."""

    root: Path
    baselines: dict[str, dict[str, Any]]  # name -> metrics.json content
    studies: list[StudyResults]
    notes: list[str] = dataclasses.field(default_factory=list)


def load_results(
    results: str | os.PathLike | None = None, studies: list[str] | None = None
) -> DashboardInputs:
    """Load baselines and studies under ``results`` (default: :func:`search.results.results_root`).

    ``studies=None`` means every folder under ``<results>/searches/`` that holds a
    ``trials.jsonl`` or ``study.json``.
    """
    root = results_root(results)
    notes: list[str] = []

    baselines: dict[str, dict[str, Any]] = {}
    for name in BASELINE_NAMES:
        path = root / "baselines" / name / "metrics.json"
        data = _read_json_or_note(path, notes)
        if data is None:
            continue
        if not isinstance(data, dict) or not isinstance(data.get("test"), dict):
            notes.append(f"{path} has no test report; baseline {name!r} left out.")
            continue
        data.setdefault("name", name)
        baselines[name] = data
    missing = [n for n in BASELINE_NAMES if n not in baselines]
    if missing:
        notes.append(
            f"No reproduced baseline for {', '.join(missing)} (expected "
            f"{root / 'baselines' / '<name>' / 'metrics.json'}); the leaderboard shows only their published accuracies."
        )

    searches = root / "searches"
    if studies is None:
        names = sorted(
            p.name
            for p in (searches.iterdir() if searches.is_dir() else [])
            if p.is_dir() and ((p / "trials.jsonl").exists() or (p / "study.json").exists())
        )
        if not names:
            notes.append(f"No studies yet under {searches}.")
    else:
        names = list(studies)

    loaded = []
    for name in names:
        directory = study_dir(name, root)
        if not directory.is_dir():
            notes.append(f"Study {name!r} not found ({directory} does not exist).")
            continue
        meta = _read_json_or_note(directory / "study.json", notes) or {}
        trials = read_trials(directory / "trials.jsonl")
        if not trials:
            notes.append(f"Study {name!r} has no finished trials yet.")
        best = None
        if (directory / "best.json").exists():
            best = _read_json_or_note(directory / "best.json", notes)
        elif trials:
            notes.append(
                f"Study {name!r} has no best.json yet (search still running?): its best trial is "
                "listed by validation accuracy only."
            )
        loaded.append(StudyResults(name, directory, meta if isinstance(meta, dict) else {}, trials, best))
    return DashboardInputs(root=root, baselines=baselines, studies=loaded, notes=notes)


def _read_json_or_note(path: Path, notes: list[str]) -> Any:
    if not path.exists():
        return None
    try:
        return read_json(path)
    except (OSError, json.JSONDecodeError) as exc:
        notes.append(f"Could not read {path}: {exc}")
        return None
