"""Optuna engine: a sampler (tpe, random, cmaes) and a pruner decide; the TrialRunner trains.

- The study lives in an RDB storage (default ``sqlite:///results/searches/<study>/optuna.db``)
  opened with ``load_if_exists=True``: the same command resumes it. Only finished trials
  (complete, pruned, failed) count toward ``--trials``.
- A trial left RUNNING by a process that died (kill -9, power loss) or interrupted by Ctrl-C
  is marked FAIL on resume and its configuration queued once more, so the interrupted work
  is redone but nothing finished is rerun. (Running trials of a live process on the same
  host are left alone.)
- The space's reference configs are enqueued as the first trials of a new study.
- Pruning reports val_accuracy every epoch through optuna-integration's
  ``KerasPruningCallback``.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from search.engines.base import Engine, Progress, TrialFailed
from search.study import SearchError, Study

PRUNERS = ("median", "hyperband", "none")
_FINISHED = ("COMPLETE", "PRUNED", "FAIL")


def default_storage(study: Study) -> str:
    study.dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(study.dir / 'optuna.db').resolve()}"


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
        storage = self.storage or default_storage(study)
        ostudy = optuna.create_study(study_name=study.name, storage=storage, direction="maximize",
                                     load_if_exists=True)
        recover_interrupted(ostudy, study)
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
