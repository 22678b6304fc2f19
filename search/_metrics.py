"""Classification metrics shared by baselines, searches and ``python -m search.evaluate``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

_SHOWN_SKIPPED = 3  # skipped files named in the text report (the JSON report lists all)


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], class_names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, confusion matrix and per-class precision/recall/F1.

    The returned dict is the one evaluation report format of the project:
    ``{"n", "accuracy", "balanced_accuracy", "classes", "confusion_matrix", "per_class",
    "predicted_unknown"}``, where ``confusion_matrix[i][j]`` counts images of true class i
    predicted as class j, ``per_class[name] = {"precision", "recall", "f1", "support"}`` and
    ``predicted_unknown`` counts predictions of a model output that has no class here (a model
    with more outputs than ``class_names``): they are wrong, and in no column of the matrix.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_true)} labels but {len(y_pred)} predictions")
    if len(y_true) == 0:
        raise ValueError("cannot evaluate on zero images")
    labels = list(range(len(class_names)))
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    unknown = (y_pred < 0) | (y_pred >= len(class_names))
    present = support > 0
    # Balanced accuracy = mean recall over the classes that occur in y_true.
    balanced = float(np.mean(recall[present])) if present.any() else 0.0
    return {
        "n": int(len(y_true)),
        "accuracy": float(np.mean(y_true == y_pred)),
        "balanced_accuracy": balanced,
        "classes": list(class_names),
        "confusion_matrix": cm.tolist(),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "predicted_unknown": int(unknown.sum()),
        "predicted_unknown_outputs": sorted({int(v) for v in y_pred[unknown]}),
    }


def format_report(report: dict[str, Any]) -> str:
    """Human-readable text of a report from :func:`classification_metrics`."""
    names = report["classes"]
    width = max(len(n) for n in names) + 2
    lines = [
        f"images: {report['n']}   accuracy: {report['accuracy']:.4f}   "
        f"balanced accuracy: {report['balanced_accuracy']:.4f}",
    ]
    skipped = report.get("skipped") or []
    if skipped:
        lines.append(f"skipped: {len(skipped)} files that could not be decoded (not scored):")
        lines += [f"  {s['path']}: {s['reason']}" for s in skipped[:_SHOWN_SKIPPED]]
        if len(skipped) > _SHOWN_SKIPPED:
            lines.append(f"  and {len(skipped) - _SHOWN_SKIPPED} more (--json lists them all)")
    if report.get("predicted_unknown"):
        outputs = report.get("predicted_unknown_outputs", [])
        which = f"output{'s' if len(outputs) > 1 else ''} {', '.join(map(str, outputs))}"
        lines.append(
            f"{report['predicted_unknown']} of {report['n']} images were predicted as model "
            f"outputs with no class ({which}): counted wrong, in no column of the confusion matrix"
        )
    lines += ["", f"{'class':<{width}}precision  recall    f1    support"]
    for name in names:
        m = report["per_class"][name]
        lines.append(
            f"{name:<{width}}{m['precision']:>9.3f}{m['recall']:>8.3f}{m['f1']:>7.3f}{m['support']:>10d}"
        )
    lines += ["", "confusion matrix (rows: true, columns: predicted)"]
    # Whole class names as column headers (a cut name may not tell classes apart: "class_").
    column = max(8, width)
    lines.append(" " * width + "".join(f"{n:>{column}}" for n in names))
    for name, row in zip(names, report["confusion_matrix"]):
        lines.append(f"{name:<{width}}" + "".join(f"{v:>{column}d}" for v in row))
    return "\n".join(lines)
