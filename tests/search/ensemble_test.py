"""Greedy ensemble selection (Caruana et al., 2004): validation picks, with replacement."""

from __future__ import annotations

import numpy as np
import pytest

from search.ensemble import greedy_ensemble
from search.results import standard_error


def _one_hot(labels, classes=3, confidence=0.8):
    p = np.full((len(labels), classes), (1 - confidence) / (classes - 1))
    p[np.arange(len(labels)), labels] = confidence
    return p


def test_complementary_members_beat_each_alone():
    y = np.array([0, 1, 2, 0, 1, 2])
    # a is right on the first half, b on the second; each is confidently wrong elsewhere
    # with a weak second choice of the true class, c is right everywhere but unsure.
    a = _one_hot([0, 1, 2, 1, 2, 0], confidence=0.9)
    b = _one_hot([1, 2, 0, 0, 1, 2], confidence=0.9)
    c = np.full((6, 3), 0.3)
    c[np.arange(6), y] = 0.4
    members = {"a": a, "b": b, "c": c}
    singles = {k: np.mean(v.argmax(1) == y) for k, v in members.items()}
    ensemble = greedy_ensemble(members, y, rounds=10)
    assert ensemble.val_accuracy == 1.0 > max(singles["a"], singles["b"])
    assert ensemble.val_accuracy == pytest.approx(np.mean(ensemble.average(members).argmax(1) == y))
    assert ensemble.size >= 1 and abs(sum(ensemble.weights().values()) - 1) < 1e-12


def test_best_round_is_kept_and_members_can_repeat():
    y = np.array([0, 0, 0, 1])
    strong = _one_hot([0, 0, 0, 1], classes=2, confidence=0.6)
    noisy = _one_hot([1, 1, 0, 0], classes=2, confidence=0.99)
    ensemble = greedy_ensemble({"strong": strong, "noisy": noisy}, y, rounds=5)
    assert ensemble.counts == {"strong": ensemble.size}  # adding noise never helped
    assert ensemble.val_accuracy == 1.0 and len(ensemble.history) == 5


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="no member"):
        greedy_ensemble({}, [0, 1])
    with pytest.raises(ValueError, match="2 validation predictions for 3 labels"):
        greedy_ensemble({"a": np.ones((2, 2)) / 2}, [0, 1, 1])


def test_standard_error_of_an_accuracy():
    assert standard_error(0.9, 1081) == pytest.approx(0.00912, abs=1e-5)
    assert standard_error(0.9, 0) is None and standard_error(None, 10) is None


def test_a_study_keeps_the_models_of_its_best_trials_only(tmp_path, monkeypatch):
    import keras

    from search import trial as trial_mod
    from search.results import TrialRecord
    from search.study import Study

    monkeypatch.setattr(trial_mod, "KEPT_MODELS", 2)
    study = Study("s", engine="optuna", algorithm="tpe", space="cnn", root=tmp_path)
    runner = trial_mod.TrialRunner.__new__(trial_mod.TrialRunner)
    runner.study = study
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    for number, val in enumerate([0.5, 0.7, 0.6, 0.4, 0.8]):
        record = TrialRecord(
            study="s",
            engine="optuna",
            algorithm="tpe",
            space="cnn",
            trial_id=str(number),
            number=number,
            state="COMPLETE",
            config={},
            val_accuracy=val,
        )
        runner.keep_model(record, model)
        study.append(record)
    kept = sorted(p.name for p in (study.dir / "models").iterdir())
    assert kept == ["trial-1.keras", "trial-4.keras"]  # the two best: 0.8 and 0.7
    assert keras.saving.load_model(study.dir / "models" / "trial-4.keras").count_params() == 8


def test_an_ensemble_builds_into_one_saved_model_of_its_weighted_members(tmp_path):
    import keras

    from search.ensemble import ensemble_model

    def member(size, seed):
        keras.utils.set_random_seed(seed)
        return keras.Sequential(
            [
                keras.Input((size, size, 3)),
                keras.layers.Rescaling(1 / 255),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(3, activation="softmax"),
            ],
            name="cnn",
        )

    a, b, small = member(16, 0), member(16, 1), member(8, 2)
    x = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3)).astype("float32")
    same = ensemble_model([(a, 0.75), (b, 0.25)])
    np.testing.assert_allclose(
        same.predict(x, verbose=0),
        0.75 * a.predict(x, verbose=0) + 0.25 * b.predict(x, verbose=0),
        rtol=1e-5,
    )
    mixed = ensemble_model([(a, 0.5), (small, 0.5)])
    assert mixed.input_shape == (None, 16, 16, 3)  # the largest member's size
    resized = keras.layers.Resizing(8, 8, antialias=True)(x)
    expected = 0.5 * a.predict(x, verbose=0) + 0.5 * small.predict(resized, verbose=0)
    np.testing.assert_allclose(mixed.predict(x, verbose=0), expected, rtol=1e-5)
    mixed.save(tmp_path / "e.keras")
    loaded = keras.saving.load_model(tmp_path / "e.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="sum to 0.5"):
        ensemble_model([(a, 0.25), (b, 0.25)])


@pytest.mark.slow
def test_cheap_trials_are_cross_validated_beside_their_validation_score(tmp_path):
    """--cv K: a trial the space calls cheap also gets its K-fold report, kept in its row and
    in best.json; selection stays on val_accuracy."""
    from search.results import read_json
    from search.run import run_search

    from .engines.conftest import FlakySpace

    class CheapSpace(FlakySpace):
        def cross_validates(self, hp):
            return hp.values["units"] == 8

        def cross_validate(self, hp, model, data, ctx, folds, *, epochs, batch_size=32, seed=0):
            return {
                "folds": folds,
                "accuracy": 0.5,
                "standard_error": 0.1,
                "fold_accuracy": [0.5] * folds,
                "n": 60,
            }

        def reference_configs(self):
            return [{"mode": "ok", "units": 8}, {"mode": "ok", "units": 12}]

    from search.data import synthetic_data

    data = synthetic_data(n_train=20, n_val=10, n_test=10, image_size=32, seed=0)
    outcome = run_search(
        CheapSpace(),
        data,
        trials=2,
        epochs=1,
        results=tmp_path,
        max_image_size=32,
        isolate=False,
        progress=False,
        cv_folds=3,
    )
    rows = {r.config["units"]: r for r in outcome["records"]}
    assert rows[8].cv["folds"] == 3 and rows[12].cv is None
    best = read_json(outcome["study_dir"] / "best.json")
    assert best["cv"] == rows[int(best["config"]["units"])].cv


@pytest.mark.slow
def test_a_frozen_heads_cross_validation_trains_one_head_per_fold():
    import keras

    from search.data import synthetic_data
    from search.hyperparameters import fixed_hyperparameters
    from spaces import BuildContext, get_space

    data = synthetic_data(n_train=40, n_val=20, n_test=20, image_size=32, seed=0)
    space, ctx = get_space("mobilenet-head"), BuildContext(num_classes=5, max_image_size=32)
    hp = fixed_hyperparameters(
        {**space.reference_configs()[0], "flip_views": True, "tta_flip": True}
    )
    import types

    fine_tuning = types.SimpleNamespace(values=get_space("mobilenet").reference_configs()[0])
    assert not get_space("mobilenet").cross_validates(fine_tuning)  # not cheap: fine-tunes
    model = space.build(hp, ctx)
    assert space.cross_validates(hp)
    space.fit(hp, model, data, ctx, epochs=1)
    report = space.cross_validate(hp, model, data, ctx, 2, epochs=1)
    assert report["folds"] == 2 and report["n"] == 60 and len(report["fold_accuracy"]) == 2
    keras.backend.clear_session()
