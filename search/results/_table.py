"""The common results table every engine writes, and the JSON files beside it.

One study lives in ``results/searches/<study>/``:

- ``trials.jsonl``  one JSON object per line, one line per *finished* trial (complete, pruned
  or failed), appended as soon as the trial ends so an interrupted search loses nothing.
  A trial that is rerun after a crash is rewritten under the same ``trial_id``; readers keep
  the last line for each id. A line torn by a crash mid-write (or a full disk) is never
  merged with the next row (appends start a new line first); readers report it
  (:func:`read_table`) and a search moves it to ``trials.jsonl.unreadable``
  (:func:`set_aside_unreadable`).
- ``study.json``    what the study is: engine, algorithm, space, seed, data manifest, versions.
- ``best.json``     written once at the end: the best trial and its single test-set evaluation.

``trials.csv`` is a flat export of the same table for spreadsheets; it is derived, never read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from search._files import replaced_atomically

try:
    import fcntl
except ImportError:  # not POSIX: appends and set-asides go unlocked
    fcntl = None  # type: ignore[assignment]

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
    # "host:/abs/study/folder" of the worker that trained it: the one place its weights can be
    # (that folder's checkpoints/ and best_model.keras, if it was that worker's best); the rest
    # of the row is also in a shared Optuna storage.
    worker: str | None = None
    # k-fold cross-validation of the trial's configuration over train + validation, folds
    # never splitting a duplicate group (--cv K, cheap trials only): {"folds", "accuracy",
    # "standard_error", "fold_accuracy", "n"}. It reports how sure a score is; selection
    # stays on val_accuracy.
    cv: dict[str, Any] | None = None
    # Why a COMPLETE trial trained fewer epochs than it was given (the search's --max-time
    # ran out while it trained); None when it ran them all or was pruned.
    stopped: str | None = None
    # The trial whose kept weights this one continued (keras-tuner Hyperband promoting a
    # configuration to a larger epoch budget); its epochs_run counts only the new epochs.
    continued_from: str | None = None
    # The fidelity rungs the trial climbed (search.fidelity, --rungs): per rung its index,
    # the image size it trained at, the fraction of the training split, its last epoch, its
    # best validation accuracy, whether it continued the previous rung's weights, seconds.
    # None for a trial trained in one go.
    rungs: list[dict[str, Any]] | None = None
    # Seconds the search predicted this trial's training would take before it started
    # (search.cost; the sum of its rungs' predictions), None before anything was timed. Set
    # beside wall_time_s, it says how well the search knows its prices.
    predicted_s: float | None = None
    # What the model costs where it would ship (search.latency): the median ms of its float
    # TFLite file at batch 1 in LiteRT, that file's size in MB, and the rest of the
    # measurement (p90_ms, runs, runtime, threads, machine, format, measure_s). Measured
    # before training under a latency or size limit or objective (a configuration over a
    # limit is refused untrained, a PRUNED row), else after a COMPLETE trial; None: not
    # measured (or the conversion failed: ``latency`` then holds its ``error``).
    latency_ms: float | None = None
    size_mb: float | None = None
    latency: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.state not in TRIAL_STATES:
            raise ValueError(f"trial state {self.state!r} is not one of {TRIAL_STATES}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialRecord:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def append_trial(path: str | os.PathLike, record: TrialRecord) -> None:
    """Append one finished trial; flushed and fsynced so a kill right after keeps it.

    A file whose last line is torn (a crash mid-write, a full disk) gets a newline first, so
    the torn fragment stays on its own line and the new row is never merged into it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record.to_dict(), default=_json_default, allow_nan=True)
    with _open_locked(path) as fh:
        fh.seek(0, os.SEEK_END)
        prefix = b""
        if fh.tell() > 0:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                prefix = b"\n"
        fh.write(prefix + line.encode("utf-8") + b"\n")
        fh.flush()
        os.fsync(fh.fileno())


@dataclasses.dataclass
class UnreadableLine:
    """A line of trials.jsonl that holds no row: torn by a crash, garbled, or not a row."""

    line: int  # 1-based line number in the file
    text: str  # the line as found (undecodable bytes replaced), without its newline
    reason: str


@dataclasses.dataclass
class TrialTable:
    """What :func:`read_table` found: the good rows, and the lines it could not read."""

    path: Path
    records: list[TrialRecord]
    unreadable: list[UnreadableLine] = dataclasses.field(default_factory=list)

    @property
    def unreadable_lines(self) -> list[int]:
        return [u.line for u in self.unreadable]

    def describe(self) -> str:
        """``"<path>: 2 lines could not be read (lines 3, 7)"``; empty when all were read."""
        if not self.unreadable:
            return ""
        return f"{self.path}: {describe_lines(self.unreadable_lines)}"


def describe_lines(numbers: list[int], of: str | os.PathLike | None = None) -> str:
    """``"1 line could not be read (line 3)"``, ``"2 lines of <of> could not be read (lines 3,
    7)"``."""
    n, s = len(numbers), "s" if len(numbers) != 1 else ""
    shown = ", ".join(map(str, numbers[:20])) + (", ..." if n > 20 else "")
    where = f" of {of}" if of is not None else ""
    return f"{n} line{s}{where} could not be read (line{s} {shown})"


def read_table(path: str | os.PathLike) -> TrialTable:
    """Read a trials.jsonl file: the good rows (the last line per trial_id wins, sorted by
    number) and every line that holds no row, by line number (see :class:`UnreadableLine`).

    A row that an older version appended onto a torn line (no newline in between) is
    recovered; only the torn fragment before it is unreadable.
    """
    path = Path(path)
    if not path.exists():
        return TrialTable(path, [])
    return _table_of(path, _parse_lines(path.read_bytes()))


def read_trials(path: str | os.PathLike) -> list[TrialRecord]:
    """The good rows of a trials.jsonl file (:func:`read_table` also says which lines could
    not be read)."""
    return read_table(path).records


def set_aside_unreadable(path: str | os.PathLike) -> list[UnreadableLine]:
    """Move the lines of ``path`` that hold no row to ``<path>.unreadable`` beside it.

    Nothing is deleted: the lines are appended to the ``.unreadable`` file (and fsynced)
    before the table is rewritten without them (atomically, under the lock appends take); a
    row glued onto a torn fragment keeps its own line. Returns the lines moved.
    """
    path = Path(path)
    if not path.exists():
        return []
    with _open_locked(path) as fh:
        fh.seek(0)
        lines = _parse_lines(fh.read())
        moved = _table_of(path, lines).unreadable
        if not moved:
            return []
        aside = path.with_name(path.name + ".unreadable")
        known = set(aside.read_bytes().split(b"\n")) if aside.exists() else set()
        fresh = [
            ln.fragment for ln in lines if ln.fragment is not None and ln.fragment not in known
        ]
        if fresh:
            with open(aside, "ab") as out:
                out.write(b"".join(f + b"\n" for f in fresh))
                out.flush()
                os.fsync(out.fileno())
        with replaced_atomically(path) as tmp, open(tmp, "wb") as out:
            out.write(b"".join(ln.row + b"\n" for ln in lines if ln.row is not None))
            out.flush()
            os.fsync(out.fileno())
    return moved


@dataclasses.dataclass
class _Line:
    number: int
    record: TrialRecord | None = None
    row: bytes | None = None  # the bytes of the row, when the line holds one
    fragment: bytes | None = None  # what holds no row (the whole line, or a torn prefix)
    reason: str = ""


_ROW_START = b'{"study": '  # how every row begins (TrialRecord.to_dict keeps field order)


def _parse_lines(data: bytes) -> list[_Line]:
    lines = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.strip()
        if not raw:
            continue  # blank lines (and the end of the file) are neither rows nor errors
        record, reason = _parse_row(raw)
        if record is not None:
            lines.append(_Line(number, record, row=raw))
            continue
        line = _Line(number, fragment=raw, reason=reason)
        # An older version appended the next row onto a torn line: recover that row.
        start = raw.find(_ROW_START, 1)
        while start != -1:
            glued, _ = _parse_row(raw[start:])
            if glued is not None:
                line = _Line(
                    number,
                    glued,
                    row=raw[start:],
                    fragment=raw[:start],
                    reason=f"torn row, with the next row written onto its line ({reason})",
                )
                break
            start = raw.find(_ROW_START, start + 1)
        lines.append(line)
    return lines


def _parse_row(raw: bytes) -> tuple[TrialRecord | None, str]:
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            return None, f"a JSON {type(data).__name__}, not a row"
        return TrialRecord.from_dict(data), ""
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except json.JSONDecodeError as exc:
        return None, f"not JSON ({exc.msg} at column {exc.colno})"
    except (TypeError, ValueError) as exc:
        return None, f"not a row ({exc})"


def _table_of(path: Path, lines: list[_Line]) -> TrialTable:
    by_id = {ln.record.trial_id: ln.record for ln in lines if ln.record is not None}
    unreadable = [
        UnreadableLine(ln.number, ln.fragment.decode("utf-8", "replace"), ln.reason)
        for ln in lines
        if ln.fragment is not None
    ]
    return TrialTable(path, sorted(by_id.values(), key=lambda r: r.number), unreadable)


@contextlib.contextmanager
def _open_locked(path: Path) -> Iterator[BinaryIO]:
    """``path`` opened for appending and reading, under an exclusive lock (POSIX ``flock``;
    no lock where there is none). Appends and :func:`set_aside_unreadable` take it, so a
    rewrite never drops a row another process appends meanwhile."""
    while True:
        fh = open(path, "a+b")
        if fcntl is None:
            break
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            if os.fstat(fh.fileno()).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        fh.close()  # the file was replaced while we waited: lock the new one
    try:
        yield fh
    finally:
        fh.close()


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
    with replaced_atomically(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=indent, default=_json_default)
        fh.write("\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def environment_info() -> dict[str, str]:
    """Versions recorded beside every result so a run can be reproduced."""
    from importlib import metadata

    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for dist in (
        "tensorflow",
        "keras",
        "keras-tuner",
        "optuna",
        "optuna-integration",
        "numpy",
        "pillow",
        "imagehash",
        "scikit-learn",
        "plotly",
    ):
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
