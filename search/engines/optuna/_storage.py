"""The Optuna storage: checking its URL, opening the study in it (workers racing to create it),
the heartbeat that lets one worker fail another's dead trial, and closing the trials a dead
process on this machine left running."""

from __future__ import annotations

import os
import random
import socket
import time
import warnings
from typing import Any

from search._files import first_line
from search._urls import has_password, sqlite_path
from search.engines.optuna._protocol import HOST, INTERRUPTED, PID, to_requeue
from search.study import SearchError, Study, mask_url

DEFAULT_HEARTBEAT_S = 30
# A trial is stale after this many missed beats: long enough for a busy machine's beat to be
# late, short enough that a dead worker's trial is retried within minutes.
GRACE_BEATS = 3
# A study's storage is opened this many times before a race with another worker creating the
# same tables (or the same study) is taken for a real error.
_OPEN_ATTEMPTS = 6

_URL_EXAMPLES = "e.g. sqlite:///path/to/optuna.db or postgresql://user:password@host/database"
# Database driver module -> how to install it.
_DRIVER_HINTS = {
    "psycopg2": 'pip install "art-arch-search[postgres]" (in a checkout: pip install -e ".[postgres]")',
    "psycopg": 'pip install "art-arch-search[postgres]" (in a checkout: pip install -e ".[postgres]")',
    "MySQLdb": "pip install mysqlclient (or write mysql+pymysql://... and pip install PyMySQL)",
    "pymysql": "pip install PyMySQL",
}


def default_storage(study: Study) -> str:
    study.dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(study.dir / 'optuna.db').resolve()}"


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
        raise SearchError(
            f"{what} {shown}: unknown database {parsed.drivername!r} "
            f"({_URL_EXAMPLES}; PostgreSQL is postgresql://, not postgres://)"
        ) from None
    except ImportError as exc:
        module = exc.name or str(exc)
        hint = _DRIVER_HINTS.get(module, f"install the Python package that provides {module!r}")
        raise SearchError(
            f"{what} {shown} needs the database driver {module!r}, which is not installed: {hint}"
        ) from None
    folder = _sqlite_folder(url)
    if folder is not None and not os.path.isdir(folder):
        # The folder is made when the study opens (the study's own folder does not exist
        # before its first run); refuse one that cannot be.
        existing = folder
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing):
            raise SearchError(
                f"{what} {shown}: cannot create folder {folder}, {existing} is a "
                "file; give a file in a folder"
            )
        if not os.access(existing, os.W_OK):
            raise SearchError(
                f"{what} {shown}: cannot create folder {folder}, {existing} is not "
                "writable; give a file in a folder you can write to"
            )


def _sqlite_folder(url: str) -> str | None:
    """The folder of a SQLite file URL (None: not SQLite, or in memory)."""
    path = sqlite_path(url)
    return None if path is None else os.path.dirname(os.path.abspath(path))


def open_optuna_study(
    study: Study, storage: str, *, heartbeat: int | None = None, directions=("maximize",)
):
    """``(optuna study, created)``: the study's Optuna study in ``storage``, created if new
    (``created``: by this call, not by a concurrent worker). Rows in the table while the
    storage holds no such study mean the wrong storage (or a lost database): refused, since
    running on would give new trials the numbers, and the ids, of the rows.

    ``heartbeat`` (seconds) makes every trial run in ``optimize`` beat into the storage; a trial
    whose beat stopped for ``GRACE_BEATS`` beats is failed by the next worker that starts a
    trial, and its configuration queued again (Optuna's retry callback). ``directions``: one
    per objective (validation accuracy first); a stored study with others is refused."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    folder = _sqlite_folder(storage)
    if folder is not None:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise SearchError(
                f"cannot create the folder of the Optuna storage {mask_url(storage)}: {exc}"
            ) from None
    for attempt in range(_OPEN_ATTEMPTS):
        try:
            opened = _load_or_create(
                study, make_storage(storage, heartbeat=heartbeat), storage, list(directions)
            )
            if opened is not None:
                _check_directions(opened[0], list(directions), storage)
                return opened
        except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
            # Two workers starting on a new database race to create its tables ("table
            # studies already exists", a duplicate key in PostgreSQL's catalog) or hold
            # SQLite's write lock: the loser tries again once the winner is done.
            if attempt + 1 < _OPEN_ATTEMPTS and _is_creation_race(exc):
                time.sleep(0.2 * (attempt + 1) + random.random() * 0.3)
                continue
            raise SearchError(
                f"could not open the Optuna storage {mask_url(storage)}: "
                f"{mask_url(first_line(exc))}; "
                + (
                    password_hint(storage, f"{exc} {exc.__cause__ or ''}")
                    or "check that the database is running and that the URL (user, "
                    "password, host, database) is right"
                )
            ) from None
    raise SearchError(
        f"could not open the Optuna storage {mask_url(storage)}: other workers kept "
        f"creating study {study.name!r} at the same time; start this one again"
    )


def password_hint(url: str, error: str) -> str | None:
    """For a database that asked for a password (``error`` says so) and a URL without one (a
    resumed study's: none is ever written to disk), where the driver looks for it; else None."""
    if "password" not in error.lower() or has_password(url) or url.startswith("sqlite"):
        return None
    return (
        "the URL has no password (none is ever written to disk): set PGPASSWORD or put it "
        "in ~/.pgpass (host:port:database:user:password), or give the whole URL with --storage"
    )


def _check_directions(ostudy, directions: list[str], url: str) -> None:
    """Refuse a stored study whose objectives differ from ``directions``."""
    stored = [d.name.lower() for d in ostudy.directions]
    if stored != directions:
        raise SearchError(
            f"study {ostudy.study_name!r} in {mask_url(url)} optimizes {len(stored)} "
            f"objective(s) ({', '.join(stored)}), not {len(directions)} "
            f"({', '.join(directions)}): resume it with its own --objective, or pass "
            "--study NAME for a new study"
        )


def _load_or_create(study: Study, storage_obj, url: str, directions: list[str]):
    """``(optuna study, created)``, or None when another worker created it a moment ago."""
    import optuna

    if study.name in optuna.get_all_study_names(storage_obj):
        return optuna.load_study(study_name=study.name, storage=storage_obj), False
    table = study.table()
    n = len(table.records) + len(table.unreadable)
    if n:
        raise SearchError(
            f"study {study.name!r} has {n} row{'s' if n != 1 else ''} in "
            f"{study.trials_path} but {mask_url(url)} holds no Optuna study "
            f"{study.name!r}: resume with the storage the study was run with "
            "(--storage URL), or pass --study NAME to start a different study"
        )
    # Optuna logs "A new study created in RDB ..." at INFO: not a line of this package's.
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(verbosity, optuna.logging.WARNING))
    try:
        return optuna.create_study(
            study_name=study.name, storage=storage_obj, directions=directions
        ), True
    except optuna.exceptions.DuplicatedStudyError:
        return None
    finally:
        optuna.logging.set_verbosity(verbosity)


def _is_creation_race(exc: Exception) -> bool:
    # Optuna wraps some database errors (StorageInternalError): the cause says what happened.
    text = f"{exc} {exc.__cause__ or ''}".lower()
    return any(
        s in text
        for s in (
            "already exists",
            "duplicate key",
            "database is locked",
            "unique constraint failed",
        )
    )


def make_storage(url: str, *, heartbeat: int | None = None):
    """An ``RDBStorage`` for ``url``: with a heartbeat when ``heartbeat`` is given, and, for
    SQLite, a lock wait long enough for a few workers sharing the file on one machine."""
    import inspect

    import optuna

    kwargs: dict[str, Any] = {}
    if sqlite_path(url) is not None:
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
            retry_class = (
                getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
                or optuna.storages.RetryFailedTrialCallback
            )
            params = inspect.signature(optuna.storages.RDBStorage).parameters
            name = (
                "heartbeat_stale_trial_callback"
                if "heartbeat_stale_trial_callback" in params
                else "failed_trial_callback"
            )
            kwargs.update(
                heartbeat_interval=int(heartbeat),
                grace_period=GRACE_BEATS * int(heartbeat),
                **{name: retry_class(max_retry=3)},
            )
        return optuna.storages.RDBStorage(url, **kwargs)


def fail_stale(ostudy) -> None:
    """Fail the running trials whose heartbeat stopped (their worker died) and queue their
    configurations again (the storage's retry callback)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(ostudy)


def set_user_attr_of(ostudy, trial, key: str, value: Any) -> None:
    """Set a user attribute on a trial this process does not run (``Trial.set_user_attr``
    needs the running ``Trial``). Optuna has no public call for it: this uses the study's
    storage (``Study._storage``) and the trial's id (``FrozenTrial._trial_id``);
    tests/search/engines/optuna_internals_test.py fails if either goes away."""
    ostudy._storage.set_trial_user_attr(trial._trial_id, key, value)


def recover_interrupted(ostudy, study: Study) -> None:
    """Close trials a dead process on this machine left RUNNING; queue every interrupted
    config once more (``to_requeue``). Running trials of other machines are the heartbeat's to
    judge: their worker may be alive."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    finished_rows = {r.number: r for r in study.records()}
    host = socket.gethostname()
    for trial in ostudy.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = trial.user_attrs.get(PID)
        if trial.user_attrs.get(HOST) not in (None, host):
            continue  # another machine's worker: alive or not, its heartbeat says
        if pid is not None and pid != os.getpid() and _pid_alive(pid):
            continue  # another live process on this machine is running it
        row = finished_rows.get(trial.number)
        try:
            if row is not None and row.state == "COMPLETE" and row.val_accuracy is not None:
                # The trial finished and its row was written; only the tell was lost.
                ostudy.tell(trial.number, row.val_accuracy)
                continue
            set_user_attr_of(ostudy, trial, INTERRUPTED, True)
            ostudy.tell(trial.number, state=TrialState.FAIL)
        except (UpdateFinishedTrialError, ValueError, RuntimeError):
            continue  # another worker resuming at the same moment closed it first
    # Two workers resuming at once may both queue a retry: the later-numbered copy is dropped
    # before it trains (surplus_reason).
    for params, user_attrs in to_requeue(ostudy.get_trials(deepcopy=False)):
        ostudy.enqueue_trial(params, user_attrs=user_attrs)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError):
        return False
    return True
