"""Saving and loading trained models with what is needed to use them again.

``model.keras`` is Keras' own format; beside it, ``model.json`` records the class names (in
output order), the input size, and the split manifest the model was trained on, so that
``python -m search.evaluate`` can map folders to outputs and refuse a test set that shares
images with the model's training data.

:func:`open_model` opens any format ``search.export`` writes (``.keras``, ``.tflite``,
``.onnx``, a SavedModel folder) or a whole export bundle, in the format's own runtime. A new
format is one :func:`register_format` call (``search._formats`` holds the built-in ones).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from search._formats import (
    FORMATS,
    Format,
    FormatError,
    LoadedModel,
    by_preference,
    checksum,
    format_of,
    load_format,
    load_keras,
    register_format,
    write_keras,
)
from search.results import environment_info, read_json, write_json

__all__ = [
    "BUNDLE_RECORD",
    "FORMATS",
    "Format",
    "FormatError",
    "LoadedModel",
    "bundle_meta",
    "load_model",
    "open_model",
    "register_format",
    "save_model",
    "sidecar_path",
]

# The bundle's own record (formats written, their checks and checksums); its presence is what
# makes a folder an export bundle.
BUNDLE_RECORD = "export.json"


def sidecar_path(model_path: str | os.PathLike) -> Path:
    return Path(model_path).with_suffix(".json")


def save_model(
    model,
    path: str | os.PathLike,
    class_names: list[str],
    image_size: int,
    manifest_path: str | os.PathLike | None = None,
    **extra: Any,
) -> Path:
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"model path {path} must end in .keras")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_keras(model, path)
    write_json(
        sidecar_path(path),
        {
            "class_names": list(class_names),
            "image_size": int(image_size),
            "manifest": str(Path(manifest_path).resolve()) if manifest_path else None,
            "versions": environment_info(),
            **extra,
        },
    )
    return path


def load_model(path: str | os.PathLike):
    """``(model, meta)``; meta is {} when the model has no sidecar (a foreign model). A file
    Keras cannot load is a one-line :class:`FormatError` (a ValueError)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no model at {path}")
    model = load_keras(path)
    side = sidecar_path(path)
    meta = read_json(side) if side.exists() else {}
    return model, meta


def bundle_meta(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``(meta, record)`` for a model file or folder: its sidecar's content (class names, input
    size, split manifest) and, inside an export bundle, the bundle's ``export.json`` (else None).
    A file in a bundle shares the bundle's ``model.json``."""
    path = Path(path)
    folder = path if (path / BUNDLE_RECORD).exists() else path.parent
    record = _read(folder / BUNDLE_RECORD) if (folder / BUNDLE_RECORD).exists() else None
    own = sidecar_path(path)
    shared = folder / "model.json"
    side = own if own.is_file() else shared if record is not None and shared.is_file() else None
    meta = _read(side) if side else {}
    if record and record.get("class_names") and not meta.get("class_names"):
        # model.json lost: export.json names the same classes and input size.
        meta = {
            **meta,
            "class_names": record["class_names"],
            "image_size": meta.get("image_size") or record.get("image_size"),
        }
    return meta, record


def _read(path: Path) -> dict[str, Any]:
    try:
        found = read_json(path)
    except (OSError, ValueError) as exc:
        raise FormatError(
            f"{path} cannot be read ({type(exc).__name__}: {exc}); export the model again"
        ) from exc
    if not isinstance(found, dict):
        raise FormatError(f"{path} is not a JSON object; export the model again")
    return found


def open_model(
    path: str | os.PathLike,
    format: str | None = None,
    warn=lambda line: print(line, file=sys.stderr),
) -> tuple[LoadedModel, dict[str, Any]]:
    """``(model, meta)`` for a model file of any exported format or an export bundle folder,
    run by the format's own runtime (``model.runtime`` says which).

    A bundle folder opens ``format`` if given, else the first of its checked formats in
    :func:`search._formats.by_preference` that loads; a file that fails to load or differs from the
    one export checked (its SHA-256 in ``export.json``) is passed over with a ``warning:`` line.
    A file given by name is opened or refused, never swapped for another.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no model at {path}")
    if format is not None and format not in FORMATS:
        raise FormatError(f"unknown format {format!r}; choose from {', '.join(FORMATS)}")
    meta, record = bundle_meta(path)
    if path.is_dir() and (path / BUNDLE_RECORD).exists():
        return _open_from_bundle(path, record or {}, format, warn), meta
    found = format_of(path)
    if format is not None and format != found:
        raise FormatError(f"{path} holds a {found} model, not {format}")
    entry = _bundle_entry(path, record)
    if entry is not None:
        _check_unchanged(path, entry)
        if entry.get("status") != "ok":
            warn(
                f"warning: {path} did not pass its export check ({entry.get('reason')}); "
                "its answers may differ from the Keras model's"
            )
    return load_format(path, found), meta


def _bundle_entry(path: Path, record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The bundle's record of this file, where it is one of the bundle's formats."""
    for entry in (record or {}).get("formats", {}).values():
        if entry.get("file") == path.name:
            return entry
    return None


def _check_unchanged(path: Path, entry: dict[str, Any]) -> None:
    if entry.get("sha256") and checksum(path) != entry["sha256"]:
        raise FormatError(
            f"{path} differs from the file export checked (SHA-256 in "
            f"{path.parent / BUNDLE_RECORD}): it is damaged or was replaced; export again"
        )


def _open_from_bundle(
    folder: Path, record: dict[str, Any], format: str | None, warn
) -> LoadedModel:
    formats = record.get("formats", {})
    if format is not None:
        entry = formats.get(format)
        if entry is None or entry.get("status") not in ("ok", "mismatch"):
            written = [name for name, e in formats.items() if e.get("status") in ("ok", "mismatch")]
            raise FormatError(
                f"the bundle {folder} has no {format} model; it holds: "
                f"{', '.join(written) or 'none'}"
            )
        return open_model(folder / entry["file"], format, warn)[0]
    tried = []
    for name in by_preference():
        entry = formats.get(name)
        if not entry or entry.get("status") != "ok":
            continue
        path = folder / entry["file"]
        try:
            if not path.exists():
                raise FileNotFoundError(f"{path} is missing")
            _check_unchanged(path, entry)
            model = load_format(path, name)
        except (FileNotFoundError, ValueError) as exc:
            tried.append(str(exc))
            warn(f"warning: {exc}; trying the bundle's next format")
            continue
        if tried:
            warn(f"warning: the bundle {folder} is opened as {name} instead")
        return model
    raise FormatError(
        f"no usable model in the bundle {folder}: "
        + ("; ".join(tried) if tried else f"its {BUNDLE_RECORD} lists no checked format")
    )
