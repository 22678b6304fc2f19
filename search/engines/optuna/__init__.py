"""Optuna engine: a sampler (tpe, tpe-multivariate, random, cmaes, evolution, nsga2) and a
pruner decide; the TrialRunner trains.

Modules: ``_protocol`` (the marks workers leave on trials, and the slot, retry and counting
rules over them), ``_storage`` (the URL, opening the study, the heartbeat, recovery),
``_samplers`` (samplers seeded per trial, pruners), ``_evolution`` (regularized evolution),
``_rungs`` (successive halving over fidelity rungs, and late promotion), ``_sync`` (the table
from the storage) and ``_engine`` (``OptunaEngine``).

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
  it trains (``surplus``). Each trial's sampler is seeded with a hash of the search seed and the
  trial's number, which the storage hands out once, so workers draw their own configurations (TPE
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
  ``KerasPruningCallback``; over ``--rungs``, once per rung (``_rungs``): successive halving,
  which under ``--max-time`` also balances the rungs' time, and a trial it stopped is
  continued later from its kept weights when it comes to rank in its rung's best third.
- Several objectives (``--objective accuracy,latency``): a study of directions (maximize,
  minimize), sampled by nsga2, tpe (either) or random, never pruned (Optuna prunes single-objective
  studies only). Limits (``--max-latency-ms`` ...) are each trial's constraints
  (``Trial.set_constraint``; ``constraints_func`` is deprecated since Optuna 5.0), which TPE and
  NSGA-II learn from; a trial over one is refused untrained by the runner, a PRUNED trial.
"""

from search.engines.optuna._engine import OptunaEngine, declared_kinds
from search.engines.optuna._protocol import (
    count_claimed,
    count_finished,
    counts,
    predecessor,
    retried_numbers,
    surplus_reason,
)
from search.engines.optuna._samplers import PRUNERS, make_pruner, make_sampler, per_trial_seeded
from search.engines.optuna._storage import (
    DEFAULT_HEARTBEAT_S,
    GRACE_BEATS,
    check_storage,
    default_storage,
    fail_stale,
    make_storage,
    open_optuna_study,
    recover_interrupted,
)
from search.engines.optuna._sync import (
    publish_study_meta,
    record_from_optuna,
    stored_row,
    sync_from_storage,
)

__all__ = [
    "DEFAULT_HEARTBEAT_S",
    "GRACE_BEATS",
    "PRUNERS",
    "OptunaEngine",
    "check_storage",
    "count_claimed",
    "count_finished",
    "counts",
    "declared_kinds",
    "default_storage",
    "fail_stale",
    "make_pruner",
    "make_sampler",
    "make_storage",
    "open_optuna_study",
    "per_trial_seeded",
    "predecessor",
    "publish_study_meta",
    "record_from_optuna",
    "recover_interrupted",
    "retried_numbers",
    "stored_row",
    "surplus_reason",
    "sync_from_storage",
]
