"""Reproduce a published reference model on the leak-free split and score it on the test set.

    python -m baselines.run cnn [--epochs 35] [--image-size 256] [--data DIR] [--seed 0]
    python -m baselines.run mobilenet [--epochs 20] [--fine-tune-epochs 10] [--weights FILE]

Writes ``results/baselines/<name>/metrics.json`` (small, committed) and ``model.keras``
(git-ignored), and prints the reproduced test accuracy beside the published one.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

from search.results import environment_info, results_root, write_json

BASELINES = ("cnn", "mobilenet")


def run_baseline(
    name: str,
    data: str | None = None,
    results: str | None = None,
    seed: int = 0,
    image_size: int | None = None,
    epochs: int | None = None,
    fine_tune_epochs: int | None = None,
    batch_size: int | None = None,
    weights: str | None = None,
    verbose: int | str = "auto",
) -> dict[str, Any]:
    """Train one reference recipe (published settings unless overridden); return its metrics."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
    import keras

    from baselines.cnn import CNN_RECIPE
    from baselines.mobilenet import MOBILENET_RECIPE
    from search.data import load_images, locate_data, prepare_split

    recipe = copy.deepcopy(CNN_RECIPE if name == "cnn" else MOBILENET_RECIPE)
    overrides = {"image_size": image_size, "epochs": epochs, "batch_size": batch_size,
                 "fine_tune_epochs": fine_tune_epochs if name == "mobilenet" else None}
    changed = {k: v for k, v in overrides.items() if v is not None and v != recipe.get(k)}
    recipe.update(changed)
    recipe["weights"] = weights or "imagenet"

    data_dir = locate_data(data)
    manifest = prepare_split(data_dir, results)
    keras.utils.set_random_seed(seed)
    size = recipe["image_size"]
    arrays = {split: load_images(manifest, split, size) for split in ("train", "val", "test")}

    start = time.perf_counter()
    if name == "cnn":
        model, history, params = _train_cnn(recipe, manifest, arrays, seed, verbose)
    else:
        model, history, params = _train_mobilenet(recipe, manifest, arrays, seed, verbose)
    wall_time = time.perf_counter() - start

    from search.evaluate import evaluate_model
    from search.model_io import save_model

    reports = {split: evaluate_model(model, *arrays[split], manifest.class_names)
               for split in ("val", "test")}
    out_dir = results_root(results) / "baselines" / name
    model_path = save_model(model, out_dir / "model.keras", manifest.class_names, size,
                            manifest.path, baseline=name)
    metrics = {
        "name": name,
        "published_accuracy": recipe["published_accuracy"],
        "test": reports["test"],
        "val": reports["val"],
        "history": history,
        "params": params,
        "wall_time_s": wall_time,
        "config": recipe,
        "changed_from_published": changed,
        "seed": seed,
        "split": {"manifest": str(manifest.path), "digest": manifest.digest,
                  "sizes": {s: len(arrays[s][1]) for s in arrays}},
        "model": str(model_path),
        "versions": environment_info(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def _train_cnn(recipe, manifest, arrays, seed, verbose):
    from baselines.cnn import build_cnn, cnn_callbacks, compile_cnn
    from search.data import make_dataset
    from search.training import count_params, merge_histories, train

    model = compile_cnn(build_cnn(recipe["image_size"], len(manifest.class_names),
                                  recipe["filters"], recipe["blocks"], recipe["dropout"],
                                  recipe["dense_units"]), recipe["learning_rate"])
    train_ds = make_dataset(*arrays["train"], recipe["batch_size"], shuffle=True, seed=seed)
    val_ds = make_dataset(*arrays["val"], recipe["batch_size"])
    history = train(model, train_ds, val_ds, recipe["epochs"], cnn_callbacks(recipe), verbose=verbose)
    return model, merge_histories(("train", history)), count_params(model)


def _train_mobilenet(recipe, manifest, arrays, seed, verbose):
    from baselines.mobilenet import (build_mobilenet, compile_model, feature_extractor,
                                     fine_tune_callbacks, frozen_callbacks, unfreeze_from)
    from search.data import make_dataset
    from search.features import backbone_features
    from search.training import count_params, merge_histories, train

    weights = None if recipe["weights"] == "none" else recipe["weights"]
    size = recipe["image_size"]
    model, backbone, head = build_mobilenet(size, len(manifest.class_names), weights,
                                            recipe["dense_units"], recipe["dropout"])
    params = {"frozen_phase": count_params(model)}

    # Phase 1: the frozen backbone is a fixed function, so the head trains on its cached
    # pooled features (identical maths, the backbone runs once per image, not per epoch).
    extractor = feature_extractor(model)
    feats = {s: backbone_features(manifest, s, size, weights, extractor=extractor)
             for s in ("train", "val")}
    compile_model(head, recipe["learning_rate"])
    f_train = make_dataset(feats["train"], arrays["train"][1], recipe["batch_size"], shuffle=True, seed=seed)
    f_val = make_dataset(feats["val"], arrays["val"][1], recipe["batch_size"])
    frozen = train(head, f_train, f_val, recipe["epochs"], frozen_callbacks(recipe), verbose=verbose)
    phases = [("frozen", frozen)]

    # Phase 2: unfreeze from layer 100 on, a tenth of the learning rate, on images.
    if recipe["fine_tune_epochs"] > 0:
        unfreeze_from(backbone, recipe["fine_tune_at"])
        compile_model(model, recipe["learning_rate"] * recipe["fine_tune_lr_factor"])
        params["fine_tune_phase"] = count_params(model)
        train_ds = make_dataset(*arrays["train"], recipe["batch_size"], shuffle=True, seed=seed)
        val_ds = make_dataset(*arrays["val"], recipe["batch_size"])
        tuned = train(model, train_ds, val_ds, recipe["fine_tune_epochs"], fine_tune_callbacks(recipe),
                      initial_epoch=len(frozen["loss"]), verbose=verbose)
        phases.append(("fine_tune", tuned))
    params = {**params["frozen_phase"], "trainable_frozen_phase": params["frozen_phase"]["trainable"],
              "trainable_fine_tune_phase": params.get("fine_tune_phase", {}).get("trainable")}
    return model, merge_histories(*phases), params


def format_comparison(metrics: dict[str, Any]) -> str:
    test = metrics["test"]
    published = metrics["published_accuracy"]
    lines = [
        f"{metrics['name']}: test accuracy {test['accuracy']:.4f} "
        f"(balanced {test['balanced_accuracy']:.4f}) on {test['n']} leak-free test images",
        f"{'':{len(metrics['name'])}}  published claim {published:.2f} (measured on a leaky split); "
        f"difference {test['accuracy'] - published:+.4f}",
        f"  validation accuracy {metrics['val']['accuracy']:.4f}; "
        f"{len(metrics['history']['loss'])} epochs in {metrics['wall_time_s']:.0f} s",
    ]
    if metrics["changed_from_published"]:
        lines.append(f"  changed from the published recipe: {metrics['changed_from_published']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m baselines.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=BASELINES)
    parser.add_argument("--epochs", type=int, help="epochs (mobilenet: frozen-phase ceiling)")
    parser.add_argument("--fine-tune-epochs", type=int, help="mobilenet only; 0 skips fine-tuning")
    parser.add_argument("--image-size", type=int, help="square input size in pixels")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--data", help="dataset folder (default: $ART_DATA, then ./data/art-images)")
    parser.add_argument("--results", help="results folder (default: $ART_RESULTS, then ./results)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (the split is fixed)")
    parser.add_argument("--weights", help="mobilenet: local MobileNetV2 no-top .h5 file, or 'none' "
                                          "for random initialisation (default: Keras' imagenet cache)")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    args = parser.parse_args(argv)

    from search.data import DataNotFoundError, SplitError
    from search.weights import mobilenet_v2_weights

    try:
        weights = args.weights
        if weights and weights != "none":
            weights = mobilenet_v2_weights(weights)
        metrics = run_baseline(args.name, args.data, args.results, args.seed, args.image_size,
                               args.epochs, args.fine_tune_epochs, args.batch_size, weights,
                               verbose=0 if args.quiet else "auto")
    except (DataNotFoundError, SplitError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_comparison(metrics))
    print(f"wrote {Path(metrics['model']).parent / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
