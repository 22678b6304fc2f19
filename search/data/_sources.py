"""Data sources: what a trial asks of data, with plain arrays behind it.

- ``ArrayData``: arrays already in memory (tests, benchmarks, ``--synthetic``), resized on
  demand to the input size a trial picks;
- ``ManifestData``: the project's dataset (split manifest, per-size image cache on disk, frozen
  features cached on disk).

Every source hands out ``arrays(split, size)``, ``dataset(split, size, batch_size, shuffle)``
(always through :func:`make_dataset`, which gathers batches by index instead of embedding the
arrays in the graph) and ``features(split, size, key, extractor)``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from search.data._cache import default_cache_dir, load_images, make_dataset, predict_in_batches
from search.data._split import SPLITS


class DataSource:
    """What trials ask of data; subclasses say where the arrays come from."""

    class_names: list[str]
    # Memory caches are not pickled: a trial's child process (search.isolation) gets the
    # source without them and fills its own (ManifestData's from the disk caches).
    _MEMORY_CACHES: tuple[str, ...] = ("_features",)

    def arrays(self, split: str, image_size: int) -> tuple[np.ndarray, np.ndarray]:
        """uint8 images ``(N, S, S, 3)`` and int32 labels ``(N,)`` of one split."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What the data is, recorded beside results (source, digest, classes, counts)."""
        raise NotImplementedError

    def labels(self, split: str) -> np.ndarray:
        """int32 labels of a split, in the order of ``arrays`` (no images are loaded)."""
        raise NotImplementedError

    def groups(self, split: str) -> np.ndarray:
        """Duplicate-group ids of a split's images, in the order of ``arrays``, unique across
        splits (copies of one picture share one). Without deduplication every image is its
        own group."""
        offset = {name: i * 10**9 for i, name in enumerate(SPLITS)}[split]
        return offset + np.arange(len(self.labels(split)), dtype=np.int64)

    def dataset(self, split: str, image_size: int, batch_size: int, shuffle: bool, seed: int = 0):
        x, y = self.arrays(split, image_size)
        return make_dataset(x, y, batch_size=batch_size, shuffle=shuffle, seed=seed)

    def features(
        self, split: str, image_size: int, key: str | None, extractor, dtype=np.float32
    ) -> tuple[Any, np.ndarray]:
        """``extractor``'s outputs over a split's images, as ``dtype``, with the labels: one
        array, or a tuple of arrays for an extractor with several outputs (the activations a
        fine-tuning cut crosses).

        ``key`` names what the extractor computes (backbone, weights, size, cut); results are
        cached under it. ``None`` (random-init weights: every model has its own backbone)
        computes with this model's extractor and caches nothing.
        """
        cache = self._feature_cache
        if key is not None and (split, key) in cache:
            return cache[(split, key)]
        f, y = self._compute_features(split, image_size, key, extractor, dtype)
        f = tuple(f) if isinstance(f, (list, tuple)) else f
        if key is not None:
            cache[(split, key)] = (f, y)
        return f, y

    def _compute_features(self, split, image_size, key, extractor, dtype):
        x, y = self.arrays(split, image_size)
        out = predict_in_batches(extractor, x)
        if isinstance(out, list):
            return [o.astype(dtype, copy=False) for o in out], y
        return out.astype(dtype, copy=False), y

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for name in self._MEMORY_CACHES:
            state[name] = {}
        return state

    @property
    def _feature_cache(self) -> dict:
        if not hasattr(self, "_features"):
            self._features: dict = {}
        return self._features


class ArrayData(DataSource):
    """Train/val/test arrays held in memory; uint8 images (N,S,S,3), int labels (N,)."""

    _MEMORY_CACHES = ("_features", "_resized")

    def __init__(
        self,
        splits: dict[str, tuple[np.ndarray, np.ndarray]],
        class_names: Sequence[str],
        name: str = "arrays",
    ):
        missing = [s for s in SPLITS if s not in splits]
        if missing:
            raise ValueError(f"ArrayData needs splits {SPLITS}; missing {missing}")
        self._splits = {
            k: (np.asarray(x), np.asarray(y, dtype=np.int32)) for k, (x, y) in splits.items()
        }
        self.class_names = list(class_names)
        self.name = name
        self._resized: dict[tuple[str, int], np.ndarray] = {}

    def arrays(self, split: str, image_size: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = self._splits[split]
        if x.shape[1] == image_size:
            return x, y
        key = (split, int(image_size))
        if key not in self._resized:
            import tensorflow as tf

            resized = tf.image.resize(x, (image_size, image_size)).numpy()
            self._resized[key] = np.clip(np.round(resized), 0, 255).astype(np.uint8)
        return self._resized[key], y

    def labels(self, split: str) -> np.ndarray:
        return self._splits[split][1]

    def describe(self) -> dict[str, Any]:
        digest = hashlib.sha256()
        for split in SPLITS:
            x, y = self._splits[split]
            digest.update(np.ascontiguousarray(x).tobytes())
            digest.update(np.ascontiguousarray(y).tobytes())
        return {
            "source": self.name,
            "digest": digest.hexdigest()[:16],
            "class_names": self.class_names,
            "counts": {s: int(len(self._splits[s][1])) for s in SPLITS},
        }


class ManifestData(DataSource):
    """The project's dataset: a split manifest, its per-size image cache, cached features.

    ``load_images`` memory-maps its per-size disk cache, so holding a split costs little; only
    the most recently used size is kept per split all the same.
    """

    _MEMORY_CACHES = ("_features", "_current")

    def __init__(
        self,
        manifest: Any,
        *,
        subset: float | None = None,
        seed: int = 0,
        cache_dir: str | os.PathLike | None = None,
        progress: bool = True,
    ):
        self.manifest = manifest
        self.progress = progress  # decode bars (--no-progress hides them)
        self.class_names = list(manifest.class_names)
        self.subset = subset
        self.seed = seed
        self.cache_dir = str(cache_dir) if cache_dir is not None else None
        self._current: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}

    def arrays(self, split: str, image_size: int) -> tuple[np.ndarray, np.ndarray]:
        held = self._current.get(split)
        if held is not None and held[0] == image_size:
            return held[1], held[2]
        self._current.pop(split, None)  # drop the old size before loading the new one
        x, y = load_images(
            self.manifest,
            split,
            image_size,
            cache_dir=self.cache_dir,
            verbose=getattr(self, "progress", True),
        )
        keep = self._keep(split, y)
        if keep is not None:
            x, y = x[keep], y[keep]
        self._current[split] = (image_size, x, y)
        return x, y

    def _compute_features(self, split, image_size, key, extractor, dtype):
        from search.data._features import cached_features

        f = cached_features(
            self.manifest,
            split,
            image_size,
            key,
            extractor,
            cache_dir=self.cache_dir,
            dtype=dtype,
            verbose=getattr(self, "progress", True),
        )
        y = self._manifest_labels(split)
        keep = self._keep(split, y)
        if keep is not None:
            f = [a[keep] for a in f] if isinstance(f, list) else f[keep]
            y = y[keep]
        return f, y

    def labels(self, split: str) -> np.ndarray:
        """Labels in the order of ``arrays`` (thinned like it for --subset)."""
        y = self._manifest_labels(split)
        keep = self._keep(split, y)
        return y if keep is None else y[keep]

    def groups(self, split: str) -> np.ndarray:
        """The split manifest's duplicate groups (exact and near copies), thinned like ``labels``."""
        g = np.array([int(e["group"]) for e in self.manifest.subset(split)], dtype=np.int64)
        keep = self._keep(split, self._manifest_labels(split))
        return g if keep is None else g[keep]

    def _manifest_labels(self, split: str) -> np.ndarray:
        """Labels in manifest order (the order of load_images and cached features)."""
        names = self.class_names
        return np.array(
            [names.index(e["label"]) for e in self.manifest.subset(split)], dtype=np.int32
        )

    def _keep(self, split: str, y: np.ndarray) -> np.ndarray | None:
        # --subset thins the training split only: validation stays whole so trials are
        # compared on the same images.
        if split != "train" or self.subset is None or self.subset >= 1:
            return None
        return stratified_subset(y, self.subset, self.seed)

    def describe(self) -> dict[str, Any]:
        return {
            "source": "manifest",
            "digest": self.manifest.digest,
            "data_root": getattr(self.manifest, "portable_data_root", lambda: None)(),
            "class_names": self.class_names,
            "counts": {s: len(self.manifest.subset(s)) for s in SPLITS},
            "subset": self.subset,
        }


def stratified_subset(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of ``fraction`` of each class (at least one image per class)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"subset fraction must be in (0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        n = max(1, int(round(len(idx) * fraction)))
        keep.append(rng.choice(idx, size=n, replace=False))
    return np.sort(np.concatenate(keep))


def load_search_data(
    data: str | os.PathLike | None = None,
    *,
    results: str | os.PathLike | None = None,
    subset: float | None = None,
    seed: int = 0,
    keep_split: bool | None = None,
    progress: bool = True,
) -> ManifestData:
    """The real dataset: located (flag, then $ART_DATA, then ./data), split once, cached.

    ``keep_split`` (``--keep-split``) keeps the dataset's own train/val/test folders instead of
    re-splitting them; ``progress=False`` (``--no-progress``) hides the scan and decode bars.
    """
    from search.data._locate import locate_data
    from search.data._split import prepare_split

    manifest = prepare_split(
        locate_data(data), results_dir=results, keep_split=keep_split, progress=progress
    )
    return ManifestData(
        manifest, subset=subset, seed=seed, cache_dir=default_cache_dir(results), progress=progress
    )


def synthetic_data(
    n_train: int = 40,
    n_val: int = 20,
    n_test: int = 20,
    image_size: int = 32,
    num_classes: int = 5,
    seed: int = 0,
) -> ArrayData:
    """A tiny learnable dataset: each class is a noisy image of its own colour."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, size=(num_classes, 3))

    def split(n: int):
        y = np.arange(n) % num_classes
        rng.shuffle(y)
        noise = rng.normal(0, 25, size=(n, image_size, image_size, 3))
        x = np.clip(palette[y][:, None, None, :] + noise, 0, 255).astype(np.uint8)
        return x, y.astype(np.int32)

    return ArrayData(
        {"train": split(n_train), "val": split(n_val), "test": split(n_test)},
        class_names=[f"class_{i}" for i in range(num_classes)],
        name=f"synthetic(seed={seed}, size={image_size})",
    )
