"""The common results table every engine writes, and the JSON files beside it.

One study lives in ``results/searches/<study>/``:

- ``trials.jsonl``  one JSON object per line, one line per *finished* trial (complete, pruned
  or failed), appended as soon as the trial ends so an interrupted search loses nothing.
  A trial that is rerun after a crash is rewritten under the same ``trial_id``; readers keep
  the last line for each id.
- ``study.json``    what the study is: engine, algorithm, space, seed, data manifest, versions.
- ``best.json``     written once at the end: the best trial and its single test-set evaluation.

``trials.csv`` is a flat export of the same table for spreadsheets; it is derived, never read.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Iterable

TRIAL_STATES = ("COMPLETE", "PRUNED", "FAIL")

RESULTS_DIR_ENV = "ART_RESULTS"


def results_root(override: str | os.PathLike | None = None) -> Path:
    """Where runs write: ``override``, else ``$ART_RESULTS``, else ``./results``."""
    if override is not None:
        return Path(override)
    return Path(os.environ.get(RESULTS_DIR_ENV, "results"))


def study_dir(study: str, root: str | os.PathLike | None = None) -> Path:
    return results_root(root) / "searches" / study


@dataclasses.dataclass
class TrialRecord:
    """One row of the common results table."""

    study: str
    engine: str  # "keras-tuner" | "optuna"
    algorithm: str  # e.g. "random", "bayesian", "hyperband", "tpe", "cmaes"
    space: str  # registered space name, e.g. "cnn"
    trial_id: str
    number: int  # 0-based order in which the trial was started
    state: str  # one of TRIAL_STATES
    config: dict[str, Any]  # hyperparameter name -> value
    val_accuracy: float | None = None  # best validation accuracy seen (the objective)
    val_loss: float | None = None
    epochs_run: int = 0
    wall_time_s: float = 0.0
    params: int | None = None  # total parameter count of the built model
    # Input size the model was trained at: the config's image_size, capped by --max-image-size.
    input_size: int | None = None
    trainable_params: int | None = None
    error: str | None = None  # message for a failed trial
    # Per-epoch curves: {"accuracy": [...], "val_accuracy": [...], "loss": [...], "val_loss": [...]}
    history: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    started_at: str | None = None  # ISO 8601, UTC
    finished_at: str | None = None

    def __post_init__(self) -> None:
        if self.state not in TRIAL_STATES:
            raise ValueError(f"trial state {self.state!r} is not one of {TRIAL_STATES}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrialRecord":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def append_trial(path: str | os.PathLike, record: TrialRecord) -> None:
    """Append one finished trial; flushed and fsynced so a kill right after keeps it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record.to_dict(), default=_json_default, allow_nan=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_trials(path: str | os.PathLike) -> list[TrialRecord]:
    """Read a trials.jsonl file; the last line per trial_id wins; a torn last line is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    by_id: dict[str, TrialRecord] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                record = TrialRecord.from_dict(json.loads(line))
            except (json.JSONDecodeError, TypeError, ValueError):
                # A process killed mid-write leaves at most one torn line at the end.
                continue
            by_id[record.trial_id] = record
    return sorted(by_id.values(), key=lambda r: r.number)


def write_csv(records: Iterable[TrialRecord], path: str | os.PathLike) -> None:
    """Flat spreadsheet view of the table (config flattened to ``hp.<name>`` columns)."""
    import pandas as pd

    rows = []
    for r in records:
        row = {k: v for k, v in r.to_dict().items() if k not in ("config", "history")}
        row.update({f"hp.{k}": v for k, v in r.config.items()})
        rows.append(row)
    pd.DataFrame(rows).to_csv(path, index=False)


def write_json(path: str | os.PathLike, data: Any, indent: int | None = 2) -> None:
    """Write JSON atomically (temp file + rename) so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=indent, default=_json_default)
        fh.write("\n")
    os.replace(tmp, path)


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def environment_info() -> dict[str, str]:
    """Versions recorded beside every result so a run can be reproduced."""
    from importlib import metadata

    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for dist in ("tensorflow", "keras", "keras-tuner", "optuna", "optuna-integration",
                 "numpy", "pillow", "imagehash", "scikit-learn", "plotly"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays, Paths
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")
