"""search.cost: MACs of a model, and a cost model learned from timed epochs."""

import math
from types import SimpleNamespace

import pytest

from search.cost import CostModel, Timing, batches, model_macs, scaled_macs, timings_from_records


def test_cost_model_recovers_a_power_law():
    truth = lambda macs, n: 2e-9 * macs**0.8 * n  # noqa: E731
    timings = [Timing(m, n, truth(m, n)) for m in (1e6, 4e6, 3e7, 2e8) for n in (10, 40)]
    model = CostModel.fit(timings)
    assert model.exponent == pytest.approx(0.8)
    assert model.epoch_seconds(1e8, 100) == pytest.approx(truth(1e8, 100))
    assert model.n == 8 and model.kinds == len({t.macs for t in timings})


def test_one_kind_of_model_means_time_proportional_to_work_and_none_means_no_guess():
    model = CostModel.fit([Timing(1_000_000, 10, 2.0), Timing(1_000_000, 20, 4.0)])
    assert model.exponent == 1.0 and model.kinds == 1
    assert model.epoch_seconds(2_000_000, 10) == pytest.approx(4.0)
    assert CostModel.fit([]) is None
    assert CostModel.fit([Timing(0, 10, 1.0)]) is None


def test_timings_skip_each_fits_first_epoch_and_rows_without_macs():
    row = SimpleNamespace(
        history={
            "epoch_time_s": [9.0, 2.0, 2.1, 5.0, 3.0],
            "phase": [1, 1, 1, 2, 2],
            "macs": [100] * 3 + [400] * 2,
            "train_batches": [10] * 5,
        }
    )
    old = SimpleNamespace(history={"epoch_time_s": [1.0, 1.0]})
    assert timings_from_records([row, old]) == [
        Timing(100, 10, 9.0, True),
        Timing(100, 10, 2.0),
        Timing(100, 10, 2.1),
        Timing(400, 10, 5.0, True),
        Timing(400, 10, 3.0),
    ]


def test_a_fits_first_epoch_is_its_overhead_not_its_speed():
    timings = [
        Timing(100, 10, 9.0, True),
        Timing(100, 10, 2.0),
        Timing(100, 10, 2.0),
        Timing(100, 10, 6.0, True),
    ]
    model = CostModel.fit(timings)
    assert model.epoch_seconds(100, 10) == pytest.approx(2.0)
    assert model.fit_overhead_s == pytest.approx(7.0)  # the median of 7 and 4: the upper one
    assert model.fit_seconds(100, 10, 3) == pytest.approx(13.0)
    assert CostModel.fit([Timing(100, 10, 9.0, True)]) is None  # no steady epoch yet


def test_scaling_helpers():
    assert scaled_macs(1000, 128, 64) == 250
    assert batches(5064, 0.25, 32) == math.ceil(1266 / 32)
    assert batches(3, 0.1, 32) == 1


def test_model_macs_counts_dense_and_convolutions():
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 8*8 positions x 3*3*3*4 weights
    x = keras.layers.SeparableConv2D(6, 3, padding="valid")(x)  # 6*6 x (3*3*4 + 4*6)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(5)(x)  # 6*5
    model = keras.Model(inputs, outputs)
    assert model_macs(model) == 64 * 108 + 36 * (36 + 24) + 30


def test_the_cost_model_learns_what_activations_cost_beside_macs():
    from search.cost import DEFAULT_ACTIVATION_WEIGHT

    # Seconds per batch grow with MACs plus 30 MACs per activation element: a network with
    # few MACs on large maps (the last kind) costs far more than its MACs say.
    truth = lambda macs, acts, n: 1e-9 * (macs + 30 * acts) ** 0.9 * n  # noqa: E731
    kinds = [(5e7, 2e5), (2e8, 5e5), (1e7, 1e5), (3e6, 1.5e6)]
    timings = [
        Timing(int(m), n, truth(m, a, n), activations=int(a)) for m, a in kinds for n in (10, 40)
    ]
    model = CostModel.fit(timings[:6])  # the first three kinds
    assert model.activation_weight == 30.0 and model.exponent == pytest.approx(0.9)
    heavy = model.epoch_seconds(3_000_000, 40, 1_500_000)
    assert heavy == pytest.approx(truth(3e6, 1.5e6, 40))
    macs_only = CostModel.fit([Timing(t.macs, t.batches, t.seconds) for t in timings[:6]])
    assert macs_only.epoch_seconds(3_000_000, 40) < heavy / 5  # it would under-predict 5x
    # Before three kinds were timed, the default weight.
    assert CostModel.fit(timings[:2]).activation_weight == DEFAULT_ACTIVATION_WEIGHT


def test_model_activations_counts_feature_map_elements():
    import keras

    from search.cost import model_activations

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 8*8*4
    x = keras.layers.MaxPooling2D()(x)  # 4*4*4
    x = keras.layers.GlobalAveragePooling2D()(x)  # not a map
    outputs = keras.layers.Dense(5)(x)
    assert model_activations(keras.Model(inputs, outputs)) == 8 * 8 * 3 + 256 + 64


def test_an_epoch_the_clock_cut_short_is_not_a_timing():
    row = SimpleNamespace(
        history={
            "epoch_time_s": [9.0, 2.0, 5.0],
            "phase": [1, 1, 1],
            "macs": [100] * 3,
            "train_batches": [40, 40, 1],  # the last: one batch, then a whole validation
        }
    )
    assert [t.batches for t in timings_from_records([row])] == [40, 40]


def test_timings_without_activations_price_macs_alone():
    model = CostModel.fit([Timing(1_000_000, 10, 2.0), Timing(1_000_000, 20, 4.0)])
    assert model.activation_weight == 0.0
    assert model.epoch_seconds(1_000_000, 10, activations=10**9) == pytest.approx(2.0)
