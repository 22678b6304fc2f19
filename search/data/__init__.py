"""Data: find the dataset, decode and deduplicate it, split it leak-free, cache it, feed it.

    data_dir = locate_data(args.data)               # --data, $ART_DATA, ./data/art-images
    manifest = prepare_split(data_dir)              # results/data/split.json, built once
    x, y = load_images(manifest, "train", 128)      # uint8 images, cached per size
    ds = make_dataset(x, y, batch_size=32, shuffle=True)
"""

from search.data._cache import decode_resized, default_cache_dir, load_images, make_dataset
from search.data._decode import open_rgb
from search.data._dedup import NEAR_DUPLICATE_THRESHOLD
from search.data._locate import DataNotFoundError, locate_data
from search.data._split import (
    SPLITS,
    LeakError,
    SplitError,
    SplitManifest,
    format_data_report,
    load_manifest,
    prepare_split,
)

__all__ = [
    "DataNotFoundError",
    "LeakError",
    "NEAR_DUPLICATE_THRESHOLD",
    "SPLITS",
    "SplitError",
    "SplitManifest",
    "decode_resized",
    "default_cache_dir",
    "format_data_report",
    "load_images",
    "load_manifest",
    "locate_data",
    "make_dataset",
    "open_rgb",
    "prepare_split",
]
