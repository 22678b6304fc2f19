"""Keras Tuner engine: end to end, reference first, resume, interrupt, failures."""

from __future__ import annotations

import json

import keras
import keras_tuner as kt
import pytest

from search.engines import get_engine
from search.engines.keras_tuner import make_oracle
from search.results import read_trials
from search.run import run_search
from search.study import SearchError
from spaces import BuildContext, get_space

from .conftest import InterruptSecondTraining, check_best, check_table


def search(data, tmp_path, **kw):
    kw.setdefault("engine", "keras-tuner")
    kw.setdefault("epochs", 1)
    # 16 px: these tests are about the engine, not the model; the cnn space's widest
    # configurations (512-filter blocks) train about four times faster than at 32 px.
    kw.setdefault("max_image_size", 16)
    kw.setdefault("progress", False)
    # In this process: these tests are about the engine (their callbacks raise Ctrl-C inside
    # a trial); isolation_test.py runs searches with a child process per trial.
    kw.setdefault("isolate", False)
    kw.setdefault("measure_latency", False)  # tests/search/latency_test.py measures
    return run_search(kw.pop("space", "cnn"), data, results=tmp_path, **kw)


@pytest.mark.slow
def test_random_search_end_to_end_writes_the_common_table(tiny_data, tmp_path):
    out = search(tiny_data, tmp_path, algorithm="random", trials=3, epochs=2, seed=1)
    study_dir = out["study_dir"]
    assert study_dir == tmp_path / "searches" / "cnn-keras-tuner-random"
    records = check_table(study_dir, "cnn", 3)
    assert records[0].config == get_space("cnn").reference_configs()[0]  # reference first
    assert len({json.dumps(r.config, sort_keys=True) for r in records}) == 3
    assert {r.engine for r in records} == {"keras-tuner"}
    check_best(study_dir, records)
    assert (study_dir / "tuner" / "oracle.json").exists()  # keras-tuner's own project folder
    rows = [json.loads(line) for line in open(study_dir / "resources.jsonl")]
    assert len(rows) == 3 and all(r["rss_mb"] > 0 for r in rows)
    # Anonymous memory is part of the resident total (the rest is mapped files).
    assert all(0 < r["rss_anon_mb"] <= r["rss_mb"] for r in rows)


@pytest.mark.parametrize("algorithm", ["random", "bayesian", "hyperband"])
def test_every_oracle_proposes_the_reference_config_first(algorithm, tmp_path):
    space = get_space("mobilenet")
    oracle = make_oracle(algorithm, space.reference_configs(), trials=5, epochs=3, seed=0)
    oracle._set_project_dir(str(tmp_path), "p")
    hp = kt.HyperParameters()
    space.build(hp, BuildContext(num_classes=5, max_image_size=32))
    oracle.update_space(hp)
    first = oracle.create_trial("t0")
    values = {k: v for k, v in first.hyperparameters.values.items() if not k.startswith("tuner/")}
    assert values == space.reference_configs()[0]
    oracle.end_trial(first)  # (no metrics: the trial ends as invalid; only order matters here)
    second = oracle.create_trial("t0")
    assert {
        k: v for k, v in second.hyperparameters.values.items() if not k.startswith("tuner/")
    } != values
    keras.backend.clear_session()


@pytest.mark.slow
def test_the_same_seed_proposes_the_same_configs_seed_0_included(tiny_data, tmp_path):
    # keras-tuner draws a random seed when given 0 (`seed or random.randint(...)`).
    # Without the reference trial (its config is fixed): the space's starting point, then
    # two sampled configurations.
    first = search(
        tiny_data, tmp_path / "a", algorithm="random", trials=3, seed=0, references=False
    )
    again = search(
        tiny_data, tmp_path / "b", algorithm="random", trials=3, seed=0, references=False
    )
    configs = [r.config for r in first["records"]]
    assert configs == [r.config for r in again["records"]]
    assert len({json.dumps(c, sort_keys=True) for c in configs}) == 3  # really sampled


@pytest.mark.slow
def test_resume_keeps_finished_trials_and_does_not_rerun_them(tiny_data, tmp_path):
    search(tiny_data, tmp_path, trials=2, seed=2)
    study_dir = tmp_path / "searches" / "cnn-keras-tuner-random"
    before = {r.trial_id: r for r in read_trials(study_dir / "trials.jsonl")}
    assert len(before) == 2
    lines_before = sum(1 for _ in open(study_dir / "trials.jsonl"))
    search(tiny_data, tmp_path, trials=4)  # same command with a larger budget; seed from study.json
    after = read_trials(study_dir / "trials.jsonl")
    check_table(study_dir, "cnn", 4)
    for r in after[:2]:
        assert r.to_dict() == before[r.trial_id].to_dict()  # untouched
    # Exactly two new lines: the first two trials were not run again.
    assert sum(1 for _ in open(study_dir / "trials.jsonl")) == lines_before + 2


@pytest.mark.slow
def test_interrupt_mid_trial_then_resume_retries_only_the_interrupted_trial(tiny_data, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        # Two trials: the first finishes, the second is interrupted and then retried.
        search(tiny_data, tmp_path, trials=2, epochs=2, callbacks=[InterruptSecondTraining()])
    study_dir = tmp_path / "searches" / "cnn-keras-tuner-random"
    before = read_trials(study_dir / "trials.jsonl")
    states = {
        p.parent.name: json.load(open(p)) for p in (study_dir / "tuner").glob("trial_*/trial.json")
    }
    (running,) = [t for t in states.values() if t["status"] == "RUNNING"]
    interrupted_id = running["trial_id"]
    assert [r.trial_id for r in before] == [str(i) for i in range(int(interrupted_id))]

    search(tiny_data, tmp_path, trials=2, epochs=2)
    rows = check_table(study_dir, "cnn", 2)
    assert [r.to_dict() for r in rows[: len(before)]] == [r.to_dict() for r in before]
    # keras-tuner retries the interrupted trial under its own id with its own values.
    values = running["hyperparameters"]["values"]
    retried = next(r for r in rows if r.trial_id == interrupted_id)
    assert set(retried.config) <= set(values)
    for key, value in retried.config.items():
        if isinstance(value, float):
            assert value == pytest.approx(values[key], rel=1e-12), key
        else:
            assert value == values[key], key
    assert sum(1 for _ in open(study_dir / "trials.jsonl")) == 2


@pytest.mark.slow
def test_failing_trials_are_recorded_and_the_search_goes_on(tiny_data, tmp_path, flaky_space):
    out = search(tiny_data, tmp_path, space=flaky_space, trials=4, study="flaky-kt")
    rows = check_table(out["study_dir"], flaky_space, 4)
    assert [r.config["mode"] for r in rows[:3]] == ["raise", "nan", "ok"]
    assert rows[0].state == "FAIL" and "cannot be built" in rows[0].error
    assert rows[1].state == "FAIL" and "NaN" in rows[1].error
    assert rows[2].state == "COMPLETE"
    assert len(rows) == 4  # the search went on past two failures
    best = check_best(out["study_dir"], rows)
    assert best["config"]["mode"] == "ok"


@pytest.mark.slow
def test_hyperband_gives_trials_epoch_budgets(tiny_data, tmp_path, flaky_space):
    out = search(tiny_data, tmp_path, space=flaky_space, algorithm="hyperband", trials=6, epochs=3)
    rows = check_table(out["study_dir"], flaky_space, 6)
    assert [r.config for r in rows[:3]] == flaky_space.reference_configs()
    assert all(not k.startswith("tuner/") for r in rows for k in r.config)
    budgets = json.load(open(out["study_dir"] / "tuner" / "trial_3" / "trial.json"))
    budget = budgets["hyperparameters"]["values"]["tuner/epochs"]
    assert rows[3].epochs_run == budget and 1 <= budget <= 3


def test_bad_engine_arguments_name_the_value_and_choices():
    with pytest.raises(
        SearchError,
        match=r"unknown algorithm 'tpe' for engine 'keras-tuner'; choices: random, bayesian, hyperband",
    ):
        get_engine("keras-tuner", "tpe")
    with pytest.raises(SearchError, match="optuna only"):
        get_engine("keras-tuner", "random", pruner="median")
    with pytest.raises(
        SearchError, match=r"unknown engine 'sklearn'; choices: keras-tuner, optuna"
    ):
        get_engine("sklearn")


@pytest.mark.slow
def test_torn_rows_are_set_aside_and_re_derived_from_the_oracle_records(
    tiny_data, tmp_path, flaky_space, capsys
):
    search(tiny_data, tmp_path, space=flaky_space, trials=3, study="flaky-kt")
    study_dir = tmp_path / "searches" / "flaky-kt"
    table = study_dir / "trials.jsonl"
    before = read_trials(table)
    lines = table.read_text().splitlines()
    lines[1] = "\x00\x00" + lines[1][:20]  # garbled: the NaN trial (FAIL)
    table.write_text(
        "\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2]
    )  # torn: the good one
    capsys.readouterr()

    search(tiny_data, tmp_path, space=flaky_space, trials=3, study="flaky-kt")
    err = capsys.readouterr().err
    assert (
        f"warning: {table}: 2 lines could not be read (lines 2, 3); moved to {table}.unreadable"
    ) in err
    assert "2 finished trials (1, 2) had no readable row" in err and "keras-tuner" in err
    rows = read_trials(table)
    assert [r.trial_id for r in rows] == ["0", "1", "2"]  # nothing was trained again
    records = {
        p.parent.name: json.load(open(p)) for p in (study_dir / "tuner").glob("trial_*/trial.json")
    }
    assert rows[0].to_dict() == before[0].to_dict()
    for row, old in zip(rows[1:], before[1:]):
        assert (row.state, row.config, row.number) == (old.state, old.config, old.number)
        assert "row re-derived from keras-tuner's trial record" in row.error
        assert row.params == old.params and row.input_size == old.input_size
    assert rows[2].val_accuracy == records["trial_2"]["score"] == before[2].val_accuracy
    assert rows[2].epochs_run == 1
    assert len((study_dir / "trials.jsonl.unreadable").read_text().splitlines()) == 2
    assert json.load(open(study_dir / "best.json"))["trial_id"] == "2"


def test_an_unreadable_keras_tuner_record_is_named_not_a_traceback(
    tiny_data, tmp_path, flaky_space
):
    record = tmp_path / "searches" / "flaky-kt" / "tuner" / "trial_0" / "trial.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"trial_id": "0", "hyperpar')  # torn by a kill mid-write
    with pytest.raises(
        SearchError,
        match=r"keras-tuner's trial record .*trial_0/trial\.json cannot "
        r"be read .*--study NAME",
    ):
        search(tiny_data, tmp_path, space=flaky_space, trials=1, study="flaky-kt")
