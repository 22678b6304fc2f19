"""Latency and size where a model would ship (search.latency), and the limits a trial is
refused over before it trains (issue #21)."""

from __future__ import annotations

import keras
import pytest

from search.hyperparameters import fixed_hyperparameters
from search.latency import (
    Limits,
    machine,
    measure_latency,
    measured_once,
    parse_objective,
    record_fields,
)
from search.results import read_trials
from search.study import Study
from search.trial import TrialRequest, TrialRunner
from spaces import BuildContext, get_space


def tiny_model(size: int = 32, filters: int = 8, dropout: float = 0.1):
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(filters, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(dropout)(x)
    return keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(x))


def test_a_model_is_timed_in_litert_at_batch_one():
    measured = measure_latency(tiny_model(), runs=12)
    assert measured["format"] == "tflite" and measured["runs"] == 12
    assert 0 < measured["median_ms"] <= measured["p90_ms"]
    assert measured["threads"] == 1 and measured["machine"] == machine()
    assert "LiteRT" in measured["runtime"] or "tf.lite" in measured["runtime"]
    # Float weights: about 4 bytes a parameter, plus the graph.
    params = tiny_model().count_params()
    assert 4 * params < measured["size_bytes"] < 4 * params + 20_000
    assert measured["measure_s"] < 30
    fields = record_fields(measured)
    assert fields["latency_ms"] == measured["median_ms"]
    assert fields["size_mb"] == pytest.approx(measured["size_bytes"] / 1e6, abs=1e-4)
    assert "median_ms" not in fields["latency"] and fields["latency"]["p90_ms"] > 0
    keras.backend.clear_session()


def test_int8_is_measured_only_when_asked_and_is_smaller():
    model = tiny_model(filters=64)
    quantized = measure_latency(model, fmt="tflite-int8", runs=3)
    assert quantized["format"] == "tflite-int8"
    assert quantized["size_bytes"] < measure_latency(model, runs=3)["size_bytes"]
    keras.backend.clear_session()


def test_onnx_is_timed_in_onnxruntime_and_measured_apart_from_tflite(tmp_path):
    cache, model = tmp_path / "latency.jsonl", tiny_model()  # never called: as before training
    tflite = measured_once(model, cache)
    onnx = measured_once(model, cache, fmt="onnx")
    assert "reused" not in onnx and onnx["format"] == "onnx" and onnx["threads"] == 1
    assert onnx["runtime"].startswith("onnxruntime") and 0 < onnx["median_ms"] <= onnx["p90_ms"]
    assert onnx["size_bytes"] != tflite["size_bytes"]
    assert measured_once(model, cache, fmt="onnx") == {**onnx, "reused": True}
    keras.backend.clear_session()


def test_an_architecture_is_measured_once_per_study(tmp_path):
    cache = tmp_path / "latency.jsonl"
    cache.write_text('{"key": "torn', encoding="utf-8")  # a crash's torn line is skipped
    first = measured_once(tiny_model(), cache)
    keras.backend.clear_session()
    # The same layers, new weights and another dropout rate (an identity at inference).
    again = measured_once(tiny_model(dropout=0.4), cache)
    assert again == {**first, "reused": True} and "reused" not in first
    other = measured_once(tiny_model(filters=16), cache)
    assert "reused" not in other and other["size_bytes"] > first["size_bytes"]
    assert len(cache.read_text().splitlines()) == 3
    keras.backend.clear_session()


def test_limits_name_every_limit_a_row_is_over():
    limits = Limits(max_params=1000, max_latency_ms=5, max_size_mb=3)
    assert limits.measured and not Limits(max_params=10).measured
    assert limits.refusal({"params": 1000, "latency_ms": 5.0, "size_mb": 3.0}) is None
    reason = limits.refusal({"params": 2500, "latency_ms": 7.25, "size_mb": 1.0})
    assert reason == (
        "over a limit, not trained: 2,500 parameters over --max-params 1,000; "
        "latency 7.25 ms over --max-latency-ms 5"
    )
    assert "size 4.5 MB over --max-size-mb 3" in limits.refusal({"size_mb": 4.5})
    # Optuna's constraints: how far over, as a fraction of each limit (<= 0 is within).
    assert limits.violations({"params": 2500, "latency_ms": 2.5, "size_mb": 3.0}) == [
        1.5,
        -0.5,
        0.0,
    ]
    assert limits.violations({}) == [0.0, 0.0, 0.0]  # a row without figures: not held
    assert Limits().refusal({"params": 10**9}) is None and Limits().violations({}) == []


def test_objectives():
    assert parse_objective(None) == ("accuracy",)
    assert parse_objective("accuracy, latency") == ("accuracy", "latency")
    assert parse_objective("accuracy,size") == ("accuracy", "size")
    for bad in ("latency", "accuracy,speed", "accuracy,latency,size"):
        with pytest.raises(ValueError, match="give one of accuracy, accuracy,latency"):
            parse_objective(bad)


def runner_for(tmp_path, data, **options):
    study = Study("limits", engine="optuna", algorithm="tpe", space="cnn", root=tmp_path)
    ctx = BuildContext(num_classes=5, max_image_size=32, weights=None)
    return TrialRunner(get_space("cnn"), data, study, ctx=ctx, seed=0, **options), study


def test_a_configuration_over_the_latency_limit_is_refused_untrained(tiny_data, tmp_path):
    runner, study = runner_for(tmp_path, tiny_data, max_latency_ms=1e-6, measure="before")
    config = get_space("cnn").reference_configs()[0]
    record = runner.run(
        fixed_hyperparameters(config), TrialRequest(trial_id="0", number=0, epochs=1)
    )
    assert record.state == "PRUNED" and record.epochs_run == 0 and not record.history
    assert record.error.startswith("over a limit, not trained: latency ")
    assert "ms over --max-latency-ms 1e-06" in record.error
    assert record.latency_ms > 0 and record.size_mb > 0 and record.latency["runs"] == 30
    (row,) = read_trials(study.trials_path)
    assert row.latency_ms == record.latency_ms and row.latency["threads"] == 1
    assert not study.checkpoint_path.exists()
    keras.backend.clear_session()


@pytest.mark.slow
@pytest.mark.parametrize("measure", ["before", "after", None])
def test_a_trial_within_its_limits_trains_and_keeps_its_figures(measure, tiny_data, tmp_path):
    limits = {"max_size_mb": 1000, "max_latency_ms": 10_000} if measure == "before" else {}
    runner, _ = runner_for(tmp_path, tiny_data, measure=measure, **limits)
    config = get_space("cnn").reference_configs()[0]
    record = runner.run(
        fixed_hyperparameters(config), TrialRequest(trial_id="0", number=0, epochs=1)
    )
    assert record.state == "COMPLETE" and record.epochs_run == 1
    if measure is None:
        assert record.latency_ms is None and record.size_mb is None and record.latency is None
    else:
        assert record.latency_ms > 0 and 0 < record.size_mb < 1000
        assert record.latency["format"] == "tflite"
    keras.backend.clear_session()


def test_a_search_measures_every_completed_trial_unless_told_not_to():
    from search.run import _when_measured

    plain = {"objective": "accuracy", "max_params": 50_000_000, "max_latency_ms": None}
    plain["max_size_mb"] = None
    assert _when_measured(plain) == "after"  # the default: every study has its fronts
    assert _when_measured({**plain, "measure_latency": False}) is None  # --no-latency
    # A limit or a cost objective needs the figures before training, --no-latency or not.
    assert _when_measured({**plain, "measure_latency": False, "max_latency_ms": 5}) == "before"
    assert _when_measured({**plain, "objective": "accuracy,size", "measure_latency": False}) == (
        "before"
    )


def test_a_latency_near_the_limit_is_measured_three_times_and_the_median_kept(
    tmp_path, monkeypatch
):
    """One measurement's median moves 10-25% from one conversion to the next here: near a
    --max-latency-ms limit, the median of three decides (and is what the study reuses)."""
    import search.latency as latency

    figures = iter([4.9, 6.2, 5.4, 9.0])
    calls = []

    def fake(model, **_):
        calls.append(model)
        return {"median_ms": next(figures), "p90_ms": 0.0, "size_bytes": 10, "measure_s": 1.0}

    monkeypatch.setattr(latency, "measure_latency", fake)
    cache = tmp_path / "latency.jsonl"
    model = tiny_model()
    near = latency.measured_once(model, cache, limit_ms=5.0)
    assert len(calls) == 3 and near["median_ms"] == 5.4 and near["medians_ms"] == [4.9, 6.2, 5.4]
    assert near["measure_s"] == 3.0
    assert latency.measured_once(model, cache, limit_ms=5.0)["median_ms"] == 5.4  # reused
    assert len(calls) == 3
    far = latency.measured_near(model, limit_ms=5.0)  # 9.0 ms: far over, measured once
    assert len(calls) == 4 and far["median_ms"] == 9.0 and "medians_ms" not in far
