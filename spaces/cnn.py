"""``cnn``: a plain convolutional network trained from scratch.

The published scratch CNN (3 x [Conv2D 64 3x3 valid, MaxPool 2x2, Dropout 0.4], Flatten,
Dense 128, Dropout 0.4, softmax; 256 px, Adam 1e-3, ReduceLROnPlateau(0.25, 5)) is the
reference point of this space: 7,449,221 parameters at 256 px and 5 classes.
"""

from __future__ import annotations

from typing import Any

from spaces.augment import REFERENCE as AUGMENT_REFERENCE
from spaces.augment import build_augmentation
from spaces.registry import BuildContext, Space, register_space

MAX_BLOCKS = 5
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE, IMAGE_SIZE_STEP = 96, 256, 32
# Up to 512: wide layers are affordable as separable blocks, and a net that halves its map
# every block has few pixels left where it is widest.
FILTERS = (16, 32, 64, 128, 256, 512)
KERNELS = (3, 5)
OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
# "plain": the published block (convolution, pooling); "separable": a depthwise-separable
# convolution (about kernel^2 times fewer multiplications: cheaper trials on a CPU);
# "residual": two same-padded convolutions with a shortcut, then the block's pooling.
BLOCK_TYPES = ("plain", "separable", "residual")
SCHEDULES = ("plateau", "cosine")
# "strided": a 3x3 stride-2 convolution (filters_0 wide) before the blocks, so every block
# after it sees a quarter of the pixels: at 128 px a deep, wide net costs what a shallow one
# costs on the full image, while the stem still looks at every pixel.
STEMS = ("none", "strided")


def block_shrinks(side: int, kernel: int) -> bool:
    """Whether a block can shrink a ``side`` px map the published way (a valid ``kernel``
    convolution, then 2x2 max pooling) and keep at least one pixel."""
    return (side - (kernel - 1)) // 2 >= 1


def make_optimizer(name: str, learning_rate: float):
    import keras

    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True)
    raise ValueError(f"unknown optimizer {name!r}; choices: {', '.join(OPTIMIZERS)}")


@register_space("cnn")
class CNNSpace(Space):
    description = (
        "scratch CNN: optional strided stem, conv blocks (plain, separable, residual), "
        "filters, kernel, batch norm, dropout, dense head, flatten/GAP, input size, "
        "optimizer, learning rate and schedule, augmentation"
    )
    warm_starts = True  # one plain fit: a promoted Hyperband trial continues its weights
    climbs_rungs = True  # the same fit, from a rung's last epoch
    # --rungs auto: 64 px (a sixteenth of the work of 256 px, a quarter of 128 px), then 96 px,
    # then the trial's own size; with global pooling the weights carry over as the image grows.
    fidelity_sizes = (64, 96, None)
    # Short fits (a fidelity rung) leave batch norm's moving statistics behind the weights.
    precise_batch_norm = True

    def build(self, hp: Any, ctx: BuildContext):
        from search.training import compile_classifier

        values = _declare(hp, ctx)
        augmentation = build_augmentation(hp)  # declared last, as it always was
        model = _assemble(
            values, augmentation, ctx.image_size(values["image_size"]), ctx.num_classes
        )
        return compile_classifier(
            model, make_optimizer(values["optimizer"], values["learning_rate"])
        )

    def training_callbacks(self, hp: Any, epochs: int, ctx: BuildContext | None = None) -> list:
        """The published ReduceLROnPlateau(0.25, 5), or cosine decay to zero at ``epochs``, the
        fit's end: the trial's budget, or a fidelity rung's last epoch, so each rung decays
        to its own end and the next restarts where the longer curve is (warm restarts at a
        half and a quarter of the peak on a three-rung ladder). A warm start (a fit from
        ``initial_epoch``) continues the curve at its epoch index."""
        import math

        import keras

        if hp.values.get("schedule", "plateau") == "cosine":
            peak = float(hp.values["learning_rate"])
            return [
                keras.callbacks.LearningRateScheduler(
                    lambda epoch, _rate: peak * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
                )
            ]
        return [keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.25, patience=5)]

    def reference_configs(self) -> list[dict[str, Any]]:
        return [
            {
                "image_size": 256,
                "conv_blocks": 3,
                "block_type": "plain",
                "stem": "none",
                "filters_0": 64,
                "filters_1": 64,
                "filters_2": 64,
                "kernel_size": 3,
                "batch_norm": False,
                "block_dropout": 0.4,
                "pooling": "flatten",
                "dense_units": 128,
                "dense_dropout": 0.4,
                "optimizer": "adam",
                "learning_rate": 1e-3,
                "schedule": "plateau",
                **AUGMENT_REFERENCE,
            }
        ]

    def starting_configs(self) -> list[dict[str, Any]]:
        return [dict(MODERN_START)]


# Where a search with a CPU budget starts (Space.starting_configs), after the reference: a
# small modern CNN measured on the leak-free split before it was put here (see the README's
# cnn search): a strided stem, separable blocks with batch norm doubling in width, global
# pooling, AdamW with cosine decay, mirror images and a little zoom and shift. An epoch at
# 128 px costs about what the published net's does on the 2-core development machine (README,
# cnn search: 43 s with the tests running beside it; the published net 38 s quiet).
MODERN_START = {
    "image_size": 128,
    "conv_blocks": 4,
    "block_type": "separable",
    "stem": "strided",
    "filters_0": 64,
    "filters_1": 128,
    "filters_2": 256,
    "filters_3": 512,
    "kernel_size": 3,
    "batch_norm": True,
    "block_dropout": 0.0,
    "pooling": "gap",
    "dense_units": 256,
    "dense_dropout": 0.3,
    "optimizer": "adamw",
    "learning_rate": 3e-3,
    "schedule": "cosine",
    "aug_enabled": True,
    "aug_flip": "horizontal",
    "aug_rotation": 0.0,
    "aug_zoom": 0.1,
    "aug_translation": 0.1,
    "aug_contrast": 0.0,
    "aug_brightness": 0.0,
}


def _declare(hp: Any, ctx: BuildContext) -> dict[str, Any]:
    """Declare the space's hyperparameters (augmentation apart), in the order every search so
    far sampled them (a sampler's draws follow the order), and return their values."""
    v: dict[str, Any] = {}
    # From 96 px: a 96 px epoch costs about a seventh of a 256 px one on a CPU; up to the cap.
    low, top = ctx.declared_sizes(MIN_IMAGE_SIZE, MAX_IMAGE_SIZE, IMAGE_SIZE_STEP)
    v["image_size"] = hp.Int("image_size", low, top, step=IMAGE_SIZE_STEP, default=top)
    v["blocks"] = hp.Int("conv_blocks", 1, MAX_BLOCKS, default=3)
    v["block_type"] = hp.Choice("block_type", list(BLOCK_TYPES), default="plain")
    v["stem"] = hp.Choice("stem", list(STEMS), default="none")
    v["filters"] = [hp.Choice("filters_0", list(FILTERS), default=64)]
    for i in range(1, MAX_BLOCKS):
        # Declared under a scope so keras-tuner knows filters_i only matters when there are
        # more than i blocks; inactive declarations return None.
        with hp.conditional_scope("conv_blocks", list(range(i + 1, MAX_BLOCKS + 1))):
            v["filters"].append(hp.Choice(f"filters_{i}", list(FILTERS), default=64))
    v["kernel"] = hp.Choice("kernel_size", list(KERNELS), default=3)
    v["batch_norm"] = hp.Boolean("batch_norm", default=False)
    v["block_dropout"] = hp.Float("block_dropout", 0.0, 0.5, step=0.1, default=0.4)
    # Under fidelity rungs (ctx.climbs) only global pooling: a flattening head's weights grow
    # with the image, so a promoted trial would train again from epoch 0 at every rung.
    v["pooling"] = (
        hp.Fixed("pooling", "gap")
        if ctx.climbs
        else hp.Choice("pooling", ["flatten", "gap"], default="flatten")
    )
    v["dense_units"] = hp.Int("dense_units", 64, 512, step=64, default=128)
    v["dense_dropout"] = hp.Float("dense_dropout", 0.0, 0.5, step=0.1, default=0.4)
    v["optimizer"] = hp.Choice("optimizer", list(OPTIMIZERS), default="adam")
    v["learning_rate"] = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=1e-3)
    # "plateau": the published ReduceLROnPlateau(0.25, 5); "cosine": cosine decay over the
    # trial's epochs (training_callbacks).
    hp.Choice("schedule", list(SCHEDULES), default="plateau")
    return v


def _assemble(v: dict[str, Any], augmentation, image_size: int, num_classes: int):
    """The network for declared values ``v`` at ``image_size`` px (not compiled)."""
    import keras

    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = augmentation(inputs) if augmentation is not None else inputs
    x = keras.layers.Rescaling(1.0 / 255)(x)
    side = image_size
    if v["stem"] == "strided":
        x = _strided_stem(x, v["filters"][0], v["batch_norm"])
        side = (side + 1) // 2
    for i in range(v["blocks"]):
        # The published block: a valid convolution, then 2x2 pooling. Once the map is too
        # small for that (many blocks at a low --max-image-size, or a low fidelity rung), a
        # block keeps its size (same padding, no pooling): every point of the space builds at
        # every input size, so no trial is spent on a configuration that cannot be trained.
        x, side = _block(x, side, v["block_type"], v["filters"][i], v["kernel"], v["batch_norm"])
        if v["block_dropout"] > 0:
            x = keras.layers.Dropout(v["block_dropout"])(x)
    x = (
        keras.layers.Flatten()(x)
        if v["pooling"] == "flatten"
        else keras.layers.GlobalAveragePooling2D()(x)
    )
    x = keras.layers.Dense(v["dense_units"], activation="relu")(x)
    if v["dense_dropout"] > 0:
        x = keras.layers.Dropout(v["dense_dropout"])(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="cnn")


def _strided_stem(x, filters: int, batch_norm: bool):
    import keras

    x = keras.layers.Conv2D(
        filters,
        3,
        strides=2,
        padding="same",
        activation=None if batch_norm else "relu",
        name="stem",
    )(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(name="stem_bn")(x)
        x = keras.layers.Activation("relu", name="stem_relu")(x)
    return x


def _block(x, side: int, block_type: str, filters: int, kernel: int, batch_norm: bool):
    """One block on a ``side`` px map: ``(output, its side)``."""
    import keras

    shrink = block_shrinks(side, kernel)
    if block_type == "residual":
        x = _residual_block(x, filters, kernel, batch_norm)
    else:
        conv = keras.layers.SeparableConv2D if block_type == "separable" else keras.layers.Conv2D
        x = conv(
            filters,
            kernel,
            padding="valid" if shrink else "same",
            activation=None if batch_norm else "relu",
        )(x)
        if batch_norm:
            x = keras.layers.BatchNormalization()(x)
            x = keras.layers.Activation("relu")(x)
    if not shrink:
        return x, side
    x = keras.layers.MaxPooling2D(2)(x)
    return x, side // 2 if block_type == "residual" else (side - (kernel - 1)) // 2


def _residual_block(x, filters: int, kernel: int, batch_norm: bool):
    """Two same-padded convolutions with a shortcut (a 1x1 projection where the width
    changes), ReLU after the sum."""
    import keras

    shortcut = x
    if x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1)(x)
    for last in (False, True):
        x = keras.layers.Conv2D(filters, kernel, padding="same")(x)
        if batch_norm:
            x = keras.layers.BatchNormalization()(x)
        if not last:
            x = keras.layers.Activation("relu")(x)
    return keras.layers.Activation("relu")(keras.layers.Add()([x, shortcut]))
