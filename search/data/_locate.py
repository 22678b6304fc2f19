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
# Split folders of the usual layouts (PyTorch ImageFolder tutorials, Keras'
# image_dataset_from_directory guides, the Kaggle download), matched case-insensitively.
SPLIT_FOLDER_NAMES = {
    "train": ("train", "training", "train_set", "training_set"),
    "val": ("val", "valid", "validation", "val_set", "validation_set"),
    "test": ("test", "testing", "test_set", "testing_set"),
}
_SPLIT_OF_NAME = {name: split for split, names in SPLIT_FOLDER_NAMES.items() for name in names}

HOW_TO_GET_DATA = """\
How to get the data:
  1. Download the Kaggle dataset 'thedownhill/art-images-drawings-painting-sculpture-engraving'
     (https://www.kaggle.com/datasets/thedownhill/art-images-drawings-painting-sculpture-engraving,
     or `pip install kagglehub` and `python -m search.data download`), and unzip it.
  2. Point the project at it, one of:
       --data PATH/TO/dataset/dataset_updated
       export ART_DATA=PATH/TO/dataset/dataset_updated
       or place it at ./data/art-images
  Any folder of <class>/ sub-folders of images works too, and so does one of train/, val/
  (valid/, validation/) and test/ folders of <class>/ folders (the Kaggle training_set/ and
  validation_set/ layout among them): they are pooled and re-split, or kept with --keep-split."""


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
            what = (
                "it holds neither split folders (train/, val/, test/ or the Kaggle "
                "training_set/, validation_set/) of class folders nor <class>/ folders of images"
            )
        raise DataNotFoundError(f"No dataset at {candidate} ({source}): {what}.\n{HOW_TO_GET_DATA}")
    return root


def resolve_layout(folder: Path) -> Path | None:
    """The folder below ``folder`` that holds split folders (train/, val/, test/, the Kaggle
    ones) or class folders."""
    for sub in _KAGGLE_ROOTS:
        root = folder / sub if sub else folder
        if split_folders(root):
            return root
    if class_folders(folder):
        return folder
    return None


def class_folders(folder: Path) -> list[Path]:
    """Sub-folders of ``folder`` that directly hold at least one image file."""
    if not folder.is_dir():
        return []
    return sorted(
        d
        for d in folder.iterdir()
        if d.is_dir()
        and any(f.suffix.lower() in IMAGE_SUFFIXES for f in d.iterdir() if f.is_file())
    )


def split_folders(root: Path) -> dict[str, list[Path]]:
    """``root``'s sub-folders named as a split (``train``, ``Validation``, ``test_set``...), by
    the split they name. A folder that directly holds images is a class folder, whatever its
    name (a class may be called "test")."""
    found: dict[str, list[Path]] = {}
    if not root.is_dir():
        return found
    for d in sorted(root.iterdir()):
        split = _SPLIT_OF_NAME.get(d.name.lower())
        if split and d.is_dir() and not _holds_images(d):
            found.setdefault(split, []).append(d)
    return {s: found[s] for s in SPLIT_FOLDER_NAMES if s in found}


def given_splits(root: Path, rel_paths: list[str]) -> list[str | None]:
    """The split each file's folder names (``rel_paths`` relative to ``root``), or None for
    every file of a plain ``<class>/`` layout."""
    if not split_folders(root):
        return [None] * len(rel_paths)
    return [_SPLIT_OF_NAME.get(p.split("/", 1)[0].lower()) for p in rel_paths]


def folders_beside_splits(root: Path) -> list[str]:
    """Sub-folders of a split layout's root that are not split folders: nothing reads them."""
    found = split_folders(root)
    if not found:
        return []
    used = {d for dirs in found.values() for d in dirs}
    return sorted(d.name for d in root.iterdir() if d.is_dir() and d not in used)


def _holds_images(folder: Path) -> bool:
    return any(f.suffix.lower() in IMAGE_SUFFIXES and f.is_file() for f in folder.iterdir())


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
    return [d for dirs in split_folders(root).values() for d in dirs] or [root]


def list_labelled_files(root: Path) -> list[tuple[Path, str]]:
    """All ``(file, class name)`` pairs under ``root``, pooling the split folders.

    Class names are folder names, lower-cased; two folders side by side whose names differ
    only in case (``Painting/``, ``painting/``) are refused rather than merged without a word.
    Split folders are only places to find files here (the Kaggle training/validation split
    shares copies of images); ``given_splits`` says which split a file's folder names.
    """
    files = []
    for split_root in _split_roots(root):
        class_dirs = sorted(d for d in split_root.iterdir() if d.is_dir())
        _refuse_case_twins(class_dirs)
        for class_dir in class_dirs:
            for f in sorted(class_dir.rglob("*")):
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                    files.append((f, class_dir.name.lower()))
    return files


def _refuse_case_twins(class_dirs: list[Path]) -> None:
    seen: dict[str, Path] = {}
    for d in class_dirs:
        twin = seen.setdefault(d.name.lower(), d)
        if twin is not d:
            raise DataNotFoundError(
                f"class folders {twin} and {d} differ only in case, so they would be one class "
                f"{d.name.lower()!r}: merge them into one folder or rename one"
            )
