"""A user's own images (issue #20): train/val/test folder layouts, --keep-split, EXIF orientation,
class folders that differ only in case, undecodable files named, other shapes of data."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from search.data import (
    DataNotFoundError,
    SplitError,
    decode_image,
    list_labelled_files,
    load_images,
    load_manifest,
    locate_data,
    prepare_split,
)
from search.data.__main__ import main as data_main
from tests.fixtures import make_class_folders, make_split_folders, write_rotated_jpeg

TWO = {"cats": 22, "dogs": 22}


def _groups_in_one_split(manifest) -> bool:
    splits: dict[int, set[str]] = {}
    for e in manifest.entries:
        splits.setdefault(e["group"], set()).add(e["split"])
    return all(len(s) == 1 for s in splits.values())


# --- layouts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "folders",
    [
        ("train", "val"),
        ("training", "validation"),
        ("Train", "Valid"),
        ("TRAIN", "val", "Test"),
        ("training", "valid", "testing"),
        ("training_set", "validation_set"),
    ],
)
def test_split_folder_layouts_are_found_under_their_usual_names(folders, tmp_path):
    root = make_split_folders(tmp_path / "ds", {f: {"cats": 2, "dogs": 2} for f in folders})
    assert locate_data(root) == root
    assert locate_data(tmp_path / "ds") == root
    files = list_labelled_files(root)
    assert len(files) == 4 * len(folders)
    assert sorted({label for _, label in files}) == ["cats", "dogs"]


def test_a_class_named_like_a_split_is_a_class_in_a_plain_layout(tmp_path):
    root = make_class_folders(tmp_path / "ds", {"test": 2, "painting": 2})
    assert locate_data(root) == root
    assert sorted({label for _, label in list_labelled_files(root)}) == ["painting", "test"]


def test_split_folders_are_pooled_and_re_split_by_default_with_one_line(tmp_path, capsys):
    root = make_split_folders(tmp_path / "ds", {"train": TWO, "val": {"cats": 6, "dogs": 6}})
    manifest = prepare_split(root, tmp_path / "results", verbose=False)
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "pooled and re-split" in line]
    assert len(notes) == 1 and "train/, val/" in notes[0] and "--keep-split" in notes[0], err
    assert not manifest.given_split
    assert {e["split"] for e in manifest.entries} == {"train", "val", "test"}
    assert len(manifest.entries) == 56


def test_keep_split_keeps_the_folders_and_carves_test_out_of_train(tmp_path, capsys):
    root = make_split_folders(tmp_path / "ds", {"train": TWO, "valid": {"cats": 6, "dogs": 6}})
    manifest = prepare_split(root, tmp_path / "results", verbose=False, keep_split=True)
    err = capsys.readouterr().err
    val = manifest.subset("val")
    assert len(val) == 12 and all(e["path"].startswith("valid/") for e in val)
    test = manifest.subset("test")
    # 20% of train (4 of 20 folds: test's 15 out of train's 70 + 15), every class in it.
    assert all(e["path"].startswith("train/") for e in test)
    assert 6 <= len(test) <= 12 and {e["label"] for e in test} == {"cats", "dogs"}
    assert "no test/ folder: the test split is carved out of train (20%" in err
    assert manifest.given_split and load_manifest(manifest.path).given_split
    # A later command that does not say --keep-split reuses it; one that asks to pool is refused.
    assert prepare_split(root, tmp_path / "results", verbose=False).digest == manifest.digest
    with pytest.raises(
        SplitError, match="keeps the data's split folders; run without --keep-split"
    ):
        prepare_split(root, tmp_path / "results", verbose=False, keep_split=False)


def test_keep_split_reports_copies_across_the_given_splits_and_keeps_them_out(tmp_path, capsys):
    root = make_split_folders(
        tmp_path / "ds",
        {"train": TWO, "val": {"cats": 6, "dogs": 6}, "test": {"cats": 6, "dogs": 6}},
    )
    shutil.copyfile(root / "train/cats/0001.jpg", root / "val/cats/copy.jpg")
    shutil.copyfile(root / "train/dogs/0003.jpg", root / "test/dogs/copy.jpg")
    shutil.copyfile(root / "val/dogs/0002.jpg", root / "test/dogs/copy2.jpg")
    results = tmp_path / "results"
    manifest = prepare_split(root, results, verbose=False, keep_split=True)
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if "copies of pictures in an earlier" in line]
    assert len(warning) == 1 and warning[0].startswith("warning: 3 file(s) are copies"), err
    assert (
        "1 train -> val" in warning[0] and "val/cats/copy.jpg ~ train/cats/0001.jpg" in warning[0]
    )
    assert "carved" not in err  # every split has its folder
    paths = {e["path"]: e["split"] for e in manifest.entries}
    assert "val/cats/copy.jpg" not in paths and "test/dogs/copy.jpg" not in paths
    assert "test/dogs/copy2.jpg" not in paths and paths["train/cats/0001.jpg"] == "train"
    assert all(split == p.split("/")[0] for p, split in paths.items())
    assert _groups_in_one_split(manifest)
    report = json.loads((results / "data" / "data_report.json").read_text())
    crossing = report["given_split"]["crossing_copies"]
    assert crossing["files_left_out"] == 3
    assert crossing["by_splits"] == {"train/val": 1, "train/test": 1, "val/test": 1}
    assert {
        "path": "val/cats/copy.jpg",
        "split": "val",
        "copy_of": "train/cats/0001.jpg",
        "kept_in": "train",
    } in crossing["examples"]
    assert report["split"]["counts"]["val"] == {"cats": 6, "dogs": 6}


def test_keep_split_without_split_folders_is_one_error_line(tmp_path, capsys):
    root = make_class_folders(tmp_path / "ds", {"cats": 21, "dogs": 21})
    assert data_main(["--data", str(root), "--results", str(tmp_path / "r"), "--keep-split"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--keep-split needs a train/ (or training/) folder" in err[0]
    assert str(root) in err[0]


# --- class folders that differ only in case ----------------------------------------------


def test_class_folders_differing_only_in_case_are_refused_naming_both(tmp_path, capsys):
    root = make_class_folders(tmp_path / "ds", {"Painting": 21, "painting": 21, "drawings": 21})
    with pytest.raises(DataNotFoundError) as info:
        list_labelled_files(root)
    assert str(root / "Painting") in str(info.value) and str(root / "painting") in str(info.value)
    assert data_main(["--data", str(root), "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and err[0].startswith("error: class folders")
        and "differ only in case" in err[0]
    )
    assert not (tmp_path / "r" / "data" / "split.json").exists()


def test_one_class_in_two_split_folders_may_differ_in_case(tmp_path):
    root = make_split_folders(
        tmp_path / "ds",
        {"train": {"Painting": 2, "drawings": 2}, "val": {"painting": 1, "Drawings": 1}},
    )
    assert sorted({label for _, label in list_labelled_files(root)}) == ["drawings", "painting"]


# --- undecodable files, progress bars ------------------------------------------------------


def test_undecodable_files_are_named_in_a_warning_and_in_the_report_line(tmp_path, capsys):
    root = make_class_folders(tmp_path / "ds", {"cats": 21, "dogs": 21})
    (root / "cats" / "notes.jpg").write_text("not an image")
    assert data_main(["--data", str(root), "--results", str(tmp_path / "r"), "--no-progress"]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "1 file(s)" in warnings[0] and "cats/notes.jpg" in warnings[0]
    assert "corrupt (skipped): 1 (cats/notes.jpg)" in captured.out


def test_many_undecodable_files_are_named_first_few_then_counted(tmp_path, capsys):
    root = make_class_folders(tmp_path / "ds", {"cats": 21, "dogs": 21})
    for i in range(5):
        (root / "dogs" / f"bad{i}.jpg").write_bytes(b"\0" * 10)
    prepare_split(root, tmp_path / "r", verbose=False)
    warning = next(
        line for line in capsys.readouterr().err.splitlines() if "could not be decoded" in line
    )
    assert "5 file(s)" in warning and "dogs/bad0.jpg" in warning and "and 2 more" in warning


def test_no_progress_hides_the_scan_bar(tmp_path, capsys):
    root = make_class_folders(tmp_path / "ds", {"cats": 21, "dogs": 21})
    assert data_main(["--data", str(root), "--results", str(tmp_path / "a"), "--no-progress"]) == 0
    assert "scan:" not in capsys.readouterr().err
    assert data_main(["--data", str(root), "--results", str(tmp_path / "b")]) == 0
    assert "scan:" in capsys.readouterr().err  # the bar is drawn without the flag


# --- where the data is recorded ------------------------------------------------------------


def test_manifest_records_data_inside_the_project_relative_and_outside_by_digest(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("ART_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    project = tmp_path / "project"
    inside = make_class_folders(project / "data" / "mine", {"cats": 21, "dogs": 21})
    manifest = prepare_split(inside, project / "results", verbose=False)
    on_disk = json.loads(manifest.path.read_text())
    report = json.loads((project / "results" / "data" / "data_report.json").read_text())
    assert on_disk["data_root"] == report["data_root"] == "data/mine"
    assert load_manifest(manifest.path).data_root == str(inside.resolve())

    outside = make_class_folders(tmp_path / "elsewhere", {"cats": 21, "dogs": 21})
    manifest = prepare_split(outside, project / "other-results", verbose=False)
    text = manifest.path.read_text() + (project / "other-results/data/data_report.json").read_text()
    assert str(tmp_path) not in text and json.loads(manifest.path.read_text())["data_root"] is None
    assert manifest.digest in text
    # Read back, it can only be found where --data defaults look; the cached images still load.
    load_images(manifest, "val", 16, cache_dir=tmp_path / "cache", verbose=False)
    again = load_manifest(manifest.path)
    assert again.data_root == ""
    x, _ = load_images(again, "val", 16, cache_dir=tmp_path / "cache", verbose=False)
    assert len(x) == len(again.subset("val"))
    with pytest.raises(SplitError, match="not cached at 24 px"):
        load_images(again, "val", 24, cache_dir=tmp_path / "cache", verbose=False)


def test_a_manifest_with_an_absolute_data_root_is_still_read(tmp_path):
    root = make_class_folders(tmp_path / "ds", {"cats": 21, "dogs": 21})
    manifest = prepare_split(root, tmp_path / "r", verbose=False)
    data = json.loads(manifest.path.read_text())
    data["data_root"] = str(root)  # what manifests held before
    manifest.path.write_text(json.dumps(data))
    assert load_manifest(manifest.path).data_root == str(root)


# --- EXIF orientation ----------------------------------------------------------------------


def _is_upright(image: np.ndarray) -> bool:
    """Red half on top, blue half below (see write_rotated_jpeg)."""
    top, bottom = (
        image[: len(image) // 2].mean(axis=(0, 1)),
        image[len(image) // 2 :].mean(axis=(0, 1)),
    )
    return top[0] > 150 > top[2] and bottom[2] > 150 > bottom[0]


def test_exif_orientation_reaches_training_evaluate_and_predict_as_the_same_upright_pixels(
    tmp_path,
):
    from search._formats import LoadedModel
    from search.evaluate import evaluate_folder
    from search.predict import predict_files

    root = make_class_folders(tmp_path / "ds", {"cats": 21, "dogs": 21})
    photo = root / "cats" / "phone.jpg"
    write_rotated_jpeg(photo)
    assert np.asarray(Image.open(photo)).shape[:2] == (24, 48)  # stored sideways
    size = 16
    expected = decode_image(photo, size)
    assert _is_upright(expected)

    manifest = prepare_split(root, tmp_path / "r", verbose=False)
    entry = next(e for e in manifest.entries if e["path"] == "cats/phone.jpg")
    x, _ = load_images(manifest, entry["split"], size, cache_dir=tmp_path / "cache", verbose=False)
    trained = x[manifest.subset(entry["split"]).index(entry)]

    seen: list[np.ndarray] = []

    def run_batch(batch):
        seen.append(np.asarray(batch, dtype=np.uint8))
        return np.tile([[0.9, 0.1]], (len(batch), 1))

    model = LoadedModel(tmp_path / "m.onnx", "onnx", "recording", size, 2, run_batch)
    meta = {"class_names": ["cats", "dogs"], "image_size": size}
    predict_files(model, meta, [photo])
    predicted = seen.pop()[0]
    evaluate_folder(model, meta, root)
    scored = np.concatenate(seen)
    evaluated = scored[[np.array_equal(row, expected) for row in scored].index(True)]
    for pixels in (trained, predicted, evaluated):
        np.testing.assert_array_equal(pixels, expected)


# --- other shapes of data ------------------------------------------------------------------


@pytest.mark.slow
def test_fifty_classes_of_thirty_pictures_split_stratified(tmp_path):
    classes = {f"class {i:02d}": 30 for i in range(50)}
    root = make_split_folders(tmp_path / "ds", {"train": classes}, size=16)
    manifest = prepare_split(root, tmp_path / "r", verbose=False)
    assert len(manifest.class_names) == 50
    counts = manifest.counts()
    for split in ("val", "test"):
        assert all(n >= 3 for n in counts[split].values()), counts[split]
    # Random block patterns at 16 px may, by chance, look alike (a near-duplicate pair across
    # two classes is a label conflict, left out): every file is kept or accounted for.
    report = json.loads((tmp_path / "r" / "data" / "data_report.json").read_text())
    kept = sum(sum(per_class.values()) for per_class in counts.values())
    assert kept + report["label_conflicts"]["files"] == 1500 and kept >= 1490


def test_grayscale_and_tiny_images_are_kept_and_fed_as_rgb(tmp_path):
    root = make_split_folders(tmp_path / "ds", {"train": {"a": 22, "b": 22}}, size=8, mode="L")
    manifest = prepare_split(root, tmp_path / "r", verbose=False)
    report = json.loads((tmp_path / "r" / "data" / "data_report.json").read_text())
    assert report["decoded"] == 44 and report["modes_converted_to_rgb"] == {"L": 44}
    x, y = load_images(manifest, "train", 32, cache_dir=tmp_path / "cache", verbose=False)
    assert x.shape[1:] == (32, 32, 3) and len(x) == len(y)
    assert np.array_equal(x[..., 0], x[..., 1]) and np.array_equal(x[..., 1], x[..., 2])


def test_class_names_with_spaces_and_non_ascii_letters_are_kept(tmp_path):
    names = ["oil painting", "gravure à l'eau-forte", "水墨画"]
    root = make_class_folders(tmp_path / "ds", {n: 21 for n in names})
    manifest = prepare_split(root, tmp_path / "r", verbose=False)
    assert manifest.class_names == sorted(names)
    again = load_manifest(manifest.path)
    assert again.class_names == sorted(names) and again.digest == manifest.digest
    _, y = load_images(again, "test", 16, cache_dir=tmp_path / "cache", verbose=False)
    assert set(y.tolist()) == {0, 1, 2}
