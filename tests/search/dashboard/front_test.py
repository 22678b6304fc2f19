"""The latency/size Pareto-front figure's info, on hand-made studies (no browser)."""

from __future__ import annotations

import dataclasses

import pytest

from search.dashboard import _front
from search.dashboard._page import render_dashboard
from tests.search.dashboard.info_test import baseline, study, tree, trial


def measured(number, val, latency=None, size=None, state="COMPLETE", name="s"):
    row = trial(number, state, val=val, params=1000, study=name)
    return dataclasses.replace(row, latency_ms=latency, size_mb=size, config={"filters": number})


def two_studies():
    a = study(
        "a",
        [
            measured(0, 0.70, latency=2.0, size=1.0, name="a"),
            measured(1, 0.80, latency=5.0, size=4.0, name="a"),
            measured(2, 0.75, latency=6.0, size=0.5, name="a"),  # beaten on latency only
            measured(3, 0.90, name="a"),  # not measured
            measured(4, 0.99, latency=0.1, size=0.1, state="PRUNED", name="a"),  # refused
        ],
    )
    b = study("b", [measured(0, 0.85, latency=3.0, size=8.0, name="b")], engine="optuna")
    baselines = {
        "mobilenet": baseline("mobilenet", [0.9] * 5, [0.9] * 5, latency_ms=10.0, size_mb=9.0),
        "cnn": baseline("cnn", [0.8] * 5, [0.8] * 5),  # no measurement: left out
    }
    return tree(baselines, [a, b])


def test_each_study_has_its_front_and_the_page_one_across_studies_and_baselines():
    info = _front._get_front_info(two_studies(), "latency_ms")
    assert info.unmeasured == 1
    assert sorted(p.name for p in info.points) == [
        "a trial 0",
        "a trial 1",
        "a trial 2",
        "b trial 0",
        "baseline: MobileNetV2",
    ]
    fronts = {label: [p.name for p in pts] for label, pts in info.fronts.items()}
    assert fronts == {
        "a (keras-tuner/random)": ["a trial 0", "a trial 1"],
        "b (optuna/random)": ["b trial 0"],
    }
    assert [p.name for p in info.overall] == ["a trial 0", "b trial 0", "baseline: MobileNetV2"]
    assert info.overall[0].config == "filters=0"  # what the hover shows


def test_against_size_another_front():
    info = _front._get_front_info(two_studies(), "size_mb")
    assert [p.name for p in info.fronts["a (keras-tuner/random)"]] == [
        "a trial 2",
        "a trial 1",
    ]
    assert [p.cost for p in info.overall] == [0.5, 4.0, 8.0, 9.0]
    with pytest.raises(ValueError, match="cost must be one of latency_ms, size_mb"):
        _front._get_front_info(two_studies(), "params")


def test_the_section_shows_only_where_something_was_measured():
    dashboard = render_dashboard(two_studies())
    assert {"front-latency_ms", "front-size_mb"} <= set(dashboard.figure_names)
    assert "Accuracy against latency and size where it ships" in dashboard.html
    unmeasured = tree({}, [study("c", [measured(0, 0.7)])])
    assert not any(n.startswith("front-") for n in render_dashboard(unmeasured).figure_names)
