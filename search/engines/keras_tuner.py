"""Keras Tuner engine: keras-tuner's oracles decide, the shared TrialRunner trains.

- ``SpaceTuner`` subclasses ``keras_tuner.Tuner`` and overrides ``run_trial`` to hand the
  trial's ``HyperParameters`` to the TrialRunner; a failed trial is reported with
  ``FailedTrialError`` (no retries) and the search goes on.
- The oracles (random, bayesian, hyperband) are keras-tuner's own, with one mixin: their
  source of fresh candidates (``_random_values``, used by all three for new trials) returns the
  configurations to run first (``Engine.first_configs``: the space's published recipes, then
  its starting points), so trial 0 of every new search is the published recipe, and
  ``populate_space`` stops once ``--max-time`` has passed.
- The project folder is ``results/searches/<study>/tuner/``; ``overwrite=False`` reloads the
  oracle, so the same command resumes: finished trials stay, and a trial that was running
  when the process died is retried under its own id (keras-tuner's retry queue).
- The table is reconciled with the oracle's records first (``KerasTunerEngine.reconcile``):
  a finished trial whose row was lost (a torn or garbled line, set aside) gets its row
  re-derived from ``tuner/trial_*/trial.json`` (hyperparameter values, status, score).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from search.engines.base import (
    Budget,
    Engine,
    Progress,
    deadline_from,
    rederived_record,
    warn_rederived,
)
from search.study import SearchError, Study
from search.trial import TrialRequest
from spaces.registry import BuildContext, Space

OBJECTIVE = "val_accuracy"
# keras-tuner's distributed mode: a chief serves the oracle over gRPC, workers ask it for
# trials. Refused here (see KerasTunerEngine.__init__ and the README).
_CHIEF_WORKER_VARIABLES = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


def _kt():
    import keras_tuner

    return keras_tuner


class _ReferenceFirst:
    """Oracle mixin: the configurations to run first (references, then starting points)
    before the algorithm's own candidates; a deadline."""

    first_configs: list[dict[str, Any]] = []
    deadline: float | None = None

    def _random_values(self):
        for config in self.first_configs:
            values = self._values_from(config)
            if not self._duplicate(values):
                return values
        return super()._random_values()

    def _values_from(self, config: dict[str, Any]) -> dict[str, Any]:
        # Same shape as keras-tuner's own _random_values: active hps only, so the hash that
        # marks a config as tried matches when the trial is recorded.
        kt = _kt()
        hps = kt.HyperParameters()
        for hp in self.hyperparameters.space:
            hps.merge([hp])
            if hps.is_active(hp):
                hps.values[hp.name] = config.get(hp.name, hp.default)
        return hps.values

    def populate_space(self, trial_id):
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return {"status": "STOPPED", "values": None}
        return super().populate_space(trial_id)


def _oracle_classes():
    kt = _kt()

    class RandomOracle(_ReferenceFirst, kt.oracles.RandomSearchOracle):
        pass

    class BayesianOracle(_ReferenceFirst, kt.oracles.BayesianOptimizationOracle):
        pass

    class HyperbandOracle(_ReferenceFirst, kt.oracles.HyperbandOracle):
        pass

    return {"random": RandomOracle, "bayesian": BayesianOracle, "hyperband": HyperbandOracle}


def make_oracle(
    algorithm: str,
    first_configs: list[dict[str, Any]],
    *,
    trials: int,
    epochs: int,
    seed: int,
    deadline: float | None = None,
):
    """A keras-tuner oracle for ``algorithm`` that runs ``first_configs`` (a space's
    references and starting points, ``Engine.first_configs``) before its own draws."""
    kt = _kt()
    classes = _oracle_classes()  # algorithm: checked once, by Engine.__init__
    # A failing trial must not end the search: keras-tuner stops after 3 consecutive failures
    # by default.
    # keras-tuner replaces a falsy seed by a random one (`seed or random.randint(...)`), so
    # seed 0, our default, would not reproduce: shift every seed by one.
    kt_seed = seed + 1 if seed >= 0 else seed
    common = dict(
        objective=kt.Objective(OBJECTIVE, "max"), seed=kt_seed, max_consecutive_failed_trials=10**9
    )
    if algorithm == "hyperband":
        # Brackets repeat until --trials is reached (hyperband_iterations would otherwise stop
        # a small-epoch search after one bracket of a couple of trials).
        oracle = classes[algorithm](
            max_epochs=max(epochs, 1), factor=3, hyperband_iterations=10**9, **common
        )
        oracle.max_trials = trials  # Hyperband has no max_trials argument; create_trial honours it
    else:
        oracle = classes[algorithm](max_trials=trials, **common)
    oracle.first_configs = list(first_configs)
    oracle.deadline = deadline
    return oracle


def _space_hypermodel(space: Space, ctx: BuildContext):
    kt = _kt()

    class SpaceHyperModel(kt.HyperModel):
        """Lets keras-tuner discover the space (conditional hps included) by building it; the
        backbone weights are never loaded for this."""

        def build(self, hp):
            return space.declare(hp, ctx)

    return SpaceHyperModel(name=space.name)


def _tuner_class():
    kt = _kt()

    class SpaceTuner(kt.Tuner):
        """keras-tuner Tuner whose trials run through the shared TrialRunner."""

        def __init__(self, oracle, *, runner, study: Study, epochs: int, progress: Progress):
            self.runner = runner
            self.study = study
            self.epochs = epochs
            self.progress = progress
            super().__init__(
                oracle=oracle,
                hypermodel=_space_hypermodel(runner.space, runner.ctx),
                directory=str(study.dir),
                project_name="tuner",
                overwrite=False,
            )

        def run_trial(self, trial, *args, **kwargs):
            hp = trial.hyperparameters
            # Hyperband's rungs give each trial its epoch budget. A promoted configuration
            # (tuner/trial_id names its trial on the rung below) continues that trial's kept
            # weights from tuner/initial_epoch where the space can (Space.warm_starts), as
            # keras-tuner's own Hyperband does; elsewhere it trains again from scratch.
            epochs = int(hp.values.get("tuner/epochs", self.epochs))
            hyperband = "tuner/bracket" in hp.values
            warm_starts = hyperband and self.runner.space.warm_starts
            record = _already_finished(self.study, trial)
            if record is None:
                shown = [self.progress.epoch_reporter(int(trial.trial_id), epochs)]
                record = self.runner.run(
                    hp,
                    TrialRequest(
                        trial_id=trial.trial_id,
                        number=int(trial.trial_id),
                        epochs=epochs,
                        callbacks=shown,
                        warm_start=_warm_start(self.study, hp) if warm_starts else None,
                        keep_weights=warm_starts,
                    ),
                )
            self.progress.update(record)
            if record.state != "COMPLETE":
                raise _kt().errors.FailedTrialError(record.error or record.state)
            return {OBJECTIVE: record.val_accuracy}

        def save_model(self, trial_id, model, step=0):
            # The study keeps the best model itself (Study.save_if_best); no per-trial files.
            return None

        def load_model(self, trial):
            raise NotImplementedError(
                f"per-trial models are not kept; the best model is {self.study.best_model_path}"
            )

    return SpaceTuner


def _warm_start(study: Study, hp):
    """A promoted Hyperband trial's start: its parent's kept weights at tuner/initial_epoch."""
    parent = hp.values.get("tuner/trial_id")
    if parent is None:  # the bracket's first rung
        return None
    return study.warm_start(str(parent), int(hp.values.get("tuner/initial_epoch", 0)))


def _already_finished(study: Study, trial):
    """The trial's row when it finished already: a process killed after the row was written
    but before the oracle saved the trial's end would otherwise train it again."""
    from search.hyperparameters import hp_config

    record = study.finished(trial.trial_id)
    if record is not None and record.config == hp_config(trial.hyperparameters):
        return record
    return None


class KerasTunerEngine(Engine):
    name = "keras-tuner"
    algorithms = ("random", "bayesian", "hyperband")

    def __init__(self, algorithm: str, **options: Any):
        """``options``: ``Engine``'s; keras-tuner takes neither a pruner, nor a storage, nor
        rungs (each refused in one line)."""
        super().__init__(algorithm, **options)
        pruner, storage, ladder = self.pruner, self.storage, self.ladder
        if ladder is not None:
            raise SearchError(
                "--rungs needs --engine optuna: keras-tuner's Hyperband promotes "
                "trials over epochs only (--algorithm hyperband)"
            )
        if pruner not in (None, "none"):
            raise SearchError(
                f"--pruner {pruner!r} applies to --engine optuna only; keras-tuner "
                "prunes through --algorithm hyperband"
            )
        if storage is not None:
            raise SearchError(
                "--storage is an Optuna database URL; keras-tuner keeps its state "
                "in results/searches/<study>/tuner/"
            )
        chief_worker = [v for v in _CHIEF_WORKER_VARIABLES if v in os.environ]
        if chief_worker:
            raise SearchError(
                f"{', '.join(chief_worker)} {'is' if len(chief_worker) == 1 else 'are'} set: "
                "keras-tuner's chief/worker mode does not work with this runner (each worker "
                "would keep its own table and best model, and a dead worker's trial is never "
                "retried); unset them, and for many workers on one study use --engine optuna "
                "--storage postgresql://... (README, Search)"
            )

    def run(self, runner, study: Study, budget: Budget) -> None:
        epochs = budget.epochs
        self.reconcile(runner, study, epochs=epochs)
        first = [config for config, _ in self.first_configs(runner.space)]
        oracle = make_oracle(
            self.algorithm,
            first,
            trials=budget.trials,
            epochs=epochs,
            seed=self.seed,
            deadline=deadline_from(budget.max_time),
        )
        done = len(study.records())
        # Disabled, it shows nothing.
        bar = Progress(budget.trials, done, study, enabled=budget.progress)
        try:
            tuner = _tuner_class()(oracle, runner=runner, study=study, epochs=epochs, progress=bar)
            tuner.search(verbose=0)
        finally:
            bar.close()

    def reconcile(self, runner, study: Study, *, epochs: int) -> None:
        """Unreadable lines set aside (see ``Engine.reconcile``); then every trial keras-tuner
        recorded as finished (``tuner/trial_*/trial.json``: COMPLETED or FAILED) without a
        row gets one re-derived from that record. A record keras-tuner itself could not
        reload is refused here, with its path, instead of keras-tuner's traceback."""
        super().reconcile(runner, study, epochs=epochs)
        rows = {r.trial_id for r in study.records()}
        rederived = []
        for _path, state in _trial_records(study.dir / "tuner"):
            if (
                state.get("status") in ("COMPLETED", "FAILED")
                and str(state.get("trial_id")) not in rows
            ):
                record = record_from_keras_tuner(runner, state, epochs)
                study.append(record)
                rederived.append(record)
        warn_rederived(
            study,
            sorted(rederived, key=lambda r: r.number),
            f"keras-tuner's trial records in {study.dir / 'tuner'}",
        )


def _trial_records(project: Path) -> list[tuple[Path, dict[str, Any]]]:
    records = []
    for path in sorted(project.glob("trial_*/trial.json")):
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(state, dict) or "trial_id" not in state:
                raise ValueError("not a keras-tuner trial record")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise SearchError(
                f"keras-tuner's trial record {path} cannot be read ({type(exc).__name__}: "
                f"{str(exc)[:200]}), so keras-tuner cannot resume this study; start a different "
                "study with --study NAME (this study's table and best model stay as they are)"
            ) from None
        records.append((path, state))
    return records


def record_from_keras_tuner(runner, state: dict[str, Any], epochs: int):
    """A finished keras-tuner trial's row, rebuilt from its trial.json (its row was lost)."""
    from search.hyperparameters import hp_config

    hps = _kt().HyperParameters.from_config(state["hyperparameters"])
    complete = state["status"] == "COMPLETED" and state.get("score") is not None
    message = [line for line in str(state.get("message") or "").splitlines() if line.strip()]
    note = "row re-derived from keras-tuner's trial record (trials.jsonl had no readable row): history lost"
    if not complete and message:
        note += f"; keras-tuner's message: {message[-1].strip()[:300]}"
    trial_id = str(state["trial_id"])
    budget = hps.values.get("tuner/epochs")
    return rederived_record(
        runner,
        trial_id=trial_id,
        number=int(trial_id),
        state="COMPLETE" if complete else "FAIL",
        config=hp_config(hps),
        note=note,
        val_accuracy=float(state["score"]) if complete else None,
        epochs_run=int(budget) if budget is not None else (epochs if complete else 0),
    )
