"""The shared trial runner: build a model from ``hp``, train it, return one ``TrialRecord``.

Engines decide (keras-tuner's Oracle, Optuna's sampler); ``TrialRunner.run`` does the rest
the same way for both: seed, build (the space declares its hps), train through the space's
``fit`` with NaN guard and best-epoch weights, keep the best model so far, and record the row
in the study table. With ``isolate=True`` (what ``search.run`` uses) the training happens in a
fresh child process per trial (search/isolation.py), because TensorFlow keeps part of every
trained model alive in the process that trained it.

Data reaches a trial through a small data source with plain arrays behind it:

- ``ArrayData``: arrays already in memory (tests, benchmarks, ``--synthetic``), resized on
  demand to the input size a trial picks;
- ``ManifestData``: the project's dataset through ``search.data`` (split manifest, per-size
  image cache) and ``search.features`` (cached backbone features).
"""

from __future__ import annotations

import datetime as _dt
import gc
import hashlib
import math
import time
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from search.results import TrialRecord
from spaces.registry import BuildContext, Space

SPLITS = ("train", "val", "test")


# ----------------------------------------------------------------------------------------------
# Memory
# ----------------------------------------------------------------------------------------------
def rss_mb(field: str = "VmRSS") -> float | None:
    """Resident memory of this process in MiB, from /proc (None where there is no /proc).

    ``VmRSS`` counts everything resident, including pages of memory-mapped files such as the
    image cache (clean file pages the kernel can drop at any time); ``RssAnon`` counts only
    the process's own allocations, the part that can run a machine out of memory.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


# ----------------------------------------------------------------------------------------------
# Data sources
# ----------------------------------------------------------------------------------------------
class _DataSource:
    """What trials ask of data; subclasses say where the arrays come from."""

    class_names: list[str]

    def arrays(self, split: str, image_size: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def dataset(self, split: str, image_size: int, batch_size: int, shuffle: bool, seed: int = 0):
        import tensorflow as tf

        x, y = self.arrays(split, image_size)
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle:
            ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    def features(self, split: str, image_size: int, weights: str | None,
                 extractor) -> tuple[np.ndarray, np.ndarray]:
        """Pooled backbone features of a split, computed by ``extractor`` (image -> vector).

        Cached per (split, size) only when ``weights`` names fixed pretrained weights; with
        random-init weights (None) every model has its own backbone, so nothing is shared.
        """
        key = (split, int(image_size), weights)
        if weights is not None and key in self._feature_cache:
            return self._feature_cache[key]
        x, y = self.arrays(split, image_size)
        f = extractor.predict(x, batch_size=64, verbose=0).astype(np.float32)
        if weights is not None:
            self._feature_cache[key] = (f, y)
        return f, y

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError

    # Memory caches are not pickled: a trial's child process (search.isolation) gets the
    # source without them and fills its own (ManifestData's from the disk caches).
    _MEMORY_CACHES: tuple[str, ...] = ("_features",)

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


class ArrayData(_DataSource):
    """Train/val/test arrays held in memory; uint8 images (N,S,S,3), int labels (N,)."""

    _MEMORY_CACHES = ("_features", "_resized")

    def __init__(self, splits: dict[str, tuple[np.ndarray, np.ndarray]], class_names: Sequence[str],
                 name: str = "arrays"):
        missing = [s for s in SPLITS if s not in splits]
        if missing:
            raise ValueError(f"ArrayData needs splits {SPLITS}; missing {missing}")
        self._splits = {k: (np.asarray(x), np.asarray(y, dtype=np.int32)) for k, (x, y) in splits.items()}
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


class ManifestData(_DataSource):
    """The project's dataset through ``search.data`` and ``search.features``.

    ``load_images`` memory-maps its per-size disk cache, so holding a split costs little; only
    the most recently used size is kept per split all the same.
    """

    _MEMORY_CACHES = ("_features", "_current")

    def __init__(self, manifest: Any, *, subset: float | None = None, seed: int = 0,
                 cache_dir: str | None = None):
        self.manifest = manifest
        self.class_names = list(manifest.class_names)
        self.subset = subset
        self.seed = seed
        self.cache_dir = cache_dir
        self._current: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}

    def arrays(self, split: str, image_size: int) -> tuple[np.ndarray, np.ndarray]:
        from search.data import load_images

        held = self._current.get(split)
        if held is not None and held[0] == image_size:
            return held[1], held[2]
        self._current.pop(split, None)  # drop the old size before loading the new one
        x, y = load_images(self.manifest, split, image_size, cache_dir=self.cache_dir)
        keep = self._keep(split, y)
        if keep is not None:
            x, y = x[keep], y[keep]
        self._current[split] = (image_size, x, y)
        return x, y

    def dataset(self, split: str, image_size: int, batch_size: int, shuffle: bool, seed: int = 0):
        from search.data import make_dataset

        x, y = self.arrays(split, image_size)
        return make_dataset(x, y, batch_size=batch_size, shuffle=shuffle, seed=seed)

    def features(self, split: str, image_size: int, weights: str | None, extractor):
        if weights is None:
            # Random-init backbones differ per model: use this model's own backbone.
            return super().features(split, image_size, weights, extractor)
        key = (split, int(image_size), weights)
        if key not in self._feature_cache:
            from search.features import backbone_features

            # search.features computes MobileNetV2 features ([-1, 1] scaling, pooled), the
            # same function as the mobilenet space's frozen backbone, cached on disk.
            f = backbone_features(self.manifest, split, image_size=image_size, weights=weights,
                                  cache_dir=self.cache_dir)
            y = self.labels(split)
            keep = self._keep(split, y)
            if keep is not None:
                f, y = f[keep], y[keep]
            self._feature_cache[key] = (np.asarray(f, dtype=np.float32), y)
        return self._feature_cache[key]

    def labels(self, split: str) -> np.ndarray:
        """Labels in manifest order (the order of load_images and backbone_features)."""
        names = self.class_names
        return np.array([names.index(e["label"]) for e in self.manifest.subset(split)], dtype=np.int32)

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
            "data_root": getattr(self.manifest, "data_root", None),
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


def load_search_data(data: str | None = None, *, results: str | None = None,
                     subset: float | None = None, seed: int = 0) -> ManifestData:
    """The real dataset via the project's data API (flag, then $ART_DATA, then ./data)."""
    from search.data import default_cache_dir, locate_data, prepare_split

    data_dir = locate_data(data)
    manifest = prepare_split(data_dir, results_dir=results)
    return ManifestData(manifest, subset=subset, seed=seed,
                        cache_dir=str(default_cache_dir(results)))


def synthetic_data(n_train: int = 40, n_val: int = 20, n_test: int = 20, image_size: int = 32,
                   num_classes: int = 5, seed: int = 0) -> ArrayData:
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


# ----------------------------------------------------------------------------------------------
# Callbacks
# ----------------------------------------------------------------------------------------------
def _callbacks():
    import keras

    class HistoryRecorder(keras.callbacks.Callback):
        """Per-epoch curves that survive a fit that raises (pruned or interrupted trials) and
        span several fits (head, then fine-tuning)."""

        def __init__(self):
            super().__init__()
            self.history: dict[str, list[float]] = {}
            self.nan_at: int | None = None
            self._epoch = 0
            self._t0 = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch
            self._t0 = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)) and self.nan_at is None:
                self.nan_at = self._epoch

        def on_epoch_end(self, epoch, logs=None):
            for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
                if logs and key in logs:
                    self.history.setdefault(key, []).append(float(logs[key]))
            self.history.setdefault("epoch_time_s", []).append(time.perf_counter() - self._t0)
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)) and self.nan_at is None:
                self.nan_at = epoch

    class BestWeights(keras.callbacks.Callback):
        """Keep the weights of the best val_accuracy epoch of ``target`` (the whole model, even
        while a sub-model such as a head is the one being fitted) and restore them at the end,
        so the saved model is the one the trial's score describes."""

        def __init__(self, target):
            super().__init__()
            self.target = target
            self.best = -math.inf
            self.weights = None

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get("val_accuracy")
            if value is not None and float(value) > self.best:
                self.best = float(value)
                self.weights = self.target.get_weights()

        def restore(self):
            if self.weights is not None:
                self.target.set_weights(self.weights)

    return HistoryRecorder, BestWeights


# ----------------------------------------------------------------------------------------------
# Runner
# ----------------------------------------------------------------------------------------------
def hp_config(hp: Any) -> dict[str, Any]:
    """The active hyperparameter values of a trial, without engine bookkeeping entries."""
    values = dict(hp.values)
    out = {}
    for name, value in values.items():
        if name.startswith("tuner/"):  # keras-tuner Hyperband's epochs/bracket/round
            continue
        try:
            active = hp.is_active(name)
        except (KeyError, ValueError):
            active = True
        if active:
            # Exactly the engine's value (keras-tuner's stepped floats may read
            # 0.30000000000000004): the table must agree with the engine's own records.
            out[name] = value.item() if hasattr(value, "item") else value
    return out


class ConfigurationError(ValueError):
    """A configuration that cannot be trained (raised before any training)."""


class TrialRunner:
    """Runs one trial for any engine and records it in the study."""

    def __init__(self, space: Space, data: _DataSource, study, *, ctx: BuildContext | None = None,
                 batch_size: int = 32, seed: int = 0, max_params: int | None = 50_000_000,
                 verbose: int = 0, callbacks: Iterable = (), isolate: bool = False):
        self.space = space
        self.data = data
        self.study = study
        self.ctx = ctx or BuildContext(num_classes=len(data.class_names))
        self.batch_size = batch_size
        self.seed = seed
        self.max_params = max_params
        self.verbose = verbose
        # Extra callbacks for every trial (tests use one that interrupts a search).
        self.callbacks = list(callbacks)
        # Train each trial in a fresh child process (search.isolation): the search's memory
        # stays flat and a trial killed for memory becomes a FAIL row, not the search's end.
        self.isolate = isolate

    def run(self, hp: Any, *, trial_id: str, number: int, epochs: int,
            callbacks: Iterable = (), prune_exceptions: tuple[type[BaseException], ...] = ()
            ) -> TrialRecord:
        """Build, train and record one trial. Exceptions become FAIL rows; an exception in
        ``prune_exceptions`` becomes a PRUNED row; KeyboardInterrupt propagates.

        ``callbacks`` (an engine's, such as Optuna's pruning callback) see every epoch's logs,
        in this process even when the trial trains in a child.
        """
        child_peak_mb = None
        if self.isolate:
            from search.isolation import train_in_child

            record, child_peak_mb = train_in_child(
                self, hp, trial_id=trial_id, number=number, epochs=epochs,
                callbacks=callbacks, prune_exceptions=prune_exceptions)
        else:
            record = self.train(hp, trial_id=trial_id, number=number, epochs=epochs,
                                callbacks=callbacks, prune_exceptions=prune_exceptions)
        self.study.append(record)
        self.study.log_resources(record, rss_mb(), rss_mb("RssAnon"), child_peak_mb)
        return record

    def declare(self, hp: Any) -> dict[str, Any]:
        """Let the space declare its hyperparameters on ``hp`` and return the trial's config.

        Optuna samples a value when the space asks for it, so a trial's config exists only
        once the space has been built with it (``Space.declare``: no weights, the model
        thrown away).
        """
        import keras

        try:
            self.space.declare(hp, self.ctx)
        finally:
            keras.backend.clear_session()
        return hp_config(hp)

    def train(self, hp: Any, *, trial_id: str, number: int, epochs: int,
              callbacks: Iterable = (), prune_exceptions: tuple[type[BaseException], ...] = ()
              ) -> TrialRecord:
        """Build and train one trial in this process; checkpoint it if it is the best so far.

        Returns the row without writing it to the table (``run`` does that)."""
        import keras

        HistoryRecorder, BestWeights = _callbacks()
        started_at = _utc_now()
        t0 = time.perf_counter()
        recorder = HistoryRecorder()
        state, error, model, best = "FAIL", None, None, None
        params = trainable = input_size = None
        keras.utils.set_random_seed(self.seed + number)
        try:
            try:
                model = self.space.build(hp, self.ctx)
                params = int(model.count_params())
                input_size = _input_size(model)
                trainable = int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))
                if self.max_params is not None and params > self.max_params:
                    raise ConfigurationError(
                        f"model has {params:,} parameters, over the limit of {self.max_params:,}")
                best = BestWeights(model)
                self.space.fit(
                    hp, model, self.data, self.ctx, epochs=epochs, batch_size=self.batch_size,
                    verbose=self.verbose,
                    callbacks=[keras.callbacks.TerminateOnNaN(), recorder, best,
                               *self.callbacks, *callbacks],
                )
                if recorder.nan_at is not None:
                    error = f"loss became NaN/inf in epoch {recorder.nan_at}; training stopped"
                elif not recorder.history.get("val_accuracy"):
                    error = "no validation accuracy was recorded (zero epochs?)"
                else:
                    state = "COMPLETE"
            except prune_exceptions as exc:
                state, error = "PRUNED", str(exc) or "pruned"
            except Exception as exc:  # noqa: BLE001 - any failure is this trial's, not the search's
                error = f"{type(exc).__name__}: {exc}"[:2000]

            history = recorder.history
            val_acc = history.get("val_accuracy") or []
            best_epoch = int(np.argmax(val_acc)) if val_acc else None
            record = TrialRecord(
                study=self.study.name, engine=self.study.engine, algorithm=self.study.algorithm,
                space=self.study.space, trial_id=str(trial_id), number=int(number), state=state,
                config=hp_config(hp),
                val_accuracy=float(val_acc[best_epoch]) if best_epoch is not None else None,
                val_loss=(float(history["val_loss"][best_epoch])
                          if best_epoch is not None and len(history.get("val_loss", [])) > best_epoch
                          else None),
                epochs_run=len(history.get("epoch_time_s", [])),
                wall_time_s=round(time.perf_counter() - t0, 3),
                params=params, input_size=input_size, trainable_params=trainable, error=error,
                history=history,
                started_at=started_at, finished_at=_utc_now(),
            )
            if state == "COMPLETE":
                best.restore()
                self.study.save_if_best(record, model)
        finally:
            # Free this trial's graph before the next one: without clear_session Keras keeps
            # every model's layers in its global state and memory grows trial after trial.
            del model, best
            keras.backend.clear_session()
            gc.collect()
            _release_free_heap()
        return record

    def retrain(self, record: TrialRecord):
        """Train ``record``'s config again (same seed, same epochs) and return the model at its
        best validation epoch; used only when the best trial's checkpoint is gone."""
        import keras

        from search._optuna_hp import fixed_hyperparameters

        HistoryRecorder, BestWeights = _callbacks()
        hp = fixed_hyperparameters(record.config)
        keras.utils.set_random_seed(self.seed + record.number)
        model = self.space.build(hp, self.ctx)
        best = BestWeights(model)
        self.space.fit(hp, model, self.data, self.ctx, epochs=max(1, record.epochs_run),
                       batch_size=self.batch_size, verbose=self.verbose,
                       callbacks=[keras.callbacks.TerminateOnNaN(), best])
        best.restore()
        return model


def _input_size(model) -> int | None:
    """Side of a square image input (N, S, S, C); None for other inputs."""
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, tuple) and len(shape) == 4 and shape[1] == shape[2]:
        return int(shape[1]) if shape[1] is not None else None
    return None


def _release_free_heap() -> None:
    """Hand freed heap pages back to the OS (glibc only; a no-op elsewhere).

    Without it RSS stays at the largest trial's high-water mark, because glibc keeps freed
    arenas; with it RSS tracks live memory, so a real leak shows up and memory is shared
    fairly with the next, possibly bigger, trial.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
