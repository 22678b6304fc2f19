"""Pretrained backbone weights: Keras' normal cache (downloads where internet exists) or a file."""

from __future__ import annotations

import os
from pathlib import Path

MOBILENET_V2_NO_TOP = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"

WEIGHTS_HELP = (
    "MobileNetV2 ImageNet weights are downloaded by Keras into $KERAS_HOME/models "
    "(default ~/.keras/models) on first use. Without internet, copy "
    f"{MOBILENET_V2_NO_TOP} there (in this project: cp ../shared/weights/*.h5 ~/.keras/models/), "
    "or pass --weights PATH/TO/" + MOBILENET_V2_NO_TOP
)


def mobilenet_v2_weights(path: str | os.PathLike | None = None) -> str:
    """``"imagenet"`` (Keras' cache, downloading if needed) or a checked local ``.h5`` path."""
    if path is None:
        return "imagenet"
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist. {WEIGHTS_HELP}")
    if "no_top" not in path.name:
        raise ValueError(
            f"{path} looks like the weights *with* the ImageNet classifier; the backbone needs "
            f"the headless file {MOBILENET_V2_NO_TOP}"
        )
    return str(path)


def mobilenet_v2_backbone(image_size: int, weights: str | None = "imagenet"):
    """MobileNetV2 without its classifier, for ``image_size`` square RGB inputs in [-1, 1]."""
    import keras

    try:
        return keras.applications.MobileNetV2(
            input_shape=(image_size, image_size, 3), include_top=False, weights=weights
        )
    except Exception as exc:  # a failed download surfaces as URL/HTTP/OS errors
        if weights == "imagenet" and not _cached(MOBILENET_V2_NO_TOP):
            raise RuntimeError(f"could not load MobileNetV2 ImageNet weights ({exc}). {WEIGHTS_HELP}") from exc
        raise


def _cached(filename: str) -> bool:
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return (home / "models" / filename).is_file()
