"""Pretrained backbone weights: Keras' normal cache (downloads where internet exists) or a file."""

from __future__ import annotations

import os
from pathlib import Path

MOBILENET_V2_NO_TOP = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
# Where keras.applications itself downloads MobileNetV2 weights from.
_KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
_NO_TOP_SHA256 = "524115fc2d488de5011f8a98291bb815ddd6f8e5f234c1ca1bf7df6572d6ea46"

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


def keras_weights_argument(weights: str | None) -> str | None:
    """What to pass as ``weights=`` to ``keras.applications.MobileNetV2`` at any input size.

    For ``"imagenet"`` Keras picks a file per input size (``..._1.0_128_no_top.h5`` at 128 px,
    and so on), which would make a search's trials at different sizes start from different
    pretrained weights, and needs a download per size. Every size here starts from the one
    224 px file instead (its convolutions load into any input size): fetched into Keras'
    cache the way keras.applications fetches it, or found there without any network.
    """
    if weights != "imagenet":
        return weights
    import keras

    try:
        return keras.utils.get_file(MOBILENET_V2_NO_TOP, _KERAS_WEIGHTS_URL + MOBILENET_V2_NO_TOP,
                                    cache_subdir="models", file_hash=_NO_TOP_SHA256)
    except Exception as exc:  # no network: URL/HTTP/OS errors
        raise RuntimeError(f"could not load MobileNetV2 ImageNet weights ({exc}). {WEIGHTS_HELP}") from exc


def mobilenet_v2_backbone(image_size: int, weights: str | None = "imagenet"):
    """MobileNetV2 without its classifier, for ``image_size`` square RGB inputs in [-1, 1]."""
    import keras

    return keras.applications.MobileNetV2(input_shape=(image_size, image_size, 3), include_top=False,
                                          weights=keras_weights_argument(weights))
