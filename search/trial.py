"""The shared trial runner: build a model from ``hp``, train it, return one ``TrialRecord``.

Engines decide (keras-tuner's Oracle, Optuna's sampler) and ask for one trial at a time with a
``TrialRequest`` (which trial, its epochs, its warm start, the engine's callbacks);
``TrialRunner.run`` does the rest the same way for both: seed, build (the space declares its hps), train through the space's ``fit``
with NaN guard and best-epoch weights, keep the best model so far, and record the row in the
study table. With ``isolate=True`` (what ``search.run`` uses) the training happens in a fresh
child process per trial (``search.isolation``), because TensorFlow keeps part of every trained
model alive in the process that trained it.

A reproduced baseline is its space's reference configuration trained by ``TrialRunner.fit``
with the published epoch budget, so a recipe has one definition: its space.
"""

from __future__ import annotations

import functools
import gc
import os
import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

from search._files import replaced_atomically
from search._process import release_free_heap, rss_mb, utc_now
from search._request import TrialRequest, trial_seed
from search.fidelity import RungNotAfforded
from search.hyperparameters import fixed_hyperparameters, hp_config
from search.results import TrialRecord, write_json
from spaces.registry import BuildContext, Space

# Complete trials whose models a study keeps (the best by validation), for ensembles.
KEPT_MODELS = 10


# One rung below the top of one trial may take at most this share of the time --max-time
# leaves: the first trials at a rung are promoted on arrival (asynchronous successive halving),
# and one slow configuration must not spend the search's budget alone. The top rung may take
# all the time left (its look limit still holds): it is what the climb was for, and a third
# of what was left refused run D's best rung-1 network (0.783) its 928 s top rung with 2,611 s
# to go.
RUNG_SHARE = 1 / 3


# The distinct models a cost model must have timed before its predictions may refuse a look.
TRUSTED_KINDS = 3


class ConfigurationError(ValueError):
    """A configuration that cannot be trained (raised before any training)."""


class OverLimit(ConfigurationError):
    """A configuration over a limit (``--max-params``, ``--max-latency-ms``,
    ``--max-size-mb``): refused before training, a PRUNED row with the reason. PRUNED, not
    FAIL: nothing is wrong with it, the search chose not to train it (as a pruner stops a
    trial), and Optuna's samplers learn their constraints from PRUNED and COMPLETE trials."""


class TrialRunner:
    """Runs one trial for any engine and records it in the study.

    ``study`` (a ``search.study.Study``) receives the rows and the best model. It may be None
    for a runner that only fits (a baseline): its trials train and return their rows, labelled
    ``engine="baseline"``, and nothing is written.
    """

    def __init__(
        self,
        space: Space,
        data,
        study=None,
        *,
        ctx: BuildContext | None = None,
        batch_size: int = 32,
        seed: int = 0,
        max_params: int | None = 50_000_000,
        max_latency_ms: float | None = None,
        max_size_mb: float | None = None,
        latency_format: str = "tflite",
        measure: str | None = None,
        verbose: int = 0,
        callbacks: Iterable = (),
        isolate: bool = False,
        restore_best_epoch: bool = True,
        cv_folds: int | None = None,
        stop_at: float | None = None,
        look_s: Sequence[float] | None = None,
    ):
        self.space = space
        self.data = data
        self.study = study
        self.ctx = ctx or BuildContext(num_classes=len(data.class_names))
        self.batch_size = batch_size
        self.seed = seed
        self.max_params = max_params
        self.max_latency_ms = max_latency_ms
        self.max_size_mb = max_size_mb
        self.latency_format = latency_format  # the file timed: search.latency.LATENCY_FORMATS
        # When the model's latency and size are measured (search.latency): "before" training
        # (every trial; needed by a latency or size limit or objective), "after" a COMPLETE
        # trial (so any study can draw its accuracy/latency front), None: never.
        if measure not in (None, "before", "after"):
            raise ValueError(f"measure must be None, 'before' or 'after', not {measure!r}")
        self.measure = measure
        self.verbose = verbose
        # Extra callbacks for every trial (tests use one that interrupts a search).
        self.callbacks = list(callbacks)
        # Train each trial in a fresh child process (search.isolation): the search's memory
        # stays flat and a trial killed for memory becomes a FAIL row, not the search's end.
        self.isolate = isolate
        # A search keeps each trial's best validation epoch (the score it reports); a
        # published recipe keeps its final weights, as published.
        self.restore_best_epoch = restore_best_epoch
        # k-fold cross-validation of cheap trials over train + validation (search.crossval):
        # a second, tighter estimate beside the validation score; selection stays on the latter.
        self.cv_folds = cv_folds
        # The search's end (``time.time()``, from --max-time): a trial still training then
        # stops and keeps its best epoch so far, so the limit bounds the whole run.
        self.stop_at = stop_at
        # The longest each rung of a ladder may run (search.fidelity.look_seconds): a first
        # look at a configuration must be cheap, whatever the cost model predicted.
        self.look_s = tuple(look_s) if look_s is not None else None
        self._predicted_s: float | None = None  # the running trial's, before it trained

    @property
    def limits(self):
        """The hard limits a configuration is refused over (``search.latency.Limits``)."""
        from search.latency import Limits

        return Limits(self.max_params, self.max_latency_ms, self.max_size_mb)

    @property
    def labels(self) -> dict[str, str]:
        """The study, engine, algorithm and space that every row of this runner names."""
        s = self.study
        if s is None:
            return {
                "study": self.space.name,
                "engine": "baseline",
                "algorithm": "reference",
                "space": self.space.name,
            }
        return {"study": s.name, "engine": s.engine, "algorithm": s.algorithm, "space": s.space}

    def run(self, hp: Any, request: TrialRequest) -> TrialRecord:
        """Build, train and record one trial. Exceptions become FAIL rows; an exception in
        ``request.prune_exceptions`` becomes a PRUNED row; KeyboardInterrupt propagates.

        With a study, the row goes to its table and the trial's model, predictions and (for
        ``request.keep_weights``) weights to its folder; without one, nothing is written and
        the row is only returned."""
        if (request.keep_weights or request.keep_stopped) and self.study is None:
            raise ConfigurationError("keeping weights needs a study to keep them in")
        child_peak_mb = None
        if self.isolate:
            from search.isolation import train_in_child

            record, child_peak_mb = train_in_child(self, hp, request)
        else:
            record = self.train(hp, request)
        if self.study is not None:
            self.study.append(record)
            self.study.log_resources(record, rss_mb(), rss_mb("RssAnon"), child_peak_mb)
        return record

    def declare(self, hp: Any) -> dict[str, Any]:
        """Let the space declare its hyperparameters on ``hp`` and return the trial's config.

        Optuna samples a value when the space asks for it, so a trial's config exists only
        once the space has been built with it (``Space.declare``: no weights, the model
        thrown away).
        """
        import keras

        try:
            with warnings.catch_warnings():
                # An enqueued recipe may ask for more than --max-image-size, to which a space
                # caps its declared sizes: it is trained at the cap, as every size above it is.
                warnings.filterwarnings("ignore", message="Fixed parameter .* out of range")
                self.space.declare(hp, self.ctx)
        finally:
            keras.backend.clear_session()
        return hp_config(hp)

    def train(self, hp: Any, request: TrialRequest) -> TrialRecord:
        """Build and train one trial in this process, score it on what its kept model predicts
        (:meth:`score`) and, with a study, keep what the study keeps of it (:meth:`keep`).

        Returns the row without writing it to the table (``run`` does that)."""
        import keras

        model = None
        try:
            record, model = self.fit(hp, request)
            if record.state == "COMPLETE":
                if self.measure == "after":
                    fields = self.measured(hp, model, strict=False)
                    for name, value in fields.items():
                        setattr(record, name, value)
                if request.keep_weights:
                    path = self.study.rung_weights_path(record.trial_id)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    model.save_weights(path)
                predictions = self.score(hp, model, record, request)
                if self.study is not None:
                    self.keep(hp, model, record, predictions)
        finally:
            # Free this trial's graph before the next one: without clear_session Keras keeps
            # every model's layers in its global state and memory grows trial after trial.
            del model
            keras.backend.clear_session()
            gc.collect()
            release_free_heap()
        return record

    def score(
        self, hp: Any, model, record: TrialRecord, request: TrialRequest
    ) -> dict[str, np.ndarray]:
        """Set a completed trial's validation accuracy (and, for ``cv_folds``, its
        cross-validation) from its kept model; returns the model's predictions."""
        import keras

        predictions = self.predictions(hp, model)
        # The trial's score is what its kept model predicts on validation, as it will be used
        # (with test-time flip averaging where the trial chose it), not an epoch's log line.
        record.val_accuracy = float(
            np.mean(np.argmax(predictions["val"], axis=1) == self.data.labels("val"))
        )
        if self.cv_folds and self.space.cross_validates(hp):
            keras.utils.set_random_seed(trial_seed(self.seed, request.number))
            record.cv = self.space.cross_validate(
                hp,
                model,
                self.data,
                self.ctx,
                self.cv_folds,
                epochs=request.epochs,
                batch_size=self.batch_size,
                seed=self.seed,
            )
        return predictions

    def keep(self, hp: Any, model, record: TrialRecord, predictions: dict[str, np.ndarray]) -> None:
        """Keep a completed trial in the study's folder: the best-model checkpoint if it is
        the best so far, its predictions, and its model if it is among the best kept."""
        inference = self.space.inference_model(hp, model)
        self.study.save_if_best(record, inference)
        self.save_predictions(record, predictions)
        self.keep_model(record, inference)

    def predictions(self, hp: Any, model) -> dict[str, np.ndarray]:
        """The kept model's class probabilities on validation and test, as the space predicts
        them (through its cached paths)."""
        return {
            split: np.asarray(
                self.space.predict(hp, model, self.data, self.ctx, split), dtype=np.float32
            )
            for split in ("val", "test")
        }

    def save_predictions(self, record: TrialRecord, arrays: dict[str, np.ndarray]) -> None:
        """Keep the trial's class probabilities on validation and test (small: one row per
        image), for ensembles built from a study's trials afterwards (search.ensemble).
        Validation selects; the test probabilities are only read for the chosen ensemble."""
        path = self.study.predictions_dir / f"trial-{record.number}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        with replaced_atomically(path) as tmp:
            np.savez(tmp, trial_id=np.array(record.trial_id), **arrays)

    def keep_model(self, record: TrialRecord, model) -> None:
        """Keep the models of the study's best ``KEPT_MODELS`` complete trials (by validation,
        the one ranking: ``Study.ranked_with``), so that an ensemble picked from them
        afterwards can be built and exported without training its members again, and of the
        trials no other beats on accuracy and every cost at once (``non_dominated``: the
        fronts against latency, size and parameters), so that the best model under any
        limit can be exported (``search.export --max-latency-ms``); a model that drops out
        of both sets is deleted (disk stays bounded: about 10 MB per MobileNetV2 model)."""
        from search.results import non_dominated

        folder = self.study.dir / "models"
        folder.mkdir(parents=True, exist_ok=True)
        ranked = self.study.ranked_with(record)
        keep = {f"trial-{r.number}.keras" for r in [*ranked[:KEPT_MODELS], *non_dominated(ranked)]}
        name = f"trial-{record.number}.keras"
        if name in keep:
            with replaced_atomically(folder / name) as tmp:
                model.save(tmp)
        for path in folder.glob("trial-*.keras"):
            if path.name not in keep and ".tmp." not in path.name:
                path.unlink(missing_ok=True)

    def measured(self, hp: Any, model, *, strict: bool) -> dict[str, Any]:
        """The row's ``latency_ms``, ``size_mb`` and ``latency`` of ``model`` as it would ship
        (its inference model in TFLite or the study's latency format, ``search.latency``; an
        architecture the study measured
        before is not measured again: ``latency.jsonl`` in its folder). A conversion that fails raises a
        ``ConfigurationError`` when ``strict`` (a limit or objective needs the figure), else
        leaves only ``latency``'s ``error``."""
        from search._files import first_line
        from search.latency import measured_once, record_fields

        cache = self.study.dir / "latency.jsonl" if self.study is not None else None
        try:
            shipped = self.space.inference_model(hp, model)
            measured = measured_once(shipped, cache, self.max_latency_ms, self.latency_format)
            return record_fields(measured)
        except Exception as exc:  # noqa: BLE001 - a converter's failure is this trial's
            reason = f"{type(exc).__name__}: {first_line(exc, 300)}"
            if strict:
                raise ConfigurationError(
                    f"its latency and size could not be measured (TFLite conversion): {reason}"
                ) from None
            return {"latency": {"error": reason}}

    def fit(self, hp: Any, request: TrialRequest):
        """``(record, model)``: build and train one configuration in this process.

        The model holds the best validation epoch's weights (``restore_best_epoch``) or the
        final ones; it is None when the build failed. The caller frees it. Nothing is written
        (``request.keep_weights`` is :meth:`train`'s)."""
        import keras

        from search.training import HistoryRecorder, StopAtTime

        started_at, t0 = utc_now(), time.perf_counter()
        recorder = HistoryRecorder()
        clock = StopAtTime(self.stop_at) if self.stop_at is not None else None
        state, error, model, best, sizes = "FAIL", None, None, None, {}
        rungs: list[dict[str, Any]] = []  # what a ladder's trial climbed, kept if it is stopped
        keras.utils.set_random_seed(trial_seed(self.seed, request.number))
        try:
            model = self.space.build(hp, self.ctx)
            sizes = _sizes(model)
            if self.measure == "before":  # on the untrained model: latency needs no weights
                sizes.update(self.measured(hp, model, strict=True))
            refusal = self.limits.refusal(sizes)
            if refusal is not None:
                raise OverLimit(refusal)
            model, best = self._train(hp, model, request, recorder, clock, rungs)
            state, error = _outcome(recorder)
            if state == "COMPLETE" and request.ladder is not None:
                state, error = _climbed(request.ladder, rungs)
        except (RungNotAfforded, OverLimit) as exc:
            state, error = "PRUNED", str(exc)
        except request.prune_exceptions as exc:
            state, error = "PRUNED", str(exc) or "pruned"
        except Exception as exc:  # noqa: BLE001 - any failure is this trial's, not the search's
            error = f"{type(exc).__name__}: {exc}"[:2000]
        record = self._record(
            hp,
            request,
            state,
            error,
            recorder.history,
            sizes,
            started_at=started_at,
            wall_time_s=time.perf_counter() - t0,
        )
        record.rungs = rungs or None
        predictions = [r["predicted_s"] for r in rungs if r.get("predicted_s") is not None]
        record.predicted_s = round(sum(predictions), 3) if predictions else self._predicted_s
        if state == "COMPLETE" and clock is not None and clock.stopped_in_epoch is not None:
            record.stopped = (
                f"the search's time limit (--max-time) ran out in epoch "
                f"{clock.stopped_in_epoch + 1} of {request.epochs}; kept its best "
                "epoch so far"
            )
        if state == "COMPLETE" and self.restore_best_epoch:
            best.restore()
        return record, model

    def _train(self, hp: Any, model, request: TrialRequest, recorder, clock, rungs: list):
        """Train ``model`` through the space's ``fit`` (from ``request.warm_start``'s weights
        and epoch when given), or climb ``request.ladder``'s rungs (the last rung's model
        replaces ``model``), with the trial's callbacks; returns ``(model, its BestWeights)``."""
        import keras

        from search.training import BestWeights, EngineCallbacks

        def trial_callbacks(target, kept=None) -> list:
            nonlocal best
            # The rung below's best at one size; a continued trial's first rung, what the
            # stopped trial kept (search.fidelity.climb).
            best = BestWeights(target, carried=kept or best)
            return [
                keras.callbacks.TerminateOnNaN(),
                recorder,
                best,
                *([clock] if clock is not None else []),
                *self.callbacks,
            ]

        best = None
        self._predicted_s = None
        price = functools.partial(self._price, hp=hp, history=recorder.history)
        if request.ladder is not None:
            model = self._climb(hp, request, trial_callbacks, rungs, price, lambda: best)
            return model, best  # ``best``: set by trial_callbacks for the last rung's model
        resume = {}
        warm_start = request.warm_start
        if warm_start is not None:
            with warnings.catch_warnings():
                # The optimizer starts afresh, as in keras-tuner's own Hyperband: Keras
                # warns that it skips the saved optimizer's variables.
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
                model.load_weights(warm_start.weights)
            resume = {"initial_epoch": int(warm_start.initial_epoch)}
        self._predicted_s = price(model, request.epochs - resume.get("initial_epoch", 0), 1.0)
        self.space.fit(
            hp,
            model,
            self.data,
            self.ctx,
            epochs=request.epochs,
            batch_size=self.batch_size,
            verbose=self.verbose,
            **resume,
            callbacks=[*trial_callbacks(model), EngineCallbacks(request.callbacks)],
        )
        return model, best

    def _climb(
        self, hp: Any, request: TrialRequest, trial_callbacks, rungs: list, price, current_best
    ):
        """Climb ``request.ladder``'s rungs (``search.fidelity.climb``), each rung logged in
        ``rungs``; returns the last rung's model. ``current_best()``: the trial's BestWeights
        now (what a stopped trial keeps)."""
        from search.fidelity import climb
        from search.training import EngineCallbacks

        top = len(request.ladder.rungs) - 1

        def share(rung: int) -> float:
            return 1.0 if rung == top else RUNG_SHARE

        return climb(
            self.space,
            hp,
            self.data,
            self.ctx,
            request.ladder,
            trial_callbacks=trial_callbacks,
            rungs_log=rungs,
            price=lambda model, epochs, fraction, *, rung, first_epoch=0: price(
                model,
                epochs,
                fraction,
                rung=rung,
                share=share(rung),
                first_epoch=first_epoch,
                trial_epochs=request.ladder.epochs,
            ),
            allowance=lambda rung: self._allowance(rung, share=share(rung)),
            resume=request.warm_start,
            keep_stopped=self._keeper(request, current_best) if request.keep_stopped else None,
            engine_callbacks=EngineCallbacks(request.callbacks),
            batch_size=self.batch_size,
            verbose=self.verbose,
            seed=self.seed,
        )

    def _keeper(self, request: TrialRequest, current_best):
        """What keeps a stopped trial's rung weights (``search.fidelity.climb``'s
        ``keep_stopped``): its best epoch so far (``current_best()``, the score its rung
        reported, not the rung's last epoch), saved with that score where
        ``Study.warm_start`` finds them, and marked as kept in the rung's record, which the
        engine reads to offer the trial a late promotion. Without the score, run L's best
        rung-1 head (94.6%) was continued and scored by its top rung alone (94.3%)."""

        def keep(model, entry: dict) -> None:
            best = current_best()
            if best is not None and best.weights is None:
                best = None  # no epoch of this rung ended: its last weights are all there is
            if best is not None:
                best.restore()
            path = self.study.rung_weights_path(request.trial_id)
            # Keras wants the name to end in .weights.h5, which replaced_atomically's does not.
            tmp = path.with_name(path.name.replace(".weights.h5", ".tmp.weights.h5"))
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                model.save_weights(tmp)
                os.replace(tmp, path)
                scored = self.study.rung_score_path(request.trial_id)
                if best is not None:
                    write_json(scored, {"val_accuracy": best.best})
                else:
                    scored.unlink(missing_ok=True)
            except OSError as exc:  # the trial stays stopped; it just cannot be continued
                print(
                    f"warning: trial {request.trial_id}'s rung weights could not be kept at "
                    f"{path} ({exc.strerror or exc}); it cannot be promoted later",
                    file=sys.stderr,
                )
                return
            entry["weights_kept"] = True

        return keep

    def _price(
        self,
        model,
        epochs: int,
        fraction: float,
        *,
        history,
        hp: Any = None,
        share: float = 1.0,
        rung: int | None = None,
        first_epoch: int = 0,
        trial_epochs: int | None = None,
    ) -> float | None:
        """Predicted seconds for ``epochs`` of ``model`` (from epoch ``first_epoch`` of a trial
        of ``trial_epochs`` trained in pieces) on ``fraction`` of the training split, from the
        cost model of the study's timed epochs and this trial's own (search.cost), for each
        fit the space will run (``Space.training_work``: a transfer trial trains its head on
        cached features, then its tuned top on cached activations, never the whole network);
        None before anything was timed. Raises ``RungNotAfforded`` when they are not worth
        paying (:meth:`_check_affordable`)."""
        from search.cost import CostModel, batches, timings_from_records

        rows = self.study.records() if self.study is not None else []
        costs = CostModel.fit(timings_from_records([*rows, SimpleNamespace(history=history)]))
        if costs is None:
            return None
        steps = batches(len(self.data.labels("train")), fraction, self.batch_size)
        work = [
            (macs, activations, fit_epochs)
            for macs, activations, fit_epochs in self.space.training_work(
                hp,
                model,
                first_epoch + epochs,
                initial_epoch=first_epoch,
                trial_epochs=trial_epochs,
            )
            if fit_epochs > 0
        ]
        seconds = sum(costs.fit_seconds(m, steps, n, a) for m, a, n in work)
        if not all(costs.covers(m, a) for m, a, _ in work):
            # Far beyond what was timed (cost.EXTRAPOLATION): the prediction is shown but
            # refuses nothing; the look's allowance and the search's clock still stop it.
            return seconds
        what = (
            f"{epochs} epoch{'s' if epochs != 1 else ''} at {_input_size(model)} px on "
            f"{fraction:.0%} of the training split"
        )
        # A cost model fitted on fewer than three kinds of model extrapolates far: it may not
        # refuse a look on its own (the look is stopped at its limit if it runs over).
        trusted = costs.kinds >= TRUSTED_KINDS
        self._check_affordable(
            seconds, what, share=share, rung=rung if trusted else None, rows=rows
        )
        return seconds

    def _check_affordable(self, seconds: float, what: str, *, share, rung, rows) -> None:
        """Refuse (``RungNotAfforded``) ``seconds`` of training over :meth:`_limits`: the
        search does not start what it cannot finish, nor a rung that costs many times what
        the others did."""
        for limit, reason in sorted(self._limits(share=share, rung=rung, rows=rows)):
            if seconds > limit:  # the tightest limit it is over
                raise RungNotAfforded(
                    f"not started: {what} would take about {seconds:.0f} s, {reason}"
                )

    def _allowance(self, rung: int, share: float = RUNG_SHARE) -> tuple[float, str] | None:
        """``(seconds, reason)``: how long fidelity rung ``rung`` of the running trial may
        train before it is stopped (``search.fidelity.climb``): the tightest of
        :meth:`_limits`, which a prediction may have missed (a cost model knows MACs, not
        memory traffic); None without any limit."""
        rows = self.study.records() if self.study is not None else []
        limits = self._limits(share=share, rung=rung, rows=rows)
        return min(limits, key=lambda limit: limit[0]) if limits else None

    def _limits(self, *, share: float, rung: int | None, rows) -> list[tuple[float, str]]:
        """``(seconds, reason)`` limits on training: ``share`` of the time --max-time leaves
        (one rung, ``share`` = ``RUNG_SHARE``, may not spend most of what is left on one
        configuration), and for fidelity rung ``rung`` what one look at that rung may take:
        :meth:`_look_limit`."""
        limits = []
        if self.stop_at is not None:
            left = max(self.stop_at - time.time(), 0.0)
            limits.append(
                (
                    left * share,
                    f"and --max-time leaves {left:.0f} s"
                    if share >= 1
                    else f"more than {share:.0%} of the {left:.0f} s --max-time leaves",
                )
            )
        if rung is not None:
            look = self._look_limit(rung, rows)
            limits.extend([look] if look is not None else [])
        return limits

    def _look_limit(self, rung: int, rows) -> tuple[float, str] | None:
        """What one trial's rung ``rung`` may take. Under --max-time, ``look_s[rung]``
        (``search.fidelity.look_seconds``: a first look's share of the time at rung 0, and
        at least ``REDUCTION_FACTOR`` times more at each rung after it, as successive halving
        splits its budget). Without a time limit, ``REDUCTION_FACTOR`` times the median of
        what the study's trials took for that rung (once three did). Either way a
        configuration that costs many times the others is skipped at a glance, so the
        search looks at many configurations."""
        from search.fidelity import REDUCTION_FACTOR

        if self.look_s is not None:
            seconds = self.look_s[rung]
            what = "a first look" if rung == 0 else f"a look at rung {rung}"
            return seconds, f"over the {seconds:.0f} s {what} may take"
        paid = sorted(g["seconds"] for r in rows for g in (r.rungs or []) if g["rung"] == rung)
        if len(paid) < 3:
            return None
        median = paid[len(paid) // 2]
        return (
            REDUCTION_FACTOR * median,
            f"over {REDUCTION_FACTOR}x the {median:.0f} s that rung {rung} took the median "
            f"of {len(paid)} trials",
        )

    def _record(
        self,
        hp: Any,
        request: TrialRequest,
        state: str,
        error: str | None,
        history: dict[str, list[float]],
        sizes: dict[str, Any],
        *,
        started_at: str,
        wall_time_s: float,
    ) -> TrialRecord:
        """The trial's row: its scores are those of its best validation epoch."""
        val_acc = history.get("val_accuracy") or []
        best_epoch = int(np.argmax(val_acc)) if val_acc else None
        val_loss = history.get("val_loss") or []
        warm_start = request.warm_start
        return TrialRecord(
            **self.labels,
            trial_id=request.trial_id,
            number=request.number,
            state=state,
            config=hp_config(hp),
            val_accuracy=float(val_acc[best_epoch]) if best_epoch is not None else None,
            val_loss=(
                float(val_loss[best_epoch])
                if best_epoch is not None and len(val_loss) > best_epoch
                else None
            ),
            epochs_run=len(history.get("epoch_time_s", [])),
            wall_time_s=round(wall_time_s, 3),
            params=sizes.get("params"),
            input_size=sizes.get("input_size"),
            trainable_params=sizes.get("trainable_params"),
            latency_ms=sizes.get("latency_ms"),
            size_mb=sizes.get("size_mb"),
            latency=sizes.get("latency"),
            error=error,
            history=history,
            started_at=started_at,
            finished_at=utc_now(),
            continued_from=warm_start.from_trial if warm_start is not None else None,
        )

    def retrain(self, record: TrialRecord):
        """Train ``record``'s config again (same seed, same epochs) and return the model at its
        best validation epoch; used only when the best trial's checkpoint is gone."""
        hp = fixed_hyperparameters(self.space.complete(record.config))
        again, model = self.fit(
            hp,
            TrialRequest(
                trial_id=record.trial_id, number=record.number, epochs=max(1, record.epochs_run)
            ),
        )
        if again.state != "COMPLETE":
            raise RuntimeError(f"retraining trial {record.trial_id} failed: {again.error}")
        return self.space.inference_model(hp, model)


def _sizes(model) -> dict[str, int | None]:
    """The row's size fields of a built ``model``."""
    from search.training import count_params

    counts = count_params(model)
    return {
        "params": counts["total"],
        "trainable_params": counts["trainable"],
        "input_size": _input_size(model),
    }


def _climbed(ladder, rungs: list) -> tuple[str, str | None]:
    """``(state, error)`` of a ladder's trial whose fit returned: COMPLETE at the top rung;
    stopped below it (the search's clock ran out), PRUNED: its score is not a top-rung one."""
    top = len(ladder.rungs) - 1
    if rungs and rungs[-1]["rung"] == top:  # a late promotion's log starts above rung 0
        return "COMPLETE", None
    where = f"in rung {rungs[-1]['rung'] + 1} of {top + 1}" if rungs else "in its first rung"
    return "PRUNED", (
        f"the search's time limit (--max-time) ran out {where}; a trial below the top rung "
        "is not comparable"
    )


def _outcome(recorder) -> tuple[str, str | None]:
    """``(state, error)`` of a fit that returned: COMPLETE unless its loss went NaN or it
    recorded no validation accuracy."""
    if recorder.nan_at is not None:
        return "FAIL", f"loss became NaN/inf in epoch {recorder.nan_at}; training stopped"
    if not recorder.history.get("val_accuracy"):
        return "FAIL", "no validation accuracy was recorded (zero epochs?)"
    return "COMPLETE", None


def _input_size(model) -> int | None:
    """Side of a square image input (N, S, S, C); None for other inputs."""
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, tuple) and len(shape) == 4 and shape[1] == shape[2]:
        return int(shape[1]) if shape[1] is not None else None
    return None
