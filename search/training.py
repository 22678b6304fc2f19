"""Training of one model: ``fit`` with per-epoch timing and a plain-dict history."""

from __future__ import annotations

import time
from typing import Any, Sequence

import keras


class EpochTimer(keras.callbacks.Callback):
    """Records wall time and learning rate of every epoch into the history."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["epoch_time_s"] = time.perf_counter() - self._start
            try:
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            except Exception:  # an optimizer without a readable rate: nothing to record
                pass


def train(
    model: keras.Model,
    train_ds: Any,
    val_ds: Any,
    epochs: int,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    initial_epoch: int = 0,
    verbose: int | str = "auto",
) -> dict[str, list[float]]:
    """Fit and return the per-epoch history: loss, accuracy, val_*, epoch_time_s, learning_rate."""
    # The timer goes first so its time excludes nothing and other callbacks see its logs.
    result = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=initial_epoch + epochs,
        initial_epoch=initial_epoch,
        callbacks=[EpochTimer(), *callbacks],
        verbose=verbose,
        shuffle=False,  # the tf.data pipeline shuffles, reproducibly, from its own seed
    )
    return {k: [float(v) for v in values] for k, values in result.history.items()}


def merge_histories(*parts: tuple[str, dict[str, list[float]]]) -> dict[str, list[Any]]:
    """Concatenate phase histories, adding a ``phase`` column (e.g. frozen, fine_tune)."""
    merged: dict[str, list[Any]] = {"phase": []}
    for name, history in parts:
        n = max((len(v) for v in history.values()), default=0)
        for key, values in history.items():
            merged.setdefault(key, [None] * len(merged["phase"]))
            merged[key].extend(values)
        merged["phase"].extend([name] * n)
        for values in merged.values():
            values.extend([None] * (len(merged["phase"]) - len(values)))
    return merged


def compile_classifier(model: keras.Model, optimizer: keras.optimizers.Optimizer) -> keras.Model:
    """The one compile of every model here: softmax outputs, integer labels, accuracy."""
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def count_params(model: keras.Model) -> dict[str, int]:
    trainable = sum(_size(w) for w in model.trainable_weights)
    total = model.count_params()
    return {"total": int(total), "trainable": int(trainable), "non_trainable": int(total - trainable)}


def _size(weight) -> int:
    n = 1
    for d in weight.shape:
        n *= int(d)
    return n
