"""``search.export --study NAME --max-latency-ms MS``: the most accurate trial within the
limits, from the model the study kept, with the trade-off in export.json and the card
(issue #21). The study folder is hand-made: its trials' figures are written, not measured."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from search.export import main as export_main
from search.results import append_trial, write_json
from tests.fixtures import CLASSES, completed_trial, make_class_folders
from tests.search.export_formats_test import _save_tiny_classifier

# (number, validation accuracy, latency ms, size MB, params): trial 0 is the most accurate,
# 1 the fastest, 2 fast enough for 5 ms and more accurate than 1; 3 was never measured.
TRIALS = [
    (0, 0.92, 12.0, 9.0, 2_000_000),
    (1, 0.80, 2.0, 1.0, 200_000),
    (2, 0.86, 4.5, 3.5, 800_000),
    (3, 0.95, None, None, 3_000_000),
]


def study_folder(root: Path, kept=(0, 1, 2)) -> Path:
    folder = root / "searches" / "s"
    for number, val, latency, size, params in TRIALS:
        if number in kept:
            _save_tiny_classifier(folder / "models" / f"trial-{number}.keras")
        config = {"filters": 8 * (number + 1)}
        row = completed_trial(
            "s", number, val, config, params=params, latency_ms=latency, size_mb=size
        )
        append_trial(folder / "trials.jsonl", row)
    _save_tiny_classifier(folder / "best_model.keras")
    write_json(folder / "study.json", {"study": "s", "engine": "optuna", "algorithm": "nsga2"})
    return folder


def export(tmp_path, *flags) -> int:
    images = make_class_folders(tmp_path / "images", {c: 1 for c in CLASSES}, seed=4)
    return export_main(
        ["--study", "s", "--results", str(tmp_path), "--sample", str(images), *flags]
    )


@pytest.mark.slow
def test_the_most_accurate_trial_within_the_limit_is_exported_with_its_tradeoff(tmp_path, capsys):
    study_folder(tmp_path)
    bundle = tmp_path / "bundle"
    assert export(tmp_path, "--max-latency-ms", "5", "--out", str(bundle)) == 0
    out = capsys.readouterr().out
    assert "exported trial 2 of study s (validation accuracy 0.8600, the most accurate " in out
    record = json.loads((bundle / "export.json").read_text())
    tradeoff = record["tradeoff"]
    assert tradeoff["limits"] == {"latency_ms": 5.0}
    assert tradeoff["chosen"]["trial_id"] == "2"
    # The study's best (trial 3, never measured) is what was given up against.
    assert tradeoff["study_best"]["trial_id"] == "3"
    assert tradeoff["val_accuracy_given_up"] == pytest.approx(0.95 - 0.86)
    assert tradeoff["gained"] == {"params": 2_200_000}  # trial 3 has no latency to compare
    card = (bundle / "MODEL_CARD.md").read_text()
    assert card.startswith("# trial 2 of study s, within --max-latency-ms 5")
    assert "Given up: 9.00 points of validation accuracy" in card
    assert json.loads((bundle / "model.json").read_text())["trial_id"] == "2"

    # Two limits at once: only trial 1 is within both.
    assert (
        export(
            tmp_path, "--max-latency-ms", "5", "--max-size-mb", "2", "--out", str(tmp_path / "b2")
        )
        == 0
    )
    assert (
        json.loads((tmp_path / "b2" / "export.json").read_text())["tradeoff"]["chosen"]["trial_id"]
        == "1"
    )


def test_no_trial_within_the_limits_is_one_error_line(tmp_path, capsys):
    study_folder(tmp_path, kept=())
    assert export(tmp_path, "--max-latency-ms", "1", "--out", str(tmp_path / "b")) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(
        "error: no completed trial of study 's' is within --max-latency-ms 1 (1 completed "
        "trial(s) have no latency_ms; lowest latency_ms: trial 1's 2 ms): raise the "
        "limit, or search with it"
    )
    assert not (tmp_path / "b").exists()


def test_a_trial_whose_model_is_gone_is_named(tmp_path, capsys):
    study_folder(tmp_path, kept=(0, 1))
    assert export(tmp_path, "--max-size-mb", "4", "--out", str(tmp_path / "b")) == 2
    err = capsys.readouterr().err
    assert (
        "trial 2 of study 's' is the most accurate within --max-size-mb 4, but its model "
        "was not kept" in err
    )
    assert not (tmp_path / "b").exists()


def test_limits_need_a_study_and_are_positive(tmp_path, capsys):
    assert export_main(["--baseline", "cnn", "--max-params", "1e6"]) == 2
    assert capsys.readouterr().err.startswith(
        "error: --max-params 1,000,000 picks among a study's trials: give --study NAME"
    )
    with pytest.raises(SystemExit):
        export_main(["--study", "s", "--max-latency-ms", "0"])
    assert "--max-latency-ms: must be a positive number of ms, got 0" in capsys.readouterr().err


@pytest.mark.slow
def test_retrain_trains_a_trial_whose_model_is_gone_again(tmp_path, capsys):
    from search.run import main as run_main

    assert (
        run_main(
            ["--space", "cnn", "--synthetic", "--trials", "2", "--epochs", "1", "--no-progress"]
            + ["--in-process", "--max-size-mb", "1000", "--results", str(tmp_path)]
        )
        == 0
    )
    folder = tmp_path / "searches" / "cnn-optuna-tpe"
    for kept in [*(folder / "models").glob("trial-*.keras"), folder / "checkpoints"]:
        shutil.rmtree(kept) if kept.is_dir() else kept.unlink()
    images = make_class_folders(tmp_path / "images", {c: 1 for c in CLASSES}, seed=4)
    flags = ["--study", "cnn-optuna-tpe", "--results", str(tmp_path), "--max-size-mb", "1000"]
    flags += ["--sample", str(images)]  # synthetic data has no split manifest to sample
    assert export_main([*flags, "--out", str(tmp_path / "b1")]) == 2
    assert "--retrain trains it again" in capsys.readouterr().err
    assert export_main([*flags, "--retrain", "--out", str(tmp_path / "b2")]) == 0, (
        capsys.readouterr().err
    )
    record = json.loads((tmp_path / "b2" / "export.json").read_text())
    assert record["tradeoff"]["retrained"] is True
    assert record["formats"]["keras"]["status"] == "ok"
    assert "trained again from its configuration" in (tmp_path / "b2" / "MODEL_CARD.md").read_text()
