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

import json
import os
from pathlib import Path

import numpy as np

from search.data._cache import default_cache_dir, load_images, predict_in_batches
from search.data._split import SplitManifest


def cached_features(manifest: SplitManifest, split: str, image_size: int, key: str | None,
                    extractor, cache_dir: str | os.PathLike | None = None,
                    batch_size: int = 64, dtype=np.float32):
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
    x, _ = load_images(manifest, split, image_size, cache_dir=cache_dir)
    outputs = predict_in_batches(extractor, x, batch_size)
    arrays = [np.asarray(o).astype(dtype, copy=False)
              for o in (outputs if isinstance(outputs, list) else [outputs])]
    if folder is None:
        return arrays[0] if len(arrays) == 1 else arrays
    folder.mkdir(parents=True, exist_ok=True)
    for i, array in enumerate(arrays):
        path = folder / _name(split, i, len(arrays))
        tmp = path.with_name(path.name + ".tmp.npy")
        np.save(tmp, array)
        os.replace(tmp, path)
    # Written last: a kill mid-way leaves no marker, and the next run recomputes.
    done.write_text(json.dumps({"outputs": len(arrays), "dtype": np.dtype(dtype).name}))
    return cached_features(manifest, split, image_size, key, extractor, cache_dir, batch_size, dtype)


def _name(split: str, index: int, count: int) -> str:
    return f"{split}.npy" if count == 1 else f"{split}-{index}.npy"
