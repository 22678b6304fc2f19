"""A dataset in the train/ val/ layout, end to end (issue #20): search.run with the cached
transfer space and the cnn space, search.dashboard, search.export and search.predict."""

from __future__ import annotations

import json

import pytest

from tests.fixtures import make_split_folders


@pytest.mark.slow
@pytest.mark.graph  # the user's path, traced as a run is
def test_a_train_val_dataset_runs_end_to_end(tmp_path, capsys, monkeypatch):
    from search.dashboard.__main__ import main as dashboard_main
    from search.export import main as export_main
    from search.predict import main as predict_main
    from search.run import main as run_main

    monkeypatch.delenv("ART_CACHE", raising=False)
    monkeypatch.chdir(tmp_path)  # results/ and exports/ are the project's, as for a user
    classes = {"oil painting": 22, "gravure à l'eau-forte": 22}
    data = make_split_folders(
        tmp_path / "my-images", {"train": classes, "valid": {c: 5 for c in classes}}, size=32
    )
    (data / "train" / "oil painting" / "notes.jpg").write_text("not an image")
    tiny = [
        "--data",
        "my-images",
        "--trials",
        "1",
        "--epochs",
        "1",
        "--max-image-size",
        "32",
        "--in-process",
        "--no-progress",
        "--skip-references",
        "--no-latency",  # a TFLite conversion per search; tests/search/latency_test.py measures
    ]

    assert run_main(["--space", "mobilenet-cached", "--weights", "none", *tiny]) == 0
    err = capsys.readouterr().err
    assert "train/, valid/ under my-images are pooled and re-split leak-free" in err
    assert "warning: 1 file(s)" in err and "train/oil painting/notes.jpg" in err
    assert "scan:" not in err  # --no-progress
    assert run_main(["--space", "cnn", *tiny]) == 0
    out = capsys.readouterr().out
    assert "trials: 1 complete" in out

    study = (tmp_path / "results/searches/cnn-optuna-tpe/study.json").read_text()
    assert json.loads(study)["data"]["data_root"] == "my-images" and str(tmp_path) not in study
    assert (
        json.loads((tmp_path / "results/data/split.json").read_text())["data_root"] == "my-images"
    )

    assert dashboard_main([]) == 0
    assert (tmp_path / "results" / "dashboard.html").stat().st_size > 10_000

    assert export_main(["--best", "--out", "exports/mine", "--check-images", "4"]) == 0
    record = json.loads((tmp_path / "exports/mine/export.json").read_text())
    assert sorted(record["class_names"]) == sorted(classes)
    capsys.readouterr()

    picture = data / "valid" / "oil painting" / "0001.jpg"
    assert predict_main(["exports/mine", str(picture), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["class"] in classes and {t["class"] for t in row["top"]} == set(classes)
