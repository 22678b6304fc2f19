"""Classify images with a saved model.

    python -m search.predict results/searches/<study>/best_model.keras IMAGE_OR_FOLDER ... [--top 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from search.data import IMAGE_SUFFIXES, decode_image


def predict_files(model, meta: dict[str, Any], paths: Sequence[Path], top: int = 3) -> list[dict[str, Any]]:
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
        for i, p in zip(where, probabilities):
            order = np.argsort(p)[::-1][:top]
            rows[i]["top"] = [{"class": names[j], "probability": float(p[j])} for j in order]
            rows[i]["class"] = names[order[0]]
    return rows


def expand(inputs: Sequence[str]) -> list[Path]:
    """Files as given, folders as the image files below them (sorted)."""
    paths = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            paths += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            paths.append(p)
        else:
            raise FileNotFoundError(f"{p} is neither an image file nor a folder")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search.predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a saved .keras model (its .json sidecar names the classes)")
    parser.add_argument("images", nargs="+", help="image files or folders")
    parser.add_argument("--top", type=int, default=3, help="how many classes to show per image")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from search.model_io import load_model

    try:
        paths = expand(args.images)
        model, meta = load_model(args.model)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = predict_files(model, meta, paths, max(1, args.top))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            if "error" in row:
                print(f"{row['path']}: cannot read ({row['error']})")
            else:
                ranked = ", ".join(f"{t['class']} {t['probability']:.2f}" for t in row["top"])
                print(f"{row['path']}: {row['class']}   ({ranked})")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
