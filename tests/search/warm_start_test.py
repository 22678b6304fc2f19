"""keras-tuner Hyperband promotes a configuration with the weights its lower rung learned
(Space.warm_starts), instead of training it again from scratch."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from search.hyperparameters import fixed_hyperparameters
from search.results import read_trials
from search.run import run_search
from search.study import Study
from search.trial import TrialRequest, TrialRunner
from spaces import BuildContext, Space

pytestmark = pytest.mark.slow  # trains (tiny) models


class WarmSpace(Space):
    """A tiny colour classifier whose fit records the weights it starts from."""

    name = "warm"
    warm_starts = True
    climbs_rungs = True  # one plain fit, continued from a rung's last epoch too
    seen: list = []  # (initial_epoch, weights at the start of fit), one per fit

    def build(self, hp, ctx: BuildContext):
        units = hp.Int("units", 4, 16, step=4, default=8)
        inputs = keras.Input((32, 32, 3))
        x = keras.layers.Rescaling(1 / 255)(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = keras.layers.Dense(units, activation="relu")(x)
        outputs = keras.layers.Dense(ctx.num_classes, activation="softmax")(x)
        model = keras.Model(inputs, outputs)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    def fit(self, hp, model, data, ctx, **kwargs):
        WarmSpace.seen.append((kwargs.get("initial_epoch", 0), model.get_weights()))
        super().fit(hp, model, data, ctx, **kwargs)


def saved_weights(path) -> list[np.ndarray]:
    model = WarmSpace().build(fixed_hyperparameters({"units": 8}), BuildContext(num_classes=5))
    model.load_weights(path)
    return model.get_weights()


def test_a_warm_started_trial_continues_the_kept_weights_of_another(tiny_data, tmp_path):
    WarmSpace.seen = []
    study = Study("warm", engine="keras-tuner", algorithm="hyperband", space="warm", root=tmp_path)
    study.open(seed=0, settings={}, data=tiny_data.describe(), reference_configs=[])
    runner = TrialRunner(WarmSpace(), tiny_data, study, ctx=BuildContext(num_classes=5), seed=0)
    hp = {"units": 8}
    first = runner.run(
        fixed_hyperparameters(hp), TrialRequest(trial_id="0", number=0, epochs=2, keep_weights=True)
    )
    kept = study.rung_weights_path("0")
    assert first.state == "COMPLETE" and kept.exists() and first.continued_from is None

    assert study.warm_start("7", 2) is None  # a trial that kept nothing: from scratch
    second = runner.run(
        fixed_hyperparameters(hp),
        TrialRequest(trial_id="1", number=1, epochs=5, warm_start=study.warm_start("0", 2)),
    )
    assert second.state == "COMPLETE", second.error
    assert second.continued_from == "0" and second.epochs_run == 3  # epochs 2, 3 and 4
    initial_epoch, start = WarmSpace.seen[-1]
    assert initial_epoch == 2
    for a, b in zip(start, saved_weights(kept)):
        np.testing.assert_array_equal(a, b)
    # A fresh trial of the same configuration starts elsewhere (another seed's weights).
    assert not all(np.array_equal(a, b) for a, b in zip(WarmSpace.seen[0][1], start))


def test_keras_tuner_hyperband_promotes_with_the_lower_rungs_weights(tiny_data, tmp_path):
    WarmSpace.seen = []
    out = run_search(
        WarmSpace(),
        tiny_data,
        results=tmp_path,
        engine="keras-tuner",
        algorithm="hyperband",
        trials=4,
        epochs=3,
        progress=False,
        isolate=False,
    )
    rows = read_trials(out["study_dir"] / "trials.jsonl")
    continued = [r for r in rows if r.continued_from is not None]
    assert continued, [(r.trial_id, r.epochs_run) for r in rows]
    by_id = {r.trial_id: r for r in rows}
    for row in continued:
        parent = by_id[row.continued_from]
        assert parent.config == row.config
        # It trains only the epochs its parent did not: 3 in all.
        assert parent.epochs_run + row.epochs_run == 3, (parent.epochs_run, row.epochs_run)
