"""Precise batch norm (search.training.PreciseBatchNorm): the last epoch of a fit is validated
with batch-norm statistics recomputed on training images, and its logs say so."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from search.data import synthetic_data
from search.training import PreciseBatchNorm, recompute_batch_norm

pytestmark = pytest.mark.slow  # trains a (tiny) model


def _model(batch_norm: bool):
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Activation("relu")(x))
    model = keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(x))
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class _Logs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(dict(logs))


def test_the_last_epoch_is_scored_with_recomputed_statistics():
    keras.utils.set_random_seed(0)
    data = synthetic_data(n_train=64, n_val=20, n_test=10, image_size=16, seed=0)
    model, logs = _model(batch_norm=True), _Logs()
    x, y = data.arrays("train", 16)
    model.fit(
        x,
        y,
        validation_data=data.arrays("val", 16),
        epochs=2,
        batch_size=16,
        verbose=0,
        callbacks=[PreciseBatchNorm(data, 16, epochs=2, images=64), logs],
    )
    # The moving mean is the training images' mean of the batch norm's input (64 images in
    # equal batches of 32: the mean of batch means is the mean).
    conv = keras.Model(model.input, model.get_layer("conv").output)
    features = conv.predict(x, verbose=0)
    assert np.allclose(model.get_layer("bn").moving_mean, features.mean(axis=(0, 1, 2)), atol=1e-4)
    # The last epoch's logs hold the score of the model as it now is; the first's were Keras'.
    xv, yv = data.arrays("val", 16)
    probs = model.predict(xv, verbose=0)
    assert logs.seen[-1]["val_accuracy"] == pytest.approx(np.mean(probs.argmax(1) == yv))
    nll = -np.mean(np.log(probs[np.arange(len(yv)), yv]))
    assert logs.seen[-1]["val_loss"] == pytest.approx(nll, rel=1e-4)
    assert model.get_layer("bn").momentum == 0.99  # restored


def test_a_model_without_batch_norm_keeps_its_logs():
    data = synthetic_data(n_train=32, n_val=10, n_test=10, image_size=16, seed=0)
    model = _model(batch_norm=False)
    model(np.zeros((1, 16, 16, 3)))
    callback = PreciseBatchNorm(data, 16, epochs=1)
    callback.set_model(model)
    logs = {"val_accuracy": 0.123, "val_loss": 9.0}
    callback.on_epoch_end(0, logs)
    assert logs == {"val_accuracy": 0.123, "val_loss": 9.0}


def test_recomputed_statistics_undo_broken_ones():
    keras.utils.set_random_seed(0)
    model = _model(batch_norm=True)
    x = np.random.default_rng(0).integers(0, 256, (64, 16, 16, 3)).astype("float32")
    bn = model.get_layer("bn")
    model(x[:1])
    bn.moving_mean.assign(np.full(4, 50.0, dtype="float32"))  # stale, far from the truth
    recompute_batch_norm(model, [bn], x)
    features = keras.Model(model.input, model.get_layer("conv").output).predict(x, verbose=0)
    assert np.allclose(bn.moving_mean, features.mean(axis=(0, 1, 2)), atol=1e-4)
    per_batch_var = [features[i : i + 32].var(axis=(0, 1, 2)) for i in (0, 32)]
    assert np.allclose(bn.moving_variance, np.mean(per_batch_var, axis=0), rtol=1e-3)
