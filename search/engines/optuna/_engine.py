"""``OptunaEngine``: opens (or resumes) the study in its storage, then asks Optuna for one trial
at a time while the study's slots leave room; ``_Objective`` is what each trial runs."""

from __future__ import annotations

import os
import socket
import sys
import time
from typing import Any

from search.engines.base import (
    Budget,
    Engine,
    Progress,
    TrialFailed,
    deadline_from,
    warn,
    warn_rederived,
)
from search.engines.optuna._protocol import (
    CONTINUES,
    EVOLVED_FROM,
    FROM_RUNG,
    HOST,
    INTERRUPTED,
    KEPT_RUNG,
    PID,
    ROW,
    SURPLUS,
    WORKER,
    count_claimed,
    count_finished,
    surplus_reason,
)
from search.engines.optuna._rungs import RungPruning, is_last_call, late_promotion
from search.engines.optuna._samplers import (
    ALGORITHMS,
    MULTI_OBJECTIVE_ALGORITHMS,
    PRUNERS,
    RUNG_PRUNERS,
    make_pruner,
    make_sampler,
    per_trial_seeded,
)
from search.engines.optuna._storage import (
    DEFAULT_HEARTBEAT_S,
    GRACE_BEATS,
    check_storage,
    default_storage,
    fail_stale,
    open_optuna_study,
    recover_interrupted,
)
from search.engines.optuna._sync import copy_missing_rows, publish_study_meta
from search.study import SearchError, Study, mask_url


class OptunaEngine(Engine):
    name = "optuna"
    algorithms = ALGORITHMS

    def __init__(
        self,
        algorithm: str,
        *,
        heartbeat: int | None = None,
        objectives: tuple[str, ...] = ("accuracy",),
        limits: Any = None,
        **options: Any,
    ):
        """``options``: ``Engine``'s (seed, pruner, storage, references, starting points,
        ladder); ``heartbeat`` (seconds), ``objectives`` (``("accuracy",)`` or
        ``("accuracy", COST)``, ``search.latency.COSTS``) and ``limits`` (a
        ``search.latency.Limits``, set on every trial as its constraints) are this engine's."""
        super().__init__(algorithm, **options)
        self.objectives, self.limits = tuple(objectives), limits
        self.balanced = False  # set by open: successive halving balances the rungs' time
        if len(self.objectives) > 1:
            _check_multi_objective(self)
        pruner, ladder, storage = self.pruner, self.ladder, self.storage
        if pruner not in (None, *PRUNERS):
            raise SearchError(f"unknown pruner {pruner!r}; choices: {', '.join(PRUNERS)}")
        if ladder is not None and pruner not in (None, *RUNG_PRUNERS):
            raise SearchError(
                f"--pruner {pruner} judges epochs, not rungs; with --rungs use "
                f"{' or '.join(RUNG_PRUNERS)} (default {RUNG_PRUNERS[0]})"
            )
        if heartbeat is not None and (
            isinstance(heartbeat, bool) or int(heartbeat) != heartbeat or heartbeat < 1
        ):
            raise SearchError(
                f"--heartbeat must be a whole number of seconds, at least 1 (got {heartbeat!r})"
            )
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
                f"only categorical ones ({', '.join(kinds) or 'none'}); use tpe or random"
            )

    def run(self, runner, study: Study, budget: Budget) -> None:
        import optuna

        trials, epochs = budget.trials, budget.epochs
        self.check_space(runner.space, runner.ctx)
        storage = self.storage_url(study)
        ostudy = self.open(runner, study, storage, epochs=epochs, timed=budget.max_time is not None)
        done = count_finished(ostudy.get_trials(deepcopy=False))
        bar = Progress(trials, done, study, enabled=budget.progress)
        if done >= trials:
            bar.close()
            return
        # Failed trials are reported on the progress bar and in the table; Optuna's own
        # warning would add a traceback per failure.
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        objective = _Objective(
            ostudy, runner, study.worker, trials=trials, epochs=epochs, bar=bar, ladder=self.ladder
        )
        objective.objectives, objective.limits = self.objectives, self.limits
        objective.late_promotion = self.promotes_late(runner)
        try:
            self._run_trials(ostudy, objective, trials, deadline_from(budget.max_time))
        finally:
            bar.close()
        # Other workers' rows (other machines write their own trials.jsonl) join this table, so
        # the study's best and ensemble are picked from all of its trials.
        self.reconcile(runner, study, epochs=epochs, ostudy=ostudy, storage=storage)

    def promotes_late(self, runner) -> bool:
        """Whether stopped trials keep their rung weights and may be continued later
        (``search.engines.optuna._rungs``): over rungs judged by successive halving, for a
        space whose networks continue their weights, in a study that keeps them."""
        return (
            self.ladder is not None
            and (self.pruner or RUNG_PRUNERS[0]) == "halving"
            and runner.space.climbs_rungs
            and runner.study is not None
        )

    def storage_url(self, study: Study) -> str:
        """The storage given, else the one a resumed study recorded, else the default file."""
        if self.storage is not None:
            return self.storage
        recorded = study.recorded_storage()  # a resumed study's own (Study.open keeps it)
        if recorded is not None:
            check_storage(recorded, f"the storage recorded in {study.study_json},")
            return recorded
        return default_storage(study)

    def open(self, runner, study: Study, storage: str, *, epochs: int, timed: bool = False):
        """The study's Optuna study, ready for new trials: interrupted trials closed and
        queued again, the table reconciled, a new study's first configurations queued, the
        sampler and pruner set (``timed``: under a time limit, successive halving over rungs
        also balances the time each rung gets)."""
        directions = ["maximize", *["minimize"] * (len(self.objectives) - 1)]
        ostudy, created = open_optuna_study(
            study, storage, heartbeat=self.heartbeat, directions=directions
        )
        recover_interrupted(ostudy, study)
        self.reconcile(runner, study, epochs=epochs, ostudy=ostudy, storage=storage)
        if created:
            # Only the worker that created the study queues the references and starting
            # points (several workers starting on a new study would each queue them).
            for config, marks in self.first_configs(runner.space):
                ostudy.enqueue_trial(config, user_attrs=marks)
        publish_study_meta(ostudy, study)
        ostudy.sampler = per_trial_seeded(make_sampler(self.algorithm, self.seed), self.seed)
        multi = len(self.objectives) > 1  # Optuna prunes single-objective studies only
        self.balanced = timed and self.ladder is not None
        ostudy.pruner = make_pruner(
            "none" if multi else self.pruner,
            epochs,
            rungs=self.ladder is not None,
            balanced=len(self.ladder.rungs) if self.balanced else None,
        )
        return ostudy

    def _run_trials(self, ostudy, objective, trials: int, deadline: float | None) -> None:
        """One trial at a time until the study has ``trials`` counting trials or the deadline
        passes; while running trials of other workers hold the last slots, wait, so that if
        one of them dies its trial is retried here."""
        pause = min(float(self.heartbeat), 5.0)
        while deadline is None or time.monotonic() < deadline:
            fail_stale(ostudy)  # other workers' dead trials: failed and queued again
            current = ostudy.get_trials(deepcopy=False)
            if count_finished(current) >= trials:
                break
            if count_claimed(current) >= trials:
                time.sleep(pause)
                continue
            if objective.late_promotion:
                left = None if deadline is None else deadline - time.monotonic()
                self._promote_late(ostudy, current, objective.worker, left)
            self._run_one(ostudy, objective)

    def _promote_late(self, ostudy, trials, worker: str, seconds_left: float | None) -> None:
        """Queue the continuation of a stopped trial that now ranks in the best third of
        its rung (``late_promotion``; at the last call for the top rung, ``is_last_call``,
        whatever time the rungs have had), before any new configuration is drawn."""
        from optuna.trial import TrialState

        if any(t.state == TrialState.WAITING for t in trials):
            return  # a queued trial (a promotion, a retry, a first configuration) goes first
        last_call = self.balanced and is_last_call(trials, self.ladder, seconds_left)
        pick = late_promotion(
            trials, self.ladder, worker, balanced=self.balanced, last_call=last_call
        )
        if pick is not None:
            stopped, rung = pick
            ostudy.enqueue_trial(
                stopped.params, user_attrs={CONTINUES: stopped.number, FROM_RUNG: rung}
            )

    def _run_one(self, ostudy, objective) -> None:
        import optuna

        try:
            ostudy.optimize(
                objective, n_trials=1, catch=(TrialFailed, _Surplus), gc_after_trial=False
            )  # the runner clears the session and collects
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError) as exc:
            # Optuna refuses to update or tell a trial that is already finished.
            if isinstance(exc, ValueError) and "Cannot tell a" not in str(exc):
                raise
            # Another worker took this trial for dead (its beats came later than the
            # grace period) and queued it again: the row stays in this table, the
            # storage counts the retry. A longer --heartbeat avoids it.
            warn(
                "a trial of this worker was failed by another worker while it ran (its "
                f"heartbeat was over {GRACE_BEATS * self.heartbeat} s late) and is retried "
                "there; raise --heartbeat on a machine this busy"
            )

    def reconcile(
        self, runner, study: Study, *, epochs: int, ostudy=None, storage: str | None = None
    ) -> None:
        """Unreadable lines set aside (see ``Engine.reconcile``); then every finished trial in
        the storage without a row gets one: its whole row as the worker stored it (a trial run
        by a worker on another machine, or whose line was torn), else one re-derived from the
        storage (params, state, value, per-epoch val_accuracy as reported to the pruner,
        times); rows of trials the storage does not know are reported."""
        super().reconcile(runner, study, epochs=epochs)
        if ostudy is None:
            return
        trials = ostudy.get_trials(deepcopy=False)
        copied, rederived = copy_missing_rows(runner, study, trials, epochs)
        shown = mask_url(storage or "")
        warn_rederived(study, rederived, f"the Optuna storage {shown}")
        if copied:
            workers = sorted({r.worker or "?" for r in copied})
            print(
                f"note: {len(copied)} finished trial{'s' if len(copied) != 1 else ''} had no row "
                f"in {study.trials_path}; copied from the Optuna storage (run by "
                f"{', '.join(workers[:5])}{', ...' if len(workers) > 5 else ''})",
                file=sys.stderr,
                flush=True,
            )
        unknown = sorted({r.number for r in study.records()} - {t.number for t in trials})
        if unknown:
            n = len(unknown)
            warn(
                f"{n} row{'s' if n != 1 else ''} of {study.trials_path} (trial number"
                f"{'s' if n != 1 else ''} {', '.join(map(str, unknown[:20]))}) "
                f"{'have' if n != 1 else 'has'} no trial in the Optuna storage {shown}; a new "
                "trial given the same number replaces that row in the table (the line stays "
                "in the file)"
            )


def _check_multi_objective(engine: OptunaEngine) -> None:
    """Refuse what Optuna cannot do with several objectives: prune (``Trial.report`` and
    ``should_prune`` are single-objective only: no --pruner, no --rungs) and sample with a
    single-objective algorithm (cmaes, evolution)."""
    objective = ",".join(engine.objectives)
    if engine.algorithm not in MULTI_OBJECTIVE_ALGORITHMS:
        raise SearchError(
            f"--objective {objective}: --algorithm {engine.algorithm} optimizes one objective; "
            f"use {', '.join(MULTI_OBJECTIVE_ALGORITHMS)}"
        )
    if engine.ladder is not None or engine.pruner not in (None, "none"):
        what = "--rungs" if engine.ladder is not None else f"--pruner {engine.pruner}"
        raise SearchError(
            f"--objective {objective}: Optuna prunes single-objective studies only, so "
            f"{what} cannot be used; leave it out (every trial trains its --epochs)"
        )


class _Surplus(Exception):
    """A trial asked for after the study's last slot was taken (another worker asked first)."""


class _Objective:
    """What Optuna runs for each trial: take the trial's slot (or drop it as surplus), train
    it with the runner, store its whole row with the trial, and report its outcome."""

    def __init__(
        self, ostudy, runner, worker: str, *, trials: int, epochs: int, bar: Progress, ladder=None
    ):
        # Imported here, before the first trial: a missing package stops the search at once.
        from optuna_integration import KerasPruningCallback

        self.pruning_callback = KerasPruningCallback
        self.ostudy, self.runner, self.worker = ostudy, runner, worker
        self.trials, self.epochs, self.bar, self.ladder = trials, epochs, bar, ladder
        self.objectives: tuple[str, ...] = ("accuracy",)
        self.limits = None  # a search.latency.Limits: each trial's constraints
        self.late_promotion = False  # OptunaEngine.promotes_late

    def __call__(self, trial) -> float | tuple[float, ...]:
        import optuna

        self._claim(trial)
        try:
            record = self._train(trial)
        except KeyboardInterrupt:
            trial.set_user_attr(INTERRUPTED, True)
            raise
        # The whole row, so that any machine can rebuild the table from the storage.
        trial.set_user_attr(ROW, record.to_dict())
        kept = _kept_rung(record)
        if kept is not None:
            trial.set_user_attr(KEPT_RUNG, kept)
        self._constrain(trial, record)
        self.bar.update(record)
        if record.state == "PRUNED":
            raise optuna.TrialPruned(record.error)
        if record.state == "FAIL":
            raise TrialFailed(record.error)
        return self._values(record)

    def _constrain(self, trial, record) -> None:
        """How far the trial is over each limit (<= 0: within), as its Optuna constraints: TPE
        and NSGA-II learn from them (a refused configuration is an infeasible PRUNED trial)."""
        if self.limits is None or record.state == "FAIL":
            return
        row = record.to_dict()
        for field, over in zip(self.limits.bounds(), self.limits.violations(row), strict=True):
            trial.set_constraint(field, over)

    def _values(self, record) -> float | tuple[float, ...]:
        """Validation accuracy, then (several objectives) the cost the study minimizes."""
        from search.latency import COSTS

        accuracy = float(record.val_accuracy)
        if len(self.objectives) == 1:
            return accuracy
        cost = getattr(record, COSTS[self.objectives[1]])
        if cost is None:
            raise TrialFailed(f"its {self.objectives[1]} was not measured: {record.latency}")
        return accuracy, float(cost)

    def _claim(self, trial) -> None:
        """Mark ``trial`` as this worker's; raise ``_Surplus`` when its slot is taken."""
        trial.set_user_attr(PID, os.getpid())
        trial.set_user_attr(HOST, socket.gethostname())
        trial.set_user_attr(WORKER, self.worker)
        why = surplus_reason(self.ostudy.get_trials(deepcopy=False), trial.number, self.trials)
        if why is not None:
            trial.set_user_attr(SURPLUS, why)
            raise _Surplus(why)

    def _train(self, trial):
        import optuna

        from search.hyperparameters import DefineByRunHyperParameters
        from search.trial import TrialRequest

        # Over rungs the trial is judged once per rung (RungPruning), else on every epoch.
        judge = (
            RungPruning(trial, self.ladder)
            if self.ladder is not None
            else self.pruning_callback(trial, "val_accuracy")
            if len(self.objectives) == 1
            else None  # Trial.report is single-objective only: nobody judges its epochs
        )
        self._note_lineage(trial)
        return self.runner.run(
            DefineByRunHyperParameters(trial),
            TrialRequest(
                trial_id=str(trial.number),
                number=trial.number,
                epochs=self.epochs,
                ladder=self.ladder,
                warm_start=self._continued(trial),
                keep_stopped=self.late_promotion,
                prune_exceptions=(optuna.TrialPruned,),
                callbacks=(
                    *([judge] if judge is not None else []),
                    self.bar.epoch_reporter(trial.number, self.epochs),
                ),
            ),
        )

    def _continued(self, trial):
        """The kept weights a late promotion continues (a ``search.study.WarmStart``), or
        None: not a promotion, or the weights are gone (it then climbs from the first rung)."""
        origin = trial.user_attrs.get(CONTINUES)
        if origin is None or self.ladder is None:
            return None
        rung = int(trial.user_attrs[FROM_RUNG])
        return self.runner.study.warm_start(str(origin), self.ladder.rungs[rung].epochs)

    def _note_lineage(self, trial) -> None:
        """An evolved trial names its parent and the hyperparameter it changed."""
        decisions = getattr(getattr(self.ostudy.sampler, "inner", None), "decisions", {})
        decision = decisions.get(trial.number)
        if decision is not None:
            trial.set_user_attr(
                EVOLVED_FROM, {"trial": decision["parent"], "mutated": decision["mutated"]}
            )


def _kept_rung(record) -> int | None:
    """The rung after which a stopped trial kept its weights (``search.fidelity.climb``'s
    ``keep_stopped``), or None."""
    last = (record.rungs or [None])[-1]
    if record.state != "PRUNED" or not last or not last.get("weights_kept"):
        return None
    return int(last["rung"])


def declared_kinds(space, ctx) -> dict[str, str]:
    """Hyperparameter name -> kind ("Int", "Float", "Choice", "Boolean") of a default build."""
    import keras
    import keras_tuner as kt

    hp = kt.HyperParameters()
    space.declare(hp, ctx)
    keras.backend.clear_session()
    return {h.name: type(h).__name__ for h in hp.space}
