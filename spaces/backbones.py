"""Pretrained backbones: every fact about one in a single table, and how to load it.

A transfer space, the published MobileNetV2 baseline (which is that space's reference point),
the feature cache and the ``--weights`` flag all read the facts here: the keras.applications
constructor, the backbone's own input scaling, its layer count and published fine-tuning cut,
and where its ImageNet weights come from. Another keras.applications model joins by adding one ``Backbone`` entry.

Weights: ``"imagenet"`` resolves, at every input size, to the one no-top file trained at the
backbone's native size, fetched the way keras.applications fetches it (``keras.utils.get_file``
with its origin and SHA-256, so it downloads where there is internet and is found in Keras'
cache where there is not), so trials at different input sizes start from the same weights.
A local ``.h5`` path is checked and used as is; ``None`` means random initialisation (tests,
dry builds: nothing is downloaded).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any


@dataclasses.dataclass(frozen=True)
class Backbone:
    """One keras.applications backbone and its ImageNet no-top weights file."""

    name: str
    application: str  # keras.applications attribute, e.g. "MobileNetV2"
    # The backbone's own input scaling of 0..255 pixels: x * scale + offset.
    scale: float
    offset: float
    num_layers: int  # layers of the headless model (fine-tune depth counts from the top)
    # Block boundaries, as layers counted from the top: unfreezing exactly these many layers
    # cuts the network where one tensor crosses (the cheapest activations to cache).
    block_starts: tuple[int, ...]
    # The published recipe's fine-tuning cut, as layers counted from the top (None: no
    # published recipe fine-tunes this backbone).
    published_fine_tune_layers: int | None
    weights_file: str
    weights_url: str  # the folder keras.applications downloads the file from
    weights_sha256: str
    # Earlier blocks' outputs whose per-channel mean and standard deviation a head may see
    # beside the pooled final features (texture statistics, in the manner of style
    # features: stroke and hatching patterns that tell a drawing from an engraving live in
    # mid-level feature maps more than in the final, object-level ones).
    texture_layers: tuple[str, ...] = ()

    @property
    def weights_help(self) -> str:
        return (
            f"{self.application} ImageNet weights are downloaded by Keras into "
            f"$KERAS_HOME/models (default ~/.keras/models) on first use. Without internet, "
            f"copy {self.weights_file} there (in this project: cp ../shared/weights/*.h5 "
            f"~/.keras/models/), or pass --weights PATH/TO/{self.weights_file}"
        )

    def resolve_weights(self, flag: str | os.PathLike | None = None) -> str | None:
        """``--weights`` as given by a user: None/"imagenet" -> "imagenet", "none" -> None
        (random init), or a checked local no-top ``.h5`` path."""
        if flag is None or str(flag).lower() == "imagenet":
            return "imagenet"
        if str(flag).lower() == "none":
            return None
        path = Path(flag)
        if not path.is_file():
            raise FileNotFoundError(f"weights file {path} does not exist. {self.weights_help}")
        if "no_top" not in path.name:
            raise ValueError(
                f"{path} looks like the weights *with* the ImageNet classifier; the "
                f"backbone needs the headless file {self.weights_file}"
            )
        return str(path)

    def keras_weights(self, weights: str | None) -> str | None:
        """What to pass as ``weights=`` to the keras.applications constructor at any size.

        For ``"imagenet"`` Keras would pick one file per input size (and need a download per
        size); every size starts from the one native-size file instead."""
        if weights != "imagenet":
            return weights
        import keras

        try:
            return keras.utils.get_file(
                self.weights_file,
                self.weights_url + self.weights_file,
                cache_subdir="models",
                file_hash=self.weights_sha256,
            )
        except Exception as exc:  # no network: URL/HTTP/OS errors
            raise RuntimeError(
                f"could not load {self.application} ImageNet weights ({exc}). {self.weights_help}"
            ) from exc

    def build(self, image_size: int, weights: str | None) -> Any:
        """The headless backbone for ``image_size`` square inputs already scaled its way."""
        import keras

        constructor = getattr(keras.applications, self.application)
        return constructor(
            input_shape=(image_size, image_size, 3),
            include_top=False,
            weights=self.keras_weights(weights),
        )

    def feature_key(self, image_size: int, weights: str | None) -> str | None:
        """Names the pooled features of this backbone at ``image_size`` with ``weights``, for
        caches; None for random-init weights, which differ per model and are never shared."""
        if weights is None:
            return None
        tag = "imagenet" if weights == "imagenet" else _file_digest(weights)
        return f"{self.name}-{tag}-{int(image_size)}"


BACKBONES: dict[str, Backbone] = {
    "mobilenet_v2": Backbone(
        name="mobilenet_v2",
        application="MobileNetV2",
        scale=1.0 / 127.5,
        offset=-1.0,  # keras.applications.mobilenet_v2.preprocess_input
        num_layers=154,
        # Conv_1, block_16 ... block_1 expand, the first block's depthwise conv.
        block_starts=(3, 11, 20, 29, 38, 47, 56, 64, 73, 82, 91, 100, 109, 118, 127, 136, 145, 150),
        # From layer index 100 of 154 on: two layers into block 11, not a block boundary.
        published_fine_tune_layers=54,
        weights_file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
        weights_url="https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/",
        weights_sha256="524115fc2d488de5011f8a98291bb815ddd6f8e5f234c1ca1bf7df6572d6ea46",
        # The last residual sums at 1/8 and 1/16 of the input side (32 and 96 channels).
        texture_layers=("block_5_add", "block_12_add"),
    ),
}


def get_backbone(name: str) -> Backbone:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; choices: {', '.join(BACKBONES)}") from None


def _file_digest(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()[:12]
