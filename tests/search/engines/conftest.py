"""Fixtures for engine tests: spaces that fail or prune on purpose, table checks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import keras
import pytest

from search.results import read_json, read_trials
from spaces import BuildContext, Space, get_space


class FlakySpace(Space):
    """Three modes: trains fine, raises in build, or produces a NaN loss."""

    name = "flaky"  # not registered: engines accept Space instances too

    def build(self, hp, ctx: BuildContext):
        mode = hp.Choice("mode", ["ok", "raise", "nan"], default="ok")
        units = hp.Int("units", 4, 16, step=4, default=8)
        if mode == "raise":
            raise ValueError("flaky space: this configuration cannot be built")
        size = ctx.image_size(32)
        inputs = keras.Input((size, size, 3))
        x = keras.layers.Rescaling(1 / 255)(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = keras.layers.Dense(units, activation="relu")(x)
        if mode == "nan":
            x = keras.layers.Lambda(lambda t: t * float("nan"))(x)
        outputs = keras.layers.Dense(ctx.num_classes, activation="softmax")(x)
        model = keras.Model(inputs, outputs)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    def reference_configs(self):
        return [
            {"mode": "raise", "units": 8},
            {"mode": "nan", "units": 8},
            {"mode": "ok", "units": 8},
        ]


class PruneableSpace(FlakySpace):
    """Three strong configs, then a weak one (units=4) for a pruner to stop: the strong ones
    learn the colours at once, the weak one cannot learn at all."""

    def reference_configs(self):
        return [{"mode": "ok", "units": 16}] * 3 + [{"mode": "ok", "units": 4}]

    def build(self, hp, ctx):
        model = super().build(hp, ctx)
        model.optimizer.learning_rate.assign(1e-7 if hp.values["units"] == 4 else 0.05)
        return model


@pytest.fixture
def flaky_space():
    return FlakySpace()


class InterruptSecondTraining(keras.callbacks.Callback):
    """Raises KeyboardInterrupt at the first epoch end of the second fit (trial 1): what a
    Ctrl-C in the middle of a trial looks like to the search."""

    def __init__(self):
        super().__init__()
        self.fits = 0

    def on_train_begin(self, logs=None):
        self.fits += 1

    def on_epoch_end(self, epoch, logs=None):
        if self.fits == 2:
            raise KeyboardInterrupt


def check_table(study_dir, space_name: str, n: int):
    """The common table: n rows with valid states, configs inside the space, study/best files."""
    records = read_trials(study_dir / "trials.jsonl")
    assert [r.number for r in records] == sorted(r.number for r in records)
    assert len(records) == n
    space = get_space(space_name) if isinstance(space_name, str) else space_name
    from search.hyperparameters import fixed_hyperparameters

    for r in records:
        assert r.state in ("COMPLETE", "PRUNED", "FAIL")
        if r.state == "COMPLETE":
            assert 0.0 <= r.val_accuracy <= 1.0 and r.params > 0 and r.epochs_run >= 1
            assert len(r.history["val_accuracy"]) == r.epochs_run
            # The recorded config is a complete point of the space: it rebuilds as is.
            hp = fixed_hyperparameters(r.config)
            space.build(hp, BuildContext(num_classes=5, max_image_size=32))
            assert hp.values == r.config
            keras.backend.clear_session()
        else:
            assert r.error
    info = read_json(study_dir / "study.json")
    assert {"seed", "config", "versions", "engine", "algorithm", "space", "data"} <= set(info)
    assert info["versions"]["keras-tuner"] and info["versions"]["optuna"]
    assert (study_dir / "trials.csv").exists()
    return records


def check_best(study_dir, records):
    best = read_json(study_dir / "best.json")
    assert set(best) >= {"trial_id", "config", "val_accuracy", "test", "params", "wall_time_s"}
    complete = [r for r in records if r.state == "COMPLETE"]
    top = max(complete, key=lambda r: (r.val_accuracy, -r.number))
    assert best["trial_id"] == top.trial_id and best["val_accuracy"] == top.val_accuracy
    assert best["test"]["n"] == 20 and 0.0 <= best["test"]["accuracy"] <= 1.0
    # Every score carries its binomial standard error.
    assert best["val_n"] == 20 and best["val_standard_error"] == pytest.approx(
        (best["val_accuracy"] * (1 - best["val_accuracy"]) / 20) ** 0.5
    )
    assert best["test_standard_error"] == pytest.approx(
        (best["test"]["accuracy"] * (1 - best["test"]["accuracy"]) / 20) ** 0.5
    )
    assert len(best["test"]["confusion_matrix"]) == 5
    assert (study_dir / "best_model.keras").exists()
    return best


# A search process without TensorFlow's start-up lines.
QUIET_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def synthetic_search_args(
    results: Path, *, epochs: int, trials: int, seed: int, extra: tuple[str, ...] = ()
) -> list[str]:
    """``search.run``'s arguments for a random search over ``cnn`` on the generated data at
    16 px, without latency measurement, its results in ``results`` (``search.run.main``
    takes them in a test's own process)."""
    return [
        *("--space", "cnn", "--engine", "optuna", "--algorithm", "random", "--synthetic"),
        *("--trials", str(trials), "--epochs", str(epochs), "--max-image-size", "16"),
        *("--results", str(results), "--no-progress", "--no-latency", "--seed", str(seed)),
        *extra,
    ]


def synthetic_search_command(
    results: Path, *, epochs: int, trials: int, seed: int, extra: tuple[str, ...] = ()
) -> list[str]:
    """``python -m search.run`` with :func:`synthetic_search_args`: the same search in a
    process of its own."""
    args = synthetic_search_args(results, epochs=epochs, trials=trials, seed=seed, extra=extra)
    return [sys.executable, "-m", "search.run", *args]
