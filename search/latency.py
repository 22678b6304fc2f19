"""What a model costs where it would ship: its latency in TFLite (LiteRT) and its file size,
and the limits a search holds its trials to.

:func:`measure_latency` converts a Keras model once to a float TFLite file (the writer
``search.export`` uses; int8 only when asked), runs it in LiteRT's interpreter on one random
image (batch 1) a few times to warm up, then ``runs`` timed times, and returns the median and
90th percentile in ms with the runtime, its thread count, the machine, the file's size and
what the measurement itself took. Latency does not depend on the weights, so an untrained
model measures the same as its trained self: a search measures a configuration before
training it and refuses it (:class:`Limits`) for the price of one conversion.

Size is the float TFLite file's size in MB (10**6 bytes): what ships, a little over
4 bytes per parameter (the graph and its metadata come on top).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# Timed calls per measurement, after WARMUP untimed ones: a p90 of 30 calls is the 27th.
RUNS = 30
WARMUP = 5
# One interpreter thread: a phone's big core, and the same number on a busy or a quiet
# machine (a search shares its CPUs with training).
THREADS = 1

# The files a search can time its models as (--latency-format; search._formats writes
# them): float TFLite in LiteRT (the default), its dynamic-range int8 variant, or ONNX in
# onnxruntime. The row's size_mb is that file's size.
LATENCY_FORMATS = ("tflite", "tflite-int8", "onnx")
# How a table heads a latency measured in each.
FORMAT_LABELS = {"tflite": "TFLite", "tflite-int8": "TFLite int8", "onnx": "ONNX"}

# What each objective beside accuracy minimizes: the row's field that holds it.
COSTS = {"latency": "latency_ms", "params": "params", "size": "size_mb"}
OBJECTIVES = ("accuracy", *(f"accuracy,{cost}" for cost in COSTS))
# A limited row field -> its flag, and its unit.
FLAGS = {"params": "--max-params", "latency_ms": "--max-latency-ms", "size_mb": "--max-size-mb"}
UNITS = {"params": "parameters", "latency_ms": "ms", "size_mb": "MB"}


def machine() -> str:
    """The CPU model, the CPUs visible and the OS: where a timing was taken."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs visible, {platform.system()} {platform.release()}"


def timed(call: Callable[[], Any], repeats: int) -> dict[str, float]:
    """``call()`` ``repeats`` times: median, 10th and 90th percentile in ms, and the count."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    ms = np.array(seconds) * 1000
    return {
        "median_ms": float(np.median(ms)),
        "p10_ms": float(np.percentile(ms, 10)),
        "p90_ms": float(np.percentile(ms, 90)),
        "calls": repeats,
    }


def measure_latency(
    model, *, fmt: str = "tflite", runs: int = RUNS, threads: int | None = THREADS
) -> dict[str, Any]:
    """``model`` (Keras, raw pixels in) written as ``fmt`` (one of ``LATENCY_FORMATS``: float
    TFLite, dynamic-range int8 TFLite, ONNX) and timed at batch 1 in its runtime (LiteRT,
    onnxruntime): ``{"median_ms", "p90_ms", "runs", "runtime", "threads", "machine",
    "format", "size_bytes", "measure_s"}``.

    Raises ``search.model_io.FormatError`` (or the converter's error) when it cannot convert."""
    from search._formats import FORMATS
    from search.console import native_lines_aside

    spec = FORMATS[fmt]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="latency-") as folder:
        path = Path(folder) / spec.filename
        spec.write(model, path)
        with native_lines_aside():  # LiteRT announces its XNNPACK delegate on stderr
            call, runtime = _batch_of_one(path, fmt, threads)
            for _ in range(WARMUP):
                call()
        times = timed(call, runs)
        size = path.stat().st_size
    return {
        "median_ms": round(times["median_ms"], 4),
        "p90_ms": round(times["p90_ms"], 4),
        "runs": runs,
        "runtime": runtime,
        "threads": threads if threads is not None else "the runtime's default",
        "machine": machine(),
        "format": spec.name,
        "size_bytes": size,
        "measure_s": round(time.perf_counter() - started, 3),
    }


# A latency within this fraction of a --max-latency-ms limit is measured NEAR_LIMIT_REPEATS
# times and the median kept. On the 2-core development machine one model's median moved
# 10-25% from one measurement (conversion, interpreter) to the next: a 192 px MobileNetV2
# measured 4.93 ms in a search under a 5 ms limit and 5.11-6.59 ms (median 5.44) in five
# measurements after it.
NEAR_LIMIT = 0.25
NEAR_LIMIT_REPEATS = 3


def measured_near(model, limit_ms: float | None, fmt: str = "tflite") -> dict[str, Any]:
    """:func:`measure_latency` as ``fmt``; where ``limit_ms`` is given and the figure falls
    within ``NEAR_LIMIT`` of it, the median of ``NEAR_LIMIT_REPEATS`` measurements (each of
    them in ``medians_ms``), so that one measurement's draw does not decide the limit."""
    first = measure_latency(model, fmt=fmt)
    if limit_ms is None or abs(first["median_ms"] - limit_ms) > NEAR_LIMIT * limit_ms:
        return first
    runs = [first, *(measure_latency(model, fmt=fmt) for _ in range(NEAR_LIMIT_REPEATS - 1))]
    medians = [r["median_ms"] for r in runs]
    middle = sorted(runs, key=lambda r: r["median_ms"])[len(runs) // 2]
    return {
        **middle,
        "medians_ms": medians,
        "measure_s": round(sum(r["measure_s"] for r in runs), 3),
    }


def measured_once(
    model, cache: Path | None, limit_ms: float | None = None, fmt: str = "tflite"
) -> dict[str, Any]:
    """:func:`measured_near` as ``fmt`` (``limit_ms``: the study's latency limit), or the
    measurement of the same architecture (the model's Keras config) in the same format
    already in ``cache``, a JSON-lines file (one per study; None: always measure). Latency
    and size depend on the layers, not the weights or the training settings, so a
    configuration that differs only in those (learning rate, epochs, schedule) is measured
    once; a reused measurement says ``"reused": true``."""
    if cache is None:
        return measured_near(model, limit_ms, fmt)
    architecture = _architecture(model.get_config())
    # Float TFLite entries are keyed by the architecture alone, as before other formats.
    keyed = architecture if fmt == "tflite" else {"format": fmt, "architecture": architecture}
    key = hashlib.sha256(json.dumps(keyed, sort_keys=True, default=str).encode()).hexdigest()
    lines = cache.read_text(encoding="utf-8").splitlines() if cache.exists() else []
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by a crash: measure again
        if isinstance(entry, dict) and entry.get("key") == key:
            return {**entry["measured"], "reused": True}
    measured = measured_near(model, limit_ms, fmt)
    cache.parent.mkdir(parents=True, exist_ok=True)
    torn = bool(lines) and not cache.read_bytes().endswith(b"\n")  # never glue onto it
    with open(cache, "a", encoding="utf-8") as fh:
        fh.write(("\n" if torn else "") + json.dumps({"key": key, "measured": measured}) + "\n")
    return measured


# Layers that pass their input through at inference: their settings (a dropout rate, an
# augmentation's range, a seed) change training, not what ships.
_INFERENCE_IDENTITY = {
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "RandomFlip",
    "RandomRotation",
    "RandomZoom",
    "RandomTranslation",
    "RandomContrast",
    "RandomBrightness",
}


def _architecture(config: Any) -> Any:
    """A Keras config without the settings of layers that are identities at inference (their
    names stay: the graph is wired by them), so that configurations differing only in those
    share one measurement."""
    if isinstance(config, list):
        return [_architecture(item) for item in config]
    if not isinstance(config, dict):
        return config
    if config.get("class_name") in _INFERENCE_IDENTITY and isinstance(config.get("config"), dict):
        return {**config, "config": {"name": config["config"].get("name")}}
    return {key: _architecture(value) for key, value in config.items()}


def _batch_of_one(path: Path, fmt: str, threads: int | None) -> tuple[Callable[[], None], str]:
    """A call that runs the model file ``path`` (written as ``fmt``) once on one random image
    (batch 1), in its runtime with ``threads`` threads, and that runtime's name."""
    from search._formats import _onnx_session, _tflite_interpreter

    rng = np.random.default_rng(0)
    if fmt == "onnx":
        session, runtime = _onnx_session(path, threads)
        (inp,) = session.get_inputs()
        feed = {inp.name: rng.integers(0, 256, [1, *inp.shape[1:]]).astype(np.float32)}
        return (lambda: session.run(None, feed)), runtime
    interpreter, runtime = _tflite_interpreter(path, threads)
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    shape = [1, *(int(d) for d in inp["shape"][1:])]
    if list(inp["shape"]) != shape:
        interpreter.resize_tensor_input(inp["index"], shape)
        interpreter.allocate_tensors()
    image = rng.integers(0, 256, shape).astype(inp["dtype"])

    def call() -> None:
        interpreter.set_tensor(inp["index"], image)
        interpreter.invoke()

    return call, runtime


def record_fields(measured: dict[str, Any]) -> dict[str, Any]:
    """A trial row's fields from :func:`measure_latency`: ``latency_ms`` (the median),
    ``size_mb`` (the file measured: float TFLite unless the study chose another format) and
    ``latency`` (the rest)."""
    rest = {k: v for k, v in measured.items() if k not in ("median_ms", "size_bytes")}
    return {
        "latency_ms": measured["median_ms"],
        "size_mb": round(measured["size_bytes"] / 1e6, 4),
        "latency": rest,
    }


@dataclasses.dataclass(frozen=True)
class Limits:
    """Hard limits on a trial's model, checked before it trains: parameters, latency (ms,
    the median of :func:`measure_latency`) and size (MB of the file measured: float TFLite
    unless the study's ``--latency-format`` is another); None: no limit."""

    max_params: int | None = None
    max_latency_ms: float | None = None
    max_size_mb: float | None = None

    @property
    def measured(self) -> bool:
        """Whether checking them needs a TFLite measurement (latency or size)."""
        return self.max_latency_ms is not None or self.max_size_mb is not None

    def bounds(self) -> dict[str, float]:
        """Row field -> its limit, for the limits that are set."""
        given = {
            "params": self.max_params,
            "latency_ms": self.max_latency_ms,
            "size_mb": self.max_size_mb,
        }
        return {field: float(limit) for field, limit in given.items() if limit is not None}

    def violations(self, row: dict[str, Any]) -> list[float]:
        """Per limit, how far ``row`` (a trial row's fields) is over it, as a fraction of the
        limit (positive: over; 0 or less: within): Optuna's ``constraints_func`` values. A
        field the row lacks counts as within (a trial refused for another reason)."""
        return [
            (float(row[field]) - limit) / limit if _number(row.get(field)) else 0.0
            for field, limit in self.bounds().items()
        ]

    def refusal(self, row: dict[str, Any]) -> str | None:
        """Why ``row`` is over a limit (one line naming each), or None when it is within all."""
        over = []
        for field, limit in self.bounds().items():
            value = row.get(field)
            if _number(value) and value > limit:
                what = "latency" if field == "latency_ms" else "size" if field == "size_mb" else ""
                shown = f"{value:,.0f}" if field == "params" else f"{value:.3g}"
                cap = f"{limit:,.0f}" if field == "params" else f"{limit:g}"
                over.append(f"{what} {shown} {UNITS[field]} over {FLAGS[field]} {cap}".strip())
        if not over:
            return None
        return "over a limit, not trained: " + "; ".join(over)

    def describe(self) -> str:
        """``"--max-latency-ms 5, --max-size-mb 3"``: the limits set, as flags."""
        return ", ".join(
            f"{FLAGS[field]} {limit:,.0f}" if field == "params" else f"{FLAGS[field]} {limit:g}"
            for field, limit in self.bounds().items()
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_objective(text: str | None) -> tuple[str, ...]:
    """``--objective``: ``("accuracy",)`` or ``("accuracy", COST)`` with COST one of
    :data:`COSTS`; ValueError naming the choices otherwise."""
    text = (text or "accuracy").replace(" ", "")
    if text not in OBJECTIVES:
        raise ValueError(
            f"--objective {text!r}: give one of {', '.join(OBJECTIVES)} (validation accuracy, "
            "maximized, alone or beside a cost that is minimized)"
        )
    return tuple(text.split(","))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def add_limit_options(parser: argparse.ArgumentParser, what: str = "refuse") -> None:
    """``--max-params``, ``--max-latency-ms`` and ``--max-size-mb`` (positive numbers; anything
    else is one ``error:`` line) for ``search.run`` (``what`` "refuse": a configuration over
    one is not trained) and ``search.export`` ("pick": the most accurate trial within them)."""
    measured = (
        f"the median of {RUNS} batch-1 runs of its float TFLite file in LiteRT (or the "
        f"--latency-format of the search), {THREADS} thread, on the machine that ran the search"
    )
    sized = (
        "its float TFLite file (or the --latency-format of the search), MB = 10**6 bytes, "
        "about 4 bytes per parameter in float"
    )
    if what == "refuse":
        doing = "refuse a configuration (untrained, a PRUNED row) over this many"
    else:
        doing = "export the study's most accurate trial (on validation) within this many"
    for flag, unit, kind, about in (
        ("--max-params", "parameters", float, "default 50,000,000" if what == "refuse" else ""),
        ("--max-latency-ms", "ms", float, measured),
        ("--max-size-mb", "MB", float, sized),
    ):
        parser.add_argument(
            flag,
            type=_positive(kind, unit),
            help=f"{doing} {unit}" + (f" ({about})" if about else ""),
        )


def _positive(kind, unit: str):
    """An argparse ``type``: a finite ``kind`` over 0; anything else is one ``error:`` line."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of {unit}") from None
        if not (0 < value < math.inf):  # also refuses nan
            raise argparse.ArgumentTypeError(f"must be a positive number of {unit}, got {text}")
        return value

    return parse
