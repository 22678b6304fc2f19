"""One evaluation for baselines, searches and ``python -m search.evaluate``."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from search._metrics import classification_metrics, format_report
from search.evaluate import main
from tests.fixtures import CLASSES, make_art_dataset


def test_metrics_on_a_known_confusion():
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 1, 0]
    report = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    assert report["accuracy"] == pytest.approx(4 / 6)
    # recalls: a 2/3, b 2/2, c 0/1 -> balanced (2/3 + 1 + 0) / 3
    assert report["balanced_accuracy"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert report["confusion_matrix"] == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert report["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert report["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    text = format_report(report)
    assert "balanced accuracy: 0.5556" in text


def test_metrics_refuse_mismatched_input():
    with pytest.raises(ValueError, match="labels but"):
        classification_metrics([0, 1], [0], ["a", "b"])
    with pytest.raises(ValueError, match="zero images"):
        classification_metrics([], [], ["a"])


@pytest.fixture
def trained_cnn(cnn_baseline):
    """The session's cnn baseline (tests/conftest.py): its metrics, model path included."""
    return cnn_baseline[0]


@pytest.mark.slow
def test_cli_scores_the_split_like_the_baseline_did(trained_cnn, capsys):
    assert main([trained_cnn["model"], "--split", "test", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["accuracy"] == pytest.approx(trained_cnn["test"]["accuracy"])
    assert report["confusion_matrix"] == trained_cnn["test"]["confusion_matrix"]


@pytest.mark.slow
def test_cli_scores_an_independent_folder(trained_cnn, tmp_path, capsys):
    fresh = tmp_path / "independent"
    make_art_dataset(fresh, per_class=4, seed=99, with_traps=False)
    # A plain <class>/ layout, as an owner's held-out test set would be.
    plain = tmp_path / "plain"
    for split_dir in fresh.iterdir():
        shutil.copytree(split_dir, plain, dirs_exist_ok=True)
    (plain / "painting" / "junk.jpg").write_bytes(b"not an image")
    assert main([trained_cnn["model"], "--data", str(plain), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 4 * len(CLASSES)
    assert report["classes"] == list(CLASSES)
    assert [s["path"] for s in report["skipped"]] == ["painting/junk.jpg"]
    assert main([trained_cnn["model"], "--data", str(plain)]) == 0
    assert "confusion matrix" in capsys.readouterr().out


@pytest.mark.slow
def test_cli_refuses_a_folder_holding_training_images(trained_cnn, art_dataset, tmp_path, capsys):
    from search.data import load_manifest

    root, _ = art_dataset
    manifest = load_manifest(trained_cnn["split"]["manifest"])
    leaked = tmp_path / "leaky"
    fresh = manifest.subset("train")[0]
    target = leaked / fresh["label"] / "looks_new.jpg"
    target.parent.mkdir(parents=True)
    shutil.copyfile(root / fresh["path"], target)
    held_out = manifest.subset("test")[0]
    shutil.copyfile(root / held_out["path"], leaked / fresh["label"] / "fine.jpg")
    assert main([trained_cnn["model"], "--data", str(leaked)]) == 2
    err = capsys.readouterr().err
    assert "looks_new.jpg" in err and fresh["path"] in err and "--allow-overlap" in err
    assert main([trained_cnn["model"], "--data", str(leaked), "--allow-overlap", "--json"]) == 0


@pytest.mark.slow
def test_cli_rejects_unknown_classes_and_missing_models(trained_cnn, tmp_path, capsys):
    odd = tmp_path / "odd" / "photographs"
    odd.mkdir(parents=True)
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(odd / "a.png")
    assert main([trained_cnn["model"], "--data", str(odd.parent)]) == 2
    assert "photographs" in capsys.readouterr().err
    assert main([str(tmp_path / "none.keras"), "--split", "test"]) == 2
    assert "no model" in capsys.readouterr().err


# --- what a report must not hide (issue #10); untrained models, no training ---------------------


def test_text_report_says_how_many_files_were_skipped_and_why(tmp_path, capsys):
    from tests.fixtures import make_class_folders, save_constant_model

    model = save_constant_model(
        tmp_path / "m" / "model.keras", 2, answer=0, class_names=["drawings", "painting"]
    )
    folder = make_class_folders(tmp_path / "held_out", {"drawings": 3, "painting": 2})
    for i in range(4):
        (folder / "painting" / f"junk{i}.jpg").write_bytes(b"not an image")
    assert main([str(model), "--data", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "images: 5 " in out
    assert "skipped: 4 files that could not be decoded" in out
    assert "painting/junk0.jpg: UnidentifiedImageError" in out and "painting/junk2.jpg" in out
    assert "and 1 more (--json lists them all)" in out
    assert main([str(model), "--data", str(folder), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["skipped"]) == 4


def test_predictions_on_outputs_without_a_class_are_counted_and_warned_about(tmp_path, capsys):
    from tests.fixtures import make_class_folders, save_constant_model

    # A foreign model (no sidecar) with 5 outputs that always answers output 4, scored on a
    # folder of 3 classes: output 4 has no class name here.
    model = save_constant_model(tmp_path / "foreign.keras", 5, answer=4)
    folder = make_class_folders(tmp_path / "three", {"drawings": 2, "engraving": 2, "painting": 2})
    assert main([str(model), "--data", str(folder), "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["predicted_unknown"] == 6 and report["accuracy"] == 0.0
    assert sum(map(sum, report["confusion_matrix"])) == 0
    warning = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1, captured.err
    assert "has 5 outputs but the folder 3 classes" in warning[0]
    assert "guessed from the folder names" in warning[0]
    assert "sorted: drawings, engraving, painting" in warning[0]
    assert main([str(model), "--data", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "6 of 6 images were predicted as model outputs with no class (output 4)" in out


def test_known_classes_have_no_unknown_predictions():
    report = classification_metrics([0, 1], [0, 1], ["a", "b"])
    assert report["predicted_unknown"] == 0
    assert "no class" not in format_report(report)


# --- issue #20 -------------------------------------------------------------------------------


def test_the_warning_for_a_model_without_class_names_names_its_real_format(tmp_path, capsys):
    from search._formats import LoadedModel
    from search.evaluate import evaluate_folder
    from tests.fixtures import make_class_folders

    folder = make_class_folders(tmp_path / "two", {"drawings": 2, "painting": 2})
    model = LoadedModel(
        tmp_path / "model.onnx",
        "onnx",
        "fake",
        16,
        2,
        lambda batch: np.tile([[0.8, 0.2]], (len(batch), 1)),
    )
    report = evaluate_folder(model, {}, folder)
    assert report["n"] == 4
    warning = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "the onnx model comes with no class names" in warning[0]
    assert ".keras" not in warning[0]


def test_confusion_matrix_headers_are_whole_class_names():
    names = ["class_alpha", "class_beta", "a"]
    text = format_report(classification_metrics([0, 1, 2], [0, 1, 1], names))
    header = text.splitlines()[
        text.splitlines().index("confusion matrix (rows: true, columns: predicted)") + 1
    ]
    assert header.split() == names


def test_split_scoring_caches_in_the_models_results_tree_not_the_current_folder(
    tmp_path, monkeypatch, capsys
):
    from search.data import prepare_split
    from tests.fixtures import make_class_folders, save_constant_model

    monkeypatch.delenv("ART_CACHE", raising=False)
    data = make_class_folders(tmp_path / "project" / "data", {"drawings": 21, "painting": 21})
    results = tmp_path / "project" / "results"
    manifest = prepare_split(data, results, verbose=False)
    model = save_constant_model(
        results / "m" / "model.keras", 2, answer=0, class_names=["drawings", "painting"]
    )
    sidecar = model.with_suffix(".json")
    sidecar.write_text(
        json.dumps({**json.loads(sidecar.read_text()), "manifest": str(manifest.path)})
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main([str(model), "--split", "test", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == len(manifest.subset("test"))
    assert not (elsewhere / "results").exists()
    assert list((results / "cache" / "images" / manifest.digest).glob("16/test_x.npy"))
