"""One trial to train: what an engine asks of the trial runner (``TrialRunner.run``).

A request travels from the engine through the runner to the process that trains the trial
(``search.isolation`` sends it to a child process). Most of it crosses to that child; the
engine's judges of the trial (its callbacks, and the exceptions by which they prune) stay in
the search process, which runs them on the epoch logs the child reports. A field marked
:data:`STAYS_IN_PARENT` is left out of what crosses (:meth:`TrialRequest.for_child`), so a new
per-trial option is one field here either way.

This module imports nothing of the runner's, so that ``search.isolation`` (which the runner
imports) can use it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


def trial_seed(seed: int, number: int) -> int:
    """The random seed of trial ``number`` of a search seeded ``seed`` (its draws, its weights,
    its shuffles): a hash of the pair, so the streams of two seeds are unrelated. ``seed +
    number`` made seed 1's trial N seed 0's trial N + 1: two runs meant to differ by their
    seed drew the same configurations, one trial apart."""
    return int(np.random.SeedSequence([seed % 2**32, number]).generate_state(1)[0])


# Field metadata: the field stays in the search process (not picklable, or meaningful only
# there); the child gets the field's default instead.
STAYS_IN_PARENT = {"stays_in_parent": True}


@dataclasses.dataclass(frozen=True)
class TrialRequest:
    """One trial: which (``trial_id``, ``number``), for how long (``epochs``), from where
    (``warm_start``) and what it keeps (``keep_weights``), with the engine's ``callbacks``.

    - ``number`` seeds the trial (:func:`trial_seed` of the runner's seed and it) and names
      its files.
    - ``warm_start``: a ``search.study.WarmStart`` to continue another trial's kept weights
      from its epoch; None trains from scratch.
    - ``keep_weights``: keep this trial's (best-epoch) weights at
      ``Study.rung_weights_path`` for a later warm start.
    - ``ladder``: the fidelity rungs to climb (``search.fidelity``), or None. With a ladder,
      ``warm_start`` continues a trial stopped after a rung from the next rung on.
    - ``keep_stopped``: with a ladder, keep the weights of a trial the engine stops after a
      rung below the top at ``Study.rung_weights_path``, so that a later trial may continue
      it (a late promotion: ``search.engines.optuna._rungs``).
    - ``callbacks``: the engine's (Optuna's pruning callback, the progress bar); they see every
      epoch's logs, in the search process even when the trial trains in a child.
    - ``prune_exceptions``: what those callbacks raise to prune the trial (a PRUNED row).
    """

    trial_id: str
    number: int
    epochs: int
    warm_start: Any = None
    keep_weights: bool = False
    # A ``search.fidelity.Ladder``: train rung by rung (the engine judges each); its last rung
    # ends at ``epochs``. None trains ``epochs`` in one go.
    ladder: Any = None
    keep_stopped: bool = False
    callbacks: tuple = dataclasses.field(default=(), metadata=STAYS_IN_PARENT)
    prune_exceptions: tuple[type[BaseException], ...] = dataclasses.field(
        default=(), metadata=STAYS_IN_PARENT
    )

    def __post_init__(self):
        # Engines hand over ids and numbers of their own types (keras-tuner's string ids,
        # numpy integers); the row and the file names want plain ones.
        for name, kind in (
            ("trial_id", str),
            ("number", int),
            ("epochs", int),
            ("keep_weights", bool),
            ("keep_stopped", bool),
            ("callbacks", tuple),
            ("prune_exceptions", tuple),
        ):
            object.__setattr__(self, name, kind(getattr(self, name)))

    def for_child(self) -> TrialRequest:
        """The request as it crosses to a child process: every :data:`STAYS_IN_PARENT` field
        back to its default (the child gets its own stand-ins for the engine's callbacks)."""
        return dataclasses.replace(
            self,
            **{
                f.name: f.default
                for f in dataclasses.fields(self)
                if f.metadata.get("stays_in_parent")
            },
        )
