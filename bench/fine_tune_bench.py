"""What fine-tuning on cached activations saves, as a ratio measured in one run on one machine.

The published MobileNetV2 fine-tuning (top 54 layers, 224 px) trained two ways on the same
images, same weights, same batches: through the image path (every image through the whole
backbone every epoch) and on the frozen part's outputs cached once (spaces/mobilenet.py).

    python bench/fine_tune_bench.py --data ../shared/data/art-images [--images 512] [--epochs 2]

Prints a small JSON report; nothing here is asserted by the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data")
    parser.add_argument("--images", type=int, default=512, help="training images to use")
    parser.add_argument(
        "--epochs", type=int, default=2, help="timed epochs per path (after one warm-up)"
    )
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()

    import keras
    import numpy as np

    from search.data import ArrayData, load_search_data
    from search.hyperparameters import fixed_hyperparameters
    from spaces import BuildContext
    from spaces.backbones import BACKBONES
    from spaces.mobilenet import MobileNetSpace

    real = load_search_data(args.data)
    splits = {}
    for split in ("train", "val", "test"):
        x, y = real.arrays(split, args.size)
        n = args.images if split == "train" else max(args.images // 4, 32)
        splits[split] = (np.asarray(x[:n]), np.asarray(y[:n]))
    data = ArrayData(splits, real.class_names, name="bench")
    weights = BACKBONES["mobilenet_v2"].resolve_weights(None)
    ctx = BuildContext(num_classes=len(real.class_names), weights=weights)
    config = {**MobileNetSpace().reference_configs()[0], "image_size": args.size}
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "train_images": args.images,
        "size": args.size,
        "fine_tune_layers": 54,
    }
    for name, cache in (("image_path", False), ("cached_activations", True)):
        space = MobileNetSpace(cache_activations=cache)
        hp = fixed_hyperparameters({**config, "fine_tune_epochs": args.epochs + 1})
        keras.utils.set_random_seed(0)
        model = space.build(hp, ctx)
        times: list[float] = []

        class Timer(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                times.append(time.perf_counter() - self.t0)  # noqa: B023 - used in this iteration

        t0 = time.perf_counter()
        # One head epoch (on pooled features either way), then warm-up + timed fine-tuning.
        space.fit(hp, model, data, ctx, epochs=2 * (args.epochs + 1), callbacks=[Timer()])
        total = time.perf_counter() - t0
        tune = times[-args.epochs :]
        report[name] = {
            "fine_tune_epoch_s": round(sum(tune) / len(tune), 2),
            "whole_fit_s": round(total, 1),
        }
        keras.backend.clear_session()
    report["speedup_per_fine_tune_epoch"] = round(
        report["image_path"]["fine_tune_epoch_s"]
        / report["cached_activations"]["fine_tune_epoch_s"],
        1,
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
