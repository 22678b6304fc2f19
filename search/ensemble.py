"""Greedy ensemble selection with replacement (Caruana et al., 2004), on validation only.

Every completed trial keeps its predicted class probabilities on the validation and test
splits (``predictions/trial-N.npz`` in the study folder, written by the trial runner). The
ensemble starts empty and, ``rounds`` times, adds the member (any trial, again if it helps)
whose addition gives the averaged validation probabilities the best score: accuracy, ties
broken by log loss, so a step that fixes no decision still moves towards calibrated sums.
The round with the best validation score wins; the test split only reports, once.

Selection by validation alone keeps this honest, but an ensemble picked from many trials on
1,081 validation images is still an optimistic pick: report its standard error beside it.

:func:`build_ensemble` does this for a study at the end of its search (``search.scoring``) and
writes ``ensemble.json``; :func:`ensemble_model` builds the chosen ensemble into one model
(``search.export``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from search import results as results_mod
from search._metrics import classification_metrics
from search._process import utc_now


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
        return sum(
            w * np.asarray(probabilities[k], dtype=np.float64) for k, w in self.weights().items()
        )


def greedy_ensemble(
    val_probabilities: Mapping[str, np.ndarray], y_val: Sequence[int], rounds: int = 25
) -> Ensemble:
    """Caruana's greedy forward selection with replacement over ``val_probabilities``
    (member id -> ``(N, classes)`` probabilities on the validation images ``y_val``)."""
    if not val_probabilities:
        raise ValueError("no member has validation probabilities to build an ensemble from")
    y = np.asarray(y_val, dtype=int)
    ids = sorted(val_probabilities)
    stack = np.stack([np.asarray(val_probabilities[k], dtype=np.float64) for k in ids])
    if stack.shape[1] != len(y):
        raise ValueError(
            f"members have {stack.shape[1]} validation predictions for {len(y)} labels"
        )
    total = np.zeros(stack.shape[1:])
    counts = np.zeros(len(ids), dtype=int)
    best: tuple[tuple[float, float], np.ndarray] | None = None
    history = []
    for step in range(1, rounds + 1):
        candidates = (total[None] + stack) / step  # every member added once more
        accuracy = np.mean(candidates.argmax(-1) == y[None], axis=1)
        log_loss = -np.mean(
            np.log(np.clip(candidates[:, np.arange(len(y)), y], 1e-12, None)), axis=1
        )
        # Best accuracy; ties to the lower log loss, then to the earlier member id.
        pick = min(range(len(ids)), key=lambda i: (-accuracy[i], log_loss[i], i))
        total += stack[pick]
        counts[pick] += 1
        history.append(float(accuracy[pick]))
        score = (float(accuracy[pick]), -float(log_loss[pick]))
        if best is None or score > best[0]:
            best = (score, counts.copy())
    (accuracy, neg_log_loss), chosen = best
    return Ensemble(
        counts={ids[i]: int(c) for i, c in enumerate(chosen) if c},
        val_accuracy=accuracy,
        val_log_loss=-neg_log_loss,
        history=history,
    )


def build_ensemble(study, data, rounds: int = 25) -> dict[str, Any] | None:
    """Greedy ensemble selection over ``study``'s kept trial predictions, on validation only;
    its test accuracy is computed once per ensemble and written to ensemble.json. None when
    fewer than two trials kept predictions.

    ``study`` is a ``search.study.Study``, ``data`` the search's data source (its labels)."""
    kept = _kept_predictions(study)
    if len(kept) < 2:
        return None
    y_val, y_test = data.labels("val"), data.labels("test")
    ensemble = greedy_ensemble({k: v for k, (v, _) in kept.items()}, y_val, rounds=rounds)
    members = dict(sorted(ensemble.counts.items(), key=lambda kv: int(kv[0])))
    if study.ensemble_json.exists():
        previous = results_mod.read_json(study.ensemble_json)
        if previous.get("members") == members:
            return previous  # the same ensemble: the test split is not read again
    test_probabilities = ensemble.average({k: t for k, (_, t) in kept.items()})
    report = classification_metrics(y_test, test_probabilities.argmax(-1), data.class_names)
    summary = {
        "members": members,
        "size": ensemble.size,
        "rounds": rounds,
        "candidates": len(kept),
        "val_accuracy": ensemble.val_accuracy,
        "val_n": int(len(y_val)),
        "val_standard_error": results_mod.standard_error(ensemble.val_accuracy, len(y_val)),
        "val_log_loss": ensemble.val_log_loss,
        "test": report,
        "test_standard_error": results_mod.standard_error(report["accuracy"], report["n"]),
        "note": (
            "greedy selection with replacement (Caruana et al. 2004) on validation; "
            "its validation score is the one it was picked on, an optimistic estimate"
        ),
        "evaluated_at": utc_now(),
    }
    results_mod.write_json(study.ensemble_json, summary)
    return summary


def _kept_predictions(study) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Trial id -> (validation, test) probabilities of the trials whose models the study keeps
    (its best by validation), so the ensemble picked builds into one model without training."""
    from search.trial import KEPT_MODELS

    kept = {}
    for record in results_mod.ranked_trials(study.records())[:KEPT_MODELS]:
        path = study.predictions_dir / f"trial-{record.number}.npz"
        if path.exists() and study.kept_model_path(record) is not None:
            with np.load(path) as npz:
                kept[record.trial_id] = (npz["val"], npz["test"])
    return kept


def ensemble_model(members: Sequence[tuple[object, float]], name: str = "ensemble"):
    """One Keras model of weighted members: raw RGB pixels 0-255 in, at the largest member's
    input size; each member sees the image resized to its own input size (antialiased
    bilinear) and the weighted sum of their probabilities comes out.

    ``members`` are ``(keras model, weight)`` pairs, weights summing to 1 (an ``Ensemble``'s
    ``weights()``). A member's own resize from the larger input is not the decoder's resize
    from the original file, so the built model's accuracy is measured on the images, not
    copied from the ensemble's kept predictions.
    """
    import keras

    if not members:
        raise ValueError("an ensemble model needs at least one member")
    total = sum(float(w) for _, w in members)
    if abs(total - 1) > 1e-6:
        raise ValueError(f"ensemble weights sum to {total:g}, not 1")
    if len(members) == 1:
        return members[0][0]
    size = max(int(m.input_shape[1]) for m, _ in members)
    image = keras.Input((size, size, 3), name="image")
    outputs = []
    for i, (model, weight) in enumerate(members):
        own = int(model.input_shape[1])
        x = (
            image
            if own == size
            else keras.layers.Resizing(
                own, own, interpolation="bilinear", antialias=True, name=f"resize_{i}_{own}"
            )(image)
        )
        model.name = f"member_{i}_{model.name}"  # members may share a name (same space)
        outputs.append(keras.layers.Rescaling(float(weight), name=f"weight_{i}")(model(x)))
    return keras.Model(image, keras.layers.Add(name="weighted_sum")(outputs), name=name)
