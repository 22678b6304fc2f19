"""The progress bar shows the running trial's epochs, not only finished trials."""

from __future__ import annotations

from search.engines.base import Progress
from search.results import TrialRecord
from search.study import Study


def test_the_bar_shows_the_running_trials_last_epoch_until_the_trial_ends(tmp_path):
    study = Study("bar", engine="optuna", algorithm="tpe", space="cnn", root=tmp_path)
    bar = Progress(3, 0, study, enabled=False)
    reporter = bar.epoch_reporter(2, epochs=24)
    reporter.set_model(None)
    reporter.on_epoch_end(4, {"val_accuracy": 0.8125, "loss": 0.5})
    assert bar.bar.postfix is not None and "#2 epoch 5/24 val 0.812" in bar.bar.postfix
    reporter.on_epoch_end(25, {})  # a fine-tuning step past the head's epochs: no total
    assert "#2 epoch 26" in bar.bar.postfix and "/24" not in bar.bar.postfix
    bar.update(
        TrialRecord(
            study="bar",
            engine="optuna",
            algorithm="tpe",
            space="cnn",
            trial_id="2",
            number=2,
            state="COMPLETE",
            config={},
            val_accuracy=0.8,
            wall_time_s=60.0,
        )
    )
    assert "now" not in bar.bar.postfix and "#2 COMPLETE" in bar.bar.postfix
    bar.close()


def test_the_bar_shows_the_rung_and_what_it_was_predicted_to_take(tmp_path):
    study = Study("bar", engine="optuna", algorithm="evolution", space="cnn", root=tmp_path)
    bar = Progress(3, 0, study, enabled=False)
    reporter = bar.epoch_reporter(7, epochs=24)
    reporter.on_epoch_end(9, {"val_accuracy": 0.5, "rung_now": 1.0, "rung_predicted_s": 95.2})
    assert "#7 rung 1 (~1:35) epoch 10/24 val 0.500" in bar.bar.postfix
    bar.close()
