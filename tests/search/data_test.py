"""The data pipeline: locate, decode, deduplicate, split leak-free, cache, feed."""

from __future__ import annotations

import collections
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from search import data as data_mod
from search.data import (
    DataNotFoundError,
    LeakError,
    SplitError,
    _cache,
    _split,
    load_images,
    load_manifest,
    locate_data,
    make_dataset,
    prepare_split,
)
from tests.conftest import SHARED_DATA


def _entry(manifest, path):
    matches = [e for e in manifest.entries if e["path"] == path]
    return matches[0] if matches else None


# --- locating the data -------------------------------------------------------------------


def test_locate_prefers_flag_then_env_then_default(art_dataset, tmp_path, monkeypatch):
    root, _ = art_dataset
    other = tmp_path / "other" / "dataset_updated"
    shutil.copytree(root / "validation_set", other / "validation_set")
    monkeypatch.setenv("ART_DATA", str(other))
    assert locate_data(root) == root
    assert locate_data() == other
    monkeypatch.delenv("ART_DATA")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    shutil.copytree(root / "validation_set", tmp_path / "data" / "art-images" / "validation_set")
    assert locate_data().resolve() == (tmp_path / "data" / "art-images").resolve()


def test_locate_finds_kaggle_root_below_the_given_folder(art_dataset):
    root, _ = art_dataset
    assert locate_data(root.parent) == root  # the folder holding dataset_updated/


def test_locate_accepts_plain_class_folders(tmp_path):
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / label / "x.png")
    assert locate_data(tmp_path) == tmp_path
    files = data_mod._locate.list_labelled_files(tmp_path)
    assert sorted({label for _, label in files}) == ["a", "b"]


def test_missing_data_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataNotFoundError) as info:
        locate_data()
    message = str(info.value)
    assert "data/art-images" in message and "--data" in message and "ART_DATA" in message
    assert "kaggle" in message.lower()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError, match="empty"):
        locate_data(tmp_path / "empty")


# --- decoding and the data report ----------------------------------------------------------


def test_corrupt_files_are_reported_and_skipped(art_dataset, split_results):
    _, traps = art_dataset
    manifest, results = split_results
    report = json.loads((results / "data" / "data_report.json").read_text())
    reported = {f["path"]: f["reason"] for f in report["corrupt"]["files"]}
    assert set(reported) == set(traps["corrupt"])
    assert report["corrupt"]["count"] == len(traps["corrupt"])
    assert all(reason for reason in reported.values())
    assert not any(_entry(manifest, p) for p in traps["corrupt"])


def test_odd_modes_and_large_images_are_converted_not_dropped(art_dataset, split_results):
    _, traps = art_dataset
    manifest, results = split_results
    for path in traps["converted"] + traps["large"]:
        assert _entry(manifest, path) is not None, path
    report = json.loads((results / "data" / "data_report.json").read_text())
    assert {"RGBA", "P", "L", "CMYK"} <= set(report["modes_converted_to_rgb"])


def test_transparent_pixels_become_white(art_dataset):
    root, traps = art_dataset
    alpha_png = next(p for p in traps["converted"] if p.endswith("alpha.png"))
    rgb = np.asarray(data_mod.open_rgb(root / alpha_png))
    assert rgb.shape[2] == 3
    assert (rgb[: rgb.shape[0] // 2] == 255).all()  # fully transparent half
    assert (rgb[rgb.shape[0] // 2 :] < 255).any()


def test_sixteen_bit_grayscale_keeps_its_contrast(art_dataset):
    root, traps = art_dataset
    gray16 = next(p for p in traps["converted"] if p.endswith("gray16.png"))
    rgb = np.asarray(data_mod.open_rgb(root / gray16))
    assert rgb.min() < 100 and rgb.max() > 150  # not clipped to white


# --- duplicates and the split --------------------------------------------------------------


def test_exact_and_near_duplicates_share_a_group_and_a_split(art_dataset, split_results):
    _, traps = art_dataset
    manifest, _ = split_results
    for kind in ("exact", "near"):
        a, b = (_entry(manifest, p) for p in traps[kind])
        assert a["group"] == b["group"], kind
        assert a["split"] == b["split"], kind


def test_no_group_spans_two_splits(split_results):
    manifest, _ = split_results
    splits_of_group = collections.defaultdict(set)
    for e in manifest.entries:
        splits_of_group[e["group"]].add(e["split"])
    assert all(len(s) == 1 for s in splits_of_group.values())


def test_conflicting_labels_are_reported_and_left_out(art_dataset, split_results):
    _, traps = art_dataset
    manifest, results = split_results
    report = json.loads((results / "data" / "data_report.json").read_text())
    assert report["label_conflicts"]["groups"] == 1
    reported = {f["path"] for group in report["label_conflicts"]["detail"] for f in group}
    assert reported == set(traps["conflict"])
    assert not any(_entry(manifest, p) for p in traps["conflict"])


def test_split_is_stratified(split_results):
    manifest, _ = split_results
    counts = manifest.counts()
    for label in manifest.class_names:
        total = sum(counts[s][label] for s in counts)
        # 20 stratified folds of ~25 images: each class lands within a few images of 70/15/15.
        assert abs(counts["test"][label] - 0.15 * total) <= 2, (label, counts)
        assert abs(counts["val"][label] - 0.15 * total) <= 2, (label, counts)


def test_split_is_deterministic_for_a_seed_and_differs_across_seeds(art_dataset, tmp_path):
    root, _ = art_dataset
    a = prepare_split(root, tmp_path / "a", seed=3, verbose=False)
    b = prepare_split(root, tmp_path / "b", seed=3, verbose=False)
    c = prepare_split(root, tmp_path / "c", seed=4, verbose=False)
    assert a.digest == b.digest
    assert a.digest != c.digest


def test_manifest_is_reused_without_rescanning(art_dataset, split_results, monkeypatch):
    root, _ = art_dataset
    manifest, results = split_results
    monkeypatch.setattr(_split, "scan_files", lambda *a, **k: pytest.fail("rescanned the data"))
    again = prepare_split(root, results, verbose=False)
    assert again.digest == manifest.digest
    with pytest.raises(SplitError, match="seed"):
        prepare_split(root, results, seed=manifest.seed + 1, verbose=False)


def test_bad_fractions_are_refused(art_dataset, tmp_path):
    with pytest.raises(SplitError, match="add up to 1"):
        prepare_split(art_dataset[0], tmp_path, fractions=(0.5, 0.2, 0.2), verbose=False)
    with pytest.raises(SplitError, match="multiples"):
        prepare_split(art_dataset[0], tmp_path, fractions=(0.72, 0.14, 0.14), verbose=False)


def test_overlapping_test_split_is_refused(split_results, tmp_path):
    manifest, results = split_results
    data = json.loads((results / "data" / "split.json").read_text())
    # Move one member of a duplicate group into the test split: the test set now holds an
    # image whose copy is in training.
    groups = collections.Counter(e["group"] for e in data["entries"])
    group = next(g for g, n in groups.items() if n > 1)
    first, second = [e for e in data["entries"] if e["group"] == group][:2]
    first["split"], second["split"] = "test", "train"
    tampered = tmp_path / "split.json"
    tampered.write_text(json.dumps(data))
    with pytest.raises(LeakError, match="more than one split"):
        load_manifest(tampered)
    bad = _split.SplitManifest.from_json(data, tampered)
    with pytest.raises(LeakError):
        load_images(bad, "test", 16, cache_dir=tmp_path / "cache")


def test_missing_files_are_named(art_dataset, split_results, tmp_path):
    root, _ = art_dataset
    manifest, results = split_results
    moved = tmp_path / "copy"
    shutil.copytree(root, moved)
    victim = manifest.subset("train")[0]["path"]
    (moved / victim).unlink()
    with pytest.raises(SplitError, match="not under"):
        prepare_split(moved, results, verbose=False)


# --- cache and tf.data ---------------------------------------------------------------------


def test_images_are_decoded_once_per_size(split_results, tmp_path, monkeypatch):
    manifest, _ = split_results
    x, y = load_images(manifest, "val", 24, cache_dir=tmp_path, verbose=False)
    assert x.dtype == np.uint8 and x.shape == (len(manifest.subset("val")), 24, 24, 3)
    assert y.dtype == np.int32 and set(y.tolist()) <= set(range(len(manifest.class_names)))
    monkeypatch.setattr(_cache, "decode_resized", lambda *a, **k: pytest.fail("decoded again"))
    x2, y2 = load_images(manifest, "val", 24, cache_dir=tmp_path, verbose=False)
    np.testing.assert_array_equal(np.asarray(x2), np.asarray(x))
    np.testing.assert_array_equal(y2, y)


def test_labels_follow_the_manifest(split_results, tmp_path):
    manifest, _ = split_results
    _, y = load_images(manifest, "train", 16, cache_dir=tmp_path, verbose=False)
    expected = [manifest.class_names.index(e["label"]) for e in manifest.subset("train")]
    assert y.tolist() == expected


def test_dataset_batches_and_reproducible_shuffle():
    x = np.arange(10 * 4 * 4 * 3, dtype=np.uint8).reshape(10, 4, 4, 3)
    y = np.arange(10, dtype=np.int32)

    def order(seed):
        return np.concatenate(
            [b.numpy() for _, b in make_dataset(x, y, 3, shuffle=True, seed=seed)]
        )

    batches = list(make_dataset(x, y, batch_size=4))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    assert batches[0][0].dtype.name == "uint8"
    np.testing.assert_array_equal(batches[1][0].numpy(), x[4:8])
    assert sorted(order(1).tolist()) == list(range(10))
    np.testing.assert_array_equal(order(1), order(1))
    assert not np.array_equal(order(1), np.arange(10))


# --- the real data ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data/art-images is not here")
def test_pipeline_on_the_shared_dataset(tmp_path):
    root = locate_data(SHARED_DATA)
    manifest = prepare_split(root, tmp_path, verbose=False)
    report = json.loads((tmp_path / "data" / "data_report.json").read_text())
    assert report["files"] > 7000
    assert report["corrupt"]["count"] > 0  # the download's broken files are in the copy
    assert report["duplicates"]["exact_groups"] > 0 and report["duplicates"]["near_groups"] > 0
    assert manifest.class_names == ["drawings", "engraving", "iconography", "painting", "sculpture"]
    manifest.check_disjoint()
    sizes = {s: len(manifest.subset(s)) for s in ("train", "val", "test")}
    total = sum(sizes.values())
    assert abs(sizes["test"] / total - 0.15) < 0.02 and abs(sizes["train"] / total - 0.70) < 0.02
    # Exact copies never straddle splits, checked directly on the file hashes.
    split_of_digest = collections.defaultdict(set)
    for e in manifest.entries:
        split_of_digest[e["sha256"]].add(e["split"])
    assert all(len(s) == 1 for s in split_of_digest.values())


# --- data that cannot make a classifier's split (issue #10) ----------------------------------


def test_a_class_with_too_few_distinct_pictures_is_named_with_the_minimum(tmp_path):
    from tests.fixtures import make_class_folders

    root = make_class_folders(tmp_path / "data", {"drawings": 22, "painting": 5})
    # 25 files of painting, but only 5 distinct pictures: copies count once.
    for i in range(5):
        for copy in range(4):
            shutil.copyfile(
                root / "painting" / f"{i:04d}.jpg", root / "painting" / f"copy{copy}_{i}.jpg"
            )
    with pytest.raises(SplitError) as info:
        prepare_split(root, tmp_path / "results", verbose=False)
    message = str(info.value)
    assert "'painting' has only 5 (in 25 files)" in message and "drawings" not in message
    assert "at least 20 distinct pictures" in message and str(root.resolve()) in message
    assert not (tmp_path / "results" / "data" / "split.json").exists()


def test_one_class_is_an_error_naming_the_folder_and_the_class(tmp_path):
    from tests.fixtures import make_class_folders

    root = make_class_folders(tmp_path / "data", {"drawings": 25})
    with pytest.raises(SplitError) as info:
        prepare_split(root, tmp_path / "results", verbose=False)
    message = str(info.value)
    assert str(root.resolve()) in message
    assert "only one class with usable images, 'drawings'" in message
    assert "at least two classes" in message
    make_class_folders(root, {"painting": 0})  # an empty folder is not a second class
    with pytest.raises(SplitError, match="class folder painting holds no image files"):
        prepare_split(root, tmp_path / "results", verbose=False)


def test_a_class_whose_files_are_all_undecodable_is_named_not_dropped(tmp_path, capsys):
    from tests.fixtures import make_class_folders

    root = make_class_folders(tmp_path / "data", {"drawings": 25, "sculpture": 0})
    (root / "sculpture" / "broken.jpg").write_bytes(b"not a picture")
    with pytest.raises(
        SplitError,
        match=r"only one class with usable images, 'drawings'.*"
        r"'sculpture' was left out: none of its 1 files could "
        r"be decoded",
    ):
        prepare_split(root, tmp_path / "results", verbose=False)
    make_class_folders(root, {"painting": 21}, seed=1)  # other pictures than drawings
    prepare_split(root, tmp_path / "results", verbose=False)
    report = json.loads((tmp_path / "results" / "data" / "data_report.json").read_text())
    assert [c["class"] for c in report["classes_left_out"]] == ["sculpture"]
    assert "warning: class 'sculpture'" in capsys.readouterr().err
    assert "class left out: sculpture" in _split.format_data_report(report)


def test_an_empty_class_folder_is_warned_about_and_reported(tmp_path, capsys):
    from tests.fixtures import make_class_folders

    root = make_class_folders(tmp_path / "data", {"drawings": 21, "painting": 21, "sculpture": 0})
    manifest = prepare_split(root, tmp_path / "results", verbose=False)
    assert manifest.class_names == ["drawings", "painting"]
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(root / "sculpture") in warnings[0], err
    report = json.loads((tmp_path / "results" / "data" / "data_report.json").read_text())
    assert report["empty_class_folders"] == ["sculpture"]
    assert "empty class folders (no image files, left out): sculpture" in _split.format_data_report(
        report
    )


def test_empty_class_folder_in_the_kaggle_layout_is_reported_by_its_split(art_dataset, tmp_path):
    root = tmp_path / "dataset_updated"
    shutil.copytree(art_dataset[0], root)
    shutil.rmtree(root / "validation_set" / "drawings")
    (root / "validation_set" / "drawings").mkdir()
    prepare_split(root, tmp_path / "results", verbose=False)
    report = json.loads((tmp_path / "results" / "data" / "data_report.json").read_text())
    assert report["empty_class_folders"] == ["validation_set/drawings"]


def test_cached_features_stream_to_disk_once_and_keep_several_outputs(split_results, tmp_path):
    import keras

    from search.data import cached_features, load_images

    manifest, _ = split_results
    image = keras.Input((16, 16, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(image)
    halved = keras.layers.AveragePooling2D(2)(image)
    calls = []
    one = keras.Model(image, pooled)
    two = keras.Model(image, [halved, pooled])
    batched = two.predict_on_batch
    two.predict_on_batch = lambda x: calls.append(len(x)) or batched(x)
    x, _ = load_images(manifest, "val", 16, cache_dir=tmp_path)
    first = cached_features(manifest, "val", 16, "pool", one, cache_dir=tmp_path, batch_size=4)
    np.testing.assert_allclose(first, one.predict(np.asarray(x), verbose=0), rtol=1e-6)
    a, b = cached_features(
        manifest, "val", 16, "two", two, cache_dir=tmp_path, batch_size=4, dtype=np.float16
    )
    assert a.dtype == np.float16 and a.shape == (len(x), 8, 8, 3) and b.shape == (len(x), 3)
    assert sum(calls) == len(x)  # batch by batch, every image once
    again = cached_features(manifest, "val", 16, "two", two, cache_dir=tmp_path)
    assert sum(calls) == len(x)  # read back from disk, not recomputed
    np.testing.assert_array_equal(again[0], a)
    folder = tmp_path / "features" / manifest.digest / "two"
    assert sorted(p.name for p in folder.iterdir()) == ["val-0.npy", "val-1.npy", "val.done.json"]


def test_every_data_source_feeds_batches_through_make_dataset(split_results, tmp_path, monkeypatch):
    """One dataset() path: the in-memory and the manifest source both gather batches by index
    (make_dataset), neither embeds its arrays in the graph."""
    from search.data import ManifestData, _sources, synthetic_data

    calls = []
    original = _sources.make_dataset
    monkeypatch.setattr(
        _sources,
        "make_dataset",
        lambda x, y, **kw: calls.append((len(x), kw)) or original(x, y, **kw),
    )
    manifest, _ = split_results
    sources = [
        synthetic_data(n_train=8, n_val=4, n_test=4, image_size=16),
        ManifestData(manifest, cache_dir=tmp_path),
    ]
    for source in sources:
        ds = source.dataset("val", 16, batch_size=2, shuffle=True, seed=3)
        x, y = next(iter(ds))
        assert x.shape[1:] == (16, 16, 3) and x.dtype.name == "uint8" and len(y) == 2
    assert [kw for _, kw in calls] == [{"batch_size": 2, "shuffle": True, "seed": 3}] * 2
    assert "from_tensor_slices" not in open(_sources.__file__).read()


def test_stacked_rows_gather_across_arrays_in_the_asked_order(tmp_path):
    from search.data import StackedRows

    a = np.arange(12, dtype=np.float16).reshape(6, 2)
    np.save(tmp_path / "b.npy", -np.arange(8, dtype=np.float16).reshape(4, 2) - 1)
    b = np.load(tmp_path / "b.npy", mmap_mode="r")  # a memory map, as the caches are
    rows = StackedRows(a, b)
    assert len(rows) == 10 and rows.shape == (10, 2) and rows.dtype == np.float16
    both = np.concatenate([a, b])
    idx = np.array([9, 0, 7, 3, 6, 5])
    np.testing.assert_array_equal(rows[idx], both[idx])
    with pytest.raises(IndexError):
        rows[np.array([10])]
    with pytest.raises(ValueError, match="row shape"):
        StackedRows(a, np.zeros((3, 3), np.float16))


def test_an_epoch_size_draws_that_many_distinct_rows_afresh_every_epoch():
    from search.data import make_dataset

    x = np.arange(20, dtype=np.float32).reshape(20, 1)
    ds = make_dataset(x, np.zeros(20, np.int32), batch_size=4, shuffle=True, epoch_size=10)
    epochs = [np.concatenate([b[0].numpy().ravel() for b in ds]) for _ in range(3)]
    for rows in epochs:
        assert len(rows) == 10 and len(set(rows.tolist())) == 10
    assert len({tuple(sorted(r.tolist())) for r in epochs}) > 1  # another draw each epoch


def test_cross_validation_folds_keep_duplicate_groups_whole(split_results):
    """Folds over train + validation pooled: every row held out once, and the copies of one
    picture (its duplicate group, as the split manifest records it) never on both sides."""
    from search.crossval import group_folds, summarize
    from search.data import ManifestData

    manifest, _ = split_results
    data = ManifestData(manifest)
    y = np.concatenate([data.labels(s) for s in ("train", "val")])
    groups = np.concatenate([data.groups(s) for s in ("train", "val")])
    entries = manifest.subset("train") + manifest.subset("val")
    assert groups.tolist() == [e["group"] for e in entries]
    assert len(set(groups.tolist())) < len(groups)  # the fixture has copies
    folds = group_folds(y, groups, 3, seed=0)
    held = np.concatenate([h for _, h in folds])
    assert sorted(held.tolist()) == list(range(len(y)))
    for train, out in folds:
        assert not set(groups[train]) & set(groups[out])
    report = summarize([np.array([1, 1, 0, 1]), np.array([1, 0])])
    assert report["accuracy"] == pytest.approx(4 / 6) and report["n"] == 6
    assert report["fold_accuracy"] == [0.75, 0.5]
    assert report["standard_error"] == pytest.approx(np.std([0.75, 0.5], ddof=1) / np.sqrt(2))
    with pytest.raises(ValueError, match="at least 2 folds"):
        group_folds(y, groups, 1)
