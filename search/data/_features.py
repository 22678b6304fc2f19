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

import os
from pathlib import Path

import numpy as np

from search.data._cache import default_cache_dir, load_images, predict_in_batches
from search.data._split import SplitManifest


def cached_features(manifest: SplitManifest, split: str, image_size: int, key: str | None,
                    extractor, cache_dir: str | os.PathLike | None = None,
                    batch_size: int = 64) -> np.ndarray:
    """``extractor``'s outputs ``float32 (N, D)`` for one split's images, in manifest order."""
    cache_file = None
    if key is not None:
        cache_file = (Path(cache_dir or default_cache_dir()) / "features" / manifest.digest
                      / key / f"{split}.npy")
        if cache_file.exists():
            return np.load(cache_file)
    x, _ = load_images(manifest, split, image_size, cache_dir=cache_dir)
    features = predict_in_batches(extractor, x, batch_size).astype(np.float32)
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(cache_file.name + ".tmp.npy")
        np.save(tmp, features)
        os.replace(tmp, cache_file)
    return features
