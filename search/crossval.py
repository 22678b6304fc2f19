"""k-fold cross-validation over duplicate groups: how sure is a trial's score?

One validation split of 1,081 images gives an accuracy with a standard error of about 0.9
points, and the best of many trials' validation scores is an optimistic pick. For trials that
are cheap to train again (a head on cached backbone features), ``--cv K`` also trains the
trial's configuration K times on train + validation pooled, each time holding out one fold,
with folds that never split a duplicate group (copies of one picture stay together, as in
the split itself) and keep the class proportions (scikit-learn's ``StratifiedGroupKFold``).
The pooled out-of-fold accuracy over the 6,145 train + validation images, and the spread of
the fold accuracies, say how much of a difference between trials is real. Selection stays on
the validation split (the kept model is the one the trial trained), so the test split is
still touched once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def group_folds(
    labels: np.ndarray, groups: np.ndarray, k: int, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (train rows, held-out rows) pairs over all rows: every row is held out once,
    no group is on both sides of a fold, classes keep their proportions."""
    from sklearn.model_selection import StratifiedGroupKFold

    if k < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {k}")
    labels, groups = np.asarray(labels), np.asarray(groups)
    if len(np.unique(groups)) < k:
        raise ValueError(f"{len(np.unique(groups))} groups cannot make {k} folds")
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(train, held) for train, held in splitter.split(np.zeros(len(labels)), labels, groups)]


def summarize(fold_correct: Sequence[np.ndarray]) -> dict[str, Any]:
    """The report of per-fold correctness vectors: pooled out-of-fold accuracy (every row held
    out once), the folds' accuracies and the standard error of their mean."""
    accuracies = [float(np.mean(c)) for c in fold_correct]
    k = len(accuracies)
    pooled = float(np.mean(np.concatenate([np.asarray(c, dtype=float) for c in fold_correct])))
    spread = float(np.std(accuracies, ddof=1) / np.sqrt(k)) if k > 1 else None
    return {
        "folds": k,
        "accuracy": pooled,
        "standard_error": spread,
        "fold_accuracy": accuracies,
        "n": int(sum(len(c) for c in fold_correct)),
    }
