"""What every model here is trained with: one compile, and the callbacks of a trial's fits.

Searched trials and the reproduced baselines (which are their spaces' reference trials) all
train through ``search.trial.TrialRunner``, which compiles nothing itself: spaces compile with
:func:`compile_classifier`, and the runner attaches :class:`HistoryRecorder` and
:class:`BestWeights` to every fit a space makes.
"""

from __future__ import annotations

import math
import time

import keras


def compile_classifier(model: keras.Model, optimizer: keras.optimizers.Optimizer) -> keras.Model:
    """The one compile of every model here: softmax outputs, integer labels, accuracy."""
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def count_params(model: keras.Model) -> dict[str, int]:
    trainable = sum(_size(w) for w in model.trainable_weights)
    total = model.count_params()
    return {
        "total": int(total),
        "trainable": int(trainable),
        "non_trainable": int(total - trainable),
    }


class HistoryRecorder(keras.callbacks.Callback):
    """Per-epoch curves that survive a fit that raises (pruned or interrupted trials) and span
    several fits (a transfer space's head phase, then fine-tuning): loss, accuracy, val_loss,
    val_accuracy, learning_rate, epoch_time_s, ``phase`` (1 for the first fit, 2 for the
    next...), and what the epoch cost: ``macs`` and ``activations`` (the fitted model's
    multiply-accumulates and feature-map elements per image) and ``train_batches``. ``nan_at`` is the first epoch whose loss was not finite."""

    KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")

    def __init__(self):
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.nan_at: int | None = None
        self._phase = 0
        self._epoch = 0
        self._t0 = 0.0
        self._macs = self._activations = 0
        self._batches = 0

    def on_train_begin(self, logs=None):
        from search.cost import model_activations, model_macs

        self._phase += 1
        # What this fit's epochs cost per image, for the search's cost model (search.cost).
        self._macs = model_macs(self.model)
        self._activations = model_activations(self.model)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._batches = 0
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1
        self._check_finite(self._epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for key in self.KEYS:
            if key in logs:
                self.history.setdefault(key, []).append(float(logs[key]))
        rate = logs.get("learning_rate", self._learning_rate())
        if rate is not None:
            self.history.setdefault("learning_rate", []).append(float(rate))
        self.history.setdefault("epoch_time_s", []).append(time.perf_counter() - self._t0)
        self.history.setdefault("phase", []).append(self._phase)
        self.history.setdefault("macs", []).append(self._macs)
        self.history.setdefault("activations", []).append(self._activations)
        self.history.setdefault("train_batches", []).append(self._batches)
        self._check_finite(epoch, logs)

    def _learning_rate(self) -> float | None:
        try:
            return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        except Exception:  # noqa: BLE001 - an optimizer without a readable rate: nothing to record
            return None

    def _check_finite(self, epoch, logs) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)) and self.nan_at is None:
            self.nan_at = epoch


class EngineCallbacks(keras.callbacks.Callback):
    """The engine's callbacks of one trial (Optuna's pruning callback: they judge the trial
    from its epochs' logs), kept apart from the trial's own so that a space can choose which
    epochs are judged and under which step numbers (``reporting_from``)."""

    def __init__(self, callbacks=(), first_epoch: int = 0, first_step: int = 0):
        super().__init__()
        self.callbacks = list(callbacks)
        self.first_epoch = first_epoch
        self.first_step = first_step

    def reporting_from(self, first_epoch: int, first_step: int) -> EngineCallbacks:
        """The same callbacks, told epoch ``first_epoch`` as step ``first_step`` and so on."""
        return EngineCallbacks(self.callbacks, first_epoch, first_step)

    def set_model(self, model):
        super().set_model(model)
        for callback in self.callbacks:
            callback.set_model(model)

    def on_epoch_end(self, epoch, logs=None):
        for callback in self.callbacks:
            callback.on_epoch_end(epoch - self.first_epoch + self.first_step, logs)


class BestWeights(keras.callbacks.Callback):
    """Keep the weights of the best val_accuracy epoch of ``target`` (the whole model, even
    while a sub-model such as a head is the one being fitted) and restore them at the end,
    so the saved model is the one the trial's score describes.

    ``carried``: the previous fidelity rung's BestWeights (``search.fidelity.climb``). When
    its model had the same input size and weight shapes, its best epoch competes with this
    rung's: a rung that ends worse than the one below at the same size (fine-tuning that
    undoes a head, as the published transfer recipe's batch-statistics fine-tuning did in a
    pilot: 89.8% after its head, 84.1% after fine-tuning) keeps the better weights, as one
    fit over the same epochs would."""

    def __init__(self, target, carried: BestWeights | None = None):
        super().__init__()
        self.target = target
        self.best = -math.inf
        self.weights = None
        if carried is not None and carried.weights is not None and _same_model(carried, target):
            self.best, self.weights = carried.best, carried.weights

    @classmethod
    def kept(cls, model, score: float) -> BestWeights:
        """The weights ``model`` holds now, scored ``score``: what a stopped trial kept, which
        its continuation's next rung must beat where its weights fit (a late promotion)."""
        kept = cls(model)
        kept.best, kept.weights = float(score), model.get_weights()
        return kept

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get("val_accuracy")
        if value is not None and float(value) > self.best:
            self.best = float(value)
            self.weights = self.target.get_weights()

    def restore(self):
        if self.weights is not None:
            self.target.set_weights(self.weights)


def _same_model(carried: BestWeights, target) -> bool:
    """Whether ``carried``'s weights fit ``target``: the same input shape, and the same
    shapes weight for weight."""
    if getattr(carried.target, "input_shape", None) != getattr(target, "input_shape", None):
        return False
    return same_weight_shapes(carried.weights, target.weights)


def same_weight_shapes(old, new) -> bool:
    """Whether two models' weights (arrays or variables, in model order) match one for one
    in shape, so the one's can be set on the other."""
    return len(old) == len(new) and all(tuple(a.shape) == tuple(b.shape) for a, b in zip(old, new))


class StopAtTime(keras.callbacks.Callback):
    """Stop training once the clock passes ``stop_at`` (``time.time()``), so that a search's
    ``--max-time`` bounds its whole wall time, the running trial included. Checked after every
    batch: a long epoch does not overrun the limit by its own length. Keras still validates
    the partial epoch, which the trial's best-epoch rule judges like any other; a later fit of
    the same trial (a fine-tuning phase) stops after its first batch. ``stopped_in_epoch`` is
    the 0-based epoch it stopped, or None."""

    def __init__(self, stop_at: float):
        super().__init__()
        self.stop_at = float(stop_at)
        self.stopped_in_epoch: int | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if time.time() >= self.stop_at:
            self.model.stop_training = True
            if self.stopped_in_epoch is None:
                self.stopped_in_epoch = self._epoch


class RungAllowance(StopAtTime):
    """Stop a fidelity rung (search.fidelity.climb) that cannot finish within ``seconds``
    and the ``GRACE`` beyond it: at an epoch's end, once two epochs of this fit were timed
    (the first traces), when the epochs left at the last one's pace would end past it; within
    an epoch, when the clock passes it (:class:`StopAtTime`, from the fit's start; a rung of
    two fits counts the seconds in both, not between them). A rung a
    little slower than its allowance (a network at the edge of what a look may cost)
    finishes: stopping such a rung in its last epoch threw away a pilot's best rung-1 score
    (0.803, 262 s against 255 s). ``stopped_in_epoch`` (0-based) and ``projected_s`` (None
    when the clock stopped it) say what happened."""

    GRACE = 1.25

    def __init__(self, seconds: float, epochs: int):
        self.limit_s = float(seconds) * self.GRACE
        super().__init__(time.time() + self.limit_s)
        self.epochs = int(epochs)  # the rung's last epoch (exclusive), as fit's ``epochs``
        self.projected_s: float | None = None
        self._epoch_start, self._timed = time.time(), 0
        self._spent, self._fit_start, self._in_fit = 0.0, time.time(), False

    def on_train_begin(self, logs=None):
        # A rung trained in two fits (a transfer trial's head, then its fine-tuned top) has
        # one allowance for both. What runs between them is not counted: computing the top's
        # cached activations is paid once per size and cut, not per trial (as priced).
        self._fit_start, self._in_fit = time.time(), True
        self.stop_at = self._fit_start + self.limit_s - self._spent

    def on_train_end(self, logs=None):
        self._spent, self._in_fit = self.elapsed_s(), False

    def on_train_batch_end(self, batch, logs=None):
        if self.stopped_in_epoch is not None:  # stopped in an earlier fit of the rung
            self.model.stop_training = True
            return
        super().on_train_batch_end(batch, logs)

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._epoch_start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        now = time.time()
        self._timed += 1
        left = self.epochs - (epoch + 1)
        if self.stopped_in_epoch is None and self._timed >= 2 and left > 0:
            projected = self.elapsed_s() + left * (now - self._epoch_start)
            if projected > self.limit_s:
                self.projected_s = projected
                self.model.stop_training = True
                self.stopped_in_epoch = epoch

    def elapsed_s(self) -> float:
        """Seconds spent in the rung's fits so far."""
        return self._spent + (time.time() - self._fit_start if self._in_fit else 0.0)


def _size(weight) -> int:
    n = 1
    for d in weight.shape:
        n *= int(d)
    return n


class RungEnd(keras.callbacks.Callback):
    """Marks a fidelity rung (search.fidelity.climb) for the engine's callbacks, which come
    after it: every epoch's logs carry ``rung_now`` (and ``rung_predicted_s``, what the rung
    was predicted to take, for the progress bar); on the rung's last epoch it appends the
    rung's record to ``log`` (size trained at, data fraction, last epoch, best validation
    accuracy in the rung, whether it continued the previous rung's weights, seconds, the
    prediction) and puts ``rung`` and ``rung_score`` into the logs, where the engine judges
    the trial."""

    def __init__(
        self,
        index: int,
        rung,
        image_size: int,
        continued: bool,
        log: list,
        *,
        predicted_s: float | None = None,
    ):
        super().__init__()
        self.index, self.rung, self.image_size = index, rung, image_size
        self.continued, self.log, self.predicted_s = continued, log, predicted_s
        self.best: float | None = None
        self._t0: float | None = None

    def on_train_begin(self, logs=None):
        if self._t0 is None:  # the first of the rung's fits (a transfer trial may run two)
            self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        value = logs.get("val_accuracy")
        if value is not None and (self.best is None or float(value) > self.best):
            self.best = float(value)
        logs["rung_now"] = float(self.index)
        if self.predicted_s is not None:
            logs["rung_predicted_s"] = float(self.predicted_s)
        if epoch + 1 != self.rung.epochs or self.best is None:
            return
        self.log.append(
            {
                "rung": self.index,
                "image_size": self.image_size,
                "fraction": self.rung.fraction,
                "epochs": self.rung.epochs,
                "val_accuracy": self.best,
                "continued": self.continued,
                "seconds": round(time.perf_counter() - self._t0, 3),
                "predicted_s": (None if self.predicted_s is None else round(self.predicted_s, 3)),
            }
        )
        logs["rung"] = float(self.index)
        logs["rung_score"] = self.best


class PreciseBatchNorm(keras.callbacks.Callback):
    """At the last epoch of a fit, replace every batch-norm layer's moving statistics by the
    population statistics of ``images`` training images under the final weights ("precise
    BN", Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm"), validate again, and put that
    score in the epoch's logs for the callbacks after it (the history, the best epoch, the
    engine).

    Why: a moving average (momentum 0.99, about the last hundred steps) trails weights that
    a high learning rate still moves, and a short fit has few steps to settle it. On this
    project's data the cnn starting point scored 14.6% validation after a fidelity rung's 8
    epochs on a quarter of the images at 64 px (every image called one class) while it
    trained at 79%; the same weights with recomputed statistics scored 74.9%. A search that
    judges configurations on short fits must judge them on what they learned. Must come
    before the callbacks that read the logs; a model without batch norm is left alone."""

    def __init__(self, data, image_size: int, epochs: int, images: int = 1024, seed: int = 0):
        super().__init__()
        self.data, self.image_size, self.epochs = data, int(image_size), int(epochs)
        self.images, self.seed = int(images), int(seed)

    def on_epoch_end(self, epoch, logs=None):
        layers = list(_batch_norm_layers(self.model))
        if epoch != self.epochs - 1 or not layers or logs is None or "val_accuracy" not in logs:
            return
        import numpy as np

        x, _ = self.data.arrays("train", self.image_size)
        pick = np.random.default_rng(self.seed).permutation(len(x))[: self.images]
        recompute_batch_norm(self.model, layers, x[np.sort(pick)])
        xv, yv = self.data.arrays("val", self.image_size)
        probs = np.asarray(self.model.predict(xv, batch_size=64, verbose=0), dtype=np.float64)
        logs["val_accuracy"] = float(np.mean(probs.argmax(axis=1) == yv))
        logs["val_loss"] = float(-np.mean(np.log(np.clip(probs[np.arange(len(yv)), yv], 1e-7, 1))))


def recompute_batch_norm(model, layers, x, batch_size: int = 32) -> None:
    """Set ``layers``' (batch norms of ``model``) moving mean and variance to the average of
    their batch statistics over ``x``, in training mode with no weight update: each batch
    enters with momentum k / (k + 1), which makes the moving value the running mean."""
    import numpy as np

    saved = [layer.momentum for layer in layers]
    for layer in layers:
        layer.moving_mean.assign(np.zeros(layer.moving_mean.shape, dtype="float32"))
        layer.moving_variance.assign(np.ones(layer.moving_variance.shape, dtype="float32"))
    try:
        for k, start in enumerate(range(0, len(x), batch_size)):
            for layer in layers:
                layer.momentum = k / (k + 1)
            model(x[start : start + batch_size], training=True)
    finally:
        for layer, momentum in zip(layers, saved):
            layer.momentum = momentum


def _batch_norm_layers(model):
    from search.cost import leaf_layers

    return (
        layer for layer in leaf_layers(model) if isinstance(layer, keras.layers.BatchNormalization)
    )
