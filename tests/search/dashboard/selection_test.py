"""One selection rule: ``search.results.best_trial`` picks a study's trial and
``search.results.best_model`` the best model, for the dashboard and for export alike."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from search.dashboard import render_dashboard
from search.dashboard._confusion import _get_confusion_info
from search.dashboard._leaderboard import _get_leaderboard_info, _get_summary_info
from search.dashboard._learning_curves import _get_learning_curve_info
from search.export import candidates, choose
from search.export import main as export_main
from search.results import (
    ModelResult,
    TrialRecord,
    append_trial,
    best_model,
    best_trial,
    load_results,
    rank_models,
    selected_trial,
    study_dir,
    write_json,
)
from tests.search.dashboard.fixtures import TEST_SUPPORT, make_report, write_baselines


def record(number, val, state="COMPLETE", study="s"):
    return TrialRecord(
        study=study,
        engine="optuna",
        algorithm="tpe",
        space="cnn",
        trial_id=str(number),
        number=number,
        state=state,
        config={"units": 8 * (number + 1)},
        val_accuracy=val,
        history={"accuracy": [0.5], "val_accuracy": [0.5]},
    )


def write_study(root, name, vals, best=None, test_recall=None, states=None):
    """A study of trials with validation accuracies ``vals``; with ``best``, a best.json naming
    trial ``best`` with a test report whose recall is about ``test_recall`` on every class."""
    directory = study_dir(name, root)
    write_json(
        directory / "study.json",
        {"study": name, "engine": "optuna", "algorithm": "tpe", "space": "cnn"},
    )
    for number, val in enumerate(vals):
        state = (states or {}).get(number, "COMPLETE")
        append_trial(directory / "trials.jsonl", record(number, val, state, name))
    if best is not None:
        write_json(
            directory / "best.json",
            {
                "trial_id": str(best),
                "val_accuracy": vals[best],
                "config": {},
                "test": make_report([test_recall] * 5, TEST_SUPPORT, 7),
            },
        )


@pytest.fixture(scope="module")
def disagreeing_tree(tmp_path_factory):
    """Validation and test disagree: "sound" has the best validation accuracy, "lucky" and the
    reproduced MobileNetV2 the better test scores. A third study is still running."""
    root = tmp_path_factory.mktemp("disagreeing")
    write_baselines(root)
    write_study(root, "lucky", [0.70, 0.80], best=1, test_recall=0.99)
    write_study(root, "sound", [0.97, 0.97, 0.60], best=0, test_recall=0.90)  # trials 0 and 1 tie
    # No best.json yet; trial 1 pruned at a high value, trial 4 with a NaN score, 2 and 3 tie.
    write_study(root, "running", [0.50, 0.99, 0.75, 0.75, math.nan], states={1: "PRUNED"})
    return root


def test_best_trial_is_the_highest_completed_validation_accuracy_ties_to_the_earlier():
    trials = [
        record(0, 0.5),
        record(1, 0.99, "PRUNED"),
        record(2, 0.75),
        record(3, 0.75),
        record(4, math.nan),
        record(5, None, "FAIL"),
    ]
    assert best_trial(trials).trial_id == "2"
    assert best_trial(list(reversed(trials))).trial_id == "2"  # the order given does not matter
    assert best_trial([record(0, None, "FAIL"), record(1, 0.9, "PRUNED")]) is None
    assert best_trial([]) is None
    # best.json, once written, names the selected trial; until then the rule decides.
    assert selected_trial(trials, {"trial_id": 0}).trial_id == "0"
    assert selected_trial(trials, None).trial_id == "2"


def test_models_rank_by_validation_tested_first_ties_in_the_order_given():
    def model(name, val, tested=True):
        return ModelResult(
            "study", name, val, {"accuracy": 0.5} if tested else None, model_path=None
        )

    first, tie, untested, unknown = (
        model("first", 0.9),
        model("tie", 0.9),
        model("untested", 0.99, False),
        model("?", None),
    )
    ranked = rank_models([untested, unknown, first, tie])
    assert [m.name for m in ranked] == ["first", "tie", "?", "untested"]
    assert best_model([untested, unknown, first, tie]) is first
    assert best_model([untested]) is None


def test_dashboard_and_export_choose_by_the_one_rule(disagreeing_tree, tmp_path, capsys):
    tree = load_results(disagreeing_tree)
    studies = {s.name: s for s in tree.studies}
    # The fixture really disagrees: the best by validation is not the best by test.
    best = best_model(tree.models())
    assert (
        best.name == "sound"
        and best.trial_id == best_trial(studies["sound"].trials).trial_id == "0"
    )
    assert max(m.test["accuracy"] for m in tree.models() if m.tested) > best.test["accuracy"]
    assert tree.baselines["mobilenet"]["test"]["accuracy"] > best.test["accuracy"]

    # Export picks it ...
    assert choose(candidates(str(disagreeing_tree)), None, None).name == "sound"
    assert (
        export_main(["--best", "--results", str(disagreeing_tree), "--out", str(tmp_path / "x")])
        == 2
    )
    assert "searches/sound/best_model.keras is missing" in capsys.readouterr().err

    # ... and so does the dashboard: the leaderboard's top row, the summary, the confusion panel.
    leaderboard = _get_leaderboard_info(tree)
    assert [r.model for r in leaderboard.rows] == [
        "sound",
        "baseline: MobileNetV2",
        "baseline: scratch CNN",
        "lucky",
        "running",
    ]
    assert (leaderboard.rows[0].trial_id, leaderboard.rows[0].val_accuracy) == ("0", 0.97)
    assert _get_summary_info(leaderboard).best.model == "sound"
    assert _get_confusion_info(tree)[0].title == "best searched: sound"
    # A running study shows the trial best_trial picks: the earlier of the tie, not the pruned one.
    running = leaderboard.rows[-1]
    assert running.trial_id == best_trial(studies["running"].trials).trial_id == "2"
    assert running.val_accuracy == 0.75 and running.test_accuracy is None
    titles = [c.title for c in _get_learning_curve_info(tree)]
    assert titles[:3] == ["lucky trial 1", "running trial 2", "sound trial 0"]
    assert "<b>Best model: sound</b>" in render_dashboard(tree).html


def test_export_reads_results_through_search_results_not_the_dashboard():
    import ast

    import search.export

    tree = ast.parse(Path(search.export.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert "search.results" in imported
    assert not any(name.startswith("search.dashboard") for name in imported)
