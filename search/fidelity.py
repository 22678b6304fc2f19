"""Fidelity rungs: a trial is judged cheaply first and pays full price only if it earns it.

A ``Ladder`` is a few ``Rung``\\ s; each caps the input size, uses a fraction of the training
split and ends at an epoch. A trial trains rung after rung and *continues*: the next rung
builds its model at the larger size and takes over the weights (a network with global pooling
has the same weights at every input size: progressive resizing), on more of the data (the
fractions are nested, so no image a rung saw is dropped), with the epoch count and the
learning-rate schedule going on where they were. After every rung but the last, the engine
compares the trial with the others that reached that rung (successive halving, judged at
the rung's step ``reduction_factor ** rung``) and stops it or lets it climb, so the top rung
costs a promoted trial only its increment. A stopped trial may keep its weights, and a later
trial may continue it from the next rung (a late promotion: ``climb``'s ``resume``).

    --rungs auto                      the space's ladder for --epochs (cnn: 64 px on 25% of the
                                      training images, 96 px on 50%, full size on all; the
                                      transfer spaces 160 px, 224 px, full size)
    --rungs 64:0.25:4,96:0.5:8,128:1:16   size:fraction:epoch per rung (size "-" = uncapped)

A space that trains in phases (a transfer trial: its head, then its fine-tuned top) climbs
too: each rung's fit continues whichever phase the previous rung ended in, the phases split
the trial's whole budget (``BuildContext.trial_epochs``), and a rung of two fits is one rung
(one allowance, one record).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from search.data import DataSource

# Successive halving keeps the best third of the trials at each rung.
REDUCTION_FACTOR = 3
# A search under --max-time means to look at this many configurations at the first rung at
# least, with its share of the time (the rungs share it evenly, as successive halving does):
# one first look may take ``first_look_seconds``, so a dear configuration a cost model did not
# see coming (one with no data yet, or wide layers on large maps) stops there.
FIRST_LOOKS = 30


class FidelityError(ValueError):
    """A ladder that cannot be climbed (the message names the rung and what to change)."""


@dataclasses.dataclass(frozen=True)
class Rung:
    """``image_size``: cap on the input side (None: the trial's own size); ``fraction`` of the
    training split; ``epochs``: the epoch count at the end of this rung (cumulative)."""

    image_size: int | None
    fraction: float
    epochs: int

    def describe(self) -> str:
        size = "full size" if self.image_size is None else f"{self.image_size} px"
        return f"{size}, {self.fraction:.0%} of train, to epoch {self.epochs}"


@dataclasses.dataclass(frozen=True)
class Ladder:
    rungs: tuple[Rung, ...]
    reduction_factor: int = REDUCTION_FACTOR

    def __post_init__(self) -> None:
        check_ladder(self.rungs)

    @property
    def epochs(self) -> int:
        return self.rungs[-1].epochs

    def step(self, rung: int) -> int:
        """The step a trial reports rung ``rung``'s score at: successive halving with
        ``min_resource=1`` judges rung ``k`` at step ``reduction_factor ** k``."""
        return self.reduction_factor**rung

    def rung_ending_at(self, epoch: int) -> int | None:
        """The rung whose last epoch is ``epoch`` (None: no rung ends there)."""
        return next((k for k, r in enumerate(self.rungs) if r.epochs == int(epoch)), None)

    def rung_of_step(self, step: int) -> int | None:
        steps = {self.step(k): k for k in range(len(self.rungs))}
        return steps.get(int(step))

    def to_dict(self) -> dict[str, Any]:
        return {
            "rungs": [dataclasses.asdict(r) for r in self.rungs],
            "reduction_factor": self.reduction_factor,
        }

    @classmethod
    def from_dict(cls, info: dict[str, Any]) -> Ladder:
        return cls(
            tuple(Rung(**r) for r in info["rungs"]),
            int(info.get("reduction_factor", REDUCTION_FACTOR)),
        )


def check_ladder(rungs: Sequence[Rung]) -> None:
    if not rungs:
        raise FidelityError("a fidelity ladder needs at least one rung")
    for i, rung in enumerate(rungs):
        if not 0 < rung.fraction <= 1:
            raise FidelityError(f"rung {i}: fraction {rung.fraction} must be in (0, 1]")
        if rung.image_size is not None and rung.image_size < 16:
            raise FidelityError(f"rung {i}: image size {rung.image_size} must be at least 16 px")
        if rung.epochs < 1:
            raise FidelityError(f"rung {i}: its last epoch {rung.epochs} must be at least 1")
    for i, (low, high) in enumerate(zip(rungs, rungs[1:]), start=1):
        if high.epochs <= low.epochs:
            raise FidelityError(
                f"rung {i} must end at a later epoch than rung {i - 1} "
                f"({high.epochs} <= {low.epochs})"
            )
        if high.fraction < low.fraction:
            raise FidelityError(
                f"rung {i} uses less data than rung {i - 1} "
                f"({high.fraction} < {low.fraction}); fractions only grow"
            )
        if low.image_size is None and high.image_size is not None:
            raise FidelityError(
                f"rung {i} caps the size after rung {i - 1} did not; sizes only grow"
            )
        if None not in (low.image_size, high.image_size) and high.image_size < low.image_size:
            raise FidelityError(
                f"rung {i} is smaller than rung {i - 1} "
                f"({high.image_size} < {low.image_size} px); sizes only grow"
            )


def parse_ladder(spec: str) -> Ladder:
    """``"64:0.25:4,96:0.5:8,-:1:16"`` -> a Ladder (size ``-`` means uncapped)."""
    rungs = []
    for i, part in enumerate(p.strip() for p in spec.split(",")):
        fields = part.split(":")
        try:
            if len(fields) != 3:
                raise ValueError
            size = None if fields[0].strip() in ("-", "") else int(fields[0])
            rungs.append(Rung(size, float(fields[1]), int(fields[2])))
        except ValueError:
            raise FidelityError(
                f"--rungs: rung {i} {part!r} is not size:fraction:epoch "
                "(e.g. 64:0.25:4,96:0.5:8,-:1:16)"
            ) from None
    return Ladder(tuple(rungs))


def default_ladder(
    sizes: Sequence[int | None], epochs: int, fractions: Sequence[float] = (0.25, 0.5, 1.0)
) -> Ladder:
    """A ladder over ``sizes`` (the last usually None: full size) ending at ``epochs``: each
    rung ends at an equal share of the epochs (a third each for three rungs), so the early
    rungs, run by every trial, cost a small part of a full trial."""
    n = len(sizes)
    if epochs < n:
        raise FidelityError(f"--epochs {epochs} is too few for {n} rungs: give at least {n}")
    ends = [max(1, round(epochs * (k + 1) / n)) for k in range(n)]
    return Ladder(tuple(Rung(s, float(f), e) for s, f, e in zip(sizes, fractions, ends)))


def rung_work(ladder: Ladder, rung: int, full_size: int | None) -> float:
    """What rung ``rung`` adds to a trial, in image-pixel-epochs relative to nothing: its new
    epochs times its fraction of train times its pixels. An uncapped rung counts at
    ``full_size`` (the search's size cap), else at the ladder's largest named size."""
    named = [r.image_size for r in ladder.rungs if r.image_size is not None]
    this = ladder.rungs[rung]
    size = this.image_size or full_size or (max(named) if named else 1)
    before = ladder.rungs[rung - 1].epochs if rung > 0 else 0
    return (this.epochs - before) * this.fraction * size * size


def look_seconds(
    max_time: float | None, ladder: Ladder | None, full_size: int | None = None
) -> tuple[float, ...] | None:
    """The longest each rung of one trial may run under ``max_time``: ``first_look_seconds``
    at rung 0, and at rung k that times the larger of ``REDUCTION_FACTOR ** k`` (successive
    halving's even split) and the rung's work over rung 0's (:func:`rung_work`), so a ladder
    that gives its top rung many epochs lets the few promoted trials use them. None without
    a time limit or a ladder."""
    first = first_look_seconds(max_time, ladder)
    if first is None:
        return None
    base = rung_work(ladder, 0, full_size)
    return tuple(
        first * max(ladder.reduction_factor**k, rung_work(ladder, k, full_size) / base)
        for k in range(len(ladder.rungs))
    )


def first_look_seconds(max_time: float | None, ladder: Ladder | None) -> float | None:
    """The longest the first rung of one trial may run under ``max_time`` (see FIRST_LOOKS);
    None without a time limit or a ladder."""
    if max_time is None or ladder is None:
        return None
    return float(max_time) / (len(ladder.rungs) * FIRST_LOOKS)


def nested_fraction(labels: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``fraction`` of each class, at least one image per class, *nested*:
    for one seed, a smaller fraction's images are all in a larger one's (a rung that continues
    a trial adds images to what it saw, never swaps them)."""
    if not 0 < fraction <= 1:
        raise FidelityError(f"fraction must be in (0, 1], got {fraction}")
    labels = np.asarray(labels)
    keep = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        order = np.random.default_rng([seed, int(label)]).permutation(members)
        keep.append(order[: max(1, int(round(len(members) * fraction)))])
    return np.sort(np.concatenate(keep))


def train_fraction(data, fraction: float, seed: int = 0):
    """``data`` with its training split thinned to a nested ``fraction`` per class
    (:func:`nested_fraction`); validation and test stay whole, so every rung is scored on
    the same images. ``data`` itself at 1."""
    if fraction >= 1:
        return data
    return _TrainFraction(data, fraction, seed)


class _TrainFraction(DataSource):
    """A view of another source: its arrays, labels, groups and cached features, with the
    training rows picked by :func:`nested_fraction` (``dataset`` is DataSource's, over them)."""

    def __init__(self, base, fraction: float, seed: int):
        self.base, self.fraction = base, float(fraction)
        self.class_names = base.class_names
        self.index = nested_fraction(base.labels("train"), fraction, seed)

    def _pick(self, split: str, value):
        if split != "train":
            return value
        if isinstance(value, tuple):
            return tuple(v[self.index] for v in value)
        return value[self.index]

    def arrays(self, split: str, image_size: int):
        x, y = self.base.arrays(split, image_size)
        return self._pick(split, x), self._pick(split, y)

    def labels(self, split: str):
        return self._pick(split, self.base.labels(split))

    def groups(self, split: str):
        return self._pick(split, self.base.groups(split))

    def features(self, split: str, image_size: int, key, extractor, dtype=np.float32):
        f, y = self.base.features(split, image_size, key, extractor, dtype)
        return self._pick(split, f), self._pick(split, y)

    def describe(self) -> dict[str, Any]:
        return {**self.base.describe(), "train_fraction": self.fraction}


def carry_weights(source, target) -> bool:
    """Copy ``source``'s weights into ``target`` where every weight has the same shape (the
    same configuration built at another input size, with global pooling); False where they
    differ (a flattening head: its dense layer grows with the image), and nothing is copied."""
    from search.training import same_weight_shapes

    old = source.get_weights()
    if not same_weight_shapes(old, target.weights):
        return False
    target.set_weights(old)
    return True


def _ended(rungs_log: list, rung: int) -> bool:
    """Whether rung ``rung``'s record is the last in ``rungs_log`` (the rung ran to its end)."""
    return bool(rungs_log) and rungs_log[-1].get("rung") == rung


def _resumed(space, hp, ctx, ladder: Ladder, resume):
    """``(model, rung)``: the model a stopped trial kept after the rung that ends at
    ``resume.initial_epoch``, built at that rung's size with the kept weights loaded."""
    import warnings

    rung = ladder.rung_ending_at(resume.initial_epoch)
    if rung is None or rung >= len(ladder.rungs) - 1:
        raise FidelityError(
            f"cannot continue trial {resume.from_trial} from epoch {resume.initial_epoch}: no "
            "rung below the top ends there"
        )
    model = space.build(hp, dataclasses.replace(ctx, rung_image_size=ladder.rungs[rung].image_size))
    with warnings.catch_warnings():
        # The file holds the optimizer's state too; a rung's model starts its optimizer
        # afresh, as every rung does, so Keras skips it.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(resume.weights)
    return model, rung


def _stamp_wall_seconds(rungs_log: list, rung: int, began: float) -> None:
    """Add ``wall_seconds`` to rung ``rung``'s record, when it has one: all the rung took
    since ``began`` (building its model and reading or caching its inputs too, which its
    ``seconds``, the time inside its fits, leave out). Successive halving balances the
    rungs' time by it (``search.engines.optuna._rungs.rung_seconds``)."""
    if _ended(rungs_log, rung):
        rungs_log[-1]["wall_seconds"] = round(time.perf_counter() - began, 3)


class RungNotAfforded(Exception):
    """The time left cannot pay for the next rung (the trial stops where it is)."""


def climb(
    space,
    hp,
    data,
    ctx,
    ladder: Ladder,
    *,
    trial_callbacks,
    engine_callbacks,
    rungs_log: list,
    price=None,
    allowance=None,
    resume=None,
    keep_stopped=None,
    batch_size: int = 32,
    verbose: int = 0,
    seed: int = 0,
):
    """Train ``hp``'s configuration rung by rung and return the last rung's model.

    Each rung builds the model at its size (``ctx`` capped), continues the previous rung's
    weights where they fit (else trains from scratch, from epoch 0), and trains on its
    fraction of the training split up to its epoch. ``trial_callbacks(model, kept)`` gives
    the trial's own callbacks for a rung's model (``kept``: for a continued trial's first
    rung, the ``BestWeights`` of what the stopped trial kept, else None);
    ``engine_callbacks`` (the engine's, which may stop the trial) come last and see ``rung``
    and ``rung_score`` (the rung's best validation accuracy) in the logs of each rung's last
    epoch. ``price(model, epochs, fraction, rung=k, first_epoch=e)``, when given, predicts a
    rung's seconds (``epochs`` from epoch ``e``) before it starts and raises
    :class:`RungNotAfforded` when the search cannot pay them. ``allowance(k)``, when given,
    is ``(seconds, reason)`` or None: a rung that cannot finish within ``seconds`` and a
    quarter more is stopped (at an epoch's end when its pace says so, else when the clock
    passes that; see ``search.training.RungAllowance``), and the trial with it
    (:class:`RungNotAfforded`), whatever was predicted. ``rungs_log`` receives one dict per
    rung climbed, also when the engine stops the trial. A rung the search's clock stops
    (``stop_training``) is the last one.

    ``resume`` (a ``search.study.WarmStart`` whose ``initial_epoch`` ends a rung) continues
    a trial the engine stopped after that rung, from the weights it kept there: the climb
    starts at the next rung (a late promotion). ``keep_stopped(model, entry)``, when given,
    is called when the engine stops the trial right after a rung below the top (``entry``:
    that rung's record in ``rungs_log``), to keep its weights for such a promotion."""
    from search.training import BestWeights, RungAllowance, RungEnd

    model, start, first, kept = None, 0, 0, None
    if resume is not None:
        model, stopped_at = _resumed(space, hp, ctx, ladder, resume)
        first, start = stopped_at + 1, int(resume.initial_epoch)
        if resume.score is not None:  # the stopped trial's best epoch, which it kept
            kept = BestWeights.kept(model, resume.score)
    for k, rung in enumerate(ladder.rungs[first:], start=first):
        began = time.perf_counter()
        rung_ctx = dataclasses.replace(
            ctx, rung_image_size=rung.image_size, trial_epochs=ladder.epochs
        )
        previous, model = model, space.build(hp, rung_ctx)
        continued = previous is not None and carry_weights(previous, model)
        del previous
        begin = start if continued else 0
        predicted = (
            price(model, rung.epochs - begin, rung.fraction, rung=k, first_epoch=begin)
            if price
            else None
        )
        marker = RungEnd(
            k, rung, int(model.input_shape[1]), continued, rungs_log, predicted_s=predicted
        )
        limit = allowance(k) if allowance else None
        timer = RungAllowance(limit[0], rung.epochs) if limit is not None else None
        try:
            space.fit(
                hp,
                model,
                train_fraction(data, rung.fraction, seed),
                rung_ctx,
                epochs=rung.epochs,
                initial_epoch=begin,
                batch_size=batch_size,
                verbose=verbose,
                callbacks=[
                    *trial_callbacks(model, kept if k == first else None),
                    marker,
                    *([timer] if timer else []),
                    engine_callbacks,
                ],
            )
        except Exception:
            _stamp_wall_seconds(rungs_log, k, began)
            # Only the engine's callbacks (after the marker) raise once a rung's record is in
            # the log: the trial was judged there and stopped.
            if keep_stopped is not None and k < len(ladder.rungs) - 1 and _ended(rungs_log, k):
                keep_stopped(model, rungs_log[-1])
            raise
        _stamp_wall_seconds(rungs_log, k, began)
        if timer is not None and timer.stopped_in_epoch is not None:
            ran = f"it ran {timer.elapsed_s():.0f} s"
            if timer.projected_s is not None:
                ran += f" and would take about {timer.projected_s:.0f} s"
            raise RungNotAfforded(
                f"stopped in rung {k} (epoch {timer.stopped_in_epoch + 1} of {rung.epochs}): "
                f"{ran}, {limit[1]} by more than a quarter"
            )
        start = rung.epochs
        # The search's clock ran out (it stops the model last fitted: a transfer trial's head
        # or tuned top is a model of its own): no later rung.
        if model.stop_training or getattr(marker.model, "stop_training", False):
            break
    return model
