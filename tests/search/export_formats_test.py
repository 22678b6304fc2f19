"""Export bundles (issue #13): every format written, loaded back in its own runtime and compared
with the Keras model; a failing converter; predict and evaluate on a bundle and its files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from search.evaluate import main as evaluate_main
from search.export import main as export_main
from search.predict import main as predict_main
from tests.fixtures import CLASSES, make_class_folders

ALL = "keras,savedmodel,tflite,onnx"
FLOAT_FORMATS = ("keras", "savedmodel", "tflite", "onnx")


def _save_tiny_classifier(path: Path, image_size: int = 32) -> Path:
    """A few-layer CNN whose answers are far from ties (a large last layer), with a Dense layer
    of over 1,024 weights, so that int8 quantization has weights to quantize."""
    import keras

    from search.model_io import save_model

    keras.utils.set_random_seed(0)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(256, activation="relu")(x)
    outputs = keras.layers.Dense(
        len(CLASSES),
        activation="softmax",
        kernel_initializer=keras.initializers.RandomNormal(stddev=2.0),
    )(x)
    return save_model(keras.Model(inputs, outputs), path, list(CLASSES), image_size)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(source model, images folder, bundle): the tiny model exported in every format."""
    root = tmp_path_factory.mktemp("export_formats")
    source = _save_tiny_classifier(root / "source" / "model.keras")
    images = make_class_folders(root / "images", {c: 2 for c in CLASSES}, seed=3)
    bundle = root / "bundle"
    code = export_main(
        [
            "--model",
            str(source),
            "--format",
            ALL,
            "--quantize",
            "--sample",
            str(images),
            "--out",
            str(bundle),
        ]
    )
    return source, images, bundle, code


def _keras_probabilities(source: Path, images: Path) -> tuple[list[Path], np.ndarray]:
    from search.data import decode_image
    from search.model_io import load_model

    model, meta = load_model(source)
    files = sorted(images.rglob("*.jpg"))
    x = np.stack([decode_image(f, meta["image_size"]) for f in files]).astype("float32")
    return files, np.asarray(model.predict_on_batch(x))


@pytest.mark.slow
def test_every_format_is_written_checked_and_answers_like_the_keras_model(exported):
    from search.model_io import open_model

    source, images, bundle, code = exported
    assert code == 0
    record = json.loads((bundle / "export.json").read_text())
    assert (
        record["class_names"]
        == list(CLASSES)
        == json.loads((bundle / "model.json").read_text())["class_names"]
    )
    assert record["check"]["images"] == 2 * len(CLASSES)
    assert list(record["formats"]) == [*FLOAT_FORMATS[:3], "tflite-int8", "onnx"]
    card = (bundle / "MODEL_CARD.md").read_text()
    for name, entry in record["formats"].items():
        assert entry["status"] == "ok", (name, entry)
        assert (bundle / entry["file"]).exists() and entry["size_bytes"] > 0
        assert f"| {name} | {entry['file']} |" in card
    for name in FLOAT_FORMATS:
        assert record["formats"][name]["top1_agreement"] == 1.0
        assert record["formats"][name]["max_abs_diff"] <= 1e-4
    # Quantization really happened: smaller, and not the float answers.
    int8, float32 = record["formats"]["tflite-int8"], record["formats"]["tflite"]
    assert int8["size_bytes"] < 0.8 * float32["size_bytes"]
    assert int8["max_abs_diff"] > float32["max_abs_diff"]

    # Independently of export's own check: each file, opened as predict opens it, in its own
    # runtime, on images decoded the same way, gives the Keras model's answers.
    files, expected = _keras_probabilities(source, images)
    from search.data import decode_image

    x = np.stack([decode_image(f, 32) for f in files])
    runtimes = set()
    for name in FLOAT_FORMATS:
        model, meta = open_model(bundle / record["formats"][name]["file"])
        assert model.format == name and meta["class_names"] == list(CLASSES)
        got = model.predict(x, batch_size=4)  # several batches, a short last one
        np.testing.assert_allclose(got, expected, atol=1e-4)
        runtimes.add(model.runtime.split()[0])
    assert {"Keras", "TensorFlow", "onnxruntime"} <= runtimes and len(runtimes) == 4


@pytest.mark.slow
def test_predict_and_evaluate_take_the_bundle_or_any_of_its_files(exported, capsys):
    source, images, bundle, _ = exported
    files, expected = _keras_probabilities(source, images)
    want = [CLASSES[i] for i in expected.argmax(axis=1)]
    for target in [bundle, bundle / "model.onnx", bundle / "model.tflite", bundle / "saved_model"]:
        assert predict_main([str(target), str(images), "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert [r["path"] for r in rows] == [str(f) for f in files]
        assert [r["class"] for r in rows] == want, target
        assert rows[0]["format"] == (
            "keras"
            if target == bundle
            else {"model.onnx": "onnx", "model.tflite": "tflite"}.get(target.name, "savedmodel")
        )
    assert predict_main([str(bundle), str(images), "--format", "tflite-int8"]) == 0
    assert capsys.readouterr().out.startswith("scored by LiteRT")

    accuracy = float(np.mean([w == f.parent.name for w, f in zip(want, files)]))
    for target, runtime in [(bundle / "model.onnx", "onnxruntime"), (bundle, "Keras")]:
        assert evaluate_main([str(target), "--data", str(images), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["accuracy"] == pytest.approx(accuracy) and report["n"] == len(files)
        assert report["model"]["runtime"].startswith(runtime)
    assert evaluate_main([str(bundle / "model-int8.tflite"), "--data", str(images)]) == 0
    assert "scored by LiteRT" in capsys.readouterr().out


@pytest.mark.slow
def test_a_damaged_file_in_a_bundle_is_passed_over_or_refused(exported, tmp_path, capsys):
    _, images, bundle, _ = exported
    damaged = tmp_path / "bundle"
    shutil.copytree(bundle, damaged)
    (damaged / "model.keras").write_bytes(b"not a model")
    onnx = damaged / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[-10] ^= 0xFF  # same size, one byte changed: only the checksum can tell
    onnx.write_bytes(bytes(data))

    assert predict_main([str(damaged), str(images / "painting")]) == 0
    captured = capsys.readouterr()
    assert (
        f"warning: {damaged / 'model.keras'} differs from the file export checked" in captured.err
    )
    assert "opened as savedmodel instead" in captured.err
    assert captured.out.startswith("scored by TensorFlow")
    assert evaluate_main([str(damaged), "--data", str(images), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["format"] == "savedmodel"

    for named in (damaged / "model.keras", onnx):
        assert predict_main([str(named), str(images)]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (
            f"error: {named} differs from the file export checked (SHA-256 in "
            f"{damaged / 'export.json'}): it is damaged or was replaced; export again"
        )
        assert evaluate_main([str(named), "--data", str(images)]) == 2
        assert capsys.readouterr().err.strip() == err

    # A damaged file outside a bundle has no checksum to compare: its runtime refuses it.
    loose = tmp_path / "loose.tflite"
    loose.write_bytes(b"\0" * 64)
    assert predict_main([str(loose), str(images)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {loose} is not a loadable TFLite model: ")


@pytest.mark.slow
def test_a_failing_converter_is_named_and_the_other_formats_are_still_written(
    exported, tmp_path, monkeypatch, capsys
):
    import dataclasses
    import importlib.util

    from search import _formats

    source, images, _, _ = exported

    def broken(model, path):
        path.write_bytes(b"half a file")
        raise RuntimeError("converter exploded\nsecond line of a long trace")

    monkeypatch.setitem(
        _formats.FORMATS, "tflite", dataclasses.replace(_formats.FORMATS["tflite"], write=broken)
    )
    out = tmp_path / "partial"
    assert (
        export_main(
            [
                "--model",
                str(source),
                "--format",
                "keras,tflite,onnx",
                "--sample",
                str(images),
                "--out",
                str(out),
            ]
        )
        == 1
    )
    captured = capsys.readouterr()
    assert (
        "failed: tflite (" + str(out / "model.tflite") + "): converter failed: RuntimeError: "
        "converter exploded"
    ) in captured.err.splitlines()
    record = json.loads((out / "export.json").read_text())
    assert record["formats"]["tflite"]["status"] == "failed"
    assert [record["formats"][f]["status"] for f in ("keras", "onnx")] == ["ok", "ok"]
    assert (out / "model.onnx").exists() and not (out / "model.tflite").exists()
    assert "| tflite | model.tflite | - |" in (out / "MODEL_CARD.md").read_text()
    assert predict_main([str(out), str(images), "--format", "tflite"]) == 2
    assert "has no tflite model; it holds: keras, onnx" in capsys.readouterr().err

    # An optional converter that is not installed fails the same way, naming the pip extra.
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tf2onnx" else real_find_spec(name, *a),
    )
    assert (
        export_main(
            [
                "--model",
                str(source),
                "--format",
                "keras,onnx",
                "--sample",
                str(images),
                "--out",
                str(tmp_path / "no_onnx"),
            ]
        )
        == 1
    )
    assert (
        "failed: onnx ("
        + str(tmp_path / "no_onnx" / "model.onnx")
        + "): converter failed: FormatError: "
        'ONNX export needs tf2onnx, which is not installed: pip install "art-arch-search[export]"'
    ) in capsys.readouterr().err.splitlines()


@pytest.mark.slow
def test_a_file_that_answers_differently_fails_its_check(exported, tmp_path, monkeypatch, capsys):
    import dataclasses

    from search import _formats

    source, images, _, _ = exported
    real_load = _formats.FORMATS["keras"].load

    def swapped_outputs(path):
        loaded = real_load(path)
        run = loaded._run_batch
        loaded._run_batch = lambda x: run(x)[:, ::-1]
        return loaded

    monkeypatch.setitem(
        _formats.FORMATS,
        "keras",
        dataclasses.replace(_formats.FORMATS["keras"], load=swapped_outputs),
    )
    out = tmp_path / "wrong"
    assert export_main(["--model", str(source), "--sample", str(images), "--out", str(out)]) == 1
    entry = json.loads((out / "export.json").read_text())["formats"]["keras"]
    assert entry["status"] == "mismatch" and entry["top1_agreement"] < 1.0
    assert "probabilities differ by up to" in entry["reason"] and entry["disagreements"]
    assert "mismatch: keras" in capsys.readouterr().err


# --- bad input: one line, exit 2, nothing written; no conversion ----------------------------------


def test_export_refuses_unknown_formats_and_a_quantize_without_tflite(tmp_path, capsys):
    out = tmp_path / "never"
    assert export_main(["--model", "m.keras", "--format", "keras,pdf", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --format 'keras,pdf': unknown format pdf; give any "
        "of keras,savedmodel,tflite,onnx, separated by commas"
    )
    assert (
        export_main(["--model", "m.keras", "--format", "onnx", "--quantize", "--out", str(out)])
        == 2
    )
    assert (
        "--quantize writes the int8 variant of the TFLite model: add tflite"
        in capsys.readouterr().err
    )
    assert export_main(["--model", str(tmp_path / "none.keras"), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == f"error: --model {tmp_path / 'none.keras'}: not found"
    assert not out.exists()


def test_export_needs_real_images_to_check_on(tmp_path, capsys):
    from tests.fixtures import save_constant_model

    model = save_constant_model(tmp_path / "m" / "model.keras", 2, answer=0, class_names=["a", "b"])
    out = tmp_path / "never"
    assert export_main(["--model", str(model), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: cannot check the exported files on real images: the model's split manifest "
        "(none recorded) is missing; pass --sample DIR (a folder of images)"
    )
    empty = make_class_folders(tmp_path / "empty", {"a": 0})
    assert export_main(["--model", str(model), "--sample", str(empty), "--out", str(out)]) == 2
    assert (
        f"no decodable image to check the exported files on in folder {empty}"
        in capsys.readouterr().err
    )
    assert not out.exists()


def test_predict_and_evaluate_name_what_they_cannot_open(tmp_path, capsys):
    images = make_class_folders(tmp_path / "images", {"a": 1})
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    folder = tmp_path / "plain_folder"
    folder.mkdir()
    broken_bundle = tmp_path / "bundle"
    broken_bundle.mkdir()
    (broken_bundle / "export.json").write_text("{ torn")
    for target, said in [
        (
            notes,
            f"{notes} is not a model this project reads: give a .keras, .tflite or .onnx file, "
            "a SavedModel folder, or an export bundle folder",
        ),
        (
            folder,
            f"{folder} is neither an export bundle (no export.json) nor a TensorFlow SavedModel "
            "folder (no saved_model.pb)",
        ),
        (broken_bundle, f"{broken_bundle / 'export.json'} cannot be read (JSONDecodeError: "),
    ]:
        assert predict_main([str(target), str(images)]) == 2
        assert capsys.readouterr().err.startswith(f"error: {said}")
        assert evaluate_main([str(target), "--data", str(images)]) == 2
        assert capsys.readouterr().err.startswith(f"error: {said}")


def _study_with_ensemble(root: Path) -> Path:
    """A finished study folder as a search leaves it: two trials' kept models (32 and 16 px),
    the best model with its sidecar, and the ensemble picked on validation."""
    from search.results import TrialRecord, append_trial, write_json

    folder = root / "searches" / "s"
    for number, size in [(0, 32), (1, 16)]:
        _save_tiny_classifier(folder / "models" / f"trial-{number}.keras", image_size=size)
        append_trial(
            folder / "trials.jsonl",
            TrialRecord(
                study="s",
                engine="optuna",
                algorithm="tpe",
                space="cnn",
                trial_id=str(number),
                number=number,
                state="COMPLETE",
                config={},
                val_accuracy=0.9 - number / 10,
            ),
        )
    _save_tiny_classifier(folder / "best_model.keras")
    write_json(
        folder / "study.json",
        {"study": "s", "engine": "optuna", "algorithm": "tpe", "space": "cnn"},
    )
    write_json(
        folder / "ensemble.json",
        {"members": {"0": 2, "1": 1}, "size": 3, "val_accuracy": 0.95, "test": {"accuracy": 0.9}},
    )
    return folder


@pytest.mark.slow
def test_a_studys_ensemble_exports_as_one_model_of_its_weighted_members(tmp_path, capsys):
    import keras

    from search.data import decode_image

    folder = _study_with_ensemble(tmp_path)
    images = make_class_folders(tmp_path / "images", {c: 1 for c in CLASSES}, seed=4)
    bundle = tmp_path / "bundle"
    code = export_main(
        [
            "--study",
            "s",
            "--ensemble",
            "--results",
            str(tmp_path),
            "--sample",
            str(images),
            "--out",
            str(bundle),
        ]
    )
    assert code == 0, capsys.readouterr().err
    record = json.loads((bundle / "export.json").read_text())
    assert record["formats"]["keras"]["status"] == "ok" and record["image_size"] == 32
    files = sorted(images.rglob("*.jpg"))
    x = np.stack([decode_image(f, 32) for f in files]).astype("float32")
    big = keras.saving.load_model(folder / "models" / "trial-0.keras")
    small = keras.saving.load_model(folder / "models" / "trial-1.keras")
    expected = (
        2 * big.predict_on_batch(x)
        + small.predict_on_batch(keras.layers.Resizing(16, 16, antialias=True)(x))
    ) / 3
    exported = keras.saving.load_model(bundle / "model.keras")
    np.testing.assert_allclose(exported.predict_on_batch(x), expected, rtol=1e-4, atol=1e-6)

    (folder / "models" / "trial-1.keras").unlink()  # a member whose model was not kept
    assert (
        export_main(
            [
                "--study",
                "s",
                "--ensemble",
                "--results",
                str(tmp_path),
                "--sample",
                str(images),
                "--out",
                str(tmp_path / "b2"),
            ]
        )
        == 2
    )
    assert "model of ensemble member trial 1 of study 's' was not kept" in capsys.readouterr().err
