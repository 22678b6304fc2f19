"""search.results.rung_report: trials per rung, rank correlation with the top rung, warnings."""

from types import SimpleNamespace

import pytest

from search.results import rung_report, spearman


def _row(*scores):
    return SimpleNamespace(rungs=[{"rung": k, "val_accuracy": s} for k, s in enumerate(scores)])


def test_no_rungs_no_report():
    assert rung_report([SimpleNamespace(rungs=None), SimpleNamespace()]) is None


def test_spearman_is_rank_based_and_undefined_when_it_must_be():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 1000]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2], [1, 2]) is None
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def test_a_rung_that_ranks_like_the_top_is_trusted_and_one_that_does_not_is_named():
    rows = [_row(0.3 + i / 100, 0.9 - i / 100, 0.5 + i / 100) for i in range(6)]
    rows += [_row(0.2), _row(0.25, 0.3)]  # stopped at rungs 0 and 1
    report = rung_report(rows)
    assert report["reached"] == [8, 7, 6]
    assert [(c["rung"], c["n"]) for c in report["correlations"]] == [(0, 6), (1, 6)]
    assert report["correlations"][0]["spearman"] == pytest.approx(1.0)
    assert report["correlations"][1]["spearman"] == pytest.approx(-1.0)
    assert len(report["warnings"]) == 1 and report["warnings"][0].startswith(
        "rung 1 does not predict the top rung (Spearman -1.00 over 6 trials)"
    )


def test_too_few_trials_at_the_top_is_said():
    report = rung_report([_row(0.5, 0.6), _row(0.4, 0.7), _row(0.3)])
    assert report["correlations"] == [{"rung": 0, "n": 2, "spearman": None}]
    assert "only 2 trial(s) reached the top rung" in report["warnings"][0]


def test_the_ladders_top_is_the_top_even_before_a_trial_reached_it():
    report = rung_report([_row(0.5, 0.6), _row(0.4, 0.7), _row(0.3)], top=2)
    assert report["reached"] == [3, 2, 0]
    assert [c["n"] for c in report["correlations"]] == [0, 0]


def test_the_search_summary_prints_the_rungs(capsys):
    from search.run import _print_rungs

    rows = [_row(0.3 + i / 100, 0.5 + i / 100) for i in range(5)] + [_row(0.2)]
    _print_rungs(rung_report(rows))
    out, err = capsys.readouterr()
    assert (
        out.strip()
        == "rungs: 6 / 5 trials reached each rung; Spearman with the top: rung 0 1.00 (n=5)"
    )
    assert err == ""
    _print_rungs(rung_report(rows[:2]))
    assert "warning: rung 0: only 2 trial(s) reached the top rung" in capsys.readouterr().err
