"""The shared TrialRunner: transfer-learning paths, best-epoch weights, NaN and build failures."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from search._process import rss_mb
from search.data import stratified_subset
from search.hyperparameters import fixed_hyperparameters
from search.results import read_json, read_trials
from search.scoring import finalize
from search.study import Study
from search.trial import TrialRequest, TrialRunner
from spaces import BuildContext, get_space

MOBILENET_NO_FT = {
    "image_size": 224,
    "head_units": 64,
    "head_dropout": 0.0,
    "learning_rate": 0.01,
    "fine_tune_layers": 0,
    "aug_enabled": False,
    "flip_views": False,
    "tta_flip": False,
    "head_inputs": "pooled",
}


# Every test here trains models (and starts child processes): not in the fast subset.
pytestmark = pytest.mark.slow


def make_runner(tmp_path, data, space="mobilenet"):
    study = Study("unit", engine="optuna", algorithm="tpe", space=space, root=tmp_path)
    ctx = BuildContext(num_classes=5, max_image_size=32, weights=None)
    return TrialRunner(get_space(space), data, study, ctx=ctx, seed=0), study


def request(epochs: int, number: int = 0) -> TrialRequest:
    return TrialRequest(trial_id=str(number), number=number, epochs=epochs)


def spy(monkeypatch, data, method: str) -> list[tuple]:
    """Record (split, size) of every call to ``data``'s ``method`` for the rest of the test."""
    calls = []
    original = getattr(type(data), method)

    def recording(self, *args, **kwargs):
        calls.append(args[:2])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(data), method, recording)
    return calls


def test_mobilenet_head_trains_on_features_and_the_full_model_scores_the_same(
    tiny_data, tmp_path, monkeypatch
):
    runner, study = make_runner(tmp_path, tiny_data)
    calls = spy(monkeypatch, tiny_data, "features")
    record = runner.run(fixed_hyperparameters(MOBILENET_NO_FT), request(3))
    monkeypatch.undo()
    assert record.state == "COMPLETE", record.error
    # The head trained on features, not images; the kept predictions read features too.
    assert calls == [("train", 32), ("val", 32), ("val", 32), ("test", 32)]
    predictions = np.load(study.dir / "predictions" / "trial-0.npz")
    assert predictions["val"].shape == (20, 5) and predictions["test"].shape == (20, 5)
    np.testing.assert_allclose(predictions["val"].sum(1), 1.0, rtol=1e-5)
    # The row keeps the sampled point (224 px) and the size it trained at (capped to 32).
    assert record.config["image_size"] == 224 and record.input_size == 32
    assert record.epochs_run == 3 and record.trainable_params == 1280 * 64 + 64 + 64 * 5 + 5
    # The checkpointed image model (backbone + the head trained on features, best epoch)
    # reproduces the validation accuracy the trial reported.
    model = keras.saving.load_model(study.checkpoint_path, compile=False)
    x_val, y_val = tiny_data.arrays("val", 32)
    accuracy = float(np.mean(model.predict(x_val, verbose=0).argmax(1) == y_val))
    assert accuracy == pytest.approx(record.val_accuracy, abs=1e-6)
    assert read_json(study.checkpoint_meta)["trial_id"] == "0"
    keras.backend.clear_session()


def test_mobilenet_head_space_never_passes_images_through_the_backbone(
    tiny_data, tmp_path, monkeypatch
):
    runner, _ = make_runner(tmp_path, tiny_data, space="mobilenet-head")
    image_batches = spy(monkeypatch, tiny_data, "dataset")
    config = get_space("mobilenet-head").reference_configs()[0]
    record = runner.run(fixed_hyperparameters(config), request(3))
    monkeypatch.undo()
    assert record.state == "COMPLETE", record.error
    assert image_batches == [] and record.epochs_run == 3
    keras.backend.clear_session()


def test_mobilenet_with_augmentation_and_fine_tuning_trains_on_images(tiny_data, tmp_path):
    config = {
        **MOBILENET_NO_FT,
        "fine_tune_layers": 20,
        "fine_tune_lr_factor": 0.1,
        "fine_tune_epochs": 2,
        "fine_tune_schedule": "cosine",
        "fine_tune_weight_decay": 1e-4,
        "fine_tune_batch_norm": "frozen",
        "aug_enabled": True,
        "aug_flip": "horizontal",
        "aug_rotation": 0.0,
        "aug_zoom": 0.1,
        "aug_translation": 0.0,
        "aug_contrast": 0.0,
        "aug_brightness": 0.1,
    }
    runner, _ = make_runner(tmp_path, tiny_data)
    seen = {}
    original = type(get_space("mobilenet")).fit

    def spy(self, hp, model, *args, **kwargs):
        out = original(self, hp, model, *args, **kwargs)
        base = model.get_layer("backbone")
        seen["trainable"] = [layer.trainable for layer in base.layers]
        seen["batch_norm"] = [
            isinstance(layer, keras.layers.BatchNormalization) for layer in base.layers
        ]
        seen["optimizer"] = type(model.optimizer).__name__
        return out

    type(runner.space).fit = spy
    try:
        record = runner.run(fixed_hyperparameters(config), request(4))
    finally:
        type(runner.space).fit = original
    assert record.state == "COMPLETE", record.error
    assert record.epochs_run == 4  # 2 head epochs + 2 fine-tuning epochs
    # The top 20 layers are tuned, their BatchNorm layers kept frozen (inference mode).
    assert seen["trainable"] == [False] * (154 - 20) + [not bn for bn in seen["batch_norm"][-20:]]
    assert seen["optimizer"] == "AdamW"
    keras.backend.clear_session()


def test_low_fidelity_epochs_skip_fine_tuning(tiny_data, tmp_path):
    config = {
        **MOBILENET_NO_FT,
        "fine_tune_layers": 54,
        "fine_tune_lr_factor": 0.1,
        "fine_tune_epochs": 10,
        "fine_tune_schedule": "plateau",
        "fine_tune_weight_decay": 0.0,
        "fine_tune_batch_norm": "batch",
    }
    runner, _ = make_runner(tmp_path, tiny_data)
    record = runner.run(fixed_hyperparameters(config), request(1))
    assert record.state == "COMPLETE" and record.epochs_run == 1
    keras.backend.clear_session()


def test_a_build_failure_is_a_fail_row_and_a_parameter_limit_a_pruned_one(tiny_data, tmp_path):
    runner, study = make_runner(tmp_path, tiny_data, space="cnn")
    reference = get_space("cnn").reference_configs()[0]
    unknown = {**reference, "optimizer": "adagrad"}
    record = runner.run(fixed_hyperparameters(unknown), request(1))
    assert record.state == "FAIL" and "unknown optimizer 'adagrad'" in record.error
    runner.max_params = 1000
    record = runner.run(fixed_hyperparameters(reference), request(1, number=1))
    assert record.state == "PRUNED" and "parameters over --max-params 1,000" in record.error
    assert record.epochs_run == 0 and record.params > 1000
    assert [r.state for r in read_trials(study.trials_path)] == ["FAIL", "PRUNED"]
    assert not study.checkpoint_path.exists()  # neither ever becomes the best model


def test_retrain_rebuilds_the_best_trial_when_its_checkpoint_is_gone(tiny_data, tmp_path):
    runner, study = make_runner(tmp_path, tiny_data, space="cnn")
    reference = get_space("cnn").reference_configs()[0]
    runner.run(fixed_hyperparameters(reference), request(1))
    study.checkpoint_path.unlink()
    best = finalize(study, runner)
    assert best["retrained"] is True and best["trial_id"] == "0"
    assert best["test"]["n"] == 20 and study.best_model_path.exists()
    # A second finalize with the same best trial does not touch the test split again.
    assert finalize(study, runner)["evaluated_at"] == best["evaluated_at"]
    keras.backend.clear_session()


def test_helpers():
    assert rss_mb() > 10
    y = np.repeat(np.arange(5), 10)
    keep = stratified_subset(y, 0.3, seed=0)
    assert np.bincount(y[keep]).tolist() == [3] * 5
    assert np.array_equal(keep, stratified_subset(y, 0.3, seed=0))
    with pytest.raises(ValueError, match="subset fraction"):
        stratified_subset(y, 0.0, seed=0)


def test_a_runner_without_a_study_trains_and_returns_rows_and_writes_nothing(
    tiny_data, tmp_path, monkeypatch
):
    from .conftest import FlakySpace

    monkeypatch.chdir(tmp_path)
    runner = TrialRunner(FlakySpace(), tiny_data, None, ctx=BuildContext(num_classes=5), seed=0)
    record = runner.run(fixed_hyperparameters({"mode": "ok", "units": 8}), request(2))
    assert record.state == "COMPLETE", record.error
    assert record.engine == "baseline" and record.epochs_run == 2
    assert record.val_accuracy is not None
    assert list(tmp_path.iterdir()) == []
    keras.backend.clear_session()
