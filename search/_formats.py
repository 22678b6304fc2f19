"""Every deployable format in one place: its file in an export bundle, how it is written from a
Keras model, and how it is loaded back and run in its own runtime.

A loaded model of any format is a :class:`LoadedModel`: raw RGB pixels 0-255 in (uint8 or
float, ``(n, S, S, 3)``), class probabilities out. The project's models carry their
preprocessing (``Rescaling``) inside, so no format needs anything but the class names.

Optional runtimes and converters (onnxruntime, tf2onnx, ai-edge-litert) are imported only
when their format is used, and a missing one is a :class:`FormatError` naming the pip extra.
A new format is one :class:`Format` entry in :data:`FORMATS`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import os
import shutil
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np

EXTRA = 'pip install "art-arch-search[export]"'

# Float formats compute the same network in float32 with other kernels, so they may differ
# from Keras only by rounding: measured at most 1.4e-5 on the MobileNetV2 baseline over the
# 1,092 test images (README, "Export and predict").
FLOAT_MAX_ABS_DIFF = 1e-4
# Dynamic-range int8 quantizes the weights, so it changes the answer a little by design
# (the same model: probabilities moved by up to 0.61, 6 of 1,092 top-1 classes changed).
# It is held to the top-1 class on 95% of the sample and reported image by image.
QUANTIZED_MIN_AGREEMENT = 0.95


class FormatError(ValueError):
    """A format that cannot be written or read here; the message is one line for the user."""


@dataclass(frozen=True)
class Format:
    name: str
    filename: str  # inside a bundle
    runtime: str  # what runs it, in words
    write: Callable[[Any, Path], None]
    load: Callable[[Path], "LoadedModel"]
    max_abs_diff: float | None  # the check's tolerance on probabilities; None: not held to one
    min_agreement: float  # the share of sample images whose top-1 class must match Keras'


class LoadedModel:
    """A model of any format, run by its own runtime, with Keras' shape attributes so that
    scoring code reads it like a Keras model."""

    def __init__(self, path: Path, format: str, runtime: str, image_size: int, num_outputs: int,
                 run_batch: Callable[[np.ndarray], np.ndarray]):
        self.path = Path(path)
        self.format = format
        self.runtime = runtime
        self.image_size = int(image_size)
        self.num_outputs = int(num_outputs)
        self._run_batch = run_batch

    @property
    def input_shape(self) -> tuple:
        return (None, self.image_size, self.image_size, 3)

    @property
    def output_shape(self) -> tuple:
        return (None, self.num_outputs)

    def predict(self, images: np.ndarray, batch_size: int = 64, verbose: int = 0) -> np.ndarray:
        """Probabilities for ``(n, S, S, 3)`` pixels 0-255, fed ``batch_size`` at a time (a
        memory-mapped array is read one batch at a time)."""
        if len(images) == 0:
            return np.zeros((0, self.num_outputs), dtype=np.float32)
        shape = tuple(images.shape[1:])
        if shape != (self.image_size, self.image_size, 3):
            raise ValueError(f"{self.path} takes images of {self.image_size} x {self.image_size} x 3, "
                             f"not {' x '.join(map(str, shape))}")
        out = [np.asarray(self._run_batch(np.asarray(images[i:i + batch_size], dtype=np.float32)))
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out).astype(np.float32, copy=False)

    def describe(self) -> str:
        return f"{self.format} model {self.path}, run by {self.runtime}"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def _image_input(path: Path, shape: Any, outputs: Any) -> tuple[int, int]:
    """(image size, outputs) from a model's declared input and output shapes."""
    dims = [None if d in (None, -1) or not isinstance(d, (int, np.integer)) else int(d) for d in shape]
    if len(dims) != 4 or dims[3] != 3 or dims[1] is None or dims[1] != dims[2]:
        raise FormatError(f"{path} takes input of shape {list(shape)}, not square RGB images "
                          "(batch, S, S, 3)")
    out = list(outputs)
    if len(out) != 2 or not isinstance(out[-1], (int, np.integer)) or out[-1] < 1:
        raise FormatError(f"{path} has output shape {out}, not (batch, classes)")
    return dims[1], int(out[-1])


def _unloadable(path: Path, kind: str, exc: Exception) -> FormatError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return FormatError(f"{path} is not a loadable {kind}: {type(exc).__name__}: {reason[:300]}")


@contextlib.contextmanager
def _quiet():
    """Converters print progress ("Saved artifact at ...") and deprecation warnings on stdout
    and stderr; the command's own output must stay readable (and --json parseable)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _replace(tmp: Path, target: Path) -> None:
    """Move a finished file or folder into place, so a failed write never leaves half a file."""
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    os.replace(tmp, target)


# --- Keras ----------------------------------------------------------------------------------

def _write_keras(model, path: Path) -> None:
    tmp = path.with_name(path.stem + ".tmp.keras")
    model.save(tmp)
    _replace(tmp, path)


def _load_keras(path: Path) -> LoadedModel:
    import keras

    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:
        raise _unloadable(path, "Keras model", exc) from exc
    size, outputs = _image_input(path, model.input_shape, model.output_shape)
    return LoadedModel(path, "keras", f"Keras {_version('keras')} (TensorFlow {_version('tensorflow')})",
                       size, outputs, model.predict_on_batch)


# --- TensorFlow SavedModel ------------------------------------------------------------------

def _write_saved_model(model, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    with _quiet():
        model.export(str(tmp), format="tf_saved_model", verbose=False)
    _replace(tmp, path)


def _load_saved_model(path: Path) -> LoadedModel:
    import tensorflow as tf

    try:
        with _quiet():
            loaded = tf.saved_model.load(str(path))
        serve = loaded.signatures["serving_default"]
    except Exception as exc:
        raise _unloadable(path, "TensorFlow SavedModel (with a serving_default signature)", exc) from exc
    (name, spec), = serve.structured_input_signature[1].items()
    (out_spec,) = serve.structured_outputs.values()
    size, outputs = _image_input(path, spec.shape.as_list(), out_spec.shape.as_list())

    def run(x: np.ndarray) -> np.ndarray:
        (out,) = serve(**{name: tf.constant(x)}).values()
        return out.numpy()

    return LoadedModel(path, "savedmodel", f"TensorFlow {tf.__version__} (SavedModel serving_default)",
                       size, outputs, run)


# --- TFLite (LiteRT) ------------------------------------------------------------------------

def _tflite_writer(quantize: bool) -> Callable[[Any, Path], None]:
    def write(model, path: Path) -> None:
        import tensorflow as tf

        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if quantize:
            # Dynamic-range quantization: int8 weights, float activations; no calibration data.
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        with _quiet():
            flat = converter.convert()
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(flat)
        _replace(tmp, path)

    return write


def _tflite_interpreter(path: Path):
    """LiteRT's interpreter (ai-edge-litert), the runtime phones use; TensorFlow's own
    tf.lite.Interpreter (deprecated, same kernels) where it is not installed."""
    if importlib.util.find_spec("ai_edge_litert") is not None:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter(model_path=str(path)), f"LiteRT {_version('ai-edge-litert')} (ai-edge-litert)"
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (tf.lite.Interpreter(model_path=str(path)),
                f"tf.lite.Interpreter (TensorFlow {tf.__version__}; {EXTRA} for LiteRT)")


def _tflite_loader(format_name: str) -> Callable[[Path], LoadedModel]:
    def load(path: Path) -> LoadedModel:
        try:
            interpreter, runtime = _tflite_interpreter(path)
            interpreter.allocate_tensors()
        except Exception as exc:
            raise _unloadable(path, "TFLite model", exc) from exc
        (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
        size, outputs = _image_input(path, list(inp.get("shape_signature", inp["shape"])), list(out["shape"]))
        allocated = [int(inp["shape"][0])]

        def run(x: np.ndarray) -> np.ndarray:
            if len(x) != allocated[0]:  # resizing reallocates, so only when the batch changes
                interpreter.resize_tensor_input(inp["index"], list(x.shape))
                interpreter.allocate_tensors()
                allocated[0] = len(x)
            interpreter.set_tensor(inp["index"], x.astype(inp["dtype"], copy=False))
            interpreter.invoke()
            return interpreter.get_tensor(out["index"]).copy()

        return LoadedModel(path, format_name, runtime, size, outputs, run)

    return load


# --- ONNX -----------------------------------------------------------------------------------

def _write_onnx(model, path: Path) -> None:
    # Keras' own exporter: on the TensorFlow backend it traces the model's serving function and
    # hands it to tf2onnx (patching tf2onnx for NumPy 2), so the input keeps its name and a
    # free batch dimension. It needs tf2onnx installed.
    if importlib.util.find_spec("tf2onnx") is None:
        raise FormatError(f"ONNX export needs tf2onnx, which is not installed: {EXTRA}")
    tmp = path.with_name(path.stem + ".tmp.onnx")
    with _quiet():
        model.export(str(tmp), format="onnx", verbose=False)
    _replace(tmp, path)


def _load_onnx(path: Path) -> LoadedModel:
    if importlib.util.find_spec("onnxruntime") is None:
        raise FormatError(f"running {path} needs onnxruntime, which is not installed: {EXTRA}")
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise _unloadable(path, "ONNX model", exc) from exc
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    size, outputs = _image_input(path, inp.shape, out.shape)

    def run(x: np.ndarray) -> np.ndarray:
        return session.run([out.name], {inp.name: x})[0]

    return LoadedModel(path, "onnx", f"onnxruntime {onnxruntime.__version__} (CPUExecutionProvider)",
                       size, outputs, run)


FORMATS: dict[str, Format] = {f.name: f for f in [
    Format("keras", "model.keras", "Keras", _write_keras, _load_keras, FLOAT_MAX_ABS_DIFF, 1.0),
    Format("savedmodel", "saved_model", "TensorFlow", _write_saved_model, _load_saved_model,
           FLOAT_MAX_ABS_DIFF, 1.0),
    Format("tflite", "model.tflite", "LiteRT", _tflite_writer(False), _tflite_loader("tflite"),
           FLOAT_MAX_ABS_DIFF, 1.0),
    Format("tflite-int8", "model-int8.tflite", "LiteRT", _tflite_writer(True),
           _tflite_loader("tflite-int8"), None, QUANTIZED_MIN_AGREEMENT),
    Format("onnx", "model.onnx", "onnxruntime", _write_onnx, _load_onnx, FLOAT_MAX_ABS_DIFF, 1.0),
]}
# The order a bundle folder is opened in: the reference Keras file first, then the other
# float formats, the lossy int8 variant last.
PREFERENCE = ("keras", "savedmodel", "onnx", "tflite", "tflite-int8")


def format_of(path: Path) -> str:
    """Which format a file or folder holds, from its name (a SavedModel: saved_model.pb inside)."""
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            return "savedmodel"
        raise FormatError(f"{path} is neither an export bundle (no export.json) nor a TensorFlow "
                          "SavedModel folder (no saved_model.pb)")
    if path.suffix == ".keras":
        return "keras"
    if path.suffix == ".onnx":
        return "onnx"
    if path.suffix == ".tflite":
        return "tflite-int8" if path.name == FORMATS["tflite-int8"].filename else "tflite"
    raise FormatError(f"{path} is not a model this project reads: give a .keras, .tflite or .onnx "
                      "file, a SavedModel folder, or an export bundle folder")


def load_format(path: Path, format_name: str | None = None) -> LoadedModel:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no model at {path}")
    return FORMATS[format_name or format_of(path)].load(path)


def checksum(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (relative names and bytes, in sorted order)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def size_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() \
        else path.stat().st_size
