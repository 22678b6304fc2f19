"""Frozen-backbone features, computed once per (split, input size, weights) and cached on disk.

A frozen MobileNetV2 (BatchNorm in inference mode, no dropout inside) is a fixed function
of the image, so training a head on its pooled features is exactly training the head on
top of the frozen backbone, at a fraction of the cost: the backbone runs once per image
instead of once per image per epoch. This is what makes transfer-learning trials cheap on
a CPU. It holds only without augmentation (augmented images change every epoch).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from search.data import SplitManifest, default_cache_dir, load_images


def mobilenet_v2_feature_extractor(image_size: int, weights: str | None = "imagenet"):
    """uint8 image -> [-1, 1] scaling -> MobileNetV2 -> global average pool (1280 values)."""
    import keras

    from search.weights import mobilenet_v2_backbone

    backbone = mobilenet_v2_backbone(image_size, weights)
    inputs = keras.Input((image_size, image_size, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = backbone(x, training=False)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, outputs, name=f"mobilenet_v2_features_{image_size}")


def backbone_features(
    manifest: SplitManifest,
    split: str,
    image_size: int = 224,
    weights: str | None = "imagenet",
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    extractor=None,
) -> np.ndarray:
    """Pooled MobileNetV2 features ``float32 (N, 1280)`` of one split, in manifest order.

    ``weights=None`` (random initialisation, for tests) is never cached, since it differs
    from one process to the next. ``extractor`` reuses an already built extractor model.
    """
    cache_file = None
    if weights is not None:
        tag = "imagenet" if weights == "imagenet" else _file_tag(weights)
        folder = Path(cache_dir or default_cache_dir()) / "features" / manifest.digest / f"mobilenet_v2-{tag}-{image_size}"
        cache_file = folder / f"{split}.npy"
        if cache_file.exists():
            return np.load(cache_file)
    x, _ = load_images(manifest, split, image_size, cache_dir=cache_dir)
    extractor = extractor or mobilenet_v2_feature_extractor(image_size, weights)
    features = extract(extractor, x, batch_size)
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(cache_file.name + ".tmp.npy")
        np.save(tmp, features)
        os.replace(tmp, cache_file)
    return features


def extract(extractor, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Run ``extractor`` over uint8 images in batches (keeps memory flat for big splits)."""
    from search.data import make_dataset

    dummy = np.zeros(len(images), dtype=np.int32)
    ds = make_dataset(images, dummy, batch_size=batch_size).map(lambda x, y: x)
    return np.asarray(extractor.predict(ds, verbose=0), dtype=np.float32)


def _file_tag(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()[:12]
