"""What a trial will cost, before it runs: a search that knows its prices can keep its budget.

A configuration's training time per image grows with the multiply-accumulates (MACs) its
model does per image; how fast this machine does them is learned from the trials measured so
far. ``CostModel`` fits ``seconds per batch = a * MACs ** b`` (least squares in log space) to
the epochs the study has timed, and predicts an epoch, a rung or a whole ladder from a
model's MACs per image and the batches it will train on (a study keeps one batch size). With one kind of model measured, ``b`` is taken as 1 (time proportional to
work); with none, it predicts nothing (``None``) rather than guess.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any

# Kernel weights multiply once per output position; biases, norms and scales add, not multiply.
_KERNELS = ("kernel", "depthwise_kernel", "pointwise_kernel")


def model_macs(model) -> int:
    """Multiply-accumulates of one forward pass of one image through ``model``: for each
    layer with a kernel, its output positions times its kernel weights (exact for dense and
    convolution layers; a separable convolution's depthwise part is counted at the output's
    positions)."""
    total = 0
    for layer in leaf_layers(model):
        kernels = [w for w in layer.weights if w.name.split("/")[-1] in _KERNELS]
        if not kernels:
            continue
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):
            continue  # a layer called more than once has no single output shape
        positions = math.prod(int(d) for d in shape[1:-1] if d is not None) if len(shape) > 2 else 1
        total += positions * sum(math.prod(int(d) for d in w.shape) for w in kernels)
    return int(total)


def leaf_layers(model) -> Iterable[Any]:
    """Every layer of ``model``, nested models (a backbone) opened."""
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:  # a nested model (a backbone)
            yield from leaf_layers(layer)
        else:
            yield layer


@dataclasses.dataclass(frozen=True)
class Timing:
    """One measured epoch: the model's MACs per image, training batches, seconds; ``first``:
    the first epoch of a fit, which also builds and traces the model's graphs."""

    macs: int
    batches: int
    seconds: float
    first: bool = False


@dataclasses.dataclass(frozen=True)
class CostModel:
    scale: float  # seconds per batch at 1 MAC per image
    exponent: float
    n: int  # timings it was fitted on
    # Distinct models (MACs per image) among them: a fit on one or two extrapolates far.
    kinds: int = 1
    # What a fit's first epoch costs beyond a later one (building, tracing): the median over
    # the fits measured, paid once per fit (a rung, a phase).
    fit_overhead_s: float = 0.0

    @classmethod
    def fit(cls, timings: Sequence[Timing]) -> CostModel | None:
        usable = [t for t in timings if t.macs > 0 and t.batches > 0 and t.seconds > 0]
        points = [
            (math.log(t.macs), math.log(t.seconds / t.batches)) for t in usable if not t.first
        ]
        if not points:
            return None
        xs, ys = zip(*points)
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        spread = sum((x - mean_x) ** 2 for x in xs)
        exponent = 1.0
        if spread > 1e-6:  # at least two kinds of model: fit the slope, kept in a sane range
            slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread
            exponent = min(max(slope, 0.3), 1.5)
        model = cls(
            scale=math.exp(mean_y - exponent * mean_x),
            exponent=exponent,
            n=len(points),
            kinds=len(set(xs)),
        )
        extra = sorted(
            max(0.0, t.seconds - model.epoch_seconds(t.macs, t.batches)) for t in usable if t.first
        )
        overhead = extra[len(extra) // 2] if extra else 0.0
        return dataclasses.replace(model, fit_overhead_s=overhead)

    def epoch_seconds(self, macs: int, batches: int) -> float:
        return self.scale * max(macs, 1) ** self.exponent * batches

    def fit_seconds(self, macs: int, batches: int, epochs: int) -> float:
        """One fit of ``epochs`` epochs: its start-up once, then the epochs."""
        return self.fit_overhead_s + epochs * self.epoch_seconds(macs, batches)


def timings_from_records(records: Iterable[Any]) -> list[Timing]:
    """The timed epochs of the study's rows: those that recorded their MACs per image and
    their batches (``history["macs"]`` and ``history["train_batches"]``, beside
    ``epoch_time_s``), the first epoch of each fit marked (it traces the graph)."""
    out = []
    for record in records:
        history = getattr(record, "history", None) or {}
        seconds = history.get("epoch_time_s") or []
        macs, batches, phase = (history.get(k) or [] for k in ("macs", "train_batches", "phase"))
        for i, s in enumerate(seconds):
            first = i == 0 or (len(phase) > i and phase[i] != phase[i - 1])
            if i < len(macs) and i < len(batches):
                out.append(Timing(int(macs[i]), int(batches[i]), float(s), first))
    return out


def scaled_macs(macs: int, size: int, new_size: int) -> int:
    """MACs at ``new_size`` px from MACs at ``size`` px: a convolution's work grows with its
    output positions, so with the pixels (the small dense head after global pooling does not,
    and is counted as if it did: a slight over-estimate below the measured size)."""
    return max(1, round(macs * (new_size / size) ** 2))


def batches(images: int, fraction: float, batch_size: int) -> int:
    return max(1, math.ceil(max(1, round(images * fraction)) / batch_size))
