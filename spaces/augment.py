"""Augmentation sub-space shared by every image space.

``build_augmentation(hp)`` declares its hyperparameters under the ``aug_`` prefix and returns a
``keras.Sequential`` of random preprocessing layers, or ``None`` when augmentation is off.
The layers sit inside the model, so they are active in ``fit`` and identity at inference, and
they work on the raw 0..255 pixel values every space feeds its model.
"""

from __future__ import annotations

from typing import Any

PREFIX = "aug_"

FLIP_MODES = ("none", "horizontal", "horizontal_and_vertical")

# The value that means "no augmentation", i.e. every reference recipe's setting.
REFERENCE = {f"{PREFIX}enabled": False}


def build_augmentation(hp: Any, prefix: str = PREFIX):
    """Declare the augmentation hyperparameters on ``hp``; return the layers or None."""
    import keras

    # A master switch rather than six "0 means off" knobs: with independent knobs a sampler
    # almost never picks "no augmentation at all", which is the cheap (feature-cached) case
    # for transfer spaces and what both reference recipes use.
    enabled = hp.Boolean(f"{prefix}enabled", default=False)
    # keras-tuner learns the conditional sub-space from this scope; the declarations below run
    # whether or not it is active (inactive ones return None), as its API requires.
    with hp.conditional_scope(f"{prefix}enabled", [True]):
        flip = hp.Choice(f"{prefix}flip", list(FLIP_MODES), default="horizontal")
        rotation = hp.Float(f"{prefix}rotation", 0.0, 0.2, step=0.05, default=0.05)
        zoom = hp.Float(f"{prefix}zoom", 0.0, 0.2, step=0.05, default=0.1)
        translation = hp.Float(f"{prefix}translation", 0.0, 0.2, step=0.05, default=0.1)
        contrast = hp.Float(f"{prefix}contrast", 0.0, 0.3, step=0.1, default=0.1)
        brightness = hp.Float(f"{prefix}brightness", 0.0, 0.3, step=0.1, default=0.1)
    if not enabled:
        return None

    layers = []
    if flip != "none":
        layers.append(keras.layers.RandomFlip(flip))
    if rotation > 0:
        layers.append(keras.layers.RandomRotation(rotation))
    if zoom > 0:
        layers.append(keras.layers.RandomZoom(zoom))
    if translation > 0:
        layers.append(keras.layers.RandomTranslation(translation, translation))
    if contrast > 0:
        layers.append(keras.layers.RandomContrast(contrast, value_range=(0, 255)))
    if brightness > 0:
        layers.append(keras.layers.RandomBrightness(brightness, value_range=(0, 255)))
    if not layers:
        return None
    return keras.Sequential(layers, name="augmentation")
