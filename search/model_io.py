"""Saving and loading trained models with what is needed to use them again.

``model.keras`` is Keras' own format; beside it, ``model.json`` records the class names (in
output order), the input size, and the split manifest the model was trained on, so that
``python -m search.evaluate`` can map folders to outputs and refuse a test set that shares
images with the model's training data.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from search.results import environment_info, read_json, write_json


def sidecar_path(model_path: str | os.PathLike) -> Path:
    return Path(model_path).with_suffix(".json")


def save_model(model, path: str | os.PathLike, class_names: list[str], image_size: int,
               manifest_path: str | os.PathLike | None = None, **extra: Any) -> Path:
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"model path {path} must end in .keras")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside and renamed, so a kill mid-save never leaves a half model in place.
    tmp = path.with_name(path.stem + ".tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)
    write_json(sidecar_path(path), {
        "class_names": list(class_names),
        "image_size": int(image_size),
        "manifest": str(Path(manifest_path).resolve()) if manifest_path else None,
        "versions": environment_info(),
        **extra,
    })
    return path


def load_model(path: str | os.PathLike):
    """``(model, meta)``; meta is {} when the model has no sidecar (a foreign model)."""
    import keras

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no model at {path}")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:
        raise ValueError(f"{path} is not a loadable Keras model: {exc}") from exc
    side = sidecar_path(path)
    meta = read_json(side) if side.exists() else {}
    return model, meta
