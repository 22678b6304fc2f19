"""The two published reference models: architecture, recipe, and an end-to-end run each."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from baselines import CNN_RECIPE, MOBILENET_RECIPE, build_cnn, build_mobilenet
from baselines.mobilenet import feature_extractor, unfreeze_from
from baselines.run import format_comparison, main, run_baseline
from search.training import count_params


def test_scratch_cnn_matches_the_published_architecture():
    model = build_cnn(256, 5)
    assert count_params(model)["total"] == 7_449_221
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert [(c.filters, c.kernel_size, c.activation.__name__) for c in convs] == [(64, (3, 3), "relu")] * 3
    drops = [l.rate for l in model.layers if isinstance(l, keras.layers.Dropout)]
    assert drops == [0.4] * 4
    assert model.output_shape == (None, 5)
    # Parameter count follows the input size (the flatten layer), as published code would.
    assert count_params(build_cnn(128, 5))["total"] < 7_449_221


def test_mobilenet_matches_the_published_architecture():
    model, backbone, head = build_mobilenet(224, 5, weights=None)
    params = count_params(model)
    assert params["total"] == 2_422_597
    assert params["trainable"] == 164_613
    assert count_params(head)["total"] == 164_613
    assert model.get_layer("head_dropout").rate == 0.2
    unfreeze_from(backbone, 100)
    assert all(not l.trainable for l in backbone.layers[:100])
    assert all(l.trainable for l in backbone.layers[100:])
    assert count_params(model)["trainable"] > 164_613


def test_published_recipes():
    assert (CNN_RECIPE["image_size"], CNN_RECIPE["epochs"], CNN_RECIPE["reduce_lr"]["factor"],
            CNN_RECIPE["reduce_lr"]["patience"]) == (256, 35, 0.25, 5)
    r = MOBILENET_RECIPE
    assert (r["image_size"], r["learning_rate"], r["fine_tune_at"], r["fine_tune_lr_factor"],
            r["fine_tune_epochs"]) == (224, 0.01, 100, 0.1, 10)
    assert r["early_stopping"] == {"monitor": "val_accuracy", "patience": 5, "restore_best_weights": True}
    assert (r["reduce_lr"]["factor"], r["reduce_lr"]["patience"]) == (0.5, 2)


def test_head_on_cached_features_is_the_frozen_model():
    """Training the head on pooled features must be exactly training the full frozen model."""
    model, _, head = build_mobilenet(32, 5, weights=None)
    images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3)).astype(np.uint8)
    features = feature_extractor(model).predict(images, verbose=0)
    np.testing.assert_allclose(head.predict(features, verbose=0), model.predict(images, verbose=0),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_cnn_baseline_end_to_end(art_dataset, tmp_path, capsys):
    root, _ = art_dataset
    metrics = run_baseline("cnn", str(root), str(tmp_path), seed=1, image_size=32, epochs=2, verbose=0)
    saved = json.loads((tmp_path / "baselines" / "cnn" / "metrics.json").read_text())
    assert saved["test"]["accuracy"] == metrics["test"]["accuracy"]
    assert 0.0 <= saved["test"]["accuracy"] <= 1.0
    assert len(saved["history"]["loss"]) == 2 and len(saved["history"]["epoch_time_s"]) == 2
    assert saved["changed_from_published"] == {"image_size": 32, "epochs": 2}
    assert saved["published_accuracy"] == 0.85
    assert saved["seed"] == 1 and saved["versions"]["tensorflow"]
    n_test = saved["split"]["sizes"]["test"]
    assert sum(map(sum, saved["test"]["confusion_matrix"])) == n_test == saved["test"]["n"]
    assert set(saved["test"]["per_class"]) == set(saved["test"]["classes"])
    assert (tmp_path / "baselines" / "cnn" / "model.keras").exists()
    assert "published claim 0.85" in format_comparison(metrics)


@pytest.mark.slow
def test_mobilenet_baseline_end_to_end_two_phases(art_dataset, tmp_path):
    root, _ = art_dataset
    metrics = run_baseline("mobilenet", str(root), str(tmp_path), image_size=32, epochs=1,
                           fine_tune_epochs=1, weights="none", verbose=0)
    history = metrics["history"]
    assert history["phase"] == ["frozen", "fine_tune"]
    assert metrics["params"]["trainable_frozen_phase"] < metrics["params"]["trainable_fine_tune_phase"]
    assert metrics["published_accuracy"] == 0.94
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0


def test_cli_rejects_bad_input(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["cnn", "--epochs", "1"]) == 2
    assert "No dataset" in capsys.readouterr().err
    assert main(["mobilenet", "--weights", str(tmp_path / "nope.h5"), "--data", str(tmp_path)]) == 2
    assert "nope.h5" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["resnet"])
