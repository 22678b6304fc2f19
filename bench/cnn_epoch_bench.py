"""Per-epoch training time of the published scratch CNN at several input sizes, in one run.

The published recipe trains at 256 px for 35 epochs; on a small CPU that is hours, so the
reproduced baseline may run at 128 px. This measures what each size costs on this machine,
as seconds per epoch of the real training split (steps timed after a warm-up, times the
steps per epoch) and as a ratio to the first size given.

    python bench/cnn_epoch_bench.py --data ../shared/data/art-images [--sizes 128 256] [--steps 15]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--steps", type=int, default=15, help="timed training steps per size")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    import keras

    from search.data import load_images, locate_data, prepare_split
    from search.hyperparameters import fixed_hyperparameters
    from spaces import BuildContext, get_space

    space = get_space("cnn")  # the published CNN is this space's reference configuration
    reference = space.reference_configs()[0]

    manifest = prepare_split(locate_data(args.data), verbose=False)
    n_train = len(manifest.subset("train"))
    steps_per_epoch = math.ceil(n_train / args.batch_size)
    rows = []
    for size in args.sizes:
        x, y = load_images(manifest, "train", size, verbose=False)
        batch_x = np.asarray(x[: args.batch_size])
        batch_y = y[: args.batch_size]
        keras.utils.set_random_seed(0)
        model = space.build(
            fixed_hyperparameters({**reference, "image_size": size}),
            BuildContext(num_classes=len(manifest.class_names)),
        )
        for _ in range(3):  # warm-up: graph tracing and allocator
            model.train_on_batch(batch_x, batch_y)
        start = time.perf_counter()
        for _ in range(args.steps):
            model.train_on_batch(batch_x, batch_y)
        step_s = (time.perf_counter() - start) / args.steps
        rows.append(
            {
                "image_size": size,
                "params": model.count_params(),
                "step_s": round(step_s, 4),
                "epoch_s_estimate": round(step_s * steps_per_epoch, 1),
            }
        )
        keras.backend.clear_session()
    for row in rows:
        row["ratio_to_first"] = round(row["step_s"] / rows[0]["step_s"], 2)
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
                "train_images": n_train,
                "batch_size": args.batch_size,
                "steps_per_epoch": steps_per_epoch,
                "sizes": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
