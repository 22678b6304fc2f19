"""Classify images with a saved model of any exported format.

    python -m search.predict results/searches/<study>/best_model.keras IMAGE_OR_FOLDER ... [--top 3] [--json]
    python -m search.predict exports/<name>/ IMAGE ...            # an export bundle folder
    python -m search.predict exports/<name>/model.onnx IMAGE ...  # or any of its files

The model is a ``.keras``, ``.tflite`` or ``.onnx`` file, a TensorFlow SavedModel folder, or an
export bundle folder (``python -m search.export``), run by the format's own runtime; the first
line of the output (or ``format``/``runtime`` in every JSON row) says which one scored.

Exit status: 0 when every input was classified; 1 when some could not be (a path not found, a
folder without images, an unreadable file: each gets its own line, the rest are classified);
2 when there is nothing to classify or no model.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from search.console import quiet_tensorflow
from search.data import IMAGE_SUFFIXES, decode_image


def predict_files(
    model, meta: dict[str, Any], paths: Sequence[Path], top: int = 3
) -> list[dict[str, Any]]:
    """Top-``top`` classes with probabilities per file; undecodable files get an ``error``."""
    size = int(meta.get("image_size") or model.input_shape[1])
    names = list(meta.get("class_names") or [str(i) for i in range(model.output_shape[-1])])
    rows, images, where = [], [], []
    for path in paths:
        try:
            images.append(decode_image(path, size))
            where.append(len(rows))
            rows.append({"path": str(path)})
        except Exception as exc:  # unreadable file: say so, classify the rest
            rows.append({"path": str(path), "error": f"{type(exc).__name__}: {exc}"})
    if images:
        probabilities = model.predict(np.stack(images), batch_size=64, verbose=0)
        scored_by = (
            {"format": model.format, "runtime": model.runtime} if hasattr(model, "runtime") else {}
        )
        for i, p in zip(where, probabilities):
            order = np.argsort(p)[::-1][:top]
            rows[i]["top"] = [{"class": names[j], "probability": float(p[j])} for j in order]
            rows[i]["class"] = names[order[0]]
            rows[i].update(scored_by)
    return rows


NOT_FOUND = "not found"
NO_IMAGES = "no image files under it"


def expand(inputs: Sequence[str]) -> list[Path | dict[str, str]]:
    """Files as given, folders as the image files below them (sorted), in the order given.

    An input that is not there, or a folder without image files, becomes a row
    ``{"path", "error"}`` in its place, so one bad argument does not stop the others.
    """
    items: list[Path | dict[str, str]] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(
                f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
            )
            items += found or [{"path": str(p), "error": NO_IMAGES}]
        elif p.is_file():
            items.append(p)
        else:
            items.append({"path": str(p), "error": NOT_FOUND})
    return items


def _nothing_to_classify(problems: list[dict[str, str]]) -> str:
    said = [
        f"no image files under {r['path']}"
        if r["error"] == NO_IMAGES
        else f"{r['path']}: {r['error']}"
        for r in problems
    ]
    return said[0] if len(said) == 1 else "nothing to classify: " + "; ".join(said)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m search.predict",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "model",
        help="a .keras, .tflite or .onnx file, a SavedModel folder, or an "
        "export bundle folder (the sidecar or the bundle names the classes)",
    )
    parser.add_argument("images", nargs="+", help="image files or folders")
    parser.add_argument("--top", type=int, default=3, help="how many classes to show per image")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--format",
        help="with a bundle folder: which of its formats to run "
        "(default: the first that loads, Keras first)",
    )
    args = parser.parse_args(argv)
    quiet_tensorflow()  # the package's own lines on the console, not TensorFlow's start-up

    from search.model_io import open_model

    items = expand(args.images)
    paths = [item for item in items if isinstance(item, Path)]
    if not paths:
        print(f"error: {_nothing_to_classify(items)}", file=sys.stderr)
        return 2
    try:
        model, meta = open_model(args.model, args.format)
    except (FileNotFoundError, ValueError) as exc:  # FormatError included
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not meta.get("class_names"):
        print(
            f"warning: the {model.format} model {model.path} comes with no class names (no .json "
            "sidecar beside it, no export.json in its bundle): classes are shown as output "
            f"indices 0-{int(model.output_shape[-1]) - 1}",
            file=sys.stderr,
        )
    predicted = iter(predict_files(model, meta, paths, max(1, args.top)))
    rows = [next(predicted) if isinstance(item, Path) else item for item in items]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"scored by {model.runtime}: {model.format} model {model.path}")
        for row in rows:
            if row.get("error") in (NOT_FOUND, NO_IMAGES):
                print(f"{row['path']}: {row['error']}")
            elif "error" in row:
                print(f"{row['path']}: cannot read ({row['error']})")
            else:
                ranked = ", ".join(f"{t['class']} {t['probability']:.2f}" for t in row["top"])
                print(f"{row['path']}: {row['class']}   ({ranked})")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
