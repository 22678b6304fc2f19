"""Reproduce a published reference model on the leak-free split and score it on the test set.

    python -m baselines.run cnn [--epochs 35] [--image-size 256] [--data DIR] [--seed 0]
    python -m baselines.run mobilenet [--epochs 20] [--fine-tune-epochs 10] [--weights FILE]
    python -m baselines.run cnn --measure   # only its latency and size, added to metrics.json

A baseline is its space's reference configuration trained by the same runner as any trial
(see baselines/__init__.py). Writes ``results/baselines/<name>/metrics.json`` (small, committed) and ``model.keras``
(git-ignored), and prints the reproduced test accuracy beside the published one.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from baselines.recipes import BASELINES, get_baseline
from search.results import (
    REFERENCE_MODELS,
    environment_info,
    read_json,
    results_root,
    write_json,
)


class BaselineError(ValueError):
    """A baseline run that cannot start or did not complete; the message says why."""


# A kept (last) epoch this far below the run's best validation epoch is reported: the recipe
# keeps its last epoch, so a phase that collapsed (MobileNetV2's fine-tuning under Keras 3 at a
# short budget) is what gets scored.
KEPT_EPOCH_GAP = 0.05


def run_baseline(
    name: str,
    data: str | None = None,
    results: str | None = None,
    seed: int = 0,
    image_size: int | None = None,
    epochs: int | None = None,
    fine_tune_epochs: int | None = None,
    batch_size: int | None = None,
    weights: str | None = "imagenet",
    verbose: int | str = "auto",
    measure_latency: bool = True,
) -> dict[str, Any]:
    """Train one published model (its space's reference configuration, published settings
    unless overridden) through the trial runner; score it once on val and test.

    Writes ``results/baselines/<name>/`` (what the dashboard shows as reproduced), except
    that a run with another budget never replaces a published-budget result there: it goes to
    ``results/baselines/<name>-<budget>/`` (e.g. ``mobilenet-e3-ft2``) instead."""
    from search.data import load_search_data
    from search.hyperparameters import fixed_hyperparameters
    from search.trial import TrialRequest, TrialRunner
    from spaces import BuildContext, get_space

    baseline = get_baseline(name)
    space = get_space(baseline.space)
    recipe = _recipe(baseline, space, image_size, epochs, fine_tune_epochs, batch_size)
    source = load_search_data(data, results=results)
    ctx = BuildContext(
        num_classes=len(source.class_names),
        weights=weights if space.uses_pretrained_weights else None,
    )
    runner = TrialRunner(
        space,
        source,
        None,
        ctx=ctx,
        batch_size=recipe["batch_size"],
        seed=seed,
        max_params=None,
        verbose=verbose,
        restore_best_epoch=False,
    )
    record, model = runner.fit(
        fixed_hyperparameters(recipe["config"]),
        TrialRequest(trial_id="0", number=0, epochs=recipe["budget"]),
    )
    if record.state != "COMPLETE":
        raise BaselineError(f"the {name} baseline did not complete: {record.error}")
    out_dir = baseline_dir(results_root(results), name, recipe["changed"])
    metrics = _score_and_save(name, space, ctx, recipe, source, record, model, out_dir)
    metrics["seed"] = seed
    # Where it ships (search.latency): latency_ms, size_mb and the measurement, for the fronts
    # (``measure_latency`` False: later, with ``--measure``).
    if measure_latency:
        metrics.update(
            runner.measured(fixed_hyperparameters(recipe["config"]), model, strict=False)
        )
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def measure_baseline(name: str, results: str | None = None) -> dict[str, Any]:
    """Add a reproduced baseline's latency and size where it ships (``search.latency``) to its
    ``metrics.json``, from its recipe built untrained (latency and size need no weights): a
    few seconds, no data. Returns the updated metrics."""
    from search.hyperparameters import fixed_hyperparameters
    from search.latency import measure_latency, record_fields
    from spaces import BuildContext, get_space

    baseline = get_baseline(name)
    path = results_root(results) / "baselines" / name / "metrics.json"
    if not path.exists():
        raise BaselineError(f"no reproduced {name} baseline at {path}: run it first")
    metrics = read_json(path)
    config = baseline.reference_config()
    config.update({k: v for k, v in (metrics.get("config") or {}).items() if k in config})
    space = get_space(baseline.space)
    hp = fixed_hyperparameters(config)
    classes = len((metrics.get("test") or {}).get("per_class") or {}) or 5
    model = space.build(hp, BuildContext(num_classes=classes, weights=None))
    recorded = (metrics.get("params") or {}).get("total")
    if recorded is not None and model.count_params() != recorded:
        raise BaselineError(
            f"the {name} recipe builds {model.count_params():,} parameters, its run had "
            f"{recorded:,}: the space changed since; run the baseline again to measure it"
        )
    metrics.update(record_fields(measure_latency(space.inference_model(hp, model))))
    write_json(path, metrics)
    return metrics


def _recipe(baseline, space, image_size, epochs, fine_tune_epochs, batch_size) -> dict[str, Any]:
    """The configuration and epoch budget a run trains, and what it changed from the
    published recipe: ``{"config", "epochs", "fine_tune_epochs", "budget", "batch_size",
    "changed"}``."""
    config = baseline.reference_config()
    head_epochs = baseline.epochs if epochs is None else epochs
    tune_epochs = baseline.fine_tune_epochs if fine_tune_epochs is None else fine_tune_epochs
    if not baseline.fine_tune_epochs:
        fine_tune_epochs = tune_epochs = 0  # a recipe without fine-tuning ignores the flag
    batch_size = batch_size or 32
    published = {
        "image_size": config.get("image_size"),
        "epochs": baseline.epochs,
        "fine_tune_epochs": baseline.fine_tune_epochs,
        "batch_size": 32,
    }
    asked = {
        "image_size": image_size,
        "epochs": epochs,
        "fine_tune_epochs": fine_tune_epochs,
        "batch_size": batch_size,
    }
    changed = {k: v for k, v in asked.items() if v is not None and v != published[k]}
    if image_size is not None:
        config["image_size"] = image_size
    budget = head_epochs
    if baseline.fine_tune_epochs:
        config["fine_tune_epochs"] = tune_epochs
        budget = head_epochs + tune_epochs
        if space.phase_epochs(config, budget) != (head_epochs, tune_epochs):
            raise BaselineError(
                f"--epochs {head_epochs} with --fine-tune-epochs {tune_epochs}: the {space.name} "
                f"space gives fine-tuning at most half of a trial's epochs, so --epochs must be "
                f"at least --fine-tune-epochs"
            )
    return {
        "config": config,
        "epochs": head_epochs,
        "fine_tune_epochs": tune_epochs,
        "budget": budget,
        "batch_size": batch_size,
        "changed": changed,
    }


def baseline_dir(root: Path, name: str, changed: dict[str, Any]) -> Path:
    """Where a run writes: ``baselines/<name>/``, unless it changed the published recipe and
    that folder holds a published-budget result (the committed one, the dashboard's
    reproduced line): then ``baselines/<name>-<budget>/``."""
    home = root / "baselines" / name
    if not changed:
        return home
    try:
        held = read_json(home / "metrics.json")
    except (OSError, ValueError):
        return home  # nothing (readable) to keep
    if not isinstance(held, dict) or held.get("changed_from_published"):
        return home  # an earlier changed run: replaced
    return root / "baselines" / baseline_folder(name, changed)


# How a changed setting names the folder of a run apart from the published one.
_TAGS = {"epochs": "e{}", "fine_tune_epochs": "ft{}", "image_size": "{}px", "batch_size": "b{}"}


def baseline_folder(name: str, changed: dict[str, Any]) -> str:
    """``name`` for the published recipe; ``name-e3-ft2`` (epochs 3, fine-tuning 2), etc.,
    for a run that changed it, so it never replaces the published-budget result."""
    tags = [_TAGS[key].format(changed[key]) for key in _TAGS if key in changed]
    return "-".join([name, *tags])


def _score_and_save(name, space, ctx, recipe, source, record, model, out_dir) -> dict[str, Any]:
    """Score the trained model once on val and test, save it in ``out_dir``; its metrics."""
    from search.evaluate import evaluate_model
    from search.model_io import save_model
    from search.training import count_params

    size = int(model.input_shape[1])
    reports = {
        split: evaluate_model(model, *source.arrays(split, size), source.class_names)
        for split in ("val", "test")
    }
    manifest = source.manifest
    model_path = save_model(
        model, out_dir / "model.keras", source.class_names, size, manifest.path, baseline=name
    )
    return {
        "name": name,
        "published_accuracy": REFERENCE_MODELS[name].published_accuracy,
        "test": reports["test"],
        "val": reports["val"],
        "history": record.history,
        "kept_epoch": kept_epoch(record.history),
        "params": {
            "total": record.params,
            "trainable": record.trainable_params,
            "non_trainable": record.params - record.trainable_params,
            "trainable_at_end": count_params(model)["trainable"],
        },
        "wall_time_s": record.wall_time_s,
        "space": space.name,
        "config": {
            **recipe["config"],
            "epochs": recipe["epochs"],
            "fine_tune_epochs": recipe["fine_tune_epochs"],
            "epoch_budget": recipe["budget"],
            "batch_size": recipe["batch_size"],
            "weights": ctx.weights if space.uses_pretrained_weights else None,
        },
        "changed_from_published": recipe["changed"],
        "split": {
            "manifest": str(manifest.path),
            "digest": manifest.digest,
            "sizes": {s: int(len(source.labels(s))) for s in ("train", "val", "test")},
        },
        "model": str(model_path),
        "versions": environment_info(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def kept_epoch(history: dict[str, list[float]]) -> dict[str, Any] | None:
    """The kept (last) epoch's validation accuracy beside the run's best epoch (1-based
    epochs); None without a validation curve."""
    curve = history.get("val_accuracy") or []
    if not curve:
        return None
    best = max(range(len(curve)), key=lambda i: curve[i])
    return {
        "epoch": len(curve),
        "val_accuracy": curve[-1],
        "best_epoch": best + 1,
        "best_val_accuracy": curve[best],
    }


def kept_epoch_warning(metrics: dict[str, Any]) -> str | None:
    """One line when the kept epoch is more than ``KEPT_EPOCH_GAP`` below the best one."""
    kept = metrics.get("kept_epoch")
    if not kept or kept["best_val_accuracy"] - kept["val_accuracy"] <= KEPT_EPOCH_GAP:
        return None
    gap = 100 * (kept["best_val_accuracy"] - kept["val_accuracy"])
    return (
        f"warning: the kept (last) epoch {kept['epoch']} has validation accuracy "
        f"{kept['val_accuracy']:.1%}, {gap:.1f} points below epoch {kept['best_epoch']} "
        f"({kept['best_val_accuracy']:.1%}); the recipe keeps its last epoch, so this score "
        "is that of a run that fell back"
    )


def format_comparison(metrics: dict[str, Any]) -> str:
    from search.results import standard_error

    test, val = metrics["test"], metrics["val"]
    published = metrics["published_accuracy"]
    lines = [
        f"{metrics['name']}: test accuracy {test['accuracy']:.4f} "
        f"± {standard_error(test['accuracy'], test['n']):.4f} "
        f"(balanced {test['balanced_accuracy']:.4f}) on {test['n']} leak-free test images",
        f"{'':{len(metrics['name'])}}  published claim {published:.2f} (measured on a leaky split); "
        f"difference {test['accuracy'] - published:+.4f}",
        f"  validation accuracy {val['accuracy']:.4f} ± {standard_error(val['accuracy'], val['n']):.4f}; "
        f"{len(metrics['history']['loss'])} epochs in {metrics['wall_time_s']:.0f} s",
    ]
    if metrics["changed_from_published"]:
        lines.append(f"  changed from the published recipe: {metrics['changed_from_published']}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m baselines.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", choices=list(BASELINES))
    parser.add_argument("--epochs", type=int, help="epochs (mobilenet: frozen-phase ceiling)")
    parser.add_argument("--fine-tune-epochs", type=int, help="mobilenet only; 0 skips fine-tuning")
    parser.add_argument("--image-size", type=int, help="square input size in pixels")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument(
        "--data", help="dataset folder (default: $ART_DATA, then ./data/art-images)"
    )
    parser.add_argument("--results", help="results folder (default: $ART_RESULTS, then ./results)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (the split is fixed)")
    parser.add_argument(
        "--weights",
        help="mobilenet: local MobileNetV2 no-top .h5 file, or 'none' "
        "for random initialisation (default: Keras' imagenet cache)",
    )
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    parser.add_argument(
        "--no-latency",
        action="store_true",
        help="train and score only; add the latency and size later with --measure",
    )
    parser.add_argument(
        "--measure",
        action="store_true",
        help="train nothing: add the reproduced baseline's latency and size where it ships "
        "(float TFLite, batch 1, LiteRT) to its metrics.json, for the dashboard's fronts",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from search.console import quiet_tensorflow

    quiet_tensorflow()  # before anything imports tensorflow
    from search.data import DataNotFoundError, SplitError
    from spaces import get_space
    from spaces.backbones import get_backbone

    if args.measure:
        try:
            metrics = measure_baseline(args.name, args.results)
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(
            f"{args.name}: {metrics['latency_ms']:.2f} ms (median, batch 1, "
            f"{metrics['latency']['runtime']}, {metrics['latency']['threads']} thread), "
            f"{metrics['size_mb']:.2f} MB; added to its metrics.json"
        )
        return 0
    try:
        space = get_space(get_baseline(args.name).space)
        weights = None
        if space.uses_pretrained_weights:
            weights = get_backbone(space.backbones[0]).resolve_weights(args.weights)
        metrics = run_baseline(
            args.name,
            args.data,
            args.results,
            args.seed,
            args.image_size,
            args.epochs,
            args.fine_tune_epochs,
            args.batch_size,
            weights,
            verbose=0 if args.quiet else "auto",
            measure_latency=not args.no_latency,
        )
    except (DataNotFoundError, SplitError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_comparison(metrics))
    warning = kept_epoch_warning(metrics)
    if warning:
        print(warning, file=sys.stderr)
    folder = Path(metrics["model"]).parent
    print(f"wrote {folder / 'metrics.json'}")
    if folder.name != args.name:
        print(
            f"kept apart from the published-budget result in {folder.parent / args.name} "
            f"(the one the dashboard shows), which this changed recipe does not replace"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
