"""Evaluate a saved model on any folder of class sub-folders, or on the split's test set.

    python -m search.evaluate results/baselines/mobilenet/model.keras --data DIR [--json]
    python -m search.evaluate exports/<name>/model.tflite --split test

The model is a ``.keras``, ``.tflite`` or ``.onnx`` file, a TensorFlow SavedModel folder, or an
export bundle folder, run by the format's own runtime; the report says which (``model``).

One evaluation function (:func:`evaluate_model`) serves baselines, searches and this command.
A folder that shares images (exact or near copies) with the model's training or validation
data is refused: its score would not measure generalisation.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from search._metrics import classification_metrics, format_report
from search.console import quiet_tensorflow
from search.data import (
    DataNotFoundError,
    LeakError,
    SplitError,
    decode_resized,
    default_cache_dir,
    empty_class_folders,
    find_copies,
    list_labelled_files,
    load_images,
    load_manifest,
    predict_in_batches,
    resolve_layout,
    scan_files,
)


def predict_classes(model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Top-1 output per image: a Keras model through the tf.data pipeline, an exported model
    (:class:`search.model_io.LoadedModel`) through its own runtime, one batch at a time."""
    from search.model_io import LoadedModel

    if isinstance(model, LoadedModel):
        return np.argmax(model.predict(x, batch_size), axis=-1)
    return np.argmax(predict_in_batches(model, x, batch_size), axis=-1)


def evaluate_model(
    model, x: np.ndarray, y: np.ndarray, class_names: Sequence[str], batch_size: int = 64
) -> dict[str, Any]:
    """The project's evaluation report (see :func:`search._metrics.classification_metrics`)."""
    return classification_metrics(y, predict_classes(model, x, batch_size), class_names)


def evaluate_folder(
    model,
    meta: dict[str, Any],
    folder: str | Path,
    allow_overlap: bool = False,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Score ``model`` on a folder of ``<class>/`` images (or the Kaggle layout)."""
    folder = Path(folder)
    root = resolve_layout(folder) if folder.is_dir() else None
    if root is None:
        raise DataNotFoundError(f"{folder} holds no <class>/ folders of images to evaluate on")
    files = list_labelled_files(root)
    class_names = list(meta.get("class_names") or sorted({label for _, label in files}))
    for empty in empty_class_folders(root):
        print(
            f"warning: class folder {root / empty} holds no image files; its class is not scored",
            file=sys.stderr,
        )
    if not meta.get("class_names"):
        print(f"warning: {_guessed_names(model, class_names, folder)}", file=sys.stderr)
    unknown = sorted({label for _, label in files} - set(class_names))
    if unknown:
        raise SplitError(
            f"{folder} has class folder(s) {unknown} that the model does not know; "
            f"its classes are {class_names}"
        )
    scanned = scan_files(root, files)
    readable = [s for s in scanned if s.ok]
    skipped = [s for s in scanned if not s.ok]
    if not readable:
        raise SplitError(f"none of the {len(scanned)} images under {folder} could be decoded")
    if meta.get("manifest") and not allow_overlap:
        manifest_path = Path(meta["manifest"])
        if manifest_path.exists():
            manifest = load_manifest(manifest_path)
            seen = manifest.subset("train") + manifest.subset("val")
            overlap = find_copies(readable, seen, manifest.near_threshold)
            if overlap:
                listed = "\n".join(f"  {a}  ~  {b}" for a, b in overlap[:10])
                raise LeakError(
                    f"{len(overlap)} of {len(readable)} images under {folder} are copies of images "
                    f"the model trained or was selected on (split {manifest_path}):\n{listed}\n"
                    "Remove them from the test folder, or pass --allow-overlap to score anyway."
                )
        else:
            print(
                f"warning: the model's split manifest {manifest_path} is missing; "
                "cannot check the folder for overlap with training data",
                file=sys.stderr,
            )
    size = int(meta.get("image_size") or model.input_shape[1])
    x = decode_resized([str(root / s.path) for s in readable], size, desc="decode")
    y = np.array([class_names.index(s.label) for s in readable], dtype=np.int32)
    report = evaluate_model(model, x, y, class_names, batch_size)
    report["data"] = str(folder)
    report["skipped"] = [{"path": s.path, "reason": s.reason} for s in skipped]
    return report


def _guessed_names(model, class_names: list[str], folder: Path) -> str:
    """What scoring a model without its sidecar (no class names) assumes, and what it breaks."""
    outputs = int(model.output_shape[-1])
    text = (
        f"the {_format_name(model)} model comes with no class names (no .json sidecar beside "
        f"it, no export.json in its bundle), so they are guessed from the folder names under "
        f"{folder}, sorted: {', '.join(class_names)}"
    )
    if outputs > len(class_names):
        return (
            f"{text}; the model has {outputs} outputs but the folder {len(class_names)} "
            f"classes: predictions of outputs {len(class_names)}-{outputs - 1} have no class "
            "and are counted as wrong (predicted_unknown)"
        )
    if outputs < len(class_names):
        return (
            f"{text}; the model has {outputs} outputs but the folder {len(class_names)} "
            f"classes: {', '.join(class_names[outputs:])} can never be predicted"
        )
    return f"{text}; check that this is the order of the model's outputs"


def _format_name(model) -> str:
    """The format a model was opened as (a Keras model in memory has no ``format``)."""
    return getattr(model, "format", None) or "Keras"


def score_split(model, meta: dict[str, Any], split: str, batch_size: int = 64) -> dict[str, Any]:
    """Score ``model`` on its own split manifest's ``split``, caching the decoded images in the
    results tree the manifest belongs to (``<results>/cache``), not the current directory's."""
    if not meta.get("manifest"):
        raise SplitError(
            f"{getattr(model, 'path', 'the model')} records no split manifest; use --data DIR"
        )
    manifest = load_manifest(meta["manifest"])
    cache_dir = default_cache_dir(Path(meta["manifest"]).parent.parent)  # <results>/data/split.json
    x, y = load_images(manifest, split, int(meta["image_size"]), cache_dir=cache_dir)
    return evaluate_model(model, x, y, manifest.class_names, batch_size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m search.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "model",
        help="a .keras, .tflite or .onnx file, a SavedModel folder, or an "
        "export bundle folder (with its .json sidecar when ours)",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--data", help="folder of <class>/ sub-folders (or the Kaggle layout)")
    target.add_argument(
        "--split",
        choices=["val", "test"],
        help="score the model's own split manifest's validation or test set",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--allow-overlap",
        action="store_true",
        help="score a folder even if it shares images with the training data",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--format",
        help="with a bundle folder: which of its formats to score "
        "(default: the first that loads, Keras first)",
    )
    args = parser.parse_args(argv)
    quiet_tensorflow()  # the package's own lines on the console, not TensorFlow's start-up

    from search.model_io import open_model

    try:
        model, meta = open_model(args.model, args.format)
        if args.data:
            report = evaluate_folder(model, meta, args.data, args.allow_overlap, args.batch_size)
        else:
            report = score_split(model, meta, args.split, args.batch_size)
    except (FileNotFoundError, ValueError) as exc:  # DataNotFound, Split, Leak errors included
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report["model"] = {"path": str(model.path), "format": model.format, "runtime": model.runtime}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"scored by {model.runtime}: {model.format} model {model.path}")
        print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
