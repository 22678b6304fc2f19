"""The two published reference models: each is its space's reference trial, trained end to end."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from baselines import BASELINES, get_baseline
from baselines.run import format_comparison, main, run_baseline
from search.hyperparameters import fixed_hyperparameters
from search.results import REFERENCE_MODELS, read_trials
from spaces import BuildContext, get_space


def test_published_budgets_and_recipes_are_their_spaces_reference_points():
    cnn, mobilenet = BASELINES["cnn"], BASELINES["mobilenet"]
    assert (cnn.space, cnn.epochs, cnn.fine_tune_epochs) == ("cnn", 35, 0)
    assert (mobilenet.space, mobilenet.epochs, mobilenet.fine_tune_epochs) == ("mobilenet", 20, 10)
    for baseline in (cnn, mobilenet):
        assert baseline.reference_config() == get_space(baseline.space).reference_configs()[0]
    # The space gives the published 20 + 10 epochs exactly when the budget is their sum.
    space = get_space("mobilenet")
    assert space.phase_epochs(mobilenet.reference_config(), 30) == (20, 10)
    published = mobilenet.reference_config()
    assert (
        published["learning_rate"],
        published["fine_tune_lr_factor"],
        published["fine_tune_epochs"],
    ) == (0.01, 0.1, 10)
    assert {name: m.published_accuracy for name, m in REFERENCE_MODELS.items()} == {
        "cnn": 0.85,
        "mobilenet": 0.94,
    }
    with pytest.raises(ValueError, match="unknown baseline 'resnet'; choose one of cnn, mobilenet"):
        get_baseline("resnet")


def test_mobilenet_phases_follow_the_published_schedule():
    from search.hyperparameters import fixed_hyperparameters

    space = get_space("mobilenet")
    hp = fixed_hyperparameters(BASELINES["mobilenet"].reference_config())
    space.declare(hp, BuildContext(num_classes=5))
    head = [type(c).__name__ for c in space.training_callbacks(hp, 10)]
    tune = [type(c).__name__ for c in space.fine_tune_callbacks(hp, 20, 10)]
    assert head == ["ReduceLROnPlateau", "EarlyStopping"]
    assert tune == ["ReduceLROnPlateau"]  # the published fine-tuning has no early stopping


@pytest.mark.slow
def test_cnn_baseline_end_to_end(cnn_baseline):
    metrics, results = cnn_baseline
    saved = json.loads((results / "baselines" / "cnn" / "metrics.json").read_text())
    assert saved["test"]["accuracy"] == metrics["test"]["accuracy"]
    assert 0.0 <= saved["test"]["accuracy"] <= 1.0
    assert len(saved["history"]["loss"]) == 2 and len(saved["history"]["epoch_time_s"]) == 2
    assert saved["changed_from_published"] == {"image_size": 32, "epochs": 2}
    assert saved["published_accuracy"] == 0.85 and saved["space"] == "cnn"
    assert saved["seed"] == 1 and saved["versions"]["tensorflow"]
    n_test = saved["split"]["sizes"]["test"]
    assert sum(map(sum, saved["test"]["confusion_matrix"])) == n_test == saved["test"]["n"]
    assert set(saved["test"]["per_class"]) == set(saved["test"]["classes"])
    assert (results / "baselines" / "cnn" / "model.keras").exists()
    assert "published claim 0.85" in format_comparison(metrics)


@pytest.mark.slow
def test_a_baseline_is_its_spaces_reference_trial(art_dataset, cnn_baseline, tmp_path):
    """The cnn baseline and the first trial of a cnn search (the reference config, same seed,
    same data, same epochs) train the same model: one recipe, one runner. (The baseline is
    the session's, tests/conftest.py; the search reads its split.)"""
    from search.data import load_search_data
    from search.run import run_search

    root, _ = art_dataset
    metrics, results = cnn_baseline
    data = load_search_data(str(root), results=str(results))  # the baseline's split
    run_search(
        "cnn",
        data,
        engine="optuna",
        algorithm="random",
        trials=1,
        epochs=2,
        seed=1,
        results=tmp_path,
        max_image_size=32,
        isolate=False,
        progress=False,
    )
    trial = read_trials(tmp_path / "searches" / "cnn-optuna-random" / "trials.jsonl")[0]
    assert trial.config == {**get_space("cnn").reference_configs()[0], "image_size": 256}
    assert metrics["config"]["image_size"] == 32 and trial.input_size == 32
    assert trial.params == metrics["params"]["total"]
    for key in ("loss", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(
            trial.history[key], metrics["history"][key], rtol=1e-4, atol=1e-5
        )
    keras.backend.clear_session()


@pytest.mark.slow
@pytest.mark.graph  # the published recipe, fine-tuning included, traced as a user's run is
def test_mobilenet_baseline_end_to_end_two_phases(art_dataset, tmp_path):
    root, _ = art_dataset
    metrics = run_baseline(
        "mobilenet",
        str(root),
        str(tmp_path),
        image_size=32,
        epochs=1,
        fine_tune_epochs=1,
        weights=None,
        verbose=0,
        measure_latency=False,  # a MobileNetV2 TFLite conversion; measured by the --measure test
    )
    assert "latency_ms" not in metrics
    history = metrics["history"]
    assert history["phase"] == [1, 2]  # the head phase, then fine-tuning
    assert metrics["params"]["trainable"] == 1280 * 128 + 128 + 128 * 5 + 5  # frozen phase
    assert metrics["params"]["trainable"] < metrics["params"]["trainable_at_end"]
    assert metrics["published_accuracy"] == 0.94
    assert metrics["config"]["epoch_budget"] == 2 and metrics["config"]["fine_tune_epochs"] == 1
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0


def test_cli_rejects_bad_input(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["cnn", "--epochs", "1"]) == 2
    assert "No dataset" in capsys.readouterr().err
    assert main(["mobilenet", "--weights", str(tmp_path / "nope.h5"), "--data", str(tmp_path)]) == 2
    assert "nope.h5" in capsys.readouterr().err
    assert main(["mobilenet", "--epochs", "2", "--fine-tune-epochs", "5", "--weights", "none"]) == 2
    assert "--epochs must be at least --fine-tune-epochs" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["resnet"])


def test_a_changed_budget_never_replaces_the_published_budget_result(tmp_path):
    from baselines.run import baseline_dir, baseline_folder

    root = tmp_path
    assert baseline_folder("mobilenet", {"epochs": 3, "fine_tune_epochs": 2}) == "mobilenet-e3-ft2"
    assert baseline_folder("cnn", {"image_size": 32, "epochs": 2}) == "cnn-e2-32px"
    home = root / "baselines" / "mobilenet"
    # Nothing there yet, or an earlier changed run: the run writes the name's own folder.
    assert baseline_dir(root, "mobilenet", {"epochs": 3}) == home
    home.mkdir(parents=True)
    (home / "metrics.json").write_text(json.dumps({"changed_from_published": {"epochs": 1}}))
    assert baseline_dir(root, "mobilenet", {"epochs": 3}) == home
    # A published-budget result is kept: a changed run goes apart; a published one replaces it.
    (home / "metrics.json").write_text(json.dumps({"changed_from_published": {}}))
    assert baseline_dir(root, "mobilenet", {"epochs": 3, "fine_tune_epochs": 2}) == (
        root / "baselines" / "mobilenet-e3-ft2"
    )
    assert baseline_dir(root, "mobilenet", {}) == home


def test_a_kept_epoch_far_below_the_best_is_one_warning_line():
    from baselines.run import kept_epoch, kept_epoch_warning

    collapsed = {"val_accuracy": [0.80, 0.887, 0.35, 0.32]}  # MobileNetV2 at 3 + 2 epochs
    metrics = {"kept_epoch": kept_epoch(collapsed)}
    assert metrics["kept_epoch"] == {
        "epoch": 4,
        "val_accuracy": 0.32,
        "best_epoch": 2,
        "best_val_accuracy": 0.887,
    }
    line = kept_epoch_warning(metrics)
    assert line.startswith("warning: the kept (last) epoch 4 has validation accuracy 32.0%")
    assert "56.7 points below epoch 2 (88.7%)" in line and "\n" not in line
    assert (
        kept_epoch_warning({"kept_epoch": kept_epoch({"val_accuracy": [0.5, 0.9, 0.87]})}) is None
    )
    assert kept_epoch_warning({"kept_epoch": kept_epoch({})}) is None


def test_measure_adds_a_baselines_latency_and_size_to_its_metrics(tmp_path, capsys):
    folder = tmp_path / "baselines" / "cnn"
    folder.mkdir(parents=True)
    per_class = {c: {} for c in "abcde"}
    metrics = {"config": {"image_size": 32, "epochs": 35}, "test": {"per_class": per_class}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    assert main(["cnn", "--measure", "--results", str(tmp_path)]) == 0
    assert "ms (median, batch 1, LiteRT" in capsys.readouterr().out
    written = json.loads((folder / "metrics.json").read_text())
    assert written["latency_ms"] > 0 and written["latency"]["format"] == "tflite"
    assert written["config"] == metrics["config"]  # the rest is kept
    # The cnn recipe at 32 px, untrained: its file holds its weights in float32.
    config = {**get_baseline("cnn").reference_config(), "image_size": 32}
    hp = fixed_hyperparameters(config)
    params = get_space("cnn").build(hp, BuildContext(num_classes=5)).count_params()
    assert 4 * params / 1e6 < written["size_mb"] < 4 * params / 1e6 + 0.1
    keras.backend.clear_session()
    (folder / "metrics.json").write_text(json.dumps({**metrics, "params": {"total": 7}}))
    assert main(["cnn", "--measure", "--results", str(tmp_path)]) == 2
    assert f"recipe builds {params:,} parameters, its run had 7" in capsys.readouterr().err
    assert main(["mobilenet", "--measure", "--results", str(tmp_path)]) == 2
    assert "no reproduced mobilenet baseline at" in capsys.readouterr().err
