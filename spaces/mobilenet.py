"""``mobilenet``: transfer learning from an ImageNet backbone (MobileNetV2).

The published recipe is the reference point: 224 px, frozen MobileNetV2 on [-1, 1] inputs,
GlobalAveragePooling, Dense 128 relu, Dropout 0.2, softmax; Adam 0.01 with
ReduceLROnPlateau(0.5, 2) and early stopping on val_accuracy (patience 5, best weights kept);
then the backbone from layer index 100 on (its top 54 of 154 layers) unfrozen at a tenth of
the learning rate for 10 more epochs.

Training is CPU-aware: with no augmentation the frozen backbone is a fixed function of the
image, so the head trains on backbone features cached once per input size (seconds per epoch
instead of minutes) and the same head layers, shared with the image model, end up in it. Only
augmentation or fine-tuning needs passes through the backbone.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from spaces.augment import PREFIX as AUGMENT_PREFIX
from spaces.augment import REFERENCE as AUGMENT_REFERENCE
from spaces.augment import build_augmentation
from spaces.backbones import BACKBONES
from spaces.registry import BuildContext, Space, register_space

# Cached activations per image above this many values (at the cut, all crossing tensors)
# would cost more disk and reading than the forward pass they save: such cuts, deep in the
# network at a large size, fine-tune through the image path. The published cut at 224 px
# caches 14 x 14 x (576 + 96) = 131,712 values (263 KB in float16) per image.
MAX_CACHED_ACTIVATION_VALUES = 300_000

BACKBONE_LAYER = "backbone"
FEATURES_LAYER = "features"  # pooled backbone output, the head's input
HEAD_LAYER = "head"


@register_space("mobilenet")
class MobileNetSpace(Space):
    description = (
        "transfer learning: MobileNetV2 (ImageNet) + dense head; input size, head, "
        "learning rate, fine-tune depth/lr factor/epochs, augmentation"
    )
    uses_pretrained_weights = True
    # --rungs: the head, then the fine-tuned top, continue from rung to rung (fit's
    # initial_epoch within the trial's phases), and the weights carry over as the image grows
    # (global pooling; texture statistics are pooled too). With augmentation every epoch goes
    # through the backbone, so rung 0 at 160 px and rung 1 at 224 px at most are cheaper.
    # Without it (__init__) a head trains on cached pooled features, whose cost barely
    # depends on the size while its score does: every rung is at the trial's own size.
    climbs_rungs = True
    fidelity_sizes = (160, 224, None)

    # Activations at a fine-tuning cut are cached in half precision (half the disk and memory;
    # the rounding is a relative 1e-3 on the frozen part's outputs); tests set float32 to
    # show the cached path is exactly the image path.
    activation_dtype = "float16"

    def __init__(
        self,
        backbones: tuple[str, ...] = ("mobilenet_v2",),
        *,
        fine_tune: bool = True,
        augment: bool = True,
        cache_activations: bool = True,
        image_sizes: tuple[int, int] = (128, 320),
        max_fine_tune_layers: int | None = None,
    ):
        unknown = [b for b in backbones if b not in BACKBONES]
        if unknown:
            raise ValueError(f"unknown backbone(s) {unknown}; choices: {', '.join(BACKBONES)}")
        self.backbones = tuple(backbones)
        # Without fine-tuning and augmentation every trial trains its head on cached backbone
        # features (the mobilenet-head space): seconds per trial on a CPU.
        self.fine_tune = fine_tune
        self.augment = augment
        # Without augmentation, fine-tuning trains only the unfrozen top of the backbone and
        # the head, on the frozen part's outputs cached once per size and cut (exact, and
        # several times cheaper per epoch than passing every image through the backbone).
        self.cache_activations = cache_activations
        # The input-size range (step 32) and the deepest fine-tuning cut offered: a space
        # sized for a CPU budget narrows them (mobilenet-cached).
        self.image_sizes = image_sizes
        self.max_fine_tune_layers = max_fine_tune_layers
        if not augment:
            # Run K (mobilenet-cached): rung 0 at 160 px ranked 88 trials against rung 1 with
            # Spearman 0.01; on 24 paired trials 160 px ranked them 0.40, their own size 0.59,
            # both about 3 s a look (README, "How the search spends its time").
            self.fidelity_sizes = (None, None, None)

    def build(self, hp: Any, ctx: BuildContext):
        import keras

        choice = self._declare(hp, ctx)
        spec = BACKBONES[choice.backbone]
        inputs = keras.Input((choice.image_size, choice.image_size, 3), name="image")
        x = choice.augmentation(inputs) if choice.augmentation is not None else inputs
        x = keras.layers.Rescaling(spec.scale, offset=spec.offset, name="backbone_scaling")(x)
        base = spec.build(choice.image_size, ctx.weights)
        texture = choice.texture
        if texture:  # the same layers, with the earlier blocks' outputs as outputs too
            base = keras.Model(
                base.input,
                [base.output, *(base.get_layer(name).output for name in spec.texture_layers)],
            )
        base.name = BACKBONE_LAYER
        base.trainable = False
        # Frozen here, BatchNorm runs in inference mode. Once the top is unfrozen, Keras 3
        # overrides this training=False during fit (see unfreeze_top).
        features = _head_features(base(x, training=False))
        head = keras.Sequential(
            [
                keras.Input((features.shape[-1],)),
                keras.layers.Dense(choice.head_units, activation="relu"),
                keras.layers.Dropout(choice.head_dropout),
                keras.layers.Dense(ctx.num_classes, activation="softmax"),
            ],
            name=HEAD_LAYER,
        )
        model = keras.Model(inputs, head(features), name=f"{choice.backbone}_transfer")
        _compile(model, choice.learning_rate)
        return model

    def _declare(self, hp: Any, ctx: BuildContext) -> _Choices:
        """Declare every hyperparameter, in a fixed order (keras-tuner learns the space by
        building it), and return the choices the model is built from."""
        if len(self.backbones) > 1:
            backbone_name = hp.Choice("backbone", list(self.backbones), default=self.backbones[0])
        else:
            backbone_name = self.backbones[0]
        spec = BACKBONES[backbone_name]
        # The ImageNet weights run at any size; finer detail helps tell drawings from engravings.
        # The published 224 px is the default wherever the cap leaves it.
        low, top = ctx.declared_sizes(*self.image_sizes, step=32)
        image_size = ctx.image_size(
            hp.Int("image_size", low, top, step=32, default=min(PUBLISHED_HEAD["image_size"], top))
        )
        head_units = hp.Int("head_units", 64, 512, step=64, default=128)
        head_dropout = hp.Float("head_dropout", 0.0, 0.5, step=0.1, default=0.2)
        learning_rate = hp.Float("learning_rate", 1e-4, 3e-2, sampling="log", default=1e-2)
        fine_tune_layers = self._declare_fine_tune(hp, spec) if self.fine_tune else 0
        augmentation = build_augmentation(hp) if self.augment else None
        # Mirror images are the one augmentation that survives caching: the frozen part's
        # outputs on flipped images are cached beside the originals (exact), and every
        # training epoch draws one of the two views per row. Where the model augments its
        # own images (random flips among them) the flag has no meaning.
        with _scope(hp, f"{AUGMENT_PREFIX}enabled", [False], self.augment):
            hp.Boolean("flip_views", default=False)
        # Test-time flip averaging: the kept model averages its probabilities over the image
        # and its mirror image; it is built into the saved model (``inference_model``).
        hp.Boolean("tta_flip", default=False)
        # What the head sees: the pooled final features, or those and the per-channel mean
        # and standard deviation of earlier blocks (the backbone table's texture_layers), with
        # or without fine-tuning (a texture layer above the cut is tuned with the top).
        texture = bool(spec.texture_layers) and (
            hp.Choice("head_inputs", ["pooled", "pooled+texture"], default="pooled")
            == "pooled+texture"
        )
        if fine_tune_layers > spec.num_layers:
            raise ValueError(
                f"fine_tune_layers={fine_tune_layers} exceeds the "
                f"{spec.num_layers} layers of {backbone_name}"
            )
        return _Choices(
            backbone_name,
            image_size,
            head_units,
            head_dropout,
            learning_rate,
            augmentation,
            texture,
        )

    def _declare_fine_tune(self, hp: Any, spec) -> int:
        """Declare how deep to fine-tune and, under it, how; returns the depth.

        How many of the backbone's top layers are unfrozen after the head has trained;
        0 = never fine-tune. Block boundaries up to the whole network, and the published
        recipe's cut (the backbone table's published_fine_tune_layers), the default."""
        depths = [
            d
            for d in fine_tune_depths(spec)
            if self.max_fine_tune_layers is None or d <= self.max_fine_tune_layers
        ]
        fine_tune_layers = hp.Choice(
            "fine_tune_layers", depths, ordered=True, default=spec.published_fine_tune_layers
        )
        with hp.conditional_scope("fine_tune_layers", [d for d in depths if d > 0]):
            hp.Float("fine_tune_lr_factor", 0.01, 0.5, sampling="log", default=0.1)
            hp.Int("fine_tune_epochs", 2, 10, step=2, default=10)
            # "plateau": the published ReduceLROnPlateau(0.5, 2); "cosine": a warm-up
            # epoch at a tenth of the rate, then cosine decay (towards zero after the last epoch).
            hp.Choice("fine_tune_schedule", ["plateau", "cosine"], default="plateau")
            # 0 = the published Adam; otherwise AdamW with this decoupled weight decay.
            hp.Choice("fine_tune_weight_decay", [0.0, 1e-5, 1e-4, 1e-3], ordered=True, default=0.0)
            # The unfrozen layers' BatchNorm: "batch" = what the published code does under
            # Keras 3 (batch statistics while training, see unfreeze_top), "frozen" =
            # inference mode, as the recipe meant it.
            hp.Choice("fine_tune_batch_norm", ["batch", "frozen"], default="batch")
        return fine_tune_layers

    def training_callbacks(self, hp: Any, epochs: int, ctx: BuildContext | None = None) -> list:
        """The published head phase: halve the rate on a plateau, stop early on val_accuracy;
        not early in a trial trained in pieces (``ctx.trial_epochs``): a rung ends where the
        ladder says, where the engine judges it (the trial keeps its best epoch's weights)."""
        import keras

        plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2)
        if ctx is not None and ctx.trial_epochs is not None:
            return [plateau]
        stop = keras.callbacks.EarlyStopping(
            monitor="val_accuracy", patience=5, restore_best_weights=True
        )
        return [plateau, stop]

    def fine_tune_callbacks(self, hp: Any, first_epoch: int = 0, epochs: int = 1) -> list:
        """The published fine-tuning phase: the same plateau schedule, no early stopping; or
        a warm-up epoch then cosine decay over the phase's ``epochs``."""
        import math

        import keras

        if hp.values.get("fine_tune_schedule", "plateau") == "plateau":
            return [keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2)]
        peak = float(hp.values["learning_rate"]) * float(hp.values["fine_tune_lr_factor"])

        def cosine(epoch: int, _rate: float) -> float:
            step = epoch - first_epoch
            if step == 0:
                return peak / 10  # warm-up: the new head's gradients are still large
            return peak * 0.5 * (1 + math.cos(math.pi * (step - 1) / max(epochs - 1, 1)))

        return [keras.callbacks.LearningRateScheduler(cosine)]

    def fit(
        self,
        hp: Any,
        model,
        data,
        ctx: BuildContext,
        *,
        epochs: int,
        callbacks=(),
        batch_size: int = 32,
        verbose: int = 0,
        initial_epoch: int = 0,
    ) -> None:
        """Head first (on cached features when possible), then optional fine-tuning: epochs
        ``initial_epoch`` .. ``epochs - 1`` of them.

        The trial's budget (``epochs``, or ``ctx.trial_epochs`` where it is trained in pieces:
        a fidelity rung's fit ends at the rung's epoch) is split into phases: fine-tuning
        takes ``fine_tune_epochs`` of it, at most half (:meth:`phase_epochs`), so a
        low-fidelity trial mostly trains the head, and a rung continues whichever phase the
        previous one ended in.
        """
        phases = self.phase_epochs(hp.values, ctx.trial_epochs or epochs)
        head_span, tune_span = phase_spans(phases, initial_epoch, epochs)
        has_augmentation, flip_views = _views(hp, model)
        head_callbacks, judged = list(callbacks), list(callbacks)
        if phases[1] > 0 and ctx.trial_epochs is None:  # over rungs, rung ends are judged
            head_callbacks, judged = _judged_on_fine_tuning(callbacks, phases[0], epochs)
        if head_span[1] > head_span[0]:
            if has_augmentation:
                super().fit(
                    hp,
                    model,
                    data,
                    ctx,
                    epochs=head_span[1],
                    initial_epoch=head_span[0],
                    callbacks=head_callbacks,
                    batch_size=batch_size,
                    verbose=verbose,
                )
            else:
                self._fit_head_on_features(
                    hp, model, data, ctx, head_span, head_callbacks, batch_size, verbose, flip_views
                )
        if tune_span[1] > tune_span[0]:
            self._fine_tune(hp, model, data, ctx, phases, tune_span, judged, batch_size, verbose)

    def _fit_head_on_features(
        self, hp, model, data, ctx, span, callbacks, batch_size, verbose, flip_views
    ) -> None:
        """The head phase's epochs ``span`` (first, end) on the frozen backbone's cached
        pooled features."""
        values = hp.values
        f_train, y_train = self._pooled_features(model, values, data, ctx, "train")
        f_val, y_val = self._pooled_features(model, values, data, ctx, "val")
        head = model.get_layer(HEAD_LAYER)
        _compile(head, float(values["learning_rate"]))
        fit_args = dict(
            validation_data=(f_val, y_val),
            initial_epoch=span[0],
            epochs=span[1],
            callbacks=[*self.training_callbacks(hp, span[1], ctx), *callbacks],
            verbose=verbose,
        )
        if flip_views:
            flipped, _ = self._pooled_features(model, values, data, ctx, "train", True)
            head.fit(_both_views(f_train, flipped, y_train, batch_size), shuffle=False, **fit_args)
        else:
            head.fit(f_train, y_train, batch_size=batch_size, shuffle=True, **fit_args)

    def _fine_tune(
        self, hp, model, data, ctx, phases, span, callbacks, batch_size, verbose
    ) -> None:
        """The fine-tuning phase's epochs ``span`` (first, end; ``phases``: head epochs,
        fine-tuning epochs): the unfrozen top on cached activations at the cut where it can,
        else through the image path."""
        head_epochs, fine_tune_epochs = phases
        has_augmentation, flip_views = _views(hp, model)
        values = hp.values
        size = int(model.input_shape[1])
        fine_tune_layers = int(values.get("fine_tune_layers") or 0)
        base = model.get_layer(BACKBONE_LAYER)
        cut = len(base.layers) - fine_tune_layers
        unfreeze_top(
            base, fine_tune_layers, freeze_batch_norm=values.get("fine_tune_batch_norm") == "frozen"
        )
        fine_tune_lr = float(values["learning_rate"]) * float(values["fine_tune_lr_factor"])
        decay = float(values.get("fine_tune_weight_decay") or 0.0)
        schedule = self.fine_tune_callbacks(hp, head_epochs, fine_tune_epochs)
        phase = dict(
            initial_epoch=span[0],
            epochs=span[1],
            callbacks=[*schedule, *callbacks],
            verbose=verbose,
        )
        if not has_augmentation and self._caches_activations(base, cut):
            key = self._feature_key(values, size, ctx)
            self._fine_tune_top(
                model, cut, data, key, (fine_tune_lr, decay), phase, batch_size, flip_views
            )
            return
        _compile(model, fine_tune_lr, decay)
        train = data.dataset("train", size, batch_size, shuffle=True)
        if flip_views:
            train = train.map(_mirror_half)
        model.fit(
            train,
            validation_data=data.dataset("val", size, batch_size, shuffle=False),
            shuffle=False,  # the dataset shuffles itself
            **phase,
        )

    def _fine_tune_top(
        self, model, cut, data, key, optimizer, phase, batch_size, flip_views
    ) -> None:
        """The fine-tuning phase of the unfrozen top alone, on the frozen part's outputs cached
        at ``cut`` (``optimizer``: learning rate, weight decay; ``phase``: ``fit``'s epochs,
        callbacks and verbosity)."""
        from search.data import make_dataset  # the one input pipeline

        trainer, cached, mirrored = self._activation_trainer(
            model,
            model.get_layer(BACKBONE_LAYER),
            cut,
            data,
            int(model.input_shape[1]),
            key,
            ("train", "val"),
            mirrored_splits=("train",) if flip_views else (),
        )
        (a_train, y_train), (a_val, y_val) = cached["train"], cached["val"]
        _compile(trainer, *optimizer)
        if flip_views:
            train = _both_views(a_train, mirrored["train"][0], y_train, batch_size)
        else:
            train = make_dataset(a_train, y_train, batch_size, shuffle=True)
        trainer.fit(
            train,
            validation_data=make_dataset(a_val, y_val, batch_size),
            shuffle=False,
            **phase,
        )  # the dataset shuffles itself

    def complete(self, config: dict[str, Any]) -> dict[str, Any]:
        # Fine-tuning trials recorded before their heads could see texture statistics had
        # no head_inputs: their heads saw the pooled features.
        texture = BACKBONES[config.get("backbone", self.backbones[0])].texture_layers
        return {"head_inputs": "pooled", **config} if texture else dict(config)

    def training_work(
        self, hp: Any, model, epochs: int, *, initial_epoch: int = 0, trial_epochs=None
    ) -> list[tuple[int, int, int]]:
        """The fits :meth:`fit` runs, as the cost model prices them: the head alone on cached
        features (the whole model where it augments its images), then the tuned top alone on
        cached activations (the whole model where they are not cached), each for its epochs
        between ``initial_epoch`` and ``epochs``. Computing a cache the first time is not
        counted: it is paid once per size and cut, not per trial."""
        from search.cost import layers_activations, layers_macs, leaf_layers

        phases = self.phase_epochs(hp.values, trial_epochs or epochs)
        head_epochs, tune_epochs = (
            end - first for first, end in phase_spans(phases, initial_epoch, epochs)
        )
        has_augmentation, _ = _views(hp, model)
        whole = list(leaf_layers(model))
        head = list(leaf_layers(model.get_layer(HEAD_LAYER)))
        parts = [(whole if has_augmentation else head, head_epochs)]
        if tune_epochs:
            base = model.get_layer(BACKBONE_LAYER)
            cut = len(base.layers) - int(hp.values.get("fine_tune_layers") or 0)
            cached = not has_augmentation and self._caches_activations(base, cut)
            parts.append(([*base.layers[cut:], *head] if cached else whole, tune_epochs))
        return [(layers_macs(p), layers_activations(p), n) for p, n in parts]

    def predict(self, hp: Any, model, data, ctx: BuildContext, split: str, batch_size: int = 64):
        """Probabilities through the cached path the model trained on: the head on pooled
        features when the backbone stayed frozen, the tuned top on cached activations when
        fine-tuning cached them, else the images through the whole model; averaged with the
        mirror images' (cached the same way) where the trial averages over flips."""
        views = (False, True) if hp.values.get("tta_flip") else (False,)
        return np.mean(
            [
                self._predict_view(hp, model, data, ctx, split, batch_size, flipped)
                for flipped in views
            ],
            axis=0,
        )

    def cross_validates(self, hp: Any) -> bool:
        # A head on cached features trains in seconds; fine-tuning or augmenting does not.
        values = hp.values
        return int(values.get("fine_tune_layers") or 0) == 0 and not values.get("aug_enabled")

    def cross_validate(
        self,
        hp: Any,
        model,
        data,
        ctx: BuildContext,
        folds: int,
        *,
        epochs: int,
        batch_size: int = 32,
        seed: int = 0,
    ) -> dict[str, Any]:
        """Fresh heads of the trial's configuration, one per fold of train + validation pooled,
        trained as the trial's head was (its epochs, schedule, early stopping on the held-out
        rows, mirror-image views) and scored on the held-out rows (flip-averaged where the
        trial averages)."""
        import keras

        from search.crossval import group_folds, summarize

        values = hp.values
        head_epochs, _ = self.phase_epochs(values, epochs)
        splits = ("train", "val")
        x = np.concatenate([self._pooled_features(model, values, data, ctx, s)[0] for s in splits])
        y = np.concatenate([data.labels(s) for s in splits])
        groups = np.concatenate([data.groups(s) for s in splits])
        mirrored = None
        if values.get("flip_views") or values.get("tta_flip"):
            mirrored = np.concatenate(
                [self._pooled_features(model, values, data, ctx, s, True)[0] for s in splits]
            )
        head = model.get_layer(HEAD_LAYER)
        correct = []
        for train, held in group_folds(y, groups, folds, seed):
            fold_head = keras.models.clone_model(head)  # the same layers, fresh weights
            _compile(fold_head, float(values["learning_rate"]))
            fit_args = dict(
                validation_data=(x[held], y[held]),
                epochs=head_epochs,
                verbose=0,
                callbacks=self.training_callbacks(hp, head_epochs),
            )
            if values.get("flip_views"):
                fold_head.fit(
                    _both_views(x[train], mirrored[train], y[train], batch_size),
                    shuffle=False,
                    **fit_args,
                )
            else:
                fold_head.fit(x[train], y[train], batch_size=batch_size, shuffle=True, **fit_args)
            probabilities = fold_head.predict(x[held], batch_size=256, verbose=0)
            if values.get("tta_flip"):
                probabilities = (
                    probabilities + fold_head.predict(mirrored[held], batch_size=256, verbose=0)
                ) / 2
            correct.append(np.argmax(probabilities, axis=1) == y[held])
        return summarize(correct)

    def inference_model(self, hp: Any, model):
        """``model``, averaging its probabilities over the image and its mirror image where
        the trial chose test-time flip averaging (so the saved and exported model does it)."""
        if not hp.values.get("tta_flip"):
            return model
        import keras

        image = keras.Input(model.input_shape[1:], name="image")
        mirrored = keras.ops.flip(image, axis=2)
        averaged = keras.layers.Average(name="flip_average")([model(image), model(mirrored)])
        return keras.Model(image, averaged, name=f"{model.name}_flip_tta")

    def _predict_view(self, hp, model, data, ctx, split, batch_size, flipped):
        base = model.get_layer(BACKBONE_LAYER)
        size = int(model.input_shape[1])
        if not base.trainable:
            features, _ = self._pooled_features(model, hp.values, data, ctx, split, flipped)
            return np.asarray(
                model.get_layer(HEAD_LAYER).predict(features, batch_size=batch_size, verbose=0)
            )
        cut = next(i for i, layer in enumerate(base.layers) if layer.trainable)
        # Augmentation is off at inference, so even an augmented trial predicts exactly here.
        if self._caches_activations(base, cut):
            from search.data import make_dataset

            trainer, cached, mirrored = self._activation_trainer(
                model,
                base,
                cut,
                data,
                size,
                self._feature_key(hp.values, size, ctx),
                () if flipped else (split,),
                mirrored_splits=(split,) if flipped else (),
            )
            activations, labels = (mirrored if flipped else cached)[split]
            return np.asarray(
                trainer.predict(
                    make_dataset(activations, labels, batch_size).map(lambda a, y: (a,)), verbose=0
                )
            )
        if flipped:
            from search.data import predict_in_batches

            x, _ = data.arrays(split, size)
            return np.asarray(predict_in_batches(_mirrored(model), x, batch_size))
        return super().predict(hp, model, data, ctx, split, batch_size)

    def _pooled_features(
        self,
        model,
        values: dict[str, Any],
        data,
        ctx: BuildContext,
        split: str,
        flipped: bool = False,
    ):
        """The frozen backbone's pooled features of a split (of its mirror images with
        ``flipped``), cached per backbone, weights and size (random-init weights, None, are
        not cached)."""
        import keras

        size = int(model.input_shape[1])
        extractor = keras.Model(model.input, model.get_layer(FEATURES_LAYER).output)
        key = self._feature_key(values, size, ctx)
        if flipped:
            extractor, key = _mirrored(extractor), _mirrored_key(key)
        return data.features(split, size, key, extractor)

    def _feature_key(self, values: dict[str, Any], size: int, ctx: BuildContext) -> str | None:
        """Names this trial's frozen-backbone outputs in the caches (None: random init)."""
        key = BACKBONES[self._backbone_name(values)].feature_key(size, ctx.weights)
        if key is not None and values.get("head_inputs") == "pooled+texture":
            key += "-texture"
        return key

    def _caches_activations(self, base, cut: int) -> bool:
        """Whether the top of ``base`` from ``cut`` on trains and predicts on cached outputs of
        the part below (not the whole network, not a cut too large to be worth caching)."""
        return (
            self.cache_activations
            and cut > 1
            and _activation_values(base, cut) <= MAX_CACHED_ACTIVATION_VALUES
        )

    def _activation_trainer(
        self,
        model,
        base,
        cut: int,
        data,
        size: int,
        key: str | None,
        splits: tuple[str, ...],
        mirrored_splits: tuple[str, ...] = (),
    ):
        """A model from the frozen part's outputs at ``cut`` to the classes, sharing every layer
        with ``model`` (training it trains ``model``), and those outputs with their labels
        for each of ``splits``, and for the mirror images of ``mirrored_splits``.

        The frozen lower part (BatchNorm in inference mode) is a fixed function of the image,
        so its outputs are computed once and cached under ``key`` + the cut: the tensors the
        cut crosses (one, or two where it falls inside a residual block), and a texture
        head's maps made below the cut (:func:`_read_below`), are the trainer's inputs.
        """
        import keras

        below = _read_below(base, cut)
        lower = keras.Model(base.input, below)
        image = keras.Input(model.input_shape[1:])
        extractor = keras.Model(
            image, lower(model.get_layer("backbone_scaling")(image), training=False)
        )
        key = None if key is None else f"{key}-cut{cut}"
        dtype = np.dtype(self.activation_dtype)
        cached = {
            split: data.features(split, size, key, extractor, dtype=dtype) for split in splits
        }
        mirrored = {}
        if mirrored_splits:  # the same outputs for the mirror images
            flipped, flipped_key = _mirrored(extractor), _mirrored_key(key)
            mirrored = {
                split: data.features(split, size, flipped_key, flipped, dtype=dtype)
                for split in mirrored_splits
            }

        inputs = [keras.Input(t.shape[1:]) for t in below]
        outputs = model.get_layer(HEAD_LAYER)(_head_features(_top(base, below, inputs)))
        return keras.Model(inputs, outputs, name="fine_tune_on_activations"), cached, mirrored

    @staticmethod
    def phase_epochs(values: dict[str, Any], epochs: int) -> tuple[int, int]:
        """``(head epochs, fine-tuning epochs)`` of a trial with ``epochs`` in all: fine-tuning
        gets its ``fine_tune_epochs`` but at most half of the budget."""
        fine_tune = 0
        if int(values.get("fine_tune_layers") or 0) > 0:
            fine_tune = min(int(values["fine_tune_epochs"]), epochs // 2)
        return epochs - fine_tune, fine_tune

    def _backbone_name(self, values: dict[str, Any]) -> str:
        return values.get("backbone", self.backbones[0])

    def reference_configs(self) -> list[dict[str, Any]]:
        # The published recipe (with 20 head epochs at most, then 10 of fine-tuning: a
        # budget of 30 epochs, which baselines.run gives it).
        return [
            {
                **PUBLISHED_HEAD,
                "fine_tune_layers": BACKBONES[self.backbones[0]].published_fine_tune_layers,
                "fine_tune_lr_factor": 0.1,
                "fine_tune_epochs": 10,
                "fine_tune_schedule": "plateau",
                "fine_tune_weight_decay": 0.0,
                "fine_tune_batch_norm": "batch",
                **AUGMENT_REFERENCE,
                "flip_views": False,
                "tta_flip": False,
                "head_inputs": "pooled",
            }
        ]


# The published recipe's head phase: 224 px, Dense 128 with dropout 0.2, Adam 1e-2 (the
# frozen phase, which mobilenet-head searches alone, then fine-tuning).
PUBLISHED_HEAD = {"image_size": 224, "head_units": 128, "head_dropout": 0.2, "learning_rate": 1e-2}


class _Choices(NamedTuple):
    """What :meth:`MobileNetSpace._declare` chose, the model is built from."""

    backbone: str
    image_size: int
    head_units: int
    head_dropout: float
    learning_rate: float
    augmentation: Any  # the augmentation layers, or None
    texture: bool  # the head also sees earlier blocks' channel statistics


def _judged_on_fine_tuning(callbacks, head_epochs: int, epochs: int) -> tuple[list, list]:
    """``(the head phase's callbacks, fine-tuning's)`` of a fine-tuning trial trained in one
    go: it is judged (pruned) on its fine-tuning epochs alone, since its head phase says
    little about where fine-tuning ends (the published recipe's first fine-tuning epoch falls
    23-35 points below its head phase, then recovers), and they are reported to the engine as
    steps ``epochs``, ``epochs + 1``, ...: the k-th fine-tuning epoch of every trial is
    compared with the others' k-th, never with a head epoch."""
    from search.training import EngineCallbacks

    head = [c for c in callbacks if not isinstance(c, EngineCallbacks)]
    tuning = [
        c.reporting_from(head_epochs, epochs) if isinstance(c, EngineCallbacks) else c
        for c in callbacks
    ]
    return head, tuning


def phase_spans(
    phases: tuple[int, int], first: int, end: int
) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((first, end) of the head phase, (first, end) of fine-tuning)``: the part of each
    phase (``phases``: head epochs, fine-tuning epochs, in that order) that a fit of epochs
    ``first`` .. ``end - 1`` covers; an empty span has ``first == end``."""
    head, tune = phases
    head_span = (min(first, head), min(end, head))
    tune_first = max(first, head)
    return head_span, (tune_first, max(tune_first, min(end, head + tune)))


def _views(hp: Any, model) -> tuple[bool, bool]:
    """Whether ``model`` augments its own images, and whether its training draws one of an
    image and its mirror image (mirrored views: only where it does not augment)."""
    has_augmentation = any(layer.name == "augmentation" for layer in model.layers)
    return has_augmentation, bool(hp.values.get("flip_views")) and not has_augmentation


def _scope(hp: Any, parent: str, values: list, parent_declared: bool):
    """``hp.conditional_scope(parent, values)`` where the space declares ``parent`` (flip
    views mean something only without augmentation layers, texture heads only on a frozen
    backbone); no scope in a space without that hyperparameter."""
    import contextlib

    return hp.conditional_scope(parent, values) if parent_declared else contextlib.nullcontext()


def _head_features(outputs):
    """The head's input from the backbone's outputs: the final feature map pooled, and with
    earlier blocks' maps (a texture head) their per-channel statistics beside it. Weightless,
    so the activation trainer builds it again and computes what the model does."""
    import keras

    final, *earlier = keras.tree.flatten(outputs)
    if not earlier:
        return keras.layers.GlobalAveragePooling2D(name=FEATURES_LAYER)(final)
    return keras.layers.Concatenate(name=FEATURES_LAYER)(
        [
            keras.layers.GlobalAveragePooling2D()(final),
            *(s for block in earlier for s in _channel_mean_and_std(block)),
        ]
    )


def _channel_mean_and_std(x):
    """Per-channel mean and standard deviation over a feature map's positions."""
    import keras

    mean = keras.layers.GlobalAveragePooling2D()(x)
    mean_square = keras.layers.GlobalAveragePooling2D()(keras.layers.Multiply()([x, x]))
    variance = keras.ops.maximum(mean_square - keras.ops.square(mean), 0.0)
    return mean, keras.ops.sqrt(variance + 1e-6)


def _mirrored(extractor):
    """``extractor`` (any one-input model) applied to the horizontal mirror image of its input."""
    import keras

    image = keras.Input(extractor.input_shape[1:])
    return keras.Model(image, extractor(keras.ops.flip(image, axis=2)))


def _mirrored_key(key: str | None) -> str | None:
    return None if key is None else f"{key}-mirrored"


def _both_views(original, mirrored, labels, batch_size: int):
    """Batches that draw, every epoch, one random set of as many rows as there are images
    from the cached outputs of the images and of their mirror images (one array each, or
    tuples of arrays where a cut crosses several tensors)."""
    from search.data import StackedRows, make_dataset

    if isinstance(original, (tuple, list)):
        rows = tuple(StackedRows(a, b) for a, b in zip(original, mirrored))
    else:
        rows = StackedRows(original, mirrored)
    return make_dataset(
        rows, np.concatenate([labels, labels]), batch_size, shuffle=True, epoch_size=len(labels)
    )


def _mirror_half(images, labels):
    """A batch with a random half of its images mirrored (the image path's flip views)."""
    import tensorflow as tf

    flip = tf.random.uniform((tf.shape(images)[0], 1, 1, 1)) < 0.5
    return tf.where(flip, tf.reverse(images, axis=[2]), images), labels


def fine_tune_depths(spec) -> list[int]:
    """The fine-tuning depths a space offers: none, every block boundary, the published cut
    (the backbone table's), the whole network."""
    published = (
        () if spec.published_fine_tune_layers is None else (spec.published_fine_tune_layers,)
    )
    return sorted({0, *published, *spec.block_starts, spec.num_layers})


def _read_below(base, cut: int) -> list:
    """What the top of ``base`` from ``cut`` on reads from the frozen part below: the tensors
    the cut crosses, then the texture layers' outputs made below it (a texture head's
    channel statistics of them), in that order."""
    crossing = _crossing_tensors(base, cut)
    taken = {id(t) for t in crossing}
    made_below = _made_below(base, cut)
    return crossing + [t for t in base.outputs[1:] if id(t) in made_below and id(t) not in taken]


def _top(base, below: list, inputs: list) -> list:
    """``base``'s outputs computed from ``inputs`` standing for the tensors ``below`` (the
    same layers as the model's top, so BatchNorm behaves exactly as it does there: frozen, or
    on batch statistics while training, fine_tune_batch_norm). An output made below the cut
    (a texture layer) is its input as it is."""
    import keras

    tuned = [t for t in base.outputs if all(t is not b for b in below)]
    computed = keras.tree.flatten(keras.Model(below, tuned)(inputs))
    by_id = {**dict(zip(map(id, tuned), computed)), **dict(zip(map(id, below), inputs))}
    return [by_id[id(t)] for t in base.outputs]


def _activation_values(base, cut: int) -> int:
    """Values per image cached for a cut at ``cut`` (:func:`_read_below`)."""
    import math

    return sum(math.prod(t.shape[1:]) for t in _read_below(base, cut))


def unfreeze_top(base, layers: int, freeze_batch_norm: bool = False) -> None:
    """Make the top ``layers`` of ``base`` trainable; with ``freeze_batch_norm``, not their
    BatchNormalization layers.

    The published code calls the backbone with ``training=False`` to keep BatchNorm in
    inference mode while fine-tuning. Keras 3 does not honour that: a functional model passes
    the outer call's ``training`` to every nested layer, so ``fit`` runs the unfrozen
    BatchNorm layers on batch statistics and moves their statistics. That is how the
    published recipe runs here, and what the reproduced baseline measures. A
    BatchNormalization layer with ``trainable=False`` always runs in inference mode, so
    ``freeze_batch_norm`` gives what the recipe meant (their scale and offset frozen too);
    at the published fine-tuning rate (Adam 1e-3) that collapsed on this data (README).
    """
    import keras

    base.trainable = True
    cut = len(base.layers) - layers
    for i, layer in enumerate(base.layers):
        is_norm = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = i >= cut and not (freeze_batch_norm and is_norm)


def _crossing_tensors(base, cut: int) -> list:
    """The tensors of functional ``base`` that its layers ``[:cut]`` compute and its layers
    ``[cut:]`` read, in layer order."""
    import keras

    made_below = _made_below(base, cut)
    crossing = {}
    for layer in base.layers[cut:]:
        for t in keras.tree.flatten(layer.input):
            if id(t) in made_below:
                crossing.setdefault(id(t), t)
    return list(crossing.values())


def _made_below(base, cut: int) -> set[int]:
    """The ids of the tensors that the layers ``[:cut]`` of functional ``base`` compute."""
    import keras

    return {id(t) for layer in base.layers[:cut] for t in keras.tree.flatten(layer.output)}


def _compile(model, learning_rate: float, weight_decay: float = 0.0) -> None:
    import keras

    from search.training import compile_classifier

    optimizer = (
        keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
        if weight_decay
        else keras.optimizers.Adam(learning_rate)
    )
    compile_classifier(model, optimizer)
