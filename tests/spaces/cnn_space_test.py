"""The cnn space's strided stem and its starting points."""

from __future__ import annotations

import keras
import optuna
import pytest

from search.hyperparameters import DefineByRunHyperParameters, fixed_hyperparameters
from spaces import BuildContext, get_space


def test_cnn_starting_points_are_points_of_the_space():
    space = get_space("cnn")
    starts = space.starting_configs()
    assert starts, "cnn has no starting point"
    for config in starts:
        hp = fixed_hyperparameters(config)
        space.build(hp, BuildContext(num_classes=5, max_image_size=32, weights=None))
        assert hp.values == config  # every key is used, nothing is missing
        study = optuna.create_study()
        study.enqueue_trial(config)
        trial = study.ask()
        space.declare(DefineByRunHyperParameters(trial), BuildContext(num_classes=5))
        for key, dist in trial.distributions.items():
            assert dist._contains(dist.to_internal_repr(config[key])), (key, config[key], dist)
        keras.backend.clear_session()


@pytest.mark.parametrize("block_type", ["plain", "separable", "residual"])
def test_a_strided_stem_gives_the_blocks_a_quarter_of_the_pixels(block_type):
    space = get_space("cnn")
    config = {
        **space.reference_configs()[0],
        "image_size": 128,
        "block_type": block_type,
        "batch_norm": True,
        "pooling": "gap",
        "filters_0": 16,
        "filters_1": 16,
        "filters_2": 16,
    }
    ctx = BuildContext(num_classes=5, weights=None)
    with_stem = space.build(fixed_hyperparameters({**config, "stem": "strided"}), ctx)
    assert with_stem.get_layer("stem").output.shape == (None, 64, 64, 16)
    assert with_stem.get_layer("stem").strides == (2, 2)
    assert with_stem.output_shape == (None, 5)
    keras.backend.clear_session()
    without = space.build(fixed_hyperparameters({**config, "stem": "none"}), ctx)
    assert "stem" not in [layer.name for layer in without.layers]
    keras.backend.clear_session()


def test_sizes_are_declared_up_to_the_cap_and_rungs_fix_global_pooling():
    space = get_space("cnn")
    study = optuna.create_study()
    trial = study.ask()
    space.declare(DefineByRunHyperParameters(trial), BuildContext(5, max_image_size=150))
    size = trial.distributions["image_size"]
    assert (size.low, size.high, size.step) == (96, 128, 32)  # 160 would train at 150 anyway
    assert trial.distributions["pooling"].choices == ("flatten", "gap")
    climbing = study.ask()
    hp = DefineByRunHyperParameters(climbing)
    space.declare(hp, BuildContext(5, max_image_size=64, climbs=True))
    assert "pooling" not in climbing.distributions and hp.values["pooling"] == "gap"
    assert climbing.distributions["image_size"].high == 128  # always two sizes to draw from
    keras.backend.clear_session()
