"""Optuna engine: a sampler (tpe, random, cmaes) and a pruner decide; the TrialRunner trains.

- The study lives in an RDB storage (default ``sqlite:///results/searches/<study>/optuna.db``)
  opened with ``load_if_exists=True``: the same command resumes it, in the storage study.json
  records (``search.study.Study.open`` refuses another one). A ``--storage`` URL is checked
  when the engine is made, before anything is written: a malformed URL, an unknown database
  or a missing driver (PostgreSQL: ``pip install "art-arch-search[postgres]"``) is a
  ``SearchError``. Only finished trials (complete, pruned, failed) count toward ``--trials``.
- Many workers, one study: the same command started N times (one machine or several, on one
  PostgreSQL URL) shares the study. ``--trials`` is the study's total, not each worker's: a
  worker starts a trial only while finished plus running trials leave room, and a trial that
  finds the slots taken by lower-numbered trials (two workers asked at once) is dropped before
  it trains (``surplus``). Each trial's sampler is seeded with the search seed plus the trial's
  number, which the storage hands out once, so workers draw their own configurations (TPE
  also uses ``constant_liar``: running trials count as bad, not as free space).
- Every trial beats a heartbeat into the storage (``--heartbeat``, Optuna's
  ``heartbeat_interval``; ``grace_period`` is three beats): a worker killed mid-trial leaves a
  trial whose beat stops, another worker fails it (``fail_stale_trials``) and Optuna's retry
  callback (``RetryFailedTrialCallback``, since 4.9 ``RetryHeartbeatStaleTrialCallback``)
  queues its configuration once more; a worker whose last slots
  are held by running trials waits, so that it can take over a dead worker's trial.
- Each finished trial's whole row (config, metrics, history, timings, error, and the worker
  ``host:folder`` that keeps its weights) is stored as the trial's ``row`` attribute, so the
  table is recoverable from the storage on any machine (``sync_from_storage``).
- The table is reconciled with the storage first (``OptunaEngine.reconcile``): a finished
  trial whose row is missing (lost to a torn line, or run by a worker on another machine) gets
  its row from the storage; rows with no study in the storage at all are refused (wrong
  storage).
- A trial left RUNNING by a dead process on this machine (kill -9, power loss) or interrupted
  by Ctrl-C is marked FAIL on resume and its configuration queued once more, so the
  interrupted work is redone but nothing finished is rerun. Running trials of a live process on
  this machine, and every running trial of another machine, are left alone (the heartbeat
  decides about those).
- The space's reference configs are enqueued as the first trials of a new study, by the worker
  that created it.
- Pruning reports val_accuracy every epoch through optuna-integration's
  ``KerasPruningCallback``.
"""

from __future__ import annotations

import datetime as _dt
import os
import random
import socket
import sys
import time
from typing import Any

from search.engines.base import (
    Engine,
    Progress,
    TrialFailed,
    deadline_from,
    rederived_record,
    warn,
    warn_rederived,
)
from search.study import SearchError, Study, mask_url

PRUNERS = ("median", "hyperband", "none")
_FINISHED = ("COMPLETE", "PRUNED", "FAIL")


def default_storage(study: Study) -> str:
    study.dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(study.dir / 'optuna.db').resolve()}"


_URL_EXAMPLES = "e.g. sqlite:///path/to/optuna.db or postgresql://user:password@host/database"
# Database driver module -> how to install it.
_DRIVER_HINTS = {
    "psycopg2": 'pip install "art-arch-search[postgres]" (in a checkout: pip install -e ".[postgres]")',
    "psycopg": 'pip install "art-arch-search[postgres]" (in a checkout: pip install -e ".[postgres]")',
    "MySQLdb": "pip install mysqlclient (or write mysql+pymysql://... and pip install PyMySQL)",
    "pymysql": "pip install PyMySQL",
}


def check_storage(url: str, what: str = "--storage") -> None:
    """Refuse a storage URL that cannot work, without connecting or writing anything: a
    malformed URL, an unknown database, a driver that is not installed, a SQLite file in a
    folder that does not exist. ``what`` names where the URL came from."""
    import sqlalchemy
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    shown = mask_url(url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise SearchError(f"{what} {shown!r} is not a database URL ({_URL_EXAMPLES})") from None
    try:
        # Imports the dialect and its driver; connects to nothing (SQLite creates no file).
        sqlalchemy.create_engine(parsed).dispose()
    except NoSuchModuleError:
        raise SearchError(f"{what} {shown}: unknown database {parsed.drivername!r} "
                          f"({_URL_EXAMPLES}; PostgreSQL is postgresql://, not postgres://)") from None
    except ImportError as exc:
        module = exc.name or str(exc)
        hint = _DRIVER_HINTS.get(module, f"install the Python package that provides {module!r}")
        raise SearchError(f"{what} {shown} needs the database driver {module!r}, which is not "
                          f"installed: {hint}") from None
    folder = _sqlite_folder(parsed)
    if folder is not None and not os.path.isdir(folder):
        # The folder is made when the study opens (the study's own folder does not exist
        # before its first run); refuse one that cannot be.
        existing = folder
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing):
            raise SearchError(f"{what} {shown}: cannot create folder {folder}, {existing} is a "
                              "file; give a file in a folder")
        if not os.access(existing, os.W_OK):
            raise SearchError(f"{what} {shown}: cannot create folder {folder}, {existing} is not "
                              "writable; give a file in a folder you can write to")


def _sqlite_folder(parsed) -> str | None:
    """The folder of a SQLite file URL (None: not SQLite, or in memory)."""
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return os.path.dirname(os.path.abspath(parsed.database))


DEFAULT_HEARTBEAT_S = 30
# A trial is stale after this many missed beats: long enough for a busy machine's beat to be
# late, short enough that a dead worker's trial is retried within minutes.
GRACE_BEATS = 3
# A study's storage is opened this many times before a race with another worker creating the
# same tables (or the same study) is taken for a real error.
_OPEN_ATTEMPTS = 6


def open_optuna_study(study: Study, storage: str, *, heartbeat: int | None = None):
    """``(optuna study, created)``: the study's Optuna study in ``storage``, created if new
    (``created``: by this call, not by a concurrent worker). Rows in the table while the
    storage holds no such study mean the wrong storage (or a lost database): refused, since
    running on would give new trials the numbers, and the ids, of the rows.

    ``heartbeat`` (seconds) makes every trial run in ``optimize`` beat into the storage; a trial
    whose beat stopped for ``GRACE_BEATS`` beats is failed by the next worker that starts a
    trial, and its configuration queued again (``RetryFailedTrialCallback``)."""
    import optuna
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    folder = _sqlite_folder(make_url(storage))
    if folder is not None:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise SearchError(f"cannot create the folder of the Optuna storage {mask_url(storage)}: "
                              f"{exc}") from None
    for attempt in range(_OPEN_ATTEMPTS):
        try:
            storage_obj = make_storage(storage, heartbeat=heartbeat)  # connects, creates tables
            exists = study.name in optuna.get_all_study_names(storage_obj)
            if exists:
                return optuna.load_study(study_name=study.name, storage=storage_obj), False
            table = study.table()
            n = len(table.records) + len(table.unreadable)
            if n:
                raise SearchError(
                    f"study {study.name!r} has {n} row{'s' if n != 1 else ''} in "
                    f"{study.trials_path} but {mask_url(storage)} holds no Optuna study "
                    f"{study.name!r}: resume with the storage the study was run with "
                    "(--storage URL), or pass --study NAME to start a different study")
            try:
                return optuna.create_study(study_name=study.name, storage=storage_obj,
                                           direction="maximize"), True
            except optuna.exceptions.DuplicatedStudyError:
                continue  # another worker created it a moment ago: load it
        except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
            # Two workers starting on a new database race to create its tables ("table
            # studies already exists", a duplicate key in PostgreSQL's catalog) or hold
            # SQLite's write lock: the loser tries again once the winner is done.
            if attempt + 1 < _OPEN_ATTEMPTS and _is_creation_race(exc):
                time.sleep(0.2 * (attempt + 1) + random.random() * 0.3)
                continue
            reason = mask_url(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            raise SearchError(f"could not open the Optuna storage {mask_url(storage)}: {reason}; "
                              "check that the database is running and that the URL (user, "
                              "password, host, database) is right") from None
    raise SearchError(f"could not open the Optuna storage {mask_url(storage)}: other workers kept "
                      f"creating study {study.name!r} at the same time; start this one again")


def _is_creation_race(exc: Exception) -> bool:
    # Optuna wraps some database errors (StorageInternalError): the cause says what happened.
    text = f"{exc} {exc.__cause__ or ''}".lower()
    return any(s in text for s in ("already exists", "duplicate key", "database is locked",
                                   "unique constraint failed"))


def make_storage(url: str, *, heartbeat: int | None = None):
    """An ``RDBStorage`` for ``url``: with a heartbeat when ``heartbeat`` is given, and, for
    SQLite, a lock wait long enough for a few workers sharing the file on one machine."""
    import inspect
    import warnings

    import optuna
    from sqlalchemy.engine import make_url

    kwargs: dict[str, Any] = {}
    if make_url(url).get_backend_name() == "sqlite":
        # sqlite3 gives up after 5 s by default; workers writing heartbeats, rows and tells
        # into one file wait longer than that now and then.
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    with warnings.catch_warnings():
        # Optuna marks the heartbeat and its retry callback experimental: a warning line per
        # run that says nothing to the user.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if heartbeat is not None:
            # Optuna 4.9 renamed RetryFailedTrialCallback and failed_trial_callback (both kept,
            # deprecated, until 6.0); the retry is queued the same way by either.
            retry_class = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) \
                or optuna.storages.RetryFailedTrialCallback
            params = inspect.signature(optuna.storages.RDBStorage).parameters
            name = ("heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in params
                    else "failed_trial_callback")
            kwargs.update(heartbeat_interval=int(heartbeat),
                          grace_period=GRACE_BEATS * int(heartbeat),
                          **{name: retry_class(max_retry=3)})
        return optuna.storages.RDBStorage(url, **kwargs)


def make_sampler(algorithm: str, seed: int):
    import optuna

    if algorithm == "tpe":
        # constant_liar: a running trial (another worker's) counts as a bad result while TPE
        # models the history, so concurrent workers do not all sample the same promising spot.
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    if algorithm == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if algorithm == "cmaes":
        try:
            import cmaes  # noqa: F401  (CmaEsSampler imports it lazily, at the first trial)
        except ImportError:
            raise SearchError("--algorithm cmaes needs the 'cmaes' package: pip install cmaes") from None
        # Categorical hps (and conditional ones) are outside CMA-ES's model; Optuna samples
        # them with the independent sampler, seeded too.
        return optuna.samplers.CmaEsSampler(
            seed=seed, independent_sampler=optuna.samplers.RandomSampler(seed=seed),
            warn_independent_sampling=False)
    raise SearchError(f"unknown algorithm {algorithm!r} for engine 'optuna'; "
                      f"choices: {', '.join(OptunaEngine.algorithms)}")


def per_trial_seeded(sampler, seed: int):
    """``sampler`` whose random state is reset to ``seed + trial.number`` before each trial.

    A sampler seeded once per process replays the same draws in every worker started at the
    same moment (each one builds it with the same seed); trial numbers are handed out once by
    the storage, so seeding by them gives each worker its own draws and keeps a single worker's
    search reproducible."""
    import optuna

    class PerTrialSeed(optuna.samplers.BaseSampler):
        def __init__(self, inner):
            self.inner = inner

        def __str__(self) -> str:
            return str(self.inner)

        def infer_relative_search_space(self, study, trial):
            return self.inner.infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self.inner.sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self.inner.sample_independent(study, trial, param_name, param_distribution)

        def before_trial(self, study, trial):
            _reseed(self.inner, seed + trial.number)
            self.inner.before_trial(study, trial)

        def after_trial(self, study, trial, state, values):
            self.inner.after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:
            self.inner.reseed_rng()

    return PerTrialSeed(sampler)


def _reseed(sampler, seed: int) -> None:
    # Optuna's samplers keep their numpy state in LazyRandomState attributes (_rng, CMA-ES's
    # _cma_rng) and delegate to inner samplers (_random_sampler, _independent_sampler).
    found = False
    for attr in ("_rng", "_cma_rng"):
        state = getattr(sampler, attr, None)
        if state is not None and hasattr(state, "rng"):
            state.rng.seed(seed % 2**32)
            found = True
    for attr in ("_random_sampler", "_independent_sampler"):
        inner = getattr(sampler, attr, None)
        if inner is not None:
            _reseed(inner, seed)
    if not found:
        sampler.reseed_rng()  # an unknown layout: at least not the other workers' draws


def make_pruner(name: str | None, epochs: int):
    import optuna

    if name in (None, "median"):
        # Wait for a few full trials and one epoch before comparing.
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))
    if name == "none":
        return optuna.pruners.NopPruner()
    raise SearchError(f"unknown pruner {name!r}; choices: {', '.join(PRUNERS)}")


class OptunaEngine(Engine):
    name = "optuna"
    algorithms = ("tpe", "random", "cmaes")

    def __init__(self, algorithm: str, *, seed: int = 0, pruner: str | None = None,
                 storage: str | None = None, heartbeat: int | None = None,
                 references: bool = True):
        super().__init__(algorithm, seed=seed, pruner=pruner, storage=storage,
                         references=references)
        if pruner not in (None, *PRUNERS):
            raise SearchError(f"unknown pruner {pruner!r}; choices: {', '.join(PRUNERS)}")
        if heartbeat is not None and (isinstance(heartbeat, bool) or int(heartbeat) != heartbeat
                                      or heartbeat < 1):
            raise SearchError(f"--heartbeat must be a whole number of seconds, at least 1 "
                              f"(got {heartbeat!r})")
        self.heartbeat = int(heartbeat) if heartbeat is not None else DEFAULT_HEARTBEAT_S
        if storage is not None:
            check_storage(storage)  # before search.run writes study.json

    def check_space(self, space, ctx) -> None:
        """CMA-ES models numeric hps only: refuse a space that has none."""
        if self.algorithm != "cmaes":
            return
        kinds = declared_kinds(space, ctx)
        if not any(kind in ("Int", "Float") for kind in kinds.values()):
            raise SearchError(
                f"--algorithm cmaes needs numeric hyperparameters, but space {space.name!r} has "
                f"only categorical ones ({', '.join(kinds) or 'none'}); use tpe or random")

    def run(self, runner, study: Study, *, trials: int, epochs: int,
            max_time: float | None = None, progress: bool = True) -> None:
        import optuna

        self.check_space(runner.space, runner.ctx)
        storage = self.storage
        if storage is None:
            storage = study.recorded_storage()  # a resumed study's own (Study.open keeps it)
            if storage is not None:
                check_storage(storage, f"the storage recorded in {study.study_json},")
        storage = storage or default_storage(study)
        ostudy, created = open_optuna_study(study, storage, heartbeat=self.heartbeat)
        recover_interrupted(ostudy, study)
        self.reconcile(runner, study, epochs=epochs, ostudy=ostudy, storage=storage)
        if created:
            # Only the worker that created the study queues the references and starting
            # points (several workers starting on a new study would each queue them).
            for config, marks in self.first_configs(runner.space):
                ostudy.enqueue_trial(config, user_attrs=marks)
        publish_study_meta(ostudy, study)
        ostudy.sampler = per_trial_seeded(make_sampler(self.algorithm, self.seed), self.seed)
        ostudy.pruner = make_pruner(self.pruner, epochs)

        done = count_finished(ostudy.get_trials(deepcopy=False))
        bar = Progress(trials, done, study, enabled=progress)
        if done >= trials:
            bar.close()
            return

        from optuna_integration import KerasPruningCallback

        from search.hyperparameters import DefineByRunHyperParameters
        from search.trial import TrialRequest

        worker = study.worker

        def objective(trial: optuna.trial.Trial) -> float:
            trial.set_user_attr("pid", os.getpid())
            trial.set_user_attr("host", socket.gethostname())
            trial.set_user_attr("worker", worker)
            why = surplus_reason(ostudy.get_trials(deepcopy=False), trial.number, trials)
            if why is not None:
                trial.set_user_attr("surplus", why)
                raise _Surplus(why)
            hp = DefineByRunHyperParameters(trial)
            try:
                record = runner.run(hp, TrialRequest(
                    trial_id=str(trial.number), number=trial.number, epochs=epochs,
                    callbacks=(KerasPruningCallback(trial, "val_accuracy"),
                               bar.epoch_reporter(trial.number, epochs)),
                    prune_exceptions=(optuna.TrialPruned,),
                ))
            except KeyboardInterrupt:
                trial.set_user_attr("interrupted", True)
                raise
            # The whole row, so that any machine can rebuild the table from the storage.
            trial.set_user_attr("row", record.to_dict())
            bar.update(record)
            if record.state == "PRUNED":
                raise optuna.TrialPruned(record.error)
            if record.state == "FAIL":
                raise TrialFailed(record.error)
            return float(record.val_accuracy)

        # Failed trials are reported on the progress bar and in the table; Optuna's own
        # warning would add a traceback per failure.
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        deadline = deadline_from(max_time)
        pause = min(float(self.heartbeat), 5.0)
        try:
            while deadline is None or time.monotonic() < deadline:
                fail_stale(ostudy)  # other workers' dead trials: failed and queued again
                current = ostudy.get_trials(deepcopy=False)
                if count_finished(current) >= trials:
                    break
                if count_claimed(current) >= trials:
                    # The last slots are held by running trials of other workers: wait, so that
                    # if one of them dies its trial is retried here.
                    time.sleep(pause)
                    continue
                try:
                    ostudy.optimize(objective, n_trials=1, catch=(TrialFailed, _Surplus),
                                    gc_after_trial=False)  # the runner clears the session and collects
                except (optuna.exceptions.UpdateFinishedTrialError, ValueError) as exc:
                    # Optuna refuses to update or tell a trial that is already finished.
                    if isinstance(exc, ValueError) and "Cannot tell a" not in str(exc):
                        raise
                    # Another worker took this trial for dead (its beats came later than the
                    # grace period) and queued it again: the row stays in this table, the
                    # storage counts the retry. A longer --heartbeat avoids it.
                    warn("a trial of this worker was failed by another worker while it ran (its "
                         f"heartbeat was over {GRACE_BEATS * self.heartbeat} s late) and is retried "
                         "there; raise --heartbeat on a machine this busy")
        finally:
            bar.close()
        # Other workers' rows (other machines write their own trials.jsonl) join this table, so
        # the study's best and ensemble are picked from all of its trials.
        self.reconcile(runner, study, epochs=epochs, ostudy=ostudy, storage=storage)

    def reconcile(self, runner, study: Study, *, epochs: int, ostudy=None,
                  storage: str | None = None) -> None:
        """Unreadable lines set aside (see ``Engine.reconcile``); then every finished trial in
        the storage without a row gets one: its whole row as the worker stored it (a trial run
        by a worker on another machine, or whose line was torn), else one re-derived from the
        storage (params, state, value, per-epoch val_accuracy as reported to the pruner,
        times); rows of trials the storage does not know are reported."""
        super().reconcile(runner, study, epochs=epochs)
        if ostudy is None:
            return
        rows = {r.number for r in study.records()}
        trials = ostudy.get_trials(deepcopy=False)
        rederived, copied = [], []
        retried = retried_numbers(trials)
        for trial in trials:
            if counts(trial, retried) and trial.number not in rows:
                stored = stored_row(trial)
                if stored is not None:
                    study.append(stored, stamp=False)
                    copied.append(stored)
                    continue
                record = record_from_optuna(runner, trial, epochs)
                study.append(record, stamp=False)
                rederived.append(record)
        shown = mask_url(storage or "")
        warn_rederived(study, rederived, f"the Optuna storage {shown}")
        if copied:
            workers = sorted({r.worker or "?" for r in copied})
            print(f"note: {len(copied)} finished trial{'s' if len(copied) != 1 else ''} had no row "
                  f"in {study.trials_path}; copied from the Optuna storage (run by "
                  f"{', '.join(workers[:5])}{', ...' if len(workers) > 5 else ''})",
                  file=sys.stderr, flush=True)
        unknown = sorted(rows - {t.number for t in trials})
        if unknown:
            n = len(unknown)
            warn(f"{n} row{'s' if n != 1 else ''} of {study.trials_path} (trial number"
                 f"{'s' if n != 1 else ''} {', '.join(map(str, unknown[:20]))}) "
                 f"{'have' if n != 1 else 'has'} no trial in the Optuna storage {shown}; a new "
                 "trial given the same number replaces that row in the table (the line stays "
                 "in the file)")


class _Surplus(Exception):
    """A trial asked for after the study's last slot was taken (another worker asked first)."""


def stored_row(trial):
    """The whole row a worker stored with ``trial`` (None: none, or not readable)."""
    from search.results import TrialRecord

    row = trial.user_attrs.get("row")
    if not isinstance(row, dict):
        return None
    try:
        return TrialRecord.from_dict(row)
    except (TypeError, ValueError):
        return None


def record_from_optuna(runner, trial, epochs: int):
    """A finished Optuna trial's row, rebuilt from the storage (its own row was lost)."""
    curve = [float(v) for _, v in sorted(trial.intermediate_values.items())]
    state = trial.state.name
    if state == "COMPLETE":
        accuracy = float(trial.value)
    else:
        accuracy = max(curve) if curve else None
    note = ("row re-derived from the Optuna storage (trials.jsonl had no readable row): "
            + ("history lost, only the per-epoch val_accuracy reported to the pruner is kept"
               if curve else "history lost"))
    return rederived_record(
        runner, trial_id=str(trial.number), number=trial.number, state=state,
        config=trial.params, note=note, val_accuracy=accuracy,
        history={"val_accuracy": curve} if curve else {},
        epochs_run=len(curve) or (epochs if state == "COMPLETE" else 0),
        wall_time_s=round(trial.duration.total_seconds(), 3) if trial.duration else 0.0,
        started_at=_utc(trial.datetime_start), finished_at=_utc(trial.datetime_complete),
        worker=trial.user_attrs.get("worker"))


def _utc(moment) -> str | None:
    # Optuna records local naive datetimes; the table records UTC, to the second.
    if moment is None:
        return None
    return moment.astimezone(_dt.timezone.utc).isoformat(timespec="seconds")


def predecessor(trial) -> int | None:
    """The number of the trial that ``trial`` retries (None: not a retry). A heartbeat retry
    (RetryFailedTrialCallback) names its chain in ``retry_history``; a retry queued on resume
    names its trial in ``retry_of``."""
    history = trial.system_attrs.get("retry_history")
    if history:
        return int(history[-1])
    retry_of = trial.user_attrs.get("retry_of")
    return None if retry_of is None else int(retry_of)


def retried_numbers(trials) -> set[int]:
    """Numbers of the trials that another trial retries."""
    return {n for n in map(predecessor, trials) if n is not None}


def counts(trial, retried: set[int]) -> bool:
    """Whether ``trial`` counts toward --trials: it finished, and it was neither interrupted
    (Ctrl-C, a dead process on this machine), nor dropped as surplus, nor failed by the
    heartbeat and retried (``retried``: :func:`retried_numbers`; the retry counts instead)."""
    if trial.state.name not in _FINISHED or trial.user_attrs.get("interrupted") \
            or trial.user_attrs.get("surplus"):
        return False
    if trial.state.name == "FAIL" and "row" not in trial.user_attrs:
        # No row: its worker died in it. Retried? Then the retry counts.
        return trial.number not in retried
    return True


def count_finished(trials) -> int:
    """Trials that count toward --trials (see :func:`counts`)."""
    trials = list(trials)
    retried = retried_numbers(trials)
    return sum(counts(t, retried) for t in trials)


def _claims(trial, retried: set[int]) -> bool:
    """Whether ``trial`` holds one of the study's --trials slots: it counts, or it is running
    (a running trial of an older version, with no worker recorded and started more than a
    minute ago, has no heartbeat to end it: it is not waited for)."""
    if counts(trial, retried):
        return True
    if trial.state.name != "RUNNING" or trial.user_attrs.get("surplus"):
        return False
    if trial.user_attrs.get("host") is not None:
        return True
    started = trial.datetime_start
    return started is None or (_dt.datetime.now() - started).total_seconds() < 60


def count_claimed(trials) -> int:
    trials = list(trials)
    retried = retried_numbers(trials)
    return sum(_claims(t, retried) for t in trials)


def surplus_reason(trials, number: int, target: int) -> str | None:
    """Why trial ``number`` must not train (None: it may): the trials numbered before it
    already hold the study's ``target`` slots, or it retries a trial that an earlier trial
    already retries (two workers resumed at once)."""
    trials = list(trials)
    mine = next((t for t in trials if t.number == number), None)
    before = [t for t in trials if t.number < number]
    retried = retried_numbers(trials)
    held = sum(_claims(t, retried) for t in before)
    if held >= target:
        return f"the study's {target} trials were already taken by trials before it"
    origin = predecessor(mine) if mine is not None else None
    if origin is not None:
        twin = next((t for t in before if predecessor(t) == origin
                     and not t.user_attrs.get("surplus")), None)
        if twin is not None:
            return f"trial {twin.number} already retries trial {origin}"
    return None


def fail_stale(ostudy) -> None:
    """Fail the running trials whose heartbeat stopped (their worker died) and queue their
    configurations again (the storage's RetryFailedTrialCallback)."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(ostudy)


def publish_study_meta(ostudy, study: Study) -> None:
    """Keep study.json in the storage too, so a machine that never ran the study can rebuild
    its folder (``sync_from_storage``)."""
    from search.results import read_json

    if study.study_json.exists():
        info = read_json(study.study_json)
        ostudy.set_user_attr("study_json", {k: v for k, v in info.items() if k != "runs"})


def sync_from_storage(storage: str, name: str, results=None) -> dict[str, Any]:
    """Write study ``name``'s folder under ``results`` from ``storage`` alone: study.json (when
    the folder has none) and every counting trial's row that trials.jsonl lacks, so the
    dashboard and exports read a study whose workers ran on other machines. Returns
    ``{"study_dir", "added", "workers", "without_row"}``; ``without_row`` lists finished trials
    that an older version ran without storing their row (left out)."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    from search.results import results_root, study_dir, write_json

    check_storage(storage)
    try:
        storage_obj = make_storage(storage)
        if name not in optuna.get_all_study_names(storage_obj):
            known = optuna.get_all_study_names(storage_obj)
            raise SearchError(f"--storage {mask_url(storage)} holds no study {name!r}; it holds: "
                              f"{', '.join(sorted(known)) or 'none'}")
        ostudy = optuna.load_study(study_name=name, storage=storage_obj)
        trials = ostudy.get_trials(deepcopy=False)
        meta = ostudy.user_attrs.get("study_json")
    except SQLAlchemyError as exc:
        reason = mask_url(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise SearchError(f"could not open the Optuna storage {mask_url(storage)}: {reason}") from None
    folder = study_dir(name, results_root(results))
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "study.json").exists() and isinstance(meta, dict):
        write_json(folder / "study.json", {**meta, "synced_from": mask_url(storage)})
    the_study = Study(name, engine="optuna", algorithm=str((meta or {}).get("algorithm", "?")),
                      space=str((meta or {}).get("space", "?")), root=results_root(results))
    have = {r.number for r in the_study.records()}
    added, without_row = [], []
    retried = retried_numbers(trials)
    for trial in trials:
        if not counts(trial, retried) or trial.number in have:
            continue
        row = stored_row(trial)
        if row is None:
            without_row.append(trial.number)
            continue
        the_study.append(row, stamp=False)
        added.append(row)
    return {"study_dir": folder, "added": added, "without_row": without_row,
            "workers": sorted({r.worker for r in the_study.records() if r.worker})}


def recover_interrupted(ostudy, study: Study) -> None:
    """Close trials a dead process on this machine left RUNNING; queue every interrupted
    config once more. Running trials of other machines are the heartbeat's to judge: their
    worker may be alive."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    finished_rows = {r.number: r for r in study.records()}
    host = socket.gethostname()
    storage = ostudy._storage
    for trial in ostudy.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = trial.user_attrs.get("pid")
        if trial.user_attrs.get("host") not in (None, host):
            continue  # another machine's worker: alive or not, its heartbeat says
        if pid is not None and pid != os.getpid() and _pid_alive(pid):
            continue  # another live process on this machine is running it
        row = finished_rows.get(trial.number)
        try:
            if row is not None and row.state == "COMPLETE" and row.val_accuracy is not None:
                # The trial finished and its row was written; only the tell was lost.
                ostudy.tell(trial.number, row.val_accuracy)
                continue
            storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
            ostudy.tell(trial.number, state=TrialState.FAIL)
        except (UpdateFinishedTrialError, ValueError, RuntimeError):
            continue  # another worker resuming at the same moment closed it first

    trials = ostudy.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for trial in trials:
        if trial.user_attrs.get("interrupted") and trial.number not in retried \
                and trial.user_attrs.get("retry_of") is None:
            # Two workers resuming at once may both queue it: the later-numbered copy is
            # dropped before it trains (surplus_reason).
            user_attrs = {"retry_of": trial.number}
            for mark in ("reference", "starting"):
                if trial.user_attrs.get(mark):
                    user_attrs[mark] = True
            ostudy.enqueue_trial(trial.params, user_attrs=user_attrs)


def declared_kinds(space, ctx) -> dict[str, str]:
    """Hyperparameter name -> kind ("Int", "Float", "Choice", "Boolean") of a default build."""
    import keras
    import keras_tuner as kt

    hp = kt.HyperParameters()
    space.declare(hp, ctx)
    keras.backend.clear_session()
    return {h.name: type(h).__name__ for h in hp.space}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError):
        return False
    return True
