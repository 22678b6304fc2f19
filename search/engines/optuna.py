"""Optuna engine: a sampler (tpe, random, cmaes) and a pruner decide; the TrialRunner trains.

- The study lives in an RDB storage (default ``sqlite:///results/searches/<study>/optuna.db``)
  opened with ``load_if_exists=True``: the same command resumes it, in the storage study.json
  records (``search.study.Study.open`` refuses another one). A ``--storage`` URL is checked
  when the engine is made, before anything is written: a malformed URL, an unknown database
  or a missing driver (PostgreSQL: ``pip install "art-arch-search[postgres]"``) is a
  ``SearchError``. Only finished trials (complete, pruned, failed) count toward ``--trials``.
- The table is reconciled with the storage first (``OptunaEngine.reconcile``): a finished
  trial whose row was lost (a torn or garbled line, set aside) gets its row re-derived from
  the storage; rows with no study in the storage at all are refused (wrong storage).
- A trial left RUNNING by a process that died (kill -9, power loss) or interrupted by Ctrl-C
  is marked FAIL on resume and its configuration queued once more, so the interrupted work
  is redone but nothing finished is rerun. (Running trials of a live process on the same
  host are left alone.)
- The space's reference configs are enqueued as the first trials of a new study.
- Pruning reports val_accuracy every epoch through optuna-integration's
  ``KerasPruningCallback``.
"""

from __future__ import annotations

import datetime as _dt
import os
import socket
from typing import Any

from search.engines.base import (
    Engine,
    Progress,
    TrialFailed,
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


def open_optuna_study(study: Study, storage: str):
    """The study's Optuna study in ``storage``, created if new. Rows in the table while the
    storage holds no such study mean the wrong storage (or a lost database): refused, since
    running on would give new trials the numbers, and the ids, of the rows."""
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
    try:
        storage_obj = optuna.storages.get_storage(storage)  # connects (and creates tables)
        exists = study.name in optuna.get_all_study_names(storage_obj)
        if not exists:
            table = study.table()
            n = len(table.records) + len(table.unreadable)
            if n:
                raise SearchError(
                    f"study {study.name!r} has {n} row{'s' if n != 1 else ''} in "
                    f"{study.trials_path} but {mask_url(storage)} holds no Optuna study "
                    f"{study.name!r}: resume with the storage the study was run with "
                    "(--storage URL), or pass --study NAME to start a different study")
        return optuna.create_study(study_name=study.name, storage=storage_obj,
                                   direction="maximize", load_if_exists=True)
    except SQLAlchemyError as exc:
        reason = mask_url(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise SearchError(f"could not open the Optuna storage {mask_url(storage)}: {reason}; "
                          "check that the database is running and that the URL (user, password, "
                          "host, database) is right") from None


def make_sampler(algorithm: str, seed: int):
    import optuna

    if algorithm == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
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
                 storage: str | None = None):
        super().__init__(algorithm, seed=seed, pruner=pruner, storage=storage)
        if pruner not in (None, *PRUNERS):
            raise SearchError(f"unknown pruner {pruner!r}; choices: {', '.join(PRUNERS)}")
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
        ostudy = open_optuna_study(study, storage)
        recover_interrupted(ostudy, study)
        self.reconcile(runner, study, epochs=epochs, ostudy=ostudy, storage=storage)
        if not ostudy.trials:
            for config in runner.space.reference_configs():
                ostudy.enqueue_trial(config, user_attrs={"reference": True})
        # A fresh seed per resume: the same seed would replay the first run's random draws.
        ostudy.sampler = make_sampler(self.algorithm, self.seed + len(ostudy.trials))
        ostudy.pruner = make_pruner(self.pruner, epochs)

        done = count_finished(ostudy)
        remaining = trials - done
        bar = Progress(trials, done, study, enabled=progress)
        if remaining <= 0:
            bar.close()
            return

        from optuna_integration import KerasPruningCallback

        from search.hyperparameters import DefineByRunHyperParameters

        def objective(trial: optuna.trial.Trial) -> float:
            trial.set_user_attr("pid", os.getpid())
            trial.set_user_attr("host", socket.gethostname())
            hp = DefineByRunHyperParameters(trial)
            try:
                record = runner.run(
                    hp, trial_id=str(trial.number), number=trial.number, epochs=epochs,
                    callbacks=[KerasPruningCallback(trial, "val_accuracy")],
                    prune_exceptions=(optuna.TrialPruned,),
                )
            except KeyboardInterrupt:
                trial.set_user_attr("interrupted", True)
                raise
            bar.update(record)
            if record.state == "PRUNED":
                raise optuna.TrialPruned(record.error)
            if record.state == "FAIL":
                raise TrialFailed(record.error)
            return float(record.val_accuracy)

        # Failed trials are reported on the progress bar and in the table; Optuna's own
        # warning would add a traceback per failure.
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        try:
            ostudy.optimize(objective, n_trials=remaining, timeout=max_time, catch=(TrialFailed,),
                            gc_after_trial=False)  # the runner clears the session and collects
        finally:
            bar.close()

    def reconcile(self, runner, study: Study, *, epochs: int, ostudy=None,
                  storage: str | None = None) -> None:
        """Unreadable lines set aside (see ``Engine.reconcile``); then every finished trial in
        the storage without a row gets one re-derived from the storage (params, state, value,
        per-epoch val_accuracy as reported to the pruner, times); rows of trials the storage
        does not know are reported."""
        super().reconcile(runner, study, epochs=epochs)
        if ostudy is None:
            return
        rows = {r.number for r in study.records()}
        trials = ostudy.get_trials(deepcopy=False)
        rederived = []
        for trial in trials:
            if trial.state.name in _FINISHED and not trial.user_attrs.get("interrupted") \
                    and trial.number not in rows:
                record = record_from_optuna(runner, trial, epochs)
                study.append(record)
                rederived.append(record)
        shown = mask_url(storage or "")
        warn_rederived(study, rederived, f"the Optuna storage {shown}")
        unknown = sorted(rows - {t.number for t in trials})
        if unknown:
            n = len(unknown)
            warn(f"{n} row{'s' if n != 1 else ''} of {study.trials_path} (trial number"
                 f"{'s' if n != 1 else ''} {', '.join(map(str, unknown[:20]))}) "
                 f"{'have' if n != 1 else 'has'} no trial in the Optuna storage {shown}; a new "
                 "trial given the same number replaces that row in the table (the line stays "
                 "in the file)")


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
        started_at=_utc(trial.datetime_start), finished_at=_utc(trial.datetime_complete))


def _utc(moment) -> str | None:
    # Optuna records local naive datetimes; the table records UTC, to the second.
    if moment is None:
        return None
    return moment.astimezone(_dt.timezone.utc).isoformat(timespec="seconds")


def count_finished(ostudy) -> int:
    """Trials that count toward --trials: finished ones, except interrupted ones (redone)."""
    return sum(1 for t in ostudy.trials
               if t.state.name in _FINISHED and not t.user_attrs.get("interrupted"))


def recover_interrupted(ostudy, study: Study) -> None:
    """Close trials a dead process left RUNNING; queue every interrupted config once more."""
    from optuna.trial import TrialState

    finished_rows = {r.number: r for r in study.records()}
    host = socket.gethostname()
    for trial in ostudy.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = trial.user_attrs.get("pid")
        if pid is not None and trial.user_attrs.get("host") == host and pid != os.getpid() \
                and _pid_alive(pid):
            continue  # another live process on this machine is running it
        row = finished_rows.get(trial.number)
        storage = ostudy._storage
        if row is not None and row.state == "COMPLETE" and row.val_accuracy is not None:
            # The trial finished and its row was written; only the tell was lost.
            ostudy.tell(trial.number, row.val_accuracy)
            continue
        storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
        ostudy.tell(trial.number, state=TrialState.FAIL)

    trials = ostudy.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for trial in trials:
        if trial.user_attrs.get("interrupted") and trial.number not in retried \
                and trial.user_attrs.get("retry_of") is None:
            user_attrs = {"retry_of": trial.number}
            if trial.user_attrs.get("reference"):
                user_attrs["reference"] = True
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
