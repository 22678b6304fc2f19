"""A study's Pareto front of validation accuracy against a cost, each model scored on test.

    python -m search.front --study NAME [--cost latency_ms|size_mb|params] [--results DIR]

The front is chosen on validation alone (``search.results.trial_front``: no trial on it is
beaten on validation accuracy by one that costs less). The test split then only reports:
each front model the study kept (``models/``) is scored once, and the score is kept in
``front.json`` in the study's folder with the split's digest, so the command can be run again
(or after the study grew) without reading the test split again for a model it has scored.
It prints the front as a Markdown table: input size, parameters, TFLite latency and size,
validation and test accuracy with their standard errors, balanced accuracy, and the weakest
class's recall.

Exit status: 0 with a table; 2 when there is nothing to tabulate (no such study, no measured
front, no split manifest).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from search.console import quiet_tensorflow
from search.latency import FORMAT_LABELS
from search.results import COST_FIELDS, read_json, standard_error, trial_front, write_json

FRONT_JSON = "front.json"


class FrontError(ValueError):
    """Nothing to tabulate: the message says why and what to do."""


def scored_front(
    study, cost: str, log: Callable[[str], None] = lambda line: None
) -> list[dict[str, Any]]:
    """The study's front against ``cost``, one plain row per trial with its test report
    (None where the model was not kept); new test scores are written to ``front.json``.
    Where the study's models are not (its results copied without them), the scores
    ``front.json`` kept are shown and nothing is scored."""
    from search.export import ExportError, study_sidecar

    front = trial_front(study.records(), cost)
    if not front:
        raise FrontError(
            f"study {study.name!r} has no completed trial with a measured {cost}: run the "
            "search without --no-latency (latency and size are measured per completed trial)"
        )
    try:
        meta = study_sidecar(study)
    except ExportError:  # the study's models are not here (results committed without them)
        meta = None
        log(
            f"note: study {study.name!r} has no best model here: test scores are those "
            f"{FRONT_JSON} kept where its models were, none are scored now"
        )
    path = study.dir / FRONT_JSON
    known = read_json(path) if path.exists() else {}
    digest = known.get("split") if meta is None else _split_digest(meta)
    scores = dict(known.get("test", {})) if known.get("split") == digest else {}
    rows = [_row(study, record, meta, scores, log) for record in front]
    if scores != known.get("test", {}):
        write_json(path, {"split": digest, "test": scores})
    val_n = (read_json(study.best_json) if study.best_json.exists() else {}).get("val_n")
    for row in rows:
        row["val_standard_error"] = standard_error(row["val_accuracy"], val_n)
    return rows


def _split_digest(meta: dict[str, Any]) -> str:
    from search.data import SplitError, load_manifest

    if not meta.get("manifest"):
        raise FrontError("the study's best model names no split manifest: nothing to score on")
    try:
        return load_manifest(meta["manifest"]).digest
    except SplitError as exc:
        raise FrontError(f"{exc}: the front cannot be scored on the study's test split") from None


def _row(study, record, meta, scores: dict, log) -> dict[str, Any]:
    """One front point: its figures, and its test report (scored now unless known)."""
    if record.trial_id not in scores and meta is not None:
        path = study.kept_model_path(record)
        if path is None:
            log(f"trial {record.trial_id}'s model was not kept: no test score")
        else:
            scores[record.trial_id] = _test_report(path, meta, log, record.trial_id)
    return {
        "trial_id": record.trial_id,
        "input_size": record.input_size or record.config.get("image_size"),
        "val_accuracy": record.val_accuracy,
        **{c: getattr(record, c) for c in COST_FIELDS},
        "format": (record.latency or {}).get("format", "tflite"),
        "test": scores.get(record.trial_id),
    }


def _test_report(path, meta, log, trial_id: str) -> dict[str, Any]:
    """The kept model's accuracy, balanced accuracy and per-class recall on the test split."""
    import keras

    from search.export import test_score

    model = keras.saving.load_model(path, compile=False)
    report = test_score(model, meta, int(model.input_shape[1]), log, what=f"trial {trial_id}")
    keras.backend.clear_session()
    return {
        "accuracy": report["accuracy"],
        "balanced_accuracy": report["balanced_accuracy"],
        "n": report["n"],
        "recall": {name: m["recall"] for name, m in report["per_class"].items()},
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    """The front as a Markdown table, cheapest first (latency and size of the file the
    study measured: float TFLite unless it chose another ``--latency-format``)."""
    formats = {row.get("format", "tflite") for row in rows}
    timed = FORMAT_LABELS.get(formats.pop(), "latency") if len(formats) == 1 else "latency"
    lines = [
        f"| trial | input | parameters | {timed} ms | MB | validation | test | balanced | "
        "weakest class (recall) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        test = row["test"]
        cells = [
            row["trial_id"],
            f"{row['input_size']} px",
            f"{row['params']:,}" if row["params"] is not None else "-",
            _number(row["latency_ms"], "{:.2f}"),
            _number(row["size_mb"], "{:.2f}"),
            _with_error(row["val_accuracy"], row["val_standard_error"]),
        ]
        if test is None:
            cells += ["not scored", "-", "-"]
        else:
            weakest = min(test["recall"], key=test["recall"].get)
            cells += [
                _with_error(test["accuracy"], standard_error(test["accuracy"], test["n"])),
                f"{test['balanced_accuracy']:.1%}",
                f"{weakest} {test['recall'][weakest]:.1%}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _number(value, fmt: str) -> str:
    return fmt.format(value) if value is not None else "-"


def _with_error(accuracy: float | None, error: float | None) -> str:
    if accuracy is None:
        return "-"
    return f"{accuracy:.1%}" + (f" ± {error:.1%}" if error is not None else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m search.front", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--study", required=True, help="the study whose front to tabulate")
    parser.add_argument(
        "--cost", choices=COST_FIELDS, default="latency_ms", help="the cost the front is against"
    )
    parser.add_argument("--results", help="results folder (default: $ART_RESULTS, then ./results)")
    args = parser.parse_args(argv)
    from search.study import SearchError, Study

    quiet_tensorflow()
    try:
        study = Study.existing(args.study, args.results)
        rows = scored_front(study, args.cost, log=lambda line: print(line, file=sys.stderr))
    except (SearchError, FrontError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Front of study {args.study}: validation accuracy against {args.cost}\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
