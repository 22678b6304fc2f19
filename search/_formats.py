"""Every deployable format in one place: its file in an export bundle, how it is written from a
Keras model, and how it is loaded back and run in its own runtime.

A loaded model of any format is a :class:`LoadedModel`: raw RGB pixels 0-255 in (uint8 or
float, ``(n, S, S, 3)``), class probabilities out. The project's models carry their
preprocessing (``Rescaling``) inside, so no format needs anything but the class names.

Optional runtimes and converters (onnxruntime, tf2onnx, ai-edge-litert) are imported only
when their format is used, and a missing one is a :class:`FormatError` naming the pip extra.
A new format is one :func:`register_format` call with its :class:`Format` (from any module):
its bundle file, writer, loader, tolerance, place in the order a bundle is opened in, whether
``--format`` names it, and the packages whose versions ``export.json`` records.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from search._files import first_line, replaced_atomically

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
    """Everything about one deployable format; :func:`register_format` makes it one."""

    name: str
    filename: str  # inside a bundle; a file given by name is this format by its extension
    write: Callable[[Any, Path], None]  # (Keras model, path): writes the whole file or nothing
    load: Callable[[Path], LoadedModel]
    max_abs_diff: float | None  # the check's tolerance on probabilities; None: not held to one
    min_agreement: float  # the share of sample images whose top-1 class must match Keras'
    # Where it comes in the order a bundle folder is opened in (lower first).
    preference: float
    cli: bool = True  # named in --format (False: written on another flag's say, --quantize)
    distributions: tuple[str, ...] = ()  # pip packages whose versions export.json records
    # Whether a path given by name holds this format (default: a file with filename's
    # extension); a bundle's own file name is this format before any rule.
    holds: Callable[[Path], bool] | None = None

    def recognizes(self, path: Path) -> bool:
        if self.holds is not None:
            return self.holds(path)
        suffix = Path(self.filename).suffix
        return bool(suffix) and not path.is_dir() and path.suffix == suffix


class LoadedModel:
    """A model of any format, run by its own runtime, with Keras' shape attributes so that
    scoring code reads it like a Keras model."""

    def __init__(
        self,
        path: Path,
        format: str,
        runtime: str,
        image_size: int,
        num_outputs: int,
        run_batch: Callable[[np.ndarray], np.ndarray],
    ):
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
            raise ValueError(
                f"{self.path} takes images of {self.image_size} x {self.image_size} x 3, "
                f"not {' x '.join(map(str, shape))}"
            )
        out = [
            np.asarray(self._run_batch(np.asarray(images[i : i + batch_size], dtype=np.float32)))
            for i in range(0, len(images), batch_size)
        ]
        return np.concatenate(out).astype(np.float32, copy=False)


def _version(dist: str, missing: str = "?") -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return missing


def _image_input(path: Path, shape: Any, outputs: Any) -> tuple[int, int]:
    """(image size, outputs) from a model's declared input and output shapes."""
    dims = [
        None if d in (None, -1) or not isinstance(d, (int, np.integer)) else int(d) for d in shape
    ]
    if len(dims) != 4 or dims[3] != 3 or dims[1] is None or dims[1] != dims[2]:
        raise FormatError(
            f"{path} takes input of shape {list(shape)}, not square RGB images (batch, S, S, 3)"
        )
    out = list(outputs)
    if len(out) != 2 or not isinstance(out[-1], (int, np.integer)) or out[-1] < 1:
        raise FormatError(f"{path} has output shape {out}, not (batch, classes)")
    return dims[1], int(out[-1])


def _unloadable(path: Path, kind: str, exc: Exception) -> FormatError:
    return FormatError(
        f"{path} is not a loadable {kind}: {type(exc).__name__}: {first_line(exc, 300)}"
    )


@contextlib.contextmanager
def _quiet():
    """Converters print progress ("Saved artifact at ...") and deprecation warnings on stdout
    and stderr; the command's own output must stay readable (and --json parseable)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


# --- Keras ----------------------------------------------------------------------------------


def write_keras(model, path: Path) -> None:
    """The one Keras writer: ``model.keras`` whole or not at all (a kill mid-save never
    leaves half a model in place)."""
    with replaced_atomically(path) as tmp:
        model.save(tmp)


def load_keras(path: Path):
    """The one Keras loader: the model (uncompiled), or a one-line :class:`FormatError`."""
    import keras

    _check_keras_archive(Path(path))
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:
        raise _unloadable(path, "Keras model", exc) from exc


def _check_keras_archive(path: Path) -> None:
    """Refuse an empty or damaged ``.keras`` file by what it is: Keras says "File not found"
    of any ``.keras`` file that is not a whole zip archive."""
    import zipfile

    if path.suffix != ".keras" or not path.is_file():
        return
    size = path.stat().st_size
    if size == 0:
        raise FormatError(
            f"{path} is empty (0 bytes): the model was not saved whole; save it again"
        )
    if not zipfile.is_zipfile(path):
        raise FormatError(
            f"{path} is damaged ({size:,} bytes, not a whole .keras zip archive: cut short "
            "or overwritten); save or export the model again"
        )


def _load_keras(path: Path) -> LoadedModel:
    model = load_keras(path)
    size, outputs = _image_input(path, model.input_shape, model.output_shape)
    return LoadedModel(
        path,
        "keras",
        f"Keras {_version('keras')} (TensorFlow {_version('tensorflow')})",
        size,
        outputs,
        model.predict_on_batch,
    )


# --- TensorFlow SavedModel ------------------------------------------------------------------


def _write_saved_model(model, path: Path) -> None:
    with replaced_atomically(path) as tmp:
        shutil.rmtree(tmp, ignore_errors=True)  # a folder an interrupted write left
        with _quiet():
            model.export(str(tmp), format="tf_saved_model", verbose=False)
        shutil.rmtree(path, ignore_errors=True)  # a folder is renamed only where none is


def _load_saved_model(path: Path) -> LoadedModel:
    import tensorflow as tf

    try:
        with _quiet():
            loaded = tf.saved_model.load(str(path))
        serve = loaded.signatures["serving_default"]
    except Exception as exc:
        raise _unloadable(
            path, "TensorFlow SavedModel (with a serving_default signature)", exc
        ) from exc
    ((name, spec),) = serve.structured_input_signature[1].items()
    (out_spec,) = serve.structured_outputs.values()
    size, outputs = _image_input(path, spec.shape.as_list(), out_spec.shape.as_list())

    def run(x: np.ndarray) -> np.ndarray:
        (out,) = serve(**{name: tf.constant(x)}).values()
        return out.numpy()

    return LoadedModel(
        path,
        "savedmodel",
        f"TensorFlow {tf.__version__} (SavedModel serving_default)",
        size,
        outputs,
        run,
    )


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
        with replaced_atomically(path) as tmp:
            tmp.write_bytes(flat)

    return write


def _tflite_interpreter(path: Path, threads: int | None = None):
    """LiteRT's interpreter (ai-edge-litert), the runtime phones use; TensorFlow's own
    tf.lite.Interpreter (deprecated, same kernels) where it is not installed. ``threads``:
    the interpreter's thread count (None: the runtime's default)."""
    if importlib.util.find_spec("ai_edge_litert") is not None:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter(
            model_path=str(path), num_threads=threads
        ), f"LiteRT {_version('ai-edge-litert')} (ai-edge-litert)"
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (
            tf.lite.Interpreter(model_path=str(path), num_threads=threads),
            f"tf.lite.Interpreter (TensorFlow {tf.__version__}; {EXTRA} for LiteRT)",
        )


def _tflite_loader(format_name: str) -> Callable[[Path], LoadedModel]:
    def load(path: Path) -> LoadedModel:
        try:
            interpreter, runtime = _tflite_interpreter(path)
            interpreter.allocate_tensors()
        except Exception as exc:
            raise _unloadable(path, "TFLite model", exc) from exc
        (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
        size, outputs = _image_input(
            path, list(inp.get("shape_signature", inp["shape"])), list(out["shape"])
        )
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
    if not getattr(model, "_called", True):
        # Keras exports only a model that has run; a search times one before it trains.
        model(np.zeros((1, *model.input_shape[1:]), "float32"))
    with replaced_atomically(path) as tmp, _quiet():
        model.export(str(tmp), format="onnx", verbose=False)


def _onnx_session(path: Path, threads: int | None = None):
    """onnxruntime's CPU session of ``path`` (``threads`` intra-op threads; None: the
    runtime's default) and the runtime's name."""
    if importlib.util.find_spec("onnxruntime") is None:
        raise FormatError(f"running {path} needs onnxruntime, which is not installed: {EXTRA}")
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session, f"onnxruntime {onnxruntime.__version__} (CPUExecutionProvider)"


def _load_onnx(path: Path) -> LoadedModel:
    try:
        session, runtime = _onnx_session(path)
    except FormatError:
        raise
    except Exception as exc:
        raise _unloadable(path, "ONNX model", exc) from exc
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    size, outputs = _image_input(path, inp.shape, out.shape)

    def run(x: np.ndarray) -> np.ndarray:
        return session.run([out.name], {inp.name: x})[0]

    return LoadedModel(path, "onnx", runtime, size, outputs, run)


FORMATS: dict[str, Format] = {}


def register_format(fmt: Format) -> Format:
    """Make ``fmt`` a format of bundles, ``--format``, ``open_model`` and ``format_of``."""
    existing = FORMATS.get(fmt.name)
    if existing is not None and existing != fmt:
        raise ValueError(f"format {fmt.name!r} is already registered")
    FORMATS[fmt.name] = fmt
    return fmt


def _is_saved_model(path: Path) -> bool:
    return path.is_dir() and (path / "saved_model.pb").exists()


# The order a bundle folder is opened in: the reference Keras file first, then the other
# float formats, the lossy int8 variant last.
for _fmt in [
    Format("keras", "model.keras", write_keras, _load_keras, FLOAT_MAX_ABS_DIFF, 1.0, preference=0),
    Format(
        "savedmodel",
        "saved_model",
        _write_saved_model,
        _load_saved_model,
        FLOAT_MAX_ABS_DIFF,
        1.0,
        preference=1,
        holds=_is_saved_model,
    ),
    Format(
        "tflite",
        "model.tflite",
        _tflite_writer(False),
        _tflite_loader("tflite"),
        FLOAT_MAX_ABS_DIFF,
        1.0,
        preference=3,
        distributions=("ai-edge-litert",),
    ),
    Format(
        "tflite-int8",
        "model-int8.tflite",
        _tflite_writer(True),
        _tflite_loader("tflite-int8"),
        None,
        QUANTIZED_MIN_AGREEMENT,
        preference=4,
        cli=False,
        distributions=("ai-edge-litert",),
    ),
    Format(
        "onnx",
        "model.onnx",
        _write_onnx,
        _load_onnx,
        FLOAT_MAX_ABS_DIFF,
        1.0,
        preference=2,
        distributions=("tf2onnx", "onnx", "onnxruntime"),
    ),
]:
    register_format(_fmt)


def by_preference() -> list[str]:
    """Format names in the order a bundle folder is opened in."""
    return sorted(FORMATS, key=lambda name: FORMATS[name].preference)


def cli_formats() -> list[str]:
    """What ``--format`` accepts (``--quantize`` adds the int8 variant of tflite)."""
    return [name for name, fmt in FORMATS.items() if fmt.cli]


def format_versions() -> dict[str, str]:
    """The installed version of every package a format names (``"not installed"``)."""
    dists = dict.fromkeys(d for fmt in FORMATS.values() for d in fmt.distributions)
    return {dist: _version(dist, "not installed") for dist in dists}


def format_of(path: Path) -> str:
    """Which format a file or folder holds: a bundle's own file name first (model-int8.tflite
    is the int8 variant), then each format's rule in order of preference."""
    for name in [*(n for n in FORMATS if FORMATS[n].filename == path.name), *by_preference()]:
        if FORMATS[name].recognizes(path):
            return name
    if path.is_dir():
        raise FormatError(
            f"{path} is neither an export bundle (no export.json) nor a TensorFlow "
            "SavedModel folder (no saved_model.pb)"
        )
    suffixes = list(
        dict.fromkeys(Path(f.filename).suffix for f in FORMATS.values() if Path(f.filename).suffix)
    )
    given = ", ".join(suffixes[:-1]) + (f" or {suffixes[-1]}" if len(suffixes) > 1 else suffixes[0])
    raise FormatError(
        f"{path} is not a model this project reads: give a {given} file, "
        "a SavedModel folder, or an export bundle folder"
    )


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
    return (
        sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        if path.is_dir()
        else path.stat().st_size
    )
