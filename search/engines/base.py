"""What every engine shares: the engine interface, the registry of engines, the progress bar.

An engine (``Engine.run``) only decides which configuration to try next and when to stop; it
hands each configuration to the shared ``TrialRunner`` (search/trial.py), which trains it and
writes the row through the ``Study`` (search/study.py).
"""

from __future__ import annotations

import abc
import math
import sys
import time
from typing import Any, ClassVar

from search.results import TrialRecord, describe_lines
from search.study import SearchError, Study


class TrialFailed(Exception):
    """Raised to an engine so it books a trial as failed (the row is already written)."""


class Progress:
    """tqdm bar on stderr: trials done, best so far, last trial time, ETA."""

    def __init__(self, total: int, done: int, study: Study, *, enabled: bool = True):
        from tqdm.auto import tqdm

        self.total, self.done = total, done
        self.running: str | None = None  # the running trial's last epoch (epoch_reporter)
        best = study.best_record()
        self.best = best.val_accuracy if best else None
        self.times: list[float] = []
        self.bar = tqdm(total=total, initial=min(done, total), desc=study.name, unit="trial",
                        file=sys.stderr, disable=not enabled, dynamic_ncols=True)
        self._refresh(None)

    def update(self, record: TrialRecord) -> None:
        self.times.append(record.wall_time_s)
        if record.state == "COMPLETE" and record.val_accuracy is not None:
            self.best = record.val_accuracy if self.best is None else max(self.best, record.val_accuracy)
        self.done += 1
        if record.state == "FAIL":
            self.bar.write(f"trial {record.number} failed: {record.error}", file=sys.stderr)
        self.bar.update(1)
        self._refresh(record)

    def epoch_reporter(self, number: int, epochs: int):
        """An engine callback that shows trial ``number``'s epochs on the bar as they end
        (a trial can train for many minutes; the bar would otherwise sit still). It sees the
        epochs the engine judges: a transfer trial's fine-tuning epochs count on from
        ``epochs``."""
        bar = self

        class EpochReporter:
            def set_model(self, model):
                pass

            def on_epoch_end(self, epoch, logs=None):
                val = (logs or {}).get("val_accuracy")
                of = f"/{epochs}" if epoch < epochs else ""
                bar.running = (f"#{number} epoch {epoch + 1}{of}"
                               + (f" val {float(val):.3f}" if val is not None else ""))
                bar._refresh(None)

        return EpochReporter()

    def _refresh(self, record: TrialRecord | None) -> None:
        postfix = {"best": "-" if self.best is None else f"{self.best:.4f}"}
        if record is not None:
            self.running = None
            postfix["last"] = f"#{record.number} {record.state} {record.wall_time_s:.0f}s"
        elif self.running:
            postfix["now"] = self.running
        if self.times:
            remaining = max(self.total - self.done, 0)
            eta = remaining * sum(self.times) / len(self.times)
            postfix["eta"] = _fmt_seconds(eta)
        self.bar.set_postfix(postfix, refresh=True)

    def close(self) -> None:
        self.bar.close()


class Engine(abc.ABC):
    """Decides which configurations to try; the shared TrialRunner trains them."""

    name: ClassVar[str]
    algorithms: ClassVar[tuple[str, ...]]

    def __init__(self, algorithm: str, *, seed: int = 0, pruner: str | None = None,
                 storage: str | None = None, references: bool = True):
        if algorithm not in self.algorithms:
            raise SearchError(f"unknown algorithm {algorithm!r} for engine {self.name!r}; "
                              f"choices: {', '.join(self.algorithms)}")
        self.algorithm = algorithm
        self.seed = seed
        self.pruner = pruner
        self.storage = storage
        self.references = references

    def first_configs(self, space) -> list[tuple[dict[str, Any], dict[str, bool]]]:
        """``(config, marks)`` a new study queues before its algorithm's own draws: the
        space's published recipes (marked ``reference``; left out with ``references=False``),
        then its known-good starting points (marked ``starting``)."""
        refs = space.reference_configs() if self.references else []
        return ([(c, {"reference": True}) for c in refs]
                + [(c, {"starting": True}) for c in space.starting_configs()])

    @abc.abstractmethod
    def run(self, runner, study: Study, *, trials: int, epochs: int,
            max_time: float | None = None, progress: bool = True) -> None:
        """Run trials until ``trials`` have finished in this study (earlier runs included) or
        ``max_time`` seconds have passed; never rerun a finished trial. Starts with
        :meth:`reconcile`."""

    def reconcile(self, runner, study: Study, *, epochs: int) -> None:
        """Make the study's table agree with the engine's own record of its trials, before
        any trial runs: lines of trials.jsonl that hold no row (torn by a crash, garbled) are
        moved to trials.jsonl.unreadable and reported. Engines extend this to re-derive the
        rows of finished trials that have none (:func:`rederived_record`)."""
        moved = study.set_aside_unreadable()
        if moved:
            warn(f"{study.trials_path}: {describe_lines([u.line for u in moved])}; moved to "
                 f"{study.trials_path}.unreadable")


def warn(message: str) -> None:
    """One ``warning: ...`` line on stderr (before the progress bar starts)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def warn_rederived(study: Study, rows: list[TrialRecord], source: str) -> None:
    """Say which trials' rows were re-derived, and from what."""
    if not rows:
        return
    n = len(rows)
    numbers = ", ".join(str(r.number) for r in rows[:20]) + (", ..." if n > 20 else "")
    warn(f"{n} finished trial{'s' if n != 1 else ''} ({numbers}) had no readable row in "
         f"{study.trials_path}; {'their rows were' if n != 1 else 'its row was'} re-derived from "
         f"{source} (configuration, state, validation accuracy; the per-epoch history is lost)")


def rederived_record(runner, *, trial_id: str, number: int, state: str, config: dict[str, Any],
                     note: str, **fields: Any) -> TrialRecord:
    """The row of a finished trial rebuilt from an engine's own records (its table row was
    lost): ``note`` goes into ``error``; the model's size is counted by building ``config``
    again (no training, no weights)."""
    return TrialRecord(**runner.labels, trial_id=str(trial_id), number=int(number), state=state,
                       config=dict(config), error=note, **{**_model_size(runner, config), **fields})


def _model_size(runner, config: dict[str, Any]) -> dict[str, int]:
    import keras
    import numpy as np

    from search.hyperparameters import fixed_hyperparameters

    try:
        model = runner.space.declare(fixed_hyperparameters(config), runner.ctx)
        if model is None:  # the space rejects this configuration (the trial failed in build)
            return {}
        size = {"params": int(model.count_params()),
                "trainable_params": int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))}
        shape = getattr(model, "input_shape", None)
        if isinstance(shape, tuple) and len(shape) == 4 and shape[1] == shape[2] and shape[1]:
            size["input_size"] = int(shape[1])
        return size
    except Exception:  # noqa: BLE001 - the size is a nicety; the row is what matters
        return {}
    finally:
        keras.backend.clear_session()


ENGINES: dict[str, str] = {
    "keras-tuner": "search.engines.keras_tuner:KerasTunerEngine",
    "optuna": "search.engines.optuna:OptunaEngine",
}


def engine_class(name: str) -> type[Engine]:
    """The ``Engine`` subclass registered as ``name`` (imported now); the one place an engine
    name is checked."""
    import importlib

    if name not in ENGINES:
        raise SearchError(f"unknown engine {name!r}; choices: {', '.join(ENGINES)}")
    module, cls_name = ENGINES[name].split(":")
    return getattr(importlib.import_module(module), cls_name)


def get_engine(name: str, algorithm: str | None = None, **kwargs: Any) -> Engine:
    """Engine ``name`` with ``algorithm`` (its default when None); imports it lazily."""
    cls = engine_class(name)
    return cls(algorithm or cls.algorithms[0], **kwargs)


def deadline_from(max_time: float | None) -> float | None:
    return None if max_time is None else time.monotonic() + float(max_time)


def _fmt_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
