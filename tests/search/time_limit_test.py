"""--max-time bounds the whole search: a trial still training when it runs out stops, keeps its
best epoch so far and says so in its row."""

from __future__ import annotations

import time

import pytest

from search.hyperparameters import fixed_hyperparameters
from search.results import read_trials
from search.run import run_search
from search.study import Study
from search.trial import TrialRequest, TrialRunner
from spaces import BuildContext

from .engines.conftest import FlakySpace

pytestmark = pytest.mark.slow  # trains models


def test_a_trial_running_when_the_time_is_up_stops_and_keeps_its_best_epoch(tiny_data, tmp_path):
    study = Study("clock", engine="optuna", algorithm="tpe", space="flaky", root=tmp_path)
    study.open(seed=0, settings={}, data=tiny_data.describe(), reference_configs=[])
    runner = TrialRunner(
        FlakySpace(),
        tiny_data,
        study,
        ctx=BuildContext(num_classes=5),
        seed=0,
        stop_at=time.time() - 1,
    )  # already over: stops after the first batch
    record = runner.run(
        fixed_hyperparameters({"mode": "ok", "units": 8}),
        TrialRequest(trial_id="0", number=0, epochs=5),
    )
    assert record.state == "COMPLETE", record.error
    assert record.epochs_run == 1
    assert record.stopped is not None and "epoch 1 of 5" in record.stopped
    assert record.val_accuracy is not None
    assert read_trials(study.trials_path)[0].stopped == record.stopped

    unlimited = TrialRunner(FlakySpace(), tiny_data, study, ctx=BuildContext(num_classes=5), seed=0)
    record = unlimited.run(
        fixed_hyperparameters({"mode": "ok", "units": 8}),
        TrialRequest(trial_id="1", number=1, epochs=2),
    )
    assert record.epochs_run == 2 and record.stopped is None


def test_max_time_reaches_the_trials_of_a_search(tiny_data, tmp_path, monkeypatch):
    seen = []
    original = TrialRunner.__init__

    def spying(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append(self.stop_at)

    monkeypatch.setattr(TrialRunner, "__init__", spying)
    before = time.time()
    run_search(
        FlakySpace(),
        tiny_data,
        results=tmp_path,
        engine="optuna",
        algorithm="random",
        trials=1,
        epochs=1,
        max_time=600,
        progress=False,
        isolate=False,
    )
    assert len(seen) == 1 and before + 600 <= seen[0] <= time.time() + 600
