"""One child process per trial (search.isolation): same results, pruning, a killed trial.
(The search process's memory across children: isolation_memory_test.py.)"""

from __future__ import annotations

import json
import os
import pickle
import signal
import sys

import numpy as np
import pytest

from search.data import synthetic_data
from search.results import read_json, read_trials
from search.run import run_search

from .engines.conftest import FlakySpace, PruneableSpace, check_best, check_table

# Every test here trains models (and starts child processes): not in the fast subset.
pytestmark = pytest.mark.slow


def search(data, tmp_path, **kw):
    kw.setdefault("engine", "optuna")
    kw.setdefault("algorithm", "random")
    kw.setdefault("epochs", 2)
    # 16 px: these tests are about the engine, not the model; the cnn space's widest
    # configurations (512-filter blocks) train about four times faster than at 32 px.
    kw.setdefault("max_image_size", 16)
    kw.setdefault("progress", False)
    kw.setdefault("seed", 2)
    kw.setdefault("measure_latency", False)  # tests/search/latency_test.py measures
    return run_search(kw.pop("space", "cnn"), data, results=tmp_path, **kw)


def resources(study_dir) -> list[dict]:
    return [json.loads(line) for line in open(study_dir / "resources.jsonl", encoding="utf-8")]


# Spaces are module-level classes, so the child process can unpickle them.
class DyingSpace(FlakySpace):
    """Mode "die" kills its own process in training: what the out-of-memory killer does."""

    def build(self, hp, ctx):
        hp.Choice("fate", ["live", "die"], default="live")
        return super().build(hp, ctx)

    def fit(self, hp, model, data, ctx, **kwargs):
        if hp.values["fate"] == "die":
            print("allocating far too much", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return super().fit(hp, model, data, ctx, **kwargs)

    def reference_configs(self):
        return [
            {"fate": "die", "mode": "ok", "units": 8},
            {"fate": "live", "mode": "ok", "units": 8},
        ]


def check_same_rows(isolated, in_process, n: int) -> None:
    """``isolated`` (n trials, a child each) has the rows of ``in_process``, the same search's
    first trials in the search process, and each child reported its peak memory."""
    rows = check_table(isolated["study_dir"], "cnn", n)
    check_best(isolated["study_dir"], rows)
    here = read_trials(in_process["study_dir"] / "trials.jsonl")
    # Same configurations, same seeds: the same training, whichever process ran it (the
    # in-process search may be the isolated one's first trials: draws follow the trial number).
    assert 2 <= len(here) <= n
    rows = rows[: len(here)]
    assert [r.config for r in rows] == [r.config for r in here]
    assert [r.state for r in rows] == [r.state for r in here]
    for a, b in zip(rows, here):
        if a.state == "COMPLETE":
            assert a.val_accuracy == pytest.approx(b.val_accuracy, abs=0.051)  # one image of 20
            assert a.params == b.params and a.epochs_run == b.epochs_run
    # Each trial's child reports its own peak memory; in-process trials have none.
    assert all(line["trial_peak_rss_mb"] > 100 for line in resources(isolated["study_dir"]))
    assert all(line["trial_peak_rss_mb"] is None for line in resources(in_process["study_dir"]))
    assert read_json(isolated["study_dir"] / "study.json")["config"]["isolate"] is True


def test_isolated_keras_tuner_trials_give_the_same_rows_as_in_process_ones(tiny_data, tmp_path):
    """(Optuna's: isolation_memory_test.py, with the search whose memory it measures.) The
    reference and one sampled configuration."""
    isolated = search(tiny_data, tmp_path / "child", engine="keras-tuner", trials=2, isolate=True)
    in_process = search(tiny_data, tmp_path / "here", engine="keras-tuner", trials=2, isolate=False)
    check_same_rows(isolated, in_process, 2)


def test_the_engine_prunes_a_trial_that_trains_in_a_child(tiny_data, tmp_path):
    out = search(
        tiny_data,
        tmp_path,
        space=PruneableSpace(),
        trials=4,
        epochs=6,
        study="prune",
        pruner="median",
        isolate=True,
    )
    rows = read_trials(out["study_dir"] / "trials.jsonl")
    assert [r.state for r in rows[:3]] == ["COMPLETE"] * 3
    assert rows[3].state == "PRUNED" and rows[3].epochs_run < 6, [
        (r.state, r.history) for r in rows
    ]
    assert "pruned" in rows[3].error.lower()


def test_a_trial_killed_by_the_kernel_is_a_fail_row_and_the_search_goes_on(tiny_data, tmp_path):
    out = search(
        tiny_data,
        tmp_path,
        space=DyingSpace(),
        trials=2,
        study="dying",
        pruner="none",
        isolate=True,
    )
    rows = read_trials(out["study_dir"] / "trials.jsonl")
    assert rows[0].state == "FAIL" and rows[0].config["fate"] == "die"
    assert "SIGKILL" in rows[0].error and "out-of-memory" in rows[0].error
    # The child's stderr went to the trial's log, and the row quotes the end of it.
    log = out["study_dir"] / "logs" / "trial-0.log"
    assert str(log) in rows[0].error and "allocating far too much" in rows[0].error
    assert "allocating far too much" in log.read_text()
    assert rows[1].state == "COMPLETE"
    assert out["best"]["trial_id"] == rows[1].trial_id


def test_data_sources_travel_to_the_child_without_their_memory_caches():
    data = synthetic_data(n_train=40, n_val=20, n_test=20, image_size=32, seed=0)  # own caches
    data.arrays("train", 16)  # fills the resize cache
    data._feature_cache[("train", "mobilenet_v2-imagenet-16")] = (np.zeros((40, 8)), np.zeros(40))
    copy = pickle.loads(pickle.dumps(data))
    assert copy._resized == {} and copy._features == {}
    assert data._resized and data._features  # the parent's caches are untouched
    x, y = copy.arrays("train", 16)
    np.testing.assert_array_equal(x, data.arrays("train", 16)[0])


def test_an_engine_callback_that_raises_fails_only_that_trial(tiny_data, tmp_path):
    import keras

    from search.hyperparameters import fixed_hyperparameters
    from search.study import Study
    from search.trial import TrialRequest, TrialRunner
    from spaces import BuildContext, get_space

    class BrokenStorage(keras.callbacks.Callback):  # runs in this process, never pickled
        def on_epoch_end(self, epoch, logs=None):
            raise ValueError("the study's storage is gone")

    study = Study("broken", engine="optuna", algorithm="tpe", space="cnn", root=tmp_path)
    runner = TrialRunner(
        get_space("cnn"),
        tiny_data,
        study,
        isolate=True,
        ctx=BuildContext(num_classes=5, max_image_size=16),
    )
    config = get_space("cnn").reference_configs()[0]
    record = runner.run(
        fixed_hyperparameters(config),
        TrialRequest(trial_id="0", number=0, epochs=3, callbacks=[BrokenStorage()]),
    )
    assert record.state == "FAIL" and "ValueError: the study's storage is gone" in record.error
    assert record.epochs_run == 1  # the child stopped at the first epoch's verdict
    assert read_trials(study.trials_path)[0].error == record.error


def test_an_isolated_runner_without_a_study_writes_nothing(tiny_data, tmp_path, monkeypatch):
    import tempfile

    from search.hyperparameters import fixed_hyperparameters
    from search.trial import TrialRequest, TrialRunner
    from spaces import BuildContext

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the child's log goes
    runner = TrialRunner(
        FlakySpace(), tiny_data, None, isolate=True, ctx=BuildContext(num_classes=5)
    )
    record = runner.run(
        fixed_hyperparameters({"mode": "ok", "units": 8}),
        TrialRequest(trial_id="0", number=0, epochs=1),
    )
    assert record.state == "COMPLETE", record.error
    assert record.engine == "baseline" and record.config == {"mode": "ok", "units": 8}
    assert list(tmp_path.iterdir()) == []  # not even the child's log


def test_a_child_serves_trials_until_its_quota_and_a_changed_environment_needs_a_new_one(
    tiny_data, tmp_path, monkeypatch
):
    from search import isolation
    from search.hyperparameters import fixed_hyperparameters
    from search.study import Study
    from search.trial import TrialRequest, TrialRunner
    from spaces import BuildContext

    monkeypatch.setattr(isolation, "TRIALS_PER_CHILD", 2)
    isolation.close_children()  # none left by another test
    study = Study("reused", engine="optuna", algorithm="tpe", space="flaky", root=tmp_path)
    runner = TrialRunner(
        FlakySpace(), tiny_data, study, isolate=True, ctx=BuildContext(num_classes=5)
    )

    def trial(number: int, mode: str = "ok"):
        record = runner.run(
            fixed_hyperparameters({"mode": mode, "units": 8}),
            TrialRequest(trial_id=str(number), number=number, epochs=1),
        )
        assert record.state == ("COMPLETE" if mode == "ok" else "FAIL"), record.error
        return isolation._idle.process if isolation._idle else None

    first = trial(0)
    assert first is not None and trial(1) is None  # served its 2 trials: ended
    assert first.wait(timeout=60) == 0  # asked to end, not killed
    second = trial(2)
    assert second is not None and second.pid != first.pid
    # Each trial logs to its own file.
    assert all((study.dir / "logs" / f"trial-{n}.log").exists() for n in range(3))
    # The idle child does not serve a changed environment; a child whose trial failed ends.
    monkeypatch.setenv("ART_TEST_VARIABLE", "changed")
    assert trial(3, mode="nan") is None
    assert second.wait(timeout=60) == 0
    assert isolation._idle is None
