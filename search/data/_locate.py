"""Find the dataset: ``--data`` flag, then ``$ART_DATA``, then ``./data/art-images``."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "ART_DATA"
DEFAULT_DATA_DIR = Path("data/art-images")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}

# Sub-folders of the Kaggle download, tried in order below whatever folder is given.
_KAGGLE_ROOTS = ("", "dataset_updated", "dataset/dataset_updated")
KAGGLE_SPLITS = ("training_set", "validation_set")

HOW_TO_GET_DATA = """\
How to get the data:
  1. Download the Kaggle dataset 'thedownhill/art-images-drawings-painting-sculpture-engraving'
     (https://www.kaggle.com/datasets/thedownhill/art-images-drawings-painting-sculpture-engraving,
     or `pip install kagglehub` and `python -m search.data download`), and unzip it.
  2. Point the project at it, one of:
       --data PATH/TO/dataset/dataset_updated
       export ART_DATA=PATH/TO/dataset/dataset_updated
       or place it at ./data/art-images
  Any folder of <class>/ sub-folders of images works too (the Kaggle training_set/ and
  validation_set/ layout is recognised and pooled)."""


class DataNotFoundError(FileNotFoundError):
    """No usable dataset folder; the message says what to do."""


def locate_data(flag: str | os.PathLike | None = None) -> Path:
    """Return the dataset root: a Kaggle ``dataset_updated`` folder or a ``<class>/`` folder.

    Looks at ``flag``, then ``$ART_DATA``, then ``./data/art-images``; the first one given is
    the one used (a wrong ``--data`` is an error, not a silent fallback to the default).
    """
    if flag is not None:
        candidate, source = Path(flag), "--data"
    elif os.environ.get(DATA_ENV):
        candidate, source = Path(os.environ[DATA_ENV]), f"${DATA_ENV}"
    else:
        candidate, source = DEFAULT_DATA_DIR, "the default folder"
    if not candidate.is_dir():
        raise DataNotFoundError(
            f"No dataset at {candidate} ({source}): that folder does not exist.\n{HOW_TO_GET_DATA}"
        )
    root = resolve_layout(candidate)
    if root is None:
        if not any(candidate.iterdir()):
            what = "that folder is empty"
        else:
            what = ("it holds neither the Kaggle layout (training_set/ and validation_set/ of "
                    "class folders) nor <class>/ folders of images")
        raise DataNotFoundError(f"No dataset at {candidate} ({source}): {what}.\n{HOW_TO_GET_DATA}")
    return root


def resolve_layout(folder: Path) -> Path | None:
    """The folder below ``folder`` that holds the Kaggle split folders or class folders."""
    for sub in _KAGGLE_ROOTS:
        root = folder / sub if sub else folder
        if any((root / split).is_dir() for split in KAGGLE_SPLITS):
            return root
    if class_folders(folder):
        return folder
    return None


def class_folders(folder: Path) -> list[Path]:
    """Sub-folders of ``folder`` that directly hold at least one image file."""
    if not folder.is_dir():
        return []
    return sorted(
        d for d in folder.iterdir()
        if d.is_dir() and any(f.suffix.lower() in IMAGE_SUFFIXES for f in d.iterdir() if f.is_file())
    )


def empty_class_folders(root: Path) -> list[str]:
    """Class folders under ``root`` (pooling the Kaggle splits) that hold no image file.

    :func:`list_labelled_files` has nothing to list from them, so they would vanish without a
    word; the split reports them. Paths are relative to ``root``, POSIX separators.
    """
    empty = []
    for split_root in _split_roots(root):
        for class_dir in sorted(d for d in split_root.iterdir() if d.is_dir()):
            images = (f for f in class_dir.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
            if not any(f.is_file() for f in images):
                empty.append(class_dir.relative_to(root).as_posix())
    return empty


def _split_roots(root: Path) -> list[Path]:
    return [root / s for s in KAGGLE_SPLITS if (root / s).is_dir()] or [root]


def list_labelled_files(root: Path) -> list[tuple[Path, str]]:
    """All ``(file, class name)`` pairs under ``root``, pooling the Kaggle splits.

    The Kaggle training/validation split is not trusted (it shares copies of images), so it
    is only a place to find files. Class names are folder names, lower-cased.
    """
    files = []
    for split_root in _split_roots(root):
        for class_dir in sorted(d for d in split_root.iterdir() if d.is_dir()):
            for f in sorted(class_dir.rglob("*")):
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                    files.append((f, class_dir.name.lower()))
    return files
