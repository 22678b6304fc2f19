"""Reproduce a published reference model on the leak-free split and score it on the test set.

    python -m baselines.run cnn [--epochs 35] [--image-size 256] [--data DIR] [--seed 0]
    python -m baselines.run mobilenet [--epochs 20] [--fine-tune-epochs 10] [--weights FILE]

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
from search.results import REFERENCE_MODELS, environment_info, results_root, write_json


class BaselineError(ValueError):
    """A baseline run that cannot start or did not complete; the message says why."""


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
) -> dict[str, Any]:
    """Train one published model (its space's reference configuration, published settings
    unless overridden) through the trial runner; score it once on val and test."""
    from search.data import load_search_data
    from search.evaluate import evaluate_model
    from search.hyperparameters import fixed_hyperparameters
    from search.model_io import save_model
    from search.training import count_params
    from search.trial import TrialRequest, TrialRunner
    from spaces import BuildContext, get_space

    baseline = get_baseline(name)
    space = get_space(baseline.space)
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
        batch_size=batch_size,
        seed=seed,
        max_params=None,
        verbose=verbose,
        restore_best_epoch=False,
    )
    record, model = runner.fit(
        fixed_hyperparameters(config), TrialRequest(trial_id="0", number=0, epochs=budget)
    )
    if record.state != "COMPLETE":
        raise BaselineError(f"the {name} baseline did not complete: {record.error}")

    size = int(model.input_shape[1])
    reports = {
        split: evaluate_model(model, *source.arrays(split, size), source.class_names)
        for split in ("val", "test")
    }
    manifest = source.manifest
    out_dir = results_root(results) / "baselines" / name
    model_path = save_model(
        model, out_dir / "model.keras", source.class_names, size, manifest.path, baseline=name
    )
    trainable_at_end = count_params(model)["trainable"]
    metrics = {
        "name": name,
        "published_accuracy": REFERENCE_MODELS[name].published_accuracy,
        "test": reports["test"],
        "val": reports["val"],
        "history": record.history,
        "params": {
            "total": record.params,
            "trainable": record.trainable_params,
            "non_trainable": record.params - record.trainable_params,
            "trainable_at_end": trainable_at_end,
        },
        "wall_time_s": record.wall_time_s,
        "space": space.name,
        "config": {
            **config,
            "epochs": head_epochs,
            "fine_tune_epochs": tune_epochs,
            "epoch_budget": budget,
            "batch_size": batch_size,
            "weights": ctx.weights if space.uses_pretrained_weights else None,
        },
        "changed_from_published": changed,
        "seed": seed,
        "split": {
            "manifest": str(manifest.path),
            "digest": manifest.digest,
            "sizes": {s: int(len(source.labels(s))) for s in ("train", "val", "test")},
        },
        "model": str(model_path),
        "versions": environment_info(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json(out_dir / "metrics.json", metrics)
    return metrics


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


def main(argv: list[str] | None = None) -> int:
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
    args = parser.parse_args(argv)

    from search.data import DataNotFoundError, SplitError
    from spaces import get_space
    from spaces.backbones import get_backbone

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
        )
    except (DataNotFoundError, SplitError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_comparison(metrics))
    print(f"wrote {Path(metrics['model']).parent / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
