"""How much the CPU-first design saves, as ratios measured in one run on one machine.

1. Image cache: decoding + resizing a split's JPEGs vs reading the cached uint8 array.
2. Feature cache: one frozen-phase epoch of the MobileNetV2 baseline on images (backbone
   forward pass every step) vs on cached pooled features (head only), same head, same data.

    python bench/pipeline_bench.py --data ../shared/data/art-images [--images 512] [--size 224]

Prints a small JSON report; nothing here is asserted by the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data")
    parser.add_argument("--images", type=int, default=512, help="images of the train split to use")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument(
        "--weights", default=None, help="MobileNetV2 no-top .h5 (default: Keras cache)"
    )
    args = parser.parse_args()

    import keras

    from search.data import (
        decode_resized,
        load_images,
        locate_data,
        make_dataset,
        predict_in_batches,
        prepare_split,
    )
    from search.hyperparameters import fixed_hyperparameters
    from search.training import compile_classifier
    from spaces import BuildContext, get_space
    from spaces.backbones import BACKBONES
    from spaces.mobilenet import FEATURES_LAYER, HEAD_LAYER

    manifest = prepare_split(locate_data(args.data), verbose=False)
    entries = manifest.subset("train")[: args.images]
    paths = [os.path.join(manifest.data_root, e["path"]) for e in entries]

    t0 = time.perf_counter()
    decoded = decode_resized(paths, args.size, verbose=False)
    decode_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, "x.npy"), decoded)
        t0 = time.perf_counter()
        cached = np.load(os.path.join(tmp, "x.npy"))  # a full read, not a lazy memory map
        cached_s = time.perf_counter() - t0
    assert np.array_equal(cached, decoded)

    _, y_all = load_images(manifest, "train", args.size, verbose=False)
    y = y_all[: args.images]
    keras.utils.set_random_seed(0)
    # The published MobileNetV2 is the mobilenet-head space's reference configuration.
    space = get_space("mobilenet-head")
    weights = BACKBONES["mobilenet_v2"].resolve_weights(args.weights)
    model = space.build(
        fixed_hyperparameters({**space.reference_configs()[0], "image_size": args.size}),
        BuildContext(num_classes=len(manifest.class_names), weights=weights),
    )
    head = model.get_layer(HEAD_LAYER)
    t0 = time.perf_counter()
    model.fit(make_dataset(decoded, y, 32), epochs=1, verbose=0)
    image_epoch_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    extractor = keras.Model(model.input, model.get_layer(FEATURES_LAYER).output)
    features = predict_in_batches(extractor, decoded).astype(np.float32)
    extract_s = time.perf_counter() - t0
    compile_classifier(head, keras.optimizers.Adam(0.01))
    head.fit(make_dataset(features, y, 32), epochs=1, verbose=0)  # warm-up (graph tracing)
    t0 = time.perf_counter()
    head.fit(make_dataset(features, y, 32), epochs=1, verbose=0)
    feature_epoch_s = time.perf_counter() - t0

    print(
        json.dumps(
            {
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
                "images": len(paths),
                "size": args.size,
                "decode_resize_s": round(decode_s, 3),
                "read_cache_s": round(cached_s, 3),
                "image_cache_speedup": round(decode_s / cached_s, 1),
                "frozen_epoch_on_images_s": round(image_epoch_s, 2),
                "frozen_epoch_on_cached_features_s": round(feature_epoch_s, 3),
                "one_time_feature_extraction_s": round(extract_s, 2),
                "feature_cache_speedup_per_epoch": round(image_epoch_s / feature_epoch_s, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
