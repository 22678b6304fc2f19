"""Export a trained model for use: the best one overall, a study's best, or a baseline.

    python -m search.export --best [--out exports/best]
    python -m search.export --study cnn-keras-tuner-hyperband
    python -m search.export --baseline mobilenet --saved-model

Writes ``model.keras`` with its ``model.json`` sidecar (class names, input size), a
``MODEL_CARD.md`` (where it came from, its leak-free test scores, the configuration), and
with ``--saved-model`` a TensorFlow SavedModel for serving. "Best" means the highest
validation accuracy among the scored models (baselines and each study's best, all on the
same split), chosen by ``search.results.best_model`` like the dashboard's leaderboard; the
test split only reports, so the exported model's test score is not the luckiest of several.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from search.model_io import load_model, sidecar_path
from search.results import ModelResult, best_model, load_results, write_json


class ExportError(ValueError):
    pass


def candidates(results: str | None = None) -> list[ModelResult]:
    """Every scored model: baselines and each study's best, each with its test report."""
    return [m for m in load_results(results).models() if m.tested]


def choose(found: list[ModelResult], study: str | None, baseline: str | None) -> ModelResult:
    if study or baseline:
        kind, name = ("study", study) if study else ("baseline", baseline)
        match = [c for c in found if c.kind == kind and c.name == name]
        if not match:
            known = ", ".join(c.name for c in found if c.kind == kind) or "none"
            raise ExportError(f"no scored {kind} named {name!r}; scored {kind} names: {known}")
        return match[0]
    best = best_model(found)  # the dashboard's choice too: validation selects, test only reports
    if best is None:
        raise ExportError("no scored model under results/: run `python -m baselines.run ...` "
                          "or `python -m search.run ...` first")
    return best


def export(choice: ModelResult, out: Path, saved_model: bool = False) -> Path:
    source = Path(choice.model_path)
    if not source.exists():
        raise ExportError(f"{source} is missing (models are not committed: rerun the run that "
                          "made it, on this machine)")
    model, meta = load_model(source)  # fails clearly on a broken file before anything is written
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, out / "model.keras")
    write_json(sidecar_path(out / "model.keras"), {**meta, "exported_from": str(source)})
    if saved_model:
        model.export(str(out / "saved_model"), format="tf_saved_model")
    (out / "MODEL_CARD.md").write_text(model_card(choice, meta), encoding="utf-8")
    return out


def model_card(choice: ModelResult, meta: dict[str, Any]) -> str:
    test = choice.test
    lines = [
        f"# {choice.kind} {choice.name}",
        "",
        f"- input: {meta.get('image_size')} x {meta.get('image_size')} RGB, uint8 pixels 0-255",
        f"- classes (output order): {', '.join(meta.get('class_names') or test['classes'])}",
        f"- leak-free test accuracy {test['accuracy']:.4f}, balanced {test['balanced_accuracy']:.4f} "
        f"on {test['n']} images (scored once)",
    ]
    if choice.val_accuracy is not None:
        lines.append(f"- validation accuracy (used for selection) {choice.val_accuracy:.4f}")
    lines += ["", "| class | precision | recall | f1 | support |", "|---|---|---|---|---|"]
    for name, m in test["per_class"].items():
        lines.append(f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |")
    lines += ["", "Configuration:", "", "```", *(f"{k}: {v}" for k, v in sorted(choice.config.items())), "```",
              "", "Use: `python -m search.predict model.keras IMAGE...`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--best", action="store_true",
                       help="the highest validation accuracy (default)")
    which.add_argument("--study", help="a study's best model")
    which.add_argument("--baseline", help="cnn or mobilenet")
    parser.add_argument("--out", help="output folder (default exports/<name>)")
    parser.add_argument("--results", help="results folder (default: $ART_RESULTS, then ./results)")
    parser.add_argument("--saved-model", action="store_true", help="also write a TF SavedModel")
    args = parser.parse_args(argv)
    try:
        choice = choose(candidates(args.results), args.study, args.baseline)
        out = export(choice, Path(args.out or Path("exports") / choice.name), args.saved_model)
    except (ExportError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    val = choice.val_accuracy
    print(f"exported {choice.kind} {choice.name} ("
          + (f"validation accuracy {val:.4f}, " if val is not None else "")
          + f"test accuracy {choice.test['accuracy']:.4f}) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
