"""The published transfer model: frozen MobileNetV2 + GAP, Dense 128, Dropout 0.2, Dense 5.

Two phases: the head trains on the frozen backbone (Adam 0.01, ReduceLROnPlateau(0.5, 2),
early stopping on val_accuracy with patience 5, best weights kept); then backbone layers
from index 100 on are unfrozen and everything trains at a tenth of the learning rate for
10 more epochs. With its head the model has 2,422,597 parameters, 164,613 trainable in
the frozen phase.
"""

from __future__ import annotations

from typing import Any

MOBILENET_RECIPE: dict[str, Any] = {
    "name": "mobilenet",
    "published_accuracy": 0.94,
    "image_size": 224,
    # The recipe stops the frozen phase by early stopping; this is only a ceiling.
    "epochs": 20,
    "fine_tune_epochs": 10,
    "fine_tune_at": 100,
    "fine_tune_lr_factor": 0.1,
    "batch_size": 32,
    "optimizer": "adam",
    "learning_rate": 0.01,
    "reduce_lr": {"monitor": "val_loss", "factor": 0.5, "patience": 2},
    "early_stopping": {"monitor": "val_accuracy", "patience": 5, "restore_best_weights": True},
    "dense_units": 128,
    "dropout": 0.2,
}


def build_mobilenet(image_size: int = 224, num_classes: int = 5, weights: str | None = "imagenet",
                    dense_units: int = 128, dropout: float = 0.2):
    """``(model, backbone, head)``: the full model on uint8 images, its MobileNetV2 backbone
    (frozen), and a model of the head alone on pooled 1280-d features that shares the
    full model's head layers (training one trains the other)."""
    import keras
    from keras import layers

    from search.weights import mobilenet_v2_backbone

    backbone = mobilenet_v2_backbone(image_size, weights)
    backbone.trainable = False
    pool = layers.GlobalAveragePooling2D(name="pool")
    dense = layers.Dense(dense_units, activation="relu", name="head_dense")
    drop = layers.Dropout(dropout, name="head_dropout")
    classify = layers.Dense(num_classes, activation="softmax", name="head_output")

    inputs = keras.Input((image_size, image_size, 3))
    x = layers.Rescaling(1 / 127.5, offset=-1, name="to_minus1_1")(inputs)  # preprocess_input
    # training=False keeps BatchNorm in inference mode, also after unfreezing (fine-tuning
    # with batch statistics of small batches would wreck the pretrained features).
    x = backbone(x, training=False)
    outputs = classify(drop(dense(pool(x))))
    model = keras.Model(inputs, outputs, name="reference_mobilenet_v2")

    features = keras.Input((backbone.output_shape[-1],))
    head = keras.Model(features, classify(drop(dense(features))), name="reference_head")
    return model, backbone, head


def feature_extractor(model):
    """The full model's own rescaling + backbone + pooling, as a model (shares weights)."""
    import keras

    return keras.Model(model.inputs, model.get_layer("pool").output)


def unfreeze_from(backbone, fine_tune_at: int) -> None:
    """Make backbone layers ``fine_tune_at`` and above trainable, the rest frozen."""
    backbone.trainable = True
    for layer in backbone.layers[:fine_tune_at]:
        layer.trainable = False


def compile_model(model, learning_rate: float):
    import keras

    from search.training import compile_classifier

    return compile_classifier(model, keras.optimizers.Adam(learning_rate))


def frozen_callbacks(recipe: dict[str, Any] = MOBILENET_RECIPE):
    import keras

    return [keras.callbacks.ReduceLROnPlateau(**recipe["reduce_lr"]),
            keras.callbacks.EarlyStopping(**recipe["early_stopping"])]


def fine_tune_callbacks(recipe: dict[str, Any] = MOBILENET_RECIPE):
    import keras

    return [keras.callbacks.ReduceLROnPlateau(**recipe["reduce_lr"])]
