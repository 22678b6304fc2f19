"""Decoded, resized uint8 images cached on disk per resolution, and the tf.data input pipeline.

A trial never decodes a JPEG: the first request for a (split, size) decodes the split once
and stores ``x.npy`` / ``y.npy``; later requests memory-map them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from search._files import replaced_atomically
from search.data._decode import open_rgb
from search.data._split import SplitError, SplitManifest
from search.results import results_root

CACHE_ENV = "ART_CACHE"


def default_cache_dir(results_dir: str | os.PathLike | None = None) -> Path:
    """``$ART_CACHE``, else ``<results>/cache`` (git-ignored)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return results_root(results_dir) / "cache"


def load_images(
    manifest: SplitManifest,
    split: str,
    image_size: int,
    cache_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    verbose: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Images of one split as ``uint8 (N, S, S, 3)`` and labels ``int32 (N,)``.

    Images are resized to ``S x S`` ignoring aspect ratio, as Keras'
    ``image_dataset_from_directory`` does for the reference models.
    """
    if image_size < 8:
        raise ValueError(f"image size {image_size} is too small; use at least 8 pixels")
    if split == "test":
        manifest.check_disjoint()  # never score a test split that overlaps training
    entries = manifest.subset(split)
    folder = Path(cache_dir or default_cache_dir()) / "images" / manifest.digest / str(image_size)
    x_path, y_path = folder / f"{split}_x.npy", folder / f"{split}_y.npy"
    if x_path.exists() and y_path.exists():
        x = np.load(x_path, mmap_mode="r")
        y = np.load(y_path)
        if len(x) == len(entries) == len(y):
            return x, y
    root = Path(data_dir or manifest.data_root or ".")
    if entries and not (root / entries[0]["path"]).is_file():
        raise SplitError(
            f"the {split} images of split {manifest.path or manifest.digest} are not cached at "
            f"{image_size} px and not under {data_dir or manifest.data_root or 'a recorded folder'}"
            " (data outside the project is recorded by digest only): set $ART_DATA to the dataset"
        )
    paths = [str(root / e["path"]) for e in entries]
    y = np.array([manifest.class_names.index(e["label"]) for e in entries], dtype=np.int32)
    x = decode_resized(paths, image_size, desc=f"decode {split}@{image_size}px", verbose=verbose)
    folder.mkdir(parents=True, exist_ok=True)
    _save_atomic(x_path, x)
    _save_atomic(y_path, y)
    return np.load(x_path, mmap_mode="r"), y


def decode_resized(
    paths: list[str], image_size: int, desc: str = "decode", verbose: bool = True
) -> np.ndarray:
    """Decode and resize many files into one uint8 array, in parallel processes."""
    out = np.empty((len(paths), image_size, image_size, 3), dtype=np.uint8)
    jobs = [(p, image_size) for p in paths]
    progress = _progress(len(paths), desc, verbose)
    if len(paths) < 64 or (os.cpu_count() or 1) < 2:
        for i, arr in enumerate(progress(map(_decode_one, jobs))):
            out[i] = arr
        return out
    # Threads: Pillow releases the GIL while decoding and resizing (see _decode.scan_files).
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        for i, arr in enumerate(progress(pool.map(_decode_one, jobs))):
            out[i] = arr
    return out


def _decode_one(job: tuple[str, int]) -> np.ndarray:
    return decode_image(*job)


def decode_image(path: str | os.PathLike, size: int) -> np.ndarray:
    """One file as the models see it: RGB, resized to ``size x size``, uint8 (raises when the
    file cannot be decoded). Training, evaluation and prediction all decode through this."""
    from PIL import Image

    img = open_rgb(path, max_side=size)
    return np.asarray(img.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def make_dataset(
    x: np.ndarray | Sequence[np.ndarray],
    y: np.ndarray,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int = 0,
    epoch_size: int | None = None,
) -> Any:
    """A prefetching ``tf.data.Dataset`` of ``(x, int32 labels)`` batches.

    ``x`` is one array (uint8 images, features) or a tuple of arrays with one row per image
    (a frozen backbone's activations where a cut crosses several tensors); float16 arrays
    (cached activations) are fed as float32. Batches are gathered from the (memory-mapped)
    arrays by index instead of embedding the arrays in the graph, so a gigabyte-sized cache
    costs no copy and no 2 GB graph limit. Shuffling is reshuffled every epoch from ``seed``,
    so runs are reproducible.

    ``epoch_size`` (with ``shuffle``) makes each epoch a fresh random draw of that many rows
    without replacement: over cached views of every image (:class:`StackedRows`, e.g. the
    originals and their mirror images) an epoch then costs what one view's epoch costs.
    """
    import tensorflow as tf

    arrays = tuple(x) if isinstance(x, (tuple, list)) else (x,)
    n = len(arrays[0])
    if n == 0:
        raise ValueError("cannot make a dataset from zero images")
    if any(len(a) != n for a in arrays) or len(y) != n:
        raise ValueError(f"{[len(a) for a in arrays]} inputs but {len(y)} labels")

    def gather(idx: np.ndarray):
        return (*(np.asarray(a[idx]) for a in arrays), np.asarray(y[idx], dtype=np.int32))

    def load(idx):
        *parts, labels = tf.numpy_function(
            gather, [idx], (*(tf.as_dtype(a.dtype) for a in arrays), tf.int32)
        )
        for part, a in zip(parts, arrays):
            part.set_shape((None, *a.shape[1:]))
        labels.set_shape((None,))
        parts = [tf.cast(p, tf.float32) if p.dtype == tf.float16 else p for p in parts]
        return (tuple(parts) if len(parts) > 1 else parts[0]), labels

    ds = tf.data.Dataset.range(n)
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        if epoch_size is not None and epoch_size < n:
            ds = ds.take(epoch_size)
    ds = ds.batch(batch_size).map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


class StackedRows:
    """Several arrays of the same row shape read as one, without copying them (each may be a
    memory-mapped cache of a gigabyte): ``rows[idx]`` gathers from whichever array holds
    each index. :func:`make_dataset` takes it wherever it takes an array."""

    def __init__(self, *arrays: np.ndarray):
        if not arrays:
            raise ValueError("StackedRows needs at least one array")
        if len({a.shape[1:] for a in arrays}) != 1 or len({a.dtype for a in arrays}) != 1:
            raise ValueError(
                "stacked arrays must share their row shape and dtype: "
                f"{[(a.shape[1:], str(a.dtype)) for a in arrays]}"
            )
        self.arrays = arrays
        self.starts = np.cumsum([0, *(len(a) for a in arrays)])
        self.dtype = arrays[0].dtype
        self.shape = (int(self.starts[-1]), *arrays[0].shape[1:])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx) -> np.ndarray:
        idx = np.asarray(idx)
        if idx.ndim == 0:
            idx = idx.reshape(1)
            return self[idx][0]
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"row index out of range 0..{len(self) - 1}")
        out = np.empty((len(idx), *self.shape[1:]), dtype=self.dtype)
        which = np.searchsorted(self.starts, idx, side="right") - 1
        for k, array in enumerate(self.arrays):
            mask = which == k
            if mask.any():
                # Sorted reads from a memory map are sequential; put rows back in order after.
                local = idx[mask] - self.starts[k]
                order = np.argsort(local)
                rows = np.empty((len(local), *self.shape[1:]), dtype=self.dtype)
                rows[order] = np.asarray(array[local[order]])
                out[mask] = rows
        return out


def predict_in_batches(model, images: np.ndarray, batch_size: int = 64):
    """``model``'s outputs over uint8 images, fed in batches through :func:`make_dataset` (flat
    memory for big splits, no copy of a memory-mapped cache into the graph); a list of arrays
    for a model with several outputs."""
    dummy = np.zeros(len(images), dtype=np.int32)
    ds = make_dataset(images, dummy, batch_size=batch_size).map(lambda x, y: x)
    out = model.predict(ds, verbose=0)
    return [np.asarray(o) for o in out] if isinstance(out, (list, tuple)) else np.asarray(out)


def _save_atomic(path: Path, array: np.ndarray) -> None:
    with replaced_atomically(path) as tmp:  # x.tmp.npy: np.save keeps a .npy name as it is
        np.save(tmp, array)


def _progress(total: int, desc: str, verbose: bool):
    if not verbose:
        return lambda it: it
    from tqdm import tqdm

    return lambda it: tqdm(it, total=total, desc=desc, unit="img", file=sys.stderr)
