"""``python -m search.predict`` on inputs that are not all there (issue #10); no training."""

from __future__ import annotations

import json

import pytest

from search.predict import main
from tests.fixtures import make_class_folders, save_constant_model


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_constant_model(
        tmp_path_factory.mktemp("model") / "model.keras",
        2,
        answer=1,
        class_names=["drawings", "painting"],
    )


def test_an_empty_folder_is_an_error_not_silence(model, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    assert main([str(model), str(empty)]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == f"error: no image files under {empty}"
    assert captured.out == ""


def test_a_missing_path_is_reported_and_the_good_files_are_still_classified(
    model, tmp_path, capsys
):
    images = make_class_folders(tmp_path / "images", {"drawings": 2})
    missing = tmp_path / "typo.jpg"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(model), str(images), str(missing), str(empty)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert f"{missing}: not found" in lines
    assert f"{empty}: no image files under it" in lines
    classified = [line for line in lines if ": painting" in line]
    assert len(classified) == 2 and str(images / "drawings" / "0000.jpg") in classified[0]
    assert main([str(model), str(missing), str(images), "--json"]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert rows[0] == {"path": str(missing), "error": "not found"}
    assert [r["class"] for r in rows[1:]] == ["painting", "painting"]


def test_nothing_to_classify_at_all_is_an_error(model, tmp_path, capsys):
    missing = tmp_path / "nothing.png"
    assert main([str(model), str(missing)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {missing}: not found"
