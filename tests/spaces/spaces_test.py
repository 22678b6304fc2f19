"""Spaces: registry, reference configs as points of their spaces, one definition for both engines."""

from __future__ import annotations

import keras
import keras_tuner as kt
import numpy as np
import optuna
import pytest

import spaces
from search.hyperparameters import DefineByRunHyperParameters, fixed_hyperparameters
from spaces import BuildContext, Space, get_space, list_spaces, register_space
from spaces.augment import build_augmentation

CTX_32 = BuildContext(num_classes=5, max_image_size=32, weights=None)


def layer_signature(model) -> list[tuple[str, str, int]]:
    """Layer types, output shapes and parameter counts, nested models included."""
    out = []
    for layer in model.layers:
        output = getattr(layer, "output", None)
        shapes = [tuple(t.shape) for t in keras.tree.flatten(output if output is not None else [])]
        out.append((type(layer).__name__, str(shapes), layer.count_params()))
        if isinstance(layer, keras.Model):
            out.extend(layer_signature(layer))
    return out


def kt_build(space: Space, config: dict, ctx: BuildContext):
    """Build through keras-tuner's HyperParameters the way a Tuner does: space first, values next."""
    hp = kt.HyperParameters()
    try:
        space.build(hp, BuildContext(ctx.num_classes, ctx.max_image_size, None))
    except ValueError:
        pass  # declarations happen before a space rejects a combination
    hp.values = dict(config)
    return space.build(hp, ctx), hp


def optuna_build(space: Space, config: dict, ctx: BuildContext):
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(config)
    trial = study.ask()
    hp = DefineByRunHyperParameters(trial)
    return space.build(hp, ctx), hp


def test_registry_lists_builtin_spaces():
    assert {"cnn", "mobilenet", "mobilenet-head"} <= set(list_spaces())
    assert spaces.__all__ == ["BuildContext", "Space", "get_space", "list_spaces", "register_space"]
    with pytest.raises(ValueError, match=r"unknown space 'nope'.*cnn.*mobilenet"):
        get_space("nope")


def test_register_space_rejects_a_second_class_under_the_same_name():
    with pytest.raises(ValueError, match="already registered"):

        @register_space("cnn")
        class Other(Space):
            pass


def test_a_variant_is_its_base_space_with_preset_keyword_arguments():
    from spaces.backbones import BACKBONES
    from spaces.mobilenet import MobileNetSpace

    cut = BACKBONES["mobilenet_v2"].published_fine_tune_layers
    cached = get_space("mobilenet-cached")
    assert type(cached) is MobileNetSpace and cached.name == "mobilenet-cached"
    assert (cached.augment, cached.image_sizes, cached.max_fine_tune_layers) == (
        False,
        (160, 288),
        cut,
    )
    assert f"published {cut} layers" in cached.description
    assert get_space("mobilenet").name == "mobilenet"  # the base keeps its own name
    hp = kt.HyperParameters()
    cached.build(hp, CTX_32)
    depths = hp.space[[h.name for h in hp.space].index("fine_tune_layers")]
    assert max(depths.values) == cut and depths.default == cut
    # get_space passes keyword arguments through, over the preset ones (timm's create_model).
    narrow = get_space("mobilenet-cached", image_sizes=(160, 192))
    assert (narrow.image_sizes, narrow.augment) == ((160, 192), False)
    assert get_space("mobilenet", fine_tune=False).fine_tune is False


def test_register_space_refuses_what_is_not_a_space(monkeypatch):
    import spaces.registry as registry

    monkeypatch.setattr(registry, "_SPACES", dict(registry._SPACES))
    with pytest.raises(TypeError, match="expects a Space subclass"):
        register_space("dict", dict)
    register_space("not-a-space", lambda: object())
    with pytest.raises(TypeError, match="its factory returned"):
        get_space("not-a-space")
    # The same variant registered again (a module imported twice) is harmless; another is not.
    from spaces.mobilenet import MobileNetSpace

    register_space("v", MobileNetSpace, augment=False)
    register_space("v", MobileNetSpace, augment=False)
    with pytest.raises(ValueError, match="already registered"):
        register_space("v", MobileNetSpace, augment=True)


@pytest.mark.parametrize("name", ["cnn", "mobilenet", "mobilenet-head"])
def test_reference_config_is_exactly_a_point_of_its_space(name):
    space = get_space(name)
    refs = space.reference_configs()
    assert refs, f"{name} has no reference config"
    for config in refs:
        # Optuna's FixedTrial raises for a missing hp; the adapter records what was declared.
        hp = fixed_hyperparameters(config)
        space.build(hp, CTX_32)
        assert hp.values == config  # every key is used, nothing is missing
        # Every value lies inside its distribution (a sampler could have proposed it).
        study = optuna.create_study()
        study.enqueue_trial(config)
        trial = study.ask()
        space.build(DefineByRunHyperParameters(trial), BuildContext(num_classes=5, weights=None))
        for key, dist in trial.distributions.items():
            assert dist._contains(dist.to_internal_repr(config[key])), (key, config[key], dist)
        keras.backend.clear_session()


def test_cnn_reference_is_the_published_scratch_cnn():
    model, _ = kt_build(
        get_space("cnn"), get_space("cnn").reference_configs()[0], BuildContext(num_classes=5)
    )
    assert model.input_shape == (None, 256, 256, 3)
    assert model.count_params() == 7_449_221
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("Conv2D") == 3 and kinds.count("MaxPooling2D") == 3
    assert kinds.count("Dropout") == 4 and "Flatten" in kinds
    assert model.optimizer.__class__.__name__ == "Adam"
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    keras.backend.clear_session()


def test_mobilenet_reference_is_the_published_transfer_recipe():
    space = get_space("mobilenet")
    config = space.reference_configs()[0]
    model, _ = kt_build(space, config, BuildContext(num_classes=5))
    assert model.input_shape == (None, 224, 224, 3)
    base = model.get_layer("backbone")
    assert len(base.layers) == 154 and not base.trainable
    # 2,257,984 backbone + Dense 1280->128 + Dense 128->5
    assert model.count_params() == 2_257_984 + 1280 * 128 + 128 + 128 * 5 + 5
    # The published frozen phase trains the head alone: 164,613 of 2,422,597 parameters.
    assert model.count_params() == 2_422_597
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 164_613
    # "unfreeze from layer index 100 on" == the top 54 layers
    assert len(base.layers) - config["fine_tune_layers"] == 100
    head = model.get_layer("head")
    assert [type(layer).__name__ for layer in head.layers] == ["Dense", "Dropout", "Dense"]
    assert head.layers[1].rate == pytest.approx(0.2)
    keras.backend.clear_session()


def test_mobilenet_head_searches_the_published_frozen_phase_only():
    head, full = get_space("mobilenet-head"), get_space("mobilenet")
    hp = kt.HyperParameters()
    head.build(hp, CTX_32)
    assert {h.name for h in hp.space} == {
        "image_size",
        "head_units",
        "head_dropout",
        "learning_rate",
        "flip_views",
        "tta_flip",
        "head_inputs",
    }
    # Its reference is the frozen phase of the published recipe: the same model.
    head_ref, full_ref = head.reference_configs()[0], full.reference_configs()[0]
    assert head_ref["head_inputs"] == "pooled"  # the published head sees the pooled features
    assert all(full_ref[key] == value for key, value in head_ref.items())
    head_model, _ = kt_build(head, head_ref, BuildContext(num_classes=5))
    full_model, _ = kt_build(full, full_ref, BuildContext(num_classes=5))
    assert layer_signature(head_model) == layer_signature(full_model)
    keras.backend.clear_session()


def _random_configs(space: Space, n: int, seed: int) -> list[dict]:
    sampler = optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(sampler=sampler)
    configs = []
    for _ in range(n):
        trial = study.ask()
        hp = DefineByRunHyperParameters(trial)
        try:
            space.build(hp, CTX_32)
        except ValueError:
            pass
        configs.append(dict(hp.values))
        study.tell(trial, 0.0)
        keras.backend.clear_session()
    return configs


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cnn", "mobilenet", "mobilenet-head"])
def test_same_config_builds_the_same_model_through_both_engines(name):
    space = get_space(name)
    configs = space.reference_configs() + _random_configs(space, 4 if name == "cnn" else 2, seed=3)
    built = 0
    for config in configs:
        try:
            kt_model, kt_hp = kt_build(space, config, CTX_32)
        except ValueError:
            # A combination the space rejects must be rejected through Optuna too.
            with pytest.raises(ValueError):
                optuna_build(space, config, CTX_32)
            continue
        op_model, op_hp = optuna_build(space, config, CTX_32)
        assert op_hp.values == config
        assert {k: v for k, v in kt_hp.values.items() if kt_hp.is_active(k)} == config
        assert layer_signature(kt_model) == layer_signature(op_model)
        assert kt_model.count_params() == op_model.count_params()
        assert type(kt_model.optimizer) is type(op_model.optimizer)
        built += 1
        keras.backend.clear_session()
    assert built >= 2


@pytest.mark.slow
def test_every_cnn_block_count_builds_at_every_input_size():
    """A block shrinks the map the published way while it can and keeps its size after that,
    so no (blocks, kernel, size) combination is unbuildable and the published model is
    unchanged (7,449,221 parameters at 256 px, tested above)."""
    from spaces.cnn import BLOCK_TYPES, KERNELS, MAX_BLOCKS, block_shrinks

    assert block_shrinks(256, 3) and block_shrinks(5, 3) and not block_shrinks(4, 5)
    reference = get_space("cnn").reference_configs()[0]
    # 32 px (the --max-image-size of the issue): blocks that shrink, then blocks that cannot,
    # for both kernels; larger inputs only shrink more blocks the published way.
    for size in (32,):
        for kernel in KERNELS:
            for blocks in range(1, MAX_BLOCKS + 1):
                # The published block at both kernels; the other block types at one.
                for block_type in BLOCK_TYPES if kernel == KERNELS[0] else BLOCK_TYPES[:1]:
                    config = {
                        **reference,
                        "conv_blocks": blocks,
                        "kernel_size": kernel,
                        "block_type": block_type,
                        **{f"filters_{i}": 16 for i in range(MAX_BLOCKS)},
                    }
                    model = get_space("cnn").build(
                        fixed_hyperparameters(config),
                        BuildContext(num_classes=5, max_image_size=size, weights=None),
                    )
                    assert model.output_shape == (None, 5)
                    convs = {"plain": "Conv2D", "separable": "SeparableConv2D", "residual": "Add"}[
                        block_type
                    ]
                    assert sum(type(layer).__name__ == convs for layer in model.layers) == blocks
                    keras.backend.clear_session()


def test_cnn_cosine_schedule_decays_over_the_trials_epochs():
    from search.data import synthetic_data

    data = synthetic_data(n_train=20, n_val=10, n_test=10, image_size=32, seed=0)
    space = get_space("cnn")
    config = {
        **space.reference_configs()[0],
        "conv_blocks": 1,
        "filters_0": 16,
        "schedule": "cosine",
        "learning_rate": 1e-3,
    }
    hp = fixed_hyperparameters(config)
    model = space.build(hp, BuildContext(num_classes=5, max_image_size=32, weights=None))
    history = keras.callbacks.History()
    space.fit(hp, model, data, CTX_32, epochs=4, callbacks=[history])
    rates = history.history["learning_rate"]
    assert rates[0] == pytest.approx(1e-3) and rates[2] == pytest.approx(5e-4)
    assert rates[0] > rates[1] > rates[2] > rates[3] > 0
    keras.backend.clear_session()


def test_cnn_search_at_32px_proposes_every_depth_and_kernel():
    """Issue #10: half of the cnn trials at --max-image-size 32 failed with "conv blocks do not
    fit a 32 px input" and counted toward --trials. Every (blocks, kernel) now builds at 32 px
    (the test above builds them all), and both engines propose the whole range."""
    space = get_space("cnn")
    # Optuna samples from the distributions the space declares at this size.
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    space.declare(DefineByRunHyperParameters(trial), CTX_32)
    blocks, kernels = trial.distributions["conv_blocks"], trial.distributions["kernel_size"]
    assert (blocks.low, blocks.high) == (1, 5) and set(kernels.choices) == {3, 5}
    keras.backend.clear_session()
    # keras-tuner: its random oracle learns the space by building it once, then proposes.
    oracle = kt.oracles.RandomSearchOracle(
        objective=kt.Objective("val_accuracy", "max"), max_trials=30, seed=1
    )
    learned = kt.HyperParameters()
    space.build(learned, CTX_32)
    oracle.hyperparameters = learned
    proposed = {oracle._random_values()["conv_blocks"] for _ in range(30)}
    assert proposed == set(range(1, 6))
    keras.backend.clear_session()


def test_augmentation_subspace_off_by_default_and_builds_layers_when_on():
    hp = kt.HyperParameters()
    assert build_augmentation(hp) is None
    assert all(name.startswith("aug_") for name in hp.values)
    on = fixed_hyperparameters(
        {
            "aug_enabled": True,
            "aug_flip": "horizontal",
            "aug_rotation": 0.1,
            "aug_zoom": 0.0,
            "aug_translation": 0.1,
            "aug_contrast": 0.2,
            "aug_brightness": 0.0,
        }
    )
    seq = build_augmentation(on)
    assert [type(layer).__name__ for layer in seq.layers] == [
        "RandomFlip",
        "RandomRotation",
        "RandomTranslation",
        "RandomContrast",
    ]
    # Inactive knobs are not declared when the switch is off.
    off = fixed_hyperparameters({"aug_enabled": False})
    assert build_augmentation(off) is None and off.values == {"aug_enabled": False}


def test_adapter_conditional_scope_and_errors():
    study = optuna.create_study()
    trial = study.ask()
    hp = DefineByRunHyperParameters(trial)
    n = hp.Int("n", 1, 1)
    with hp.conditional_scope("n", [2, 3]):
        assert hp.Choice("inactive", ["a", "b"]) is None
    with hp.conditional_scope("n", [1]):
        assert hp.Choice("active", ["a"]) == "a"
    assert n == 1 and hp.values == {"n": 1, "active": "a"}
    assert set(trial.params) == {"n", "active"}  # the inactive one never reached Optuna
    with pytest.raises(ValueError, match="not been declared"):
        with hp.conditional_scope("missing", [1]):
            pass
    with pytest.raises(ValueError, match="no Optuna equivalent"):
        hp.Int("bad", 1, 64, step=2, sampling="log")
    with pytest.raises(ValueError, match="sampling 'reverse_log'"):
        hp.Float("bad2", 0.1, 1.0, sampling="reverse_log")
    lr = hp.Float("lr", 1e-4, 1e-2, sampling="log")
    assert trial.distributions["lr"].log and 1e-4 <= lr <= 1e-2
