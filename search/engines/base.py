"""What every engine shares: the engine interface, the registry of engines, the progress bar.

An engine (``Engine.run``) only decides which configuration to try next and when to stop; it
hands each configuration to the shared ``TrialRunner`` (search/trial.py), which trains it and
writes the row through the ``Study`` (search/study.py).
"""

from __future__ import annotations

import abc
import dataclasses
import math
import sys
import time
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from search._files import first_line
from search.results import TrialRecord, describe_lines
from search.study import SearchError, Study


@dataclasses.dataclass(frozen=True)
class Budget:
    """What one run of a search may spend: until the study has ``trials`` finished trials
    (all its workers and earlier runs together), ``epochs`` per trial, ``max_time`` seconds
    for the whole run (None: no limit); ``progress`` shows the bar."""

    trials: int
    epochs: int
    max_time: float | None = None
    progress: bool = True


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
        self.bar = tqdm(
            total=total,
            initial=min(done, total),
            desc=study.name,
            unit="trial",
            file=sys.stderr,
            disable=not enabled,
            dynamic_ncols=True,
        )
        self._refresh(None)

    def update(self, record: TrialRecord) -> None:
        self.times.append(record.wall_time_s)
        if record.state == "COMPLETE" and record.val_accuracy is not None:
            self.best = (
                record.val_accuracy if self.best is None else max(self.best, record.val_accuracy)
            )
        self.done += 1
        if record.state == "FAIL":
            self.bar.write(f"trial {record.number} failed: {record.error}", file=sys.stderr)
        self.bar.update(1)
        self._refresh(record)

    def epoch_reporter(self, number: int, epochs: int):
        """An engine callback that shows trial ``number``'s epochs on the bar as they end
        (a trial can train for many minutes; the bar would otherwise sit still), with the rung
        it climbs and what that rung was predicted to take (``--rungs``). It sees the epochs
        the engine judges: a transfer trial's fine-tuning epochs count on from ``epochs``."""
        bar = self

        class EpochReporter:
            def set_model(self, model):
                pass

            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                val, rung = logs.get("val_accuracy"), logs.get("rung_now")
                of = f"/{epochs}" if epoch < epochs else ""
                where = "" if rung is None else f" rung {int(rung)}"
                if logs.get("rung_predicted_s") is not None:
                    where += f" (~{_fmt_seconds(float(logs['rung_predicted_s']))})"
                bar.running = f"#{number}{where} epoch {epoch + 1}{of}" + (
                    f" val {float(val):.3f}" if val is not None else ""
                )
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
    # The --algorithm choices; the first is the default.
    algorithms: ClassVar[tuple[str, ...]]

    def __init__(
        self,
        algorithm: str,
        *,
        seed: int = 0,
        pruner: str | None = None,
        storage: str | None = None,
        references: bool = True,
        starting_points: bool = True,
        ladder: Any = None,
    ):
        if algorithm not in self.algorithms:
            raise SearchError(
                f"unknown algorithm {algorithm!r} for engine {self.name!r}; "
                f"choices: {', '.join(self.algorithms)}"
            )
        self.algorithm = algorithm
        self.seed = seed
        self.pruner = pruner
        self.storage = storage
        self.references = references
        self.starting_points = starting_points
        # A search.fidelity.Ladder: every trial climbs its rungs and is judged at each.
        self.ladder = ladder

    def first_configs(self, space) -> list[tuple[dict[str, Any], dict[str, bool]]]:
        """``(config, marks)`` a new study queues before its algorithm's own draws: the
        space's published recipes (marked ``reference``; left out with ``references=False``),
        then its known-good starting points (marked ``starting``; left out with
        ``starting_points=False``). With neither, the search starts from nothing a person
        wrote in."""
        refs = space.reference_configs() if self.references else []
        starts = space.starting_configs() if self.starting_points else []
        return [(c, {"reference": True}) for c in refs] + [(c, {"starting": True}) for c in starts]

    @abc.abstractmethod
    def run(self, runner, study: Study, budget: Budget) -> None:
        """Run trials until ``budget.trials`` have finished in this study (earlier runs
        included) or ``budget.max_time`` seconds have passed; never rerun a finished trial.
        Starts with :meth:`reconcile`."""

    def reconcile(self, runner, study: Study, *, epochs: int) -> None:
        """Make the study's table agree with the engine's own record of its trials, before
        any trial runs: lines of trials.jsonl that hold no row (torn by a crash, garbled) are
        moved to trials.jsonl.unreadable and reported. Engines extend this to re-derive the
        rows of finished trials that have none (:func:`rederived_record`)."""
        moved = study.set_aside_unreadable()
        if moved:
            warn(
                f"{study.trials_path}: {describe_lines([u.line for u in moved])}; moved to "
                f"{study.trials_path}.unreadable"
            )


def warn(message: str) -> None:
    """One ``warning: ...`` line on stderr (before the progress bar starts)."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def warn_rederived(study: Study, rows: list[TrialRecord], source: str) -> None:
    """Say which trials' rows were re-derived, and from what."""
    if not rows:
        return
    n = len(rows)
    numbers = ", ".join(str(r.number) for r in rows[:20]) + (", ..." if n > 20 else "")
    warn(
        f"{n} finished trial{'s' if n != 1 else ''} ({numbers}) had no readable row in "
        f"{study.trials_path}; {'their rows were' if n != 1 else 'its row was'} re-derived from "
        f"{source} (configuration, state, validation accuracy; the per-epoch history is lost)"
    )


def rederived_record(
    runner,
    *,
    trial_id: str,
    number: int,
    state: str,
    config: dict[str, Any],
    note: str,
    **fields: Any,
) -> TrialRecord:
    """The row of a finished trial rebuilt from an engine's own records (its table row was
    lost): ``note`` goes into ``error``; the model's size is counted by building ``config``
    again (no training, no weights)."""
    return TrialRecord(
        **runner.labels,
        trial_id=str(trial_id),
        number=int(number),
        state=state,
        config=dict(config),
        error=note,
        **{**_model_size(runner, config, number), **fields},
    )


def _model_size(runner, config: dict[str, Any], number: int) -> dict[str, int]:
    import keras

    from search.hyperparameters import fixed_hyperparameters
    from search.training import count_params

    try:
        model = runner.space.declare(
            fixed_hyperparameters(runner.space.complete(config)), runner.ctx
        )
        if model is None:  # the space rejects this configuration (the trial failed in build)
            return {}
        counted = count_params(model)
        size = {"params": counted["total"], "trainable_params": counted["trainable"]}
        shape = getattr(model, "input_shape", None)
        if isinstance(shape, tuple) and len(shape) == 4 and shape[1] == shape[2] and shape[1]:
            size["input_size"] = int(shape[1])
        return size
    except Exception as exc:  # noqa: BLE001 - the size is a nicety; the row is what matters
        warn(
            f"trial {number}'s re-derived row has no parameter counts: building its "
            f"configuration failed ({type(exc).__name__}: {first_line(exc, 200)})"
        )
        return {}
    finally:
        keras.backend.clear_session()


# name -> the engine class, or "module:Class" for a built-in one imported on first use (an
# engine loads its library, keras-tuner or Optuna, only when it runs).
ENGINES: dict[str, str | type[Engine]] = {
    "keras-tuner": "search.engines.keras_tuner:KerasTunerEngine",
    "optuna": "search.engines.optuna:OptunaEngine",
}

E = TypeVar("E", bound=type[Engine])


def register_engine(name: str) -> Callable[[E], E]:
    """Class decorator, ``@register_engine("toy") class ToyEngine(Engine): ...``: the engine is
    then ``--engine toy``, its ``algorithms`` the ``--algorithm`` choices (the first is the
    default). Works from any module, in the package or outside it."""

    def decorator(cls: E) -> E:
        if not (isinstance(cls, type) and issubclass(cls, Engine)):
            raise TypeError(f"@register_engine({name!r}) expects an Engine subclass, got {cls!r}")
        if not getattr(cls, "algorithms", ()):
            raise TypeError(
                f"engine {cls.__qualname__} names no algorithms (its first is the default)"
            )
        existing = ENGINES.get(name)
        if isinstance(existing, type) and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"engine {name!r} is already registered by {existing.__qualname__}")
        cls.name = name
        ENGINES[name] = cls
        return cls

    return decorator


def engine_class(name: str) -> type[Engine]:
    """The class of the registered engine ``name`` (a built-in one is imported here)."""
    import importlib

    if name not in ENGINES:
        raise SearchError(f"unknown engine {name!r}; choices: {', '.join(ENGINES)}")
    entry = ENGINES[name]
    if isinstance(entry, str):
        module, cls_name = entry.split(":")
        entry = ENGINES[name] = getattr(importlib.import_module(module), cls_name)
    return entry


def get_engine(name: str, algorithm: str | None = None, **kwargs: Any) -> Engine:
    """Engine ``name`` with ``algorithm`` (its first algorithm when None)."""
    cls = engine_class(name)
    return cls(algorithm or cls.algorithms[0], **kwargs)


def algorithms_help() -> str:
    """Each registered engine's algorithms, its default first: for ``--algorithm``'s help."""
    return "; ".join(
        f"{name}: {' | '.join(engine_class(name).algorithms)} "
        f"(default {engine_class(name).algorithms[0]})"
        for name in ENGINES
    )


def takes_option(name: str, option: str) -> bool:
    """Whether engine ``name``'s constructor has the keyword ``option`` (``heartbeat``: an
    option only one engine has is refused by name for the others, not by a TypeError)."""
    import inspect

    return option in inspect.signature(engine_class(name).__init__).parameters


def deadline_from(max_time: float | None) -> float | None:
    return None if max_time is None else time.monotonic() + float(max_time)


def _fmt_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
