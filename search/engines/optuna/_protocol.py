"""What workers sharing one Optuna study tell each other, and the rules they read it by.

Workers never talk to each other: each one writes marks on its trials (Optuna ``user_attrs``)
and reads everybody's marks back from the storage. The keys are named here, once; the slot,
retry and counting rules are pure functions over ``optuna.trial.FrozenTrial`` (no storage, no
training), so they can be checked on trials built with ``optuna.trial.create_trial``.

- A trial **counts** toward ``--trials`` when it finished and was neither interrupted, nor
  dropped as surplus, nor failed by the heartbeat and retried (the retry counts instead).
- A trial **claims** a slot when it counts or is running; a worker starts a trial only while
  the claimed slots leave room, and a trial that finds its slot taken by lower-numbered trials
  is **surplus** (dropped before it trains).
- A trial is **retried** when another trial names it as its predecessor: a heartbeat retry
  (Optuna's ``retry_history``) or a retry queued on resume (``RETRY_OF``).
- A trial **continues** another (``CONTINUES``) when successive halving promotes a stopped
  trial late (``search.engines.optuna._rungs``): one continuation per stopped trial; a
  second one queued by another worker at the same time is surplus.
"""

from __future__ import annotations

import datetime as _dt
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

# -- trial user_attrs ---------------------------------------------------------------------
ROW = "row"  # the trial's whole table row (TrialRecord.to_dict), set when it ends
PID = "pid"  # the worker process's id ...
HOST = "host"  # ... on this machine (socket.gethostname())
WORKER = "worker"  # "host:folder" of the worker that keeps the trial's weights
SURPLUS = "surplus"  # why the trial was dropped before training (its slot was taken)
INTERRUPTED = "interrupted"  # Ctrl-C, or a dead process on the trial's own machine
RETRY_OF = "retry_of"  # the number of the interrupted trial this one redoes (resume)
CONTINUES = "continues"  # a late promotion: the number of the stopped trial it continues
FROM_RUNG = "from_rung"  # ... and the rung that trial stopped after (it climbs from the next)
KEPT_RUNG = "kept_rung"  # a trial stopped after this rung kept its weights there
REFERENCE = "reference"  # a space's published recipe, queued first (Engine.first_configs)
STARTING = "starting"  # a space's known-good starting point, queued next
MARKS = (REFERENCE, STARTING)  # carried over to a trial's retry
# -- study user_attrs ---------------------------------------------------------------------
EVOLVED_FROM = "evolved_from"  # regularized evolution: {"trial": parent, "mutated": name}
STUDY_JSON = "study_json"  # study.json without its runs, for machines that never ran it

FINISHED_STATES = ("COMPLETE", "PRUNED", "FAIL")
# A running trial with no HOST (written by an older version) has no heartbeat to end it: it
# holds its slot only this long after it started.
UNMARKED_RUNNING_S = 60


def retry_history(trial: FrozenTrial) -> list[int]:
    """The numbers of the trials ``trial`` retries through the heartbeat (oldest first; empty:
    not a heartbeat retry), read with Optuna's own accessor."""
    import optuna

    callback = (
        getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
        or optuna.storages.RetryFailedTrialCallback
    )  # renamed in Optuna 4.9
    with warnings.catch_warnings():
        # Marked experimental: a warning per call that says nothing to the user.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return list(callback.retry_history(trial) or [])


def predecessor(trial: FrozenTrial) -> int | None:
    """The number of the trial that ``trial`` retries (None: not a retry). A heartbeat retry
    names its chain in :func:`retry_history`; a retry queued on resume names its trial in
    ``RETRY_OF``."""
    history = retry_history(trial)
    if history:
        return int(history[-1])
    retry_of = trial.user_attrs.get(RETRY_OF)
    return None if retry_of is None else int(retry_of)


def retried_numbers(trials: Iterable[FrozenTrial]) -> set[int]:
    """Numbers of the trials that another trial retries (by the heartbeat or on resume)."""
    return {n for n in map(predecessor, trials) if n is not None}


def counts(trial: FrozenTrial, retried: set[int]) -> bool:
    """Whether ``trial`` counts toward --trials: it finished, and it was neither interrupted
    (Ctrl-C, a dead process on this machine), nor dropped as surplus, nor failed by the
    heartbeat and retried (``retried``: :func:`retried_numbers`; the retry counts instead)."""
    if (
        trial.state.name not in FINISHED_STATES
        or trial.user_attrs.get(INTERRUPTED)
        or trial.user_attrs.get(SURPLUS)
    ):
        return False
    if trial.state.name == "FAIL" and ROW not in trial.user_attrs:
        # No row: its worker died in it. Retried? Then the retry counts.
        return trial.number not in retried
    return True


def count_finished(trials: Iterable[FrozenTrial]) -> int:
    """Trials that count toward --trials (see :func:`counts`)."""
    trials = list(trials)
    retried = retried_numbers(trials)
    return sum(counts(t, retried) for t in trials)


def claims(trial: FrozenTrial, retried: set[int], now: _dt.datetime | None = None) -> bool:
    """Whether ``trial`` holds one of the study's --trials slots: it counts, or it is running
    (a running trial with no ``HOST``, started more than ``UNMARKED_RUNNING_S`` before
    ``now``, is not waited for). ``now``: local naive time, as Optuna records it."""
    if counts(trial, retried):
        return True
    if trial.state.name != "RUNNING" or trial.user_attrs.get(SURPLUS):
        return False
    if trial.user_attrs.get(HOST) is not None:
        return True
    started = trial.datetime_start
    if started is None:
        return True
    return ((now or _dt.datetime.now()) - started).total_seconds() < UNMARKED_RUNNING_S


def count_claimed(trials: Iterable[FrozenTrial]) -> int:
    """Trials that hold a slot (see :func:`claims`)."""
    trials = list(trials)
    retried = retried_numbers(trials)
    return sum(claims(t, retried) for t in trials)


def surplus_reason(trials: Iterable[FrozenTrial], number: int, target: int) -> str | None:
    """Why trial ``number`` must not train (None: it may): the trials numbered before it
    already hold the study's ``target`` slots, or it retries a trial that an earlier trial
    already retries (two workers resumed at once)."""
    trials = list(trials)
    mine = next((t for t in trials if t.number == number), None)
    before = [t for t in trials if t.number < number]
    retried = retried_numbers(trials)
    if sum(claims(t, retried) for t in before) >= target:
        return f"the study's {target} trials were already taken by trials before it"
    continued = mine.user_attrs.get(CONTINUES) if mine is not None else None
    if continued is not None and predecessor(mine) is None:
        twin = next(
            (
                t
                for t in before
                if t.user_attrs.get(CONTINUES) == continued and not t.user_attrs.get(SURPLUS)
            ),
            None,
        )
        if twin is not None:
            return f"trial {twin.number} already continues trial {continued}"
    origin = predecessor(mine) if mine is not None else None
    if origin is not None:
        twin = next(
            (t for t in before if predecessor(t) == origin and not t.user_attrs.get(SURPLUS)), None
        )
        if twin is not None:
            return f"trial {twin.number} already retries trial {origin}"
    return None


def to_requeue(trials: Iterable[FrozenTrial]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``(params, user_attrs)`` to enqueue on resume: one retry for each interrupted trial
    that no trial retries yet (by the heartbeat or on resume). A trial that is itself a
    resume's retry is not queued again, so a configuration that kills its process each time
    is redone once, not forever."""
    trials = list(trials)
    retried = retried_numbers(trials)
    queued = []
    for trial in trials:
        if (
            trial.user_attrs.get(INTERRUPTED)
            and trial.number not in retried
            and trial.user_attrs.get(RETRY_OF) is None
        ):
            user_attrs: dict[str, Any] = {RETRY_OF: trial.number}
            user_attrs.update({mark: True for mark in MARKS if trial.user_attrs.get(mark)})
            user_attrs.update(
                {
                    key: trial.user_attrs[key]
                    for key in (CONTINUES, FROM_RUNG)
                    if key in trial.user_attrs
                }
            )
            queued.append((trial.params, user_attrs))
    return queued
