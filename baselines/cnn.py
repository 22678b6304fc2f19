"""The published scratch CNN: 3 x [Conv 64 3x3, MaxPool, Dropout 0.4], Dense 128, Dense 5.

At 256 px it has 7,449,221 parameters (the published count): 'valid' convolutions shrink the
map 256 -> 254 -> 127 -> 125 -> 62 -> 60 -> 30, and the 30x30x64 flatten feeds Dense 128.
"""

from __future__ import annotations

from typing import Any

CNN_RECIPE: dict[str, Any] = {
    "name": "cnn",
    "published_accuracy": 0.85,
    "image_size": 256,
    "epochs": 35,
    "batch_size": 32,
    "optimizer": "adam",
    "learning_rate": 1e-3,  # Keras' Adam default; the recipe does not change it
    "reduce_lr": {"monitor": "val_loss", "factor": 0.25, "patience": 5},
    "blocks": 3,
    "filters": 64,
    "kernel_size": 3,
    "dropout": 0.4,
    "dense_units": 128,
}


def build_cnn(image_size: int = 256, num_classes: int = 5, filters: int = 64, blocks: int = 3,
              dropout: float = 0.4, dense_units: int = 128):
    """The reference scratch CNN; takes uint8 (or 0..255 float) RGB images."""
    import keras
    from keras import layers

    model = keras.Sequential(name="reference_cnn")
    model.add(keras.Input((image_size, image_size, 3)))
    model.add(layers.Rescaling(1 / 255))
    for _ in range(blocks):
        model.add(layers.Conv2D(filters, 3, activation="relu"))
        model.add(layers.MaxPooling2D())
        model.add(layers.Dropout(dropout))
    model.add(layers.Flatten())
    model.add(layers.Dense(dense_units, activation="relu"))
    model.add(layers.Dropout(dropout))
    model.add(layers.Dense(num_classes, activation="softmax"))
    return model


def compile_cnn(model, learning_rate: float = CNN_RECIPE["learning_rate"]):
    import keras

    from search.training import compile_classifier

    return compile_classifier(model, keras.optimizers.Adam(learning_rate))


def cnn_callbacks(recipe: dict[str, Any] = CNN_RECIPE):
    import keras

    return [keras.callbacks.ReduceLROnPlateau(**recipe["reduce_lr"])]
