"""Using a trained model: export it with a model card, and classify images with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from search.export import ExportError, choose
from search.export import main as export_main
from search.predict import main as predict_main
from search.results import ModelResult
from tests.fixtures import CLASSES, make_art_dataset


@pytest.fixture
def results_with_cnn(cnn_baseline):
    """The results folder of the session's cnn baseline (tests/conftest.py)."""
    return cnn_baseline[1]


@pytest.mark.slow
def test_export_best_writes_model_sidecar_and_card(results_with_cnn, tmp_path, capsys):
    out = tmp_path / "exported"
    assert export_main(["--best", "--results", str(results_with_cnn), "--out", str(out)]) == 0
    metrics = json.loads((results_with_cnn / "baselines" / "cnn" / "metrics.json").read_text())
    sidecar = json.loads((out / "model.json").read_text())
    assert sidecar["class_names"] == list(CLASSES) and sidecar["image_size"] == 32
    card = (out / "MODEL_CARD.md").read_text()
    assert f"{metrics['test']['accuracy']:.4f}" in card and "baseline cnn" in card
    assert "exported baseline cnn" in capsys.readouterr().out


def test_export_says_what_is_missing(tmp_path, capsys):
    assert export_main(["--best", "--results", str(tmp_path)]) == 2
    assert "no scored model" in capsys.readouterr().err
    with pytest.raises(
        ExportError, match="no scored study named .some-study.; scored study names: none"
    ):
        choose([], "some-study", None)


@pytest.mark.slow
def test_predict_names_a_class_per_image_and_reports_bad_files(results_with_cnn, tmp_path, capsys):
    images = tmp_path / "images"
    make_art_dataset(images, per_class=1, seed=5, with_traps=False)
    bad = images / "broken.jpg"
    bad.write_bytes(b"nope")
    model = results_with_cnn / "baselines" / "cnn" / "model.keras"
    assert predict_main([str(model), str(images), "--json", "--top", "2"]) == 1  # one bad file
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == len(CLASSES) + 1
    good = [r for r in rows if "error" not in r]
    assert len(good) == len(CLASSES)
    for row in good:
        assert row["class"] in CLASSES and len(row["top"]) == 2
        assert row["top"][0]["probability"] >= row["top"][1]["probability"]
    assert [r["path"] for r in rows if "error" in r] == [str(bad)]
    assert predict_main([str(model), str(tmp_path / "nothing.png")]) == 2


def _scored(kind, name, val_accuracy, test_accuracy):
    return ModelResult(
        kind=kind,
        name=name,
        val_accuracy=val_accuracy,
        test={"accuracy": test_accuracy},
        model_path=Path("unused") / name,
    )


def test_best_is_chosen_by_validation_accuracy_not_by_test():
    lucky = _scored("study", "lucky", 0.80, 0.95)
    sound = _scored("study", "sound", 0.90, 0.88)
    unknown = _scored("baseline", "old", None, 0.99)
    assert choose([lucky, unknown, sound], None, None).name == "sound"
