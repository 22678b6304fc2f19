"""Outputs of a frozen feature extractor over a split, computed once and cached on disk.

A frozen backbone (BatchNorm in inference mode, no dropout inside) is a fixed function of the
image, so training a head on its outputs is exactly training the head on top of the frozen
backbone, at a fraction of the cost: the backbone runs once per image instead of once per
image per epoch. It holds only without augmentation (augmented images change every epoch).

The cache knows nothing about backbones: the caller names what the extractor computes with a
``key`` (``spaces.backbones.Backbone.feature_key``: backbone, weights, input size), and a
``None`` key (random-init weights, different in every model) is never cached.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np

from search._files import replaced_atomically
from search.data._cache import default_cache_dir, load_images, predict_in_batches
from search.data._split import SplitManifest


def cached_features(
    manifest: SplitManifest,
    split: str,
    image_size: int,
    key: str | None,
    extractor,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    dtype=np.float32,
    verbose: bool = True,
):
    """``extractor``'s outputs for one split's images, in manifest order, as ``dtype``: one
    array ``(N, ...)``, or a list of them when the extractor has several outputs (the tensors
    a fine-tuning cut crosses). Cached on disk under ``key``, read back memory-mapped."""
    folder = None
    if key is not None:
        folder = Path(cache_dir or default_cache_dir()) / "features" / manifest.digest / key
        done = folder / f"{split}.done.json"
        if done.exists():
            count = json.loads(done.read_text())["outputs"]
            arrays = [np.load(folder / _name(split, i, count), mmap_mode="r") for i in range(count)]
            return arrays[0] if count == 1 else arrays
        legacy = folder / f"{split}.npy"  # caches written before the done marker existed
        if legacy.exists():
            return np.load(legacy, mmap_mode="r")
    x, _ = load_images(manifest, split, image_size, cache_dir=cache_dir, verbose=verbose)
    if folder is None:
        outputs = predict_in_batches(extractor, x, batch_size)
        arrays = [
            np.asarray(o).astype(dtype, copy=False)
            for o in (outputs if isinstance(outputs, list) else [outputs])
        ]
        return arrays[0] if len(arrays) == 1 else arrays
    folder.mkdir(parents=True, exist_ok=True)
    count = _stream_to_disk(extractor, x, folder, split, batch_size, dtype)
    # Written last: a kill mid-way leaves no marker, and the next run recomputes.
    done.write_text(json.dumps({"outputs": count, "dtype": np.dtype(dtype).name}))
    return cached_features(
        manifest, split, image_size, key, extractor, cache_dir, batch_size, dtype, verbose
    )


def _stream_to_disk(
    extractor, x: np.ndarray, folder: Path, split: str, batch_size: int, dtype
) -> int:
    """Run ``extractor`` over ``x`` batch by batch, writing each output straight into a
    memory-mapped ``.npy`` file: activations of a whole split (gigabytes at a deep cut or a
    large size) never sit in memory at once. Returns the number of outputs."""
    from numpy.lib.format import open_memmap

    files: list = []
    # Each file is written beside its name and renamed when the whole split is written.
    with contextlib.ExitStack() as renames:
        for start in range(0, len(x), batch_size):
            batch = extractor.predict_on_batch(np.asarray(x[start : start + batch_size]))
            parts = batch if isinstance(batch, (list, tuple)) else [batch]
            if not files:
                files = [
                    open_memmap(
                        renames.enter_context(
                            replaced_atomically(folder / _name(split, i, len(parts)))
                        ),
                        mode="w+",
                        dtype=dtype,
                        shape=(len(x), *part.shape[1:]),
                    )
                    for i, part in enumerate(parts)
                ]
            for out, part in zip(files, parts):
                out[start : start + len(part)] = np.asarray(part).astype(dtype, copy=False)
        count = len(files)
        for out in files:
            out.flush()
        files = out = None  # the maps are closed before their files are renamed
    return count


def _name(split: str, index: int, count: int) -> str:
    return f"{split}.npy" if count == 1 else f"{split}-{index}.npy"
