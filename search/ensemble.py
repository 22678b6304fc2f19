"""Greedy ensemble selection with replacement (Caruana et al., 2004), on validation only.

Every completed trial keeps its predicted class probabilities on the validation and test
splits (``predictions/trial-N.npz`` in the study folder, written by the trial runner). The
ensemble starts empty and, ``rounds`` times, adds the member (any trial, again if it helps)
whose addition gives the averaged validation probabilities the best score: accuracy, ties
broken by log loss, so a step that fixes no decision still moves towards calibrated sums.
The round with the best validation score wins; the test split only reports, once.

Selection by validation alone keeps this honest, but an ensemble picked from many trials on
1,081 validation images is still an optimistic pick: report its standard error beside it.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np


@dataclasses.dataclass
class Ensemble:
    """Member id -> how many times it was picked (its weight is count / size)."""

    counts: dict[str, int]
    val_accuracy: float
    val_log_loss: float
    history: list[float]  # validation accuracy after each round

    @property
    def size(self) -> int:
        return sum(self.counts.values())

    def weights(self) -> dict[str, float]:
        return {k: v / self.size for k, v in self.counts.items()}

    def average(self, probabilities: Mapping[str, np.ndarray]) -> np.ndarray:
        """The ensemble's probabilities from its members' (e.g. on the test split)."""
        return sum(w * np.asarray(probabilities[k], dtype=np.float64)
                   for k, w in self.weights().items())


def greedy_ensemble(val_probabilities: Mapping[str, np.ndarray], y_val: Sequence[int],
                    rounds: int = 25) -> Ensemble:
    """Caruana's greedy forward selection with replacement over ``val_probabilities``
    (member id -> ``(N, classes)`` probabilities on the validation images ``y_val``)."""
    if not val_probabilities:
        raise ValueError("no member has validation probabilities to build an ensemble from")
    y = np.asarray(y_val, dtype=int)
    ids = sorted(val_probabilities)
    stack = np.stack([np.asarray(val_probabilities[k], dtype=np.float64) for k in ids])
    if stack.shape[1] != len(y):
        raise ValueError(f"members have {stack.shape[1]} validation predictions for {len(y)} labels")
    total = np.zeros(stack.shape[1:])
    counts = np.zeros(len(ids), dtype=int)
    best: tuple[tuple[float, float], np.ndarray] | None = None
    history = []
    for step in range(1, rounds + 1):
        candidates = (total[None] + stack) / step  # every member added once more
        accuracy = np.mean(candidates.argmax(-1) == y[None], axis=1)
        log_loss = -np.mean(np.log(np.clip(candidates[:, np.arange(len(y)), y], 1e-12, None)), axis=1)
        # Best accuracy; ties to the lower log loss, then to the earlier member id.
        pick = min(range(len(ids)), key=lambda i: (-accuracy[i], log_loss[i], i))
        total += stack[pick]
        counts[pick] += 1
        history.append(float(accuracy[pick]))
        score = (float(accuracy[pick]), -float(log_loss[pick]))
        if best is None or score > best[0]:
            best = (score, counts.copy())
    (accuracy, neg_log_loss), chosen = best
    return Ensemble(counts={ids[i]: int(c) for i, c in enumerate(chosen) if c},
                    val_accuracy=accuracy, val_log_loss=-neg_log_loss, history=history)
