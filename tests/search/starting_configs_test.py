"""A new study queues its space's published recipes, then its starting points, then samples;
--skip-references leaves the recipes out."""

from __future__ import annotations

import pytest

from search.results import read_json, read_trials
from search.run import run_search

from .engines.conftest import FlakySpace

pytestmark = pytest.mark.slow  # trains (tiny) models

START = {"mode": "ok", "units": 12}


class StartingSpace(FlakySpace):
    def reference_configs(self):
        return [{"mode": "ok", "units": 4}]

    def starting_configs(self):
        return [START]


@pytest.mark.parametrize("engine", ["optuna", "keras-tuner"])
def test_references_then_starting_points_then_the_sampler(engine, tiny_data, tmp_path):
    out = run_search(
        StartingSpace(),
        tiny_data,
        results=tmp_path,
        engine=engine,
        algorithm="random",
        trials=2,
        epochs=1,
        progress=False,
        isolate=False,
    )
    configs = [r.config for r in read_trials(out["study_dir"] / "trials.jsonl")]
    assert configs == [{"mode": "ok", "units": 4}, START]


def test_skip_references_starts_with_the_starting_points(tiny_data, tmp_path):
    out = run_search(
        StartingSpace(),
        tiny_data,
        results=tmp_path,
        engine="optuna",
        algorithm="random",
        trials=1,
        epochs=1,
        progress=False,
        isolate=False,
        references=False,
    )
    assert [r.config for r in read_trials(out["study_dir"] / "trials.jsonl")] == [START]
    assert read_json(out["study_dir"] / "study.json")["config"]["references"] is False
