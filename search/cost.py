"""What a trial will cost, before it runs: a search that knows its prices can keep its budget.

A configuration's training time per image grows with its work per image: the
multiply-accumulates (MACs) its model does, and the feature-map elements it writes and reads
back (its activations: normalization, activation functions, pooling and their gradients move
them through memory and do few MACs). How fast this machine does either is learned from the
trials measured so far. ``CostModel`` fits ``seconds per batch = a * (MACs + w * activations)
** b`` (least squares in log space, ``w`` the grid value that fits best) to the epochs the
study has timed, and predicts an epoch, a rung or a whole ladder from a model's work per
image and the batches it will train on (a study keeps one batch size). With fewer than three
kinds of model measured, ``w`` is ``DEFAULT_ACTIVATION_WEIGHT``; with one, ``b`` is taken as 1
(time proportional to work); with none, it predicts nothing (``None``) rather than guess.
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
    return layers_macs(leaf_layers(model))


def layers_macs(layers: Iterable[Any]) -> int:
    """:func:`model_macs` of some of a model's leaf layers (a part of it that trains alone)."""
    total = 0
    for layer in layers:
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


def model_activations(model) -> int:
    """Feature-map elements one image produces through ``model``: for each layer with a
    spatial output, its output's size (the memory traffic MACs do not count)."""
    return layers_activations(leaf_layers(model))


def layers_activations(layers: Iterable[Any]) -> int:
    """:func:`model_activations` of some of a model's leaf layers."""
    total = 0
    for layer in layers:
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):
            continue
        if len(shape) > 2:
            total += math.prod(int(d) for d in shape[1:] if d is not None)
    return int(total)


def leaf_layers(model) -> Iterable[Any]:
    """Every layer of ``model``, nested models (a backbone) opened."""
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:  # a nested model (a backbone)
            yield from leaf_layers(layer)
        else:
            yield layer


# What one activation element costs in MACs, tried when fitting. On the 2-core development
# machine, predicting each trial's seconds per batch from the trials before it in three cnn
# studies (60, 13 and 57 trials), the best fit among these against MACs alone: the largest
# error x1.9, x2.1 and x1.9 (from x3.6, x2.5 and x3.2), under-predictions of more than 2x
# none (from 1, 2 and 5), the median error x1.27, x1.25 and x1.20 (from x1.37, x1.17 and
# x1.26). MACs alone missed most on one-block networks on full-size maps (17,872 parameters:
# 61 s for a rung predicted at 7 s).
ACTIVATION_WEIGHTS = (0.0, 3.0, 10.0, 30.0, 100.0, 300.0)
# ... and the weight used before three kinds of model were timed (the best single weight in
# that test: median error x1.22, x1.09 and x1.16).
DEFAULT_ACTIVATION_WEIGHT = 30.0


@dataclasses.dataclass(frozen=True)
class Timing:
    """One measured epoch: the model's MACs and activations per image (0: not recorded),
    training batches, seconds; ``first``: the first epoch of a fit, which also builds and
    traces the model's graphs."""

    macs: int
    batches: int
    seconds: float
    first: bool = False
    activations: int = 0


# How far beyond the most work it timed a cost model's prediction may still refuse a trial.
# A transfer search times its heads first (hundreds of thousands of MACs per image); priced
# from them, the first fine-tuning at 224 px (about 200 times the work) came out at 5,468 s
# and the published recipe was refused at its top rung with 3,164 s left. A scratch CNN's
# top rung is 4-16 times the work of its 64 px first rung.
EXTRAPOLATION = 30.0


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
    # MACs per activation element in a model's work (``ACTIVATION_WEIGHTS``).
    activation_weight: float = 0.0
    # The most work (:meth:`work`) of the epochs it was fitted on; 0: not known.
    max_work: float = 0.0

    @classmethod
    def fit(cls, timings: Sequence[Timing]) -> CostModel | None:
        usable = [t for t in timings if t.macs > 0 and t.batches > 0 and t.seconds > 0]
        steady = [t for t in usable if not t.first]
        if not steady:
            return None
        kinds = len({t.macs for t in steady})
        weights = ACTIVATION_WEIGHTS if kinds >= 3 else (DEFAULT_ACTIVATION_WEIGHT,)
        if not any(t.activations for t in steady):  # rows of a version that did not record them
            weights = (0.0,)
        _, model = min(
            (_power_law(steady, weight, kinds) for weight in weights), key=lambda f: f[0]
        )
        extra = sorted(
            max(0.0, t.seconds - model.epoch_seconds(t.macs, t.batches, t.activations))
            for t in usable
            if t.first
        )
        overhead = extra[len(extra) // 2] if extra else 0.0
        return dataclasses.replace(model, fit_overhead_s=overhead)

    def work(self, macs: int, activations: int = 0) -> float:
        return max(macs + self.activation_weight * activations, 1.0)

    def covers(self, macs: int, activations: int = 0) -> bool:
        """Whether a prediction for this work is within ``EXTRAPOLATION`` times the most work
        timed: beyond it the power law's slope, fitted on a narrow range, is a guess."""
        return not self.max_work or self.work(macs, activations) <= EXTRAPOLATION * self.max_work

    def epoch_seconds(self, macs: int, batches: int, activations: int = 0) -> float:
        return self.scale * self.work(macs, activations) ** self.exponent * batches

    def fit_seconds(self, macs: int, batches: int, epochs: int, activations: int = 0) -> float:
        """One fit of ``epochs`` epochs: its start-up once, then the epochs."""
        return self.fit_overhead_s + epochs * self.epoch_seconds(macs, batches, activations)


def _power_law(steady: Sequence[Timing], weight: float, kinds: int) -> tuple[float, CostModel]:
    """``(mean squared log residual, model)``: seconds per batch against work at activation
    ``weight``, fitted in log space (the slope kept in a sane range; 1 for one kind)."""
    xs = [math.log(t.macs + weight * t.activations) for t in steady]
    ys = [math.log(t.seconds / t.batches) for t in steady]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    exponent = 1.0
    if spread > 1e-6:  # at least two kinds of model: fit the slope
        slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread
        exponent = min(max(slope, 0.3), 1.5)
    intercept = mean_y - exponent * mean_x
    residual = sum((y - intercept - exponent * x) ** 2 for x, y in zip(xs, ys)) / len(xs)
    model = CostModel(
        scale=math.exp(intercept),
        exponent=exponent,
        n=len(steady),
        kinds=kinds,
        activation_weight=weight,
        max_work=math.exp(max(xs)),
    )
    return residual, model


def timings_from_records(records: Iterable[Any]) -> list[Timing]:
    """The timed epochs of the study's rows: those that recorded their MACs per image and
    their batches (``history["macs"]`` and ``history["train_batches"]``, beside
    ``epoch_time_s``; ``history["activations"]`` where recorded), the first epoch of each fit
    marked (it traces the graph). An epoch cut short (fewer batches than its fit's others:
    the clock stopped it) is left out: it still validated in full, and one such epoch of one
    batch made its network look 20 times dearer per batch than it was."""
    out = []
    for record in records:
        history = getattr(record, "history", None) or {}
        seconds = history.get("epoch_time_s") or []
        macs, batches, phase, activations = (
            history.get(k) or [] for k in ("macs", "train_batches", "phase", "activations")
        )
        full: dict[Any, int] = {}  # the most batches an epoch of each fit trained
        for i, b in enumerate(batches):
            key = phase[i] if i < len(phase) else None
            full[key] = max(full.get(key, 0), int(b))
        for i, s in enumerate(seconds):
            first = i == 0 or (len(phase) > i and phase[i] != phase[i - 1])
            cut = i < len(batches) and batches[i] < full[phase[i] if i < len(phase) else None]
            if i < len(macs) and i < len(batches) and not cut:
                moved = int(activations[i]) if i < len(activations) else 0
                out.append(Timing(int(macs[i]), int(batches[i]), float(s), first, moved))
    return out


def scaled_macs(macs: int, size: int, new_size: int) -> int:
    """MACs at ``new_size`` px from MACs at ``size`` px: a convolution's work grows with its
    output positions, so with the pixels (the small dense head after global pooling does not,
    and is counted as if it did: a slight over-estimate below the measured size)."""
    return max(1, round(macs * (new_size / size) ** 2))


def batches(images: int, fraction: float, batch_size: int) -> int:
    return max(1, math.ceil(max(1, round(images * fraction)) / batch_size))
