"""Data: find the dataset, decode and deduplicate it, split it leak-free, cache it, feed it.

    data = load_search_data(args.data)              # --data, $ART_DATA, ./data/art-images
    x, y = data.arrays("train", 128)                # uint8 images, cached per size on disk
    ds = data.dataset("train", 128, batch_size=32, shuffle=True)
    f, y = data.features("train", 224, key, extractor)   # frozen-backbone outputs, cached

Lower level: ``locate_data`` -> ``prepare_split`` (``results/data/split.json``, built once) ->
``load_images`` / ``make_dataset``.

This is the bottom layer: it imports nothing from the rest of the project except
``search.results`` (where runs write). Everything outside this package uses the names below;
the ``_*`` modules are private.
"""

from search.data._cache import (
    StackedRows,
    decode_image,
    decode_resized,
    default_cache_dir,
    load_images,
    make_dataset,
    predict_in_batches,
)
from search.data._cli import add_data_options
from search.data._decode import ScannedFile, open_rgb, scan_files
from search.data._dedup import NEAR_DUPLICATE_THRESHOLD, find_copies
from search.data._features import cached_features
from search.data._locate import (
    IMAGE_SUFFIXES,
    DataNotFoundError,
    empty_class_folders,
    list_labelled_files,
    locate_data,
    resolve_layout,
)
from search.data._sources import (
    ArrayData,
    DataSource,
    ManifestData,
    load_search_data,
    stratified_subset,
    synthetic_data,
)
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
    "add_data_options",
    "ArrayData",
    "StackedRows",
    "DataNotFoundError",
    "DataSource",
    "IMAGE_SUFFIXES",
    "LeakError",
    "ManifestData",
    "NEAR_DUPLICATE_THRESHOLD",
    "SPLITS",
    "ScannedFile",
    "SplitError",
    "SplitManifest",
    "cached_features",
    "decode_image",
    "decode_resized",
    "default_cache_dir",
    "empty_class_folders",
    "find_copies",
    "format_data_report",
    "list_labelled_files",
    "load_images",
    "load_manifest",
    "load_search_data",
    "locate_data",
    "make_dataset",
    "open_rgb",
    "predict_in_batches",
    "prepare_split",
    "resolve_layout",
    "scan_files",
    "stratified_subset",
    "synthetic_data",
]
