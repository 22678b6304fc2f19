"""``search.run``'s limits and objectives: the flags refused with one line, a study's goals
kept on resume, a multi-objective Optuna study, and limits as the sampler's constraints
(issue #21)."""

from __future__ import annotations

import optuna
import pytest

from search.engines import get_engine
from search.results import read_json, read_trials
from search.run import _goals, main, run_search
from search.study import SearchError

SMALL = ["--space", "cnn", "--synthetic", "--trials", "1", "--epochs", "1", "--no-progress"]


def one_error(capsys) -> str:
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1, errors
    return errors[0]


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--max-latency-ms", "-1", "--max-latency-ms: must be a positive number of ms, got -1"),
        ("--max-latency-ms", "0", "--max-latency-ms: must be a positive number of ms, got 0"),
        ("--max-latency-ms", "nan", "--max-latency-ms: must be a positive number of ms, got nan"),
        ("--max-size-mb", "fast", "--max-size-mb: 'fast' is not a number of MB"),
        ("--max-size-mb", "inf", "--max-size-mb: must be a positive number of MB, got inf"),
        ("--max-params", "-5", "--max-params: must be a positive number of parameters, got -5"),
    ],
)
def test_a_bad_limit_is_one_error_line(option, value, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*SMALL, option, value])
    assert exc.value.code == 2
    assert one_error(capsys).endswith(message)


@pytest.mark.parametrize(
    "options, message",
    [
        (["--objective", "accuracy,speed"], "--objective 'accuracy,speed': give one of accuracy, "),
        (
            ["--engine", "keras-tuner", "--objective", "accuracy,latency"],
            "--objective accuracy,latency needs --engine optuna (a multi-objective study "
            "with a Pareto front); keras-tuner sums objectives into one score",
        ),
        (
            ["--algorithm", "cmaes", "--objective", "accuracy,size"],
            "--objective accuracy,size: --algorithm cmaes optimizes one objective; use nsga2, "
            "tpe, tpe-multivariate, random",
        ),
        (
            ["--algorithm", "nsga2", "--objective", "accuracy,params", "--pruner", "median"],
            "Optuna prunes single-objective studies only, so --pruner median cannot be used",
        ),
        (
            ["--objective", "accuracy,latency", "--rungs", "auto", "--epochs", "9"],
            "Optuna prunes single-objective studies only, so --rungs cannot be used",
        ),
    ],
)
def test_what_several_objectives_cannot_do_is_one_error_line(options, message, tmp_path, capsys):
    assert main([*SMALL, "--results", str(tmp_path), *options]) == 2
    assert message in one_error(capsys)
    assert not list(tmp_path.glob("searches/*/study.json"))  # nothing was started


def test_a_resumed_study_keeps_its_goals_and_refuses_others():
    recorded = {"config": {"objective": "accuracy,latency", "max_latency_ms": 5.0}}
    limits = {"max_latency_ms": None, "max_size_mb": None}
    kept = _goals(None, limits, recorded, "s")
    assert kept == {
        "objective": "accuracy,latency",
        "max_latency_ms": 5.0,
        "max_size_mb": None,
        "latency_format": "tflite",  # recorded before the option: float TFLite
    }
    with pytest.raises(SearchError, match=r"other goals \(latency_format tflite -> onnx\)"):
        _goals(None, limits, recorded, "s", "onnx")
    onnx = {"config": {**recorded["config"], "latency_format": "onnx"}}
    assert _goals(None, limits, onnx, "s")["latency_format"] == "onnx"
    with pytest.raises(SearchError, match="--latency-format 'pb' is not one of tflite, "):
        _goals(None, limits, {}, "s", "pb")
    with pytest.raises(SearchError, match=r"other goals \(max_latency_ms 5.0 -> 3.0\)"):
        _goals(None, {**limits, "max_latency_ms": 3.0}, recorded, "s")
    with pytest.raises(SearchError, match=r"objective accuracy,latency -> accuracy,size"):
        _goals("accuracy,size", limits, recorded, "s")
    # A study from before limits existed: accuracy alone, no limits.
    assert _goals(None, limits, {"config": {}}, "s")["objective"] == "accuracy"
    with pytest.raises(SearchError, match="must be a positive number, got -2"):
        _goals(None, {**limits, "max_size_mb": -2}, {}, "s")


def test_nsga2_is_an_algorithm_and_several_objectives_take_no_pruner():
    engine = get_engine("optuna", "nsga2", objectives=("accuracy", "latency"))
    assert engine.objectives == ("accuracy", "latency")
    with pytest.raises(SearchError, match="--algorithm evolution optimizes one objective"):
        get_engine("optuna", "evolution", objectives=("accuracy", "params"))


def search(data, tmp_path, **kw):
    return run_search(
        "cnn",
        data,
        engine="optuna",
        epochs=1,
        max_image_size=16,
        progress=False,
        isolate=False,
        results=tmp_path,
        **kw,
    )


@pytest.mark.slow
def test_a_multi_objective_study_records_its_front(tiny_data, tmp_path):
    out = search(tiny_data, tmp_path, algorithm="nsga2", trials=3, objective="accuracy,latency")
    records = read_trials(out["study_dir"] / "trials.jsonl")
    ostudy = optuna.load_study(
        study_name="cnn-optuna-nsga2", storage=f"sqlite:///{out['study_dir'] / 'optuna.db'}"
    )
    assert [d.name for d in ostudy.directions] == ["MAXIMIZE", "MINIMIZE"]
    complete = [r for r in records if r.state == "COMPLETE"]
    assert complete
    for t, r in zip(ostudy.trials, records, strict=True):
        assert r.latency_ms > 0 and r.size_mb > 0  # measured before training, every trial
        if r.state == "COMPLETE":
            assert t.values == pytest.approx([r.val_accuracy, r.latency_ms])
    best = read_json(out["study_dir"] / "best.json")
    top = max(complete, key=lambda r: (r.val_accuracy, -r.number))
    assert best["trial_id"] == top.trial_id and best["latency_ms"] == top.latency_ms
    front = best["front"]["latency_ms"]
    assert front[-1]["val_accuracy"] == top.val_accuracy  # the front ends at the best
    assert [p["latency_ms"] for p in front] == sorted(p["latency_ms"] for p in front)
    # Every model on a front is kept, so it can be exported under a limit.
    for point in front:
        assert (out["study_dir"] / "models" / f"trial-{point['number']}.keras").exists()


@pytest.mark.slow
def test_a_study_times_its_trials_in_the_format_it_chose(tiny_data, tmp_path):
    """--latency-format tflite-int8: the rows' latency and size are the int8 TFLite file's,
    and study.json records the format (a resumed study keeps it)."""
    out = search(tiny_data, tmp_path, algorithm="tpe", trials=2, latency_format="tflite-int8")
    records = read_trials(out["study_dir"] / "trials.jsonl")
    assert all(r.latency["format"] == "tflite-int8" and r.size_mb > 0 for r in records)
    recorded = read_json(out["study_dir"] / "study.json")["config"]
    assert recorded["latency_format"] == "tflite-int8"


@pytest.mark.slow
def test_configurations_over_the_latency_limit_are_refused_and_the_sampler_told(
    tiny_data, tmp_path
):
    out = search(tiny_data, tmp_path, algorithm="tpe", trials=2, max_latency_ms=1e-6)
    records = read_trials(out["study_dir"] / "trials.jsonl")
    assert [r.state for r in records] == ["PRUNED", "PRUNED"]
    assert all(r.epochs_run == 0 and "over --max-latency-ms 1e-06" in r.error for r in records)
    assert out["best"] is None
    ostudy = optuna.load_study(
        study_name="cnn-optuna-tpe", storage=f"sqlite:///{out['study_dir'] / 'optuna.db'}"
    )
    for t, r in zip(ostudy.trials, records, strict=True):
        assert t.constraints["params"] < 0 < t.constraints["latency_ms"]
        assert t.constraints["latency_ms"] == pytest.approx(r.latency_ms / 1e-6 - 1)


@pytest.mark.slow
def test_keras_tuner_holds_trials_to_the_limits_too(tiny_data, tmp_path):
    out = run_search(
        "cnn",
        tiny_data,
        engine="keras-tuner",
        algorithm="random",
        trials=2,
        epochs=1,
        max_image_size=16,
        progress=False,
        isolate=False,
        results=tmp_path,
        max_size_mb=1e-6,
    )
    records = read_trials(out["study_dir"] / "trials.jsonl")
    assert [r.state for r in records] == ["PRUNED", "PRUNED"]
    assert all("MB over --max-size-mb 1e-06" in r.error and r.size_mb > 0 for r in records)
    assert read_json(out["study_dir"] / "study.json")["config"]["max_size_mb"] == 1e-6
