"""The numbers behind every figure, on hand-made inputs where the answer is known."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from search.dashboard import (
    _confusion,
    _history,
    _leaderboard,
    _learning_curves,
    _optuna_study,
    _param_importance,
    _per_class,
    _style,
    _tradeoff,
)
from search.results import (
    REFERENCE_MODELS,
    ResultsTree,
    StudyResults,
    TrialRecord,
    load_results,
    pareto_front,
)
from tests.search.dashboard.fixtures import CLASSES, OPTUNA_STUDY, make_report


def trial(
    number, state="COMPLETE", val=None, params=None, wall=0.0, config=None, history=None, study="s"
):
    return TrialRecord(
        study=study,
        engine="keras-tuner",
        algorithm="random",
        space="cnn",
        trial_id=str(number),
        number=number,
        state=state,
        config=config if config is not None else {"units": 32 * (number + 1)},
        val_accuracy=val,
        params=params,
        wall_time_s=wall,
        history=history or {},
    )


def report(accuracy_recalls, seed=0):
    return make_report(accuracy_recalls, [50] * len(CLASSES), seed)


def baseline(name, test_recalls, val_recalls, params=1000, wall=100.0, **extra):
    return {
        "name": name,
        "test": report(test_recalls),
        "val": report(val_recalls, 1),
        "params": {"total": params, "trainable": params},
        "wall_time_s": wall,
        **extra,
    }


# A results folder that is never read: the hand-made trees below live in memory only.
NOWHERE = Path("/nonexistent/results")


def study(name, trials, best=None, engine="keras-tuner", tmp_path=None, meta=None):
    meta = meta or {"engine": engine, "algorithm": "random", "space": "cnn", "study": name}
    return StudyResults(name, (tmp_path or NOWHERE / "searches") / name, meta, trials, best)


def tree(baselines=None, studies=()):
    return ResultsTree(root=NOWHERE, baselines=baselines or {}, studies=list(studies))


# ------------------------------------------------------------------------------ Pareto front


def test_pareto_front_on_a_hand_made_set():
    points = [(1, 0.5), (2, 0.7), (2, 0.6), (3, 0.65), (4, 0.9), (5, 0.9), (0.5, 0.4), (6, 0.95)]
    # (2, 0.6) and (3, 0.65) are beaten by (2, 0.7); (5, 0.9) by (4, 0.9) at lower cost.
    assert pareto_front(points) == [6, 0, 1, 4, 7]


def test_pareto_front_keeps_one_of_exact_duplicates_and_handles_empty():
    assert pareto_front([(1, 0.5), (1, 0.5)]) == [0]
    assert pareto_front([]) == []


def test_tradeoff_uses_completed_trials_and_baselines_and_counts_unusable_ones():
    s = study(
        "s",
        [
            trial(0, val=0.7, params=100, wall=10),
            trial(1, val=0.8, params=300, wall=5),
            trial(2, val=0.75, params=None, wall=7),
            trial(3, "FAIL", params=50, wall=1),
            trial(4, "PRUNED", val=0.99, params=10, wall=1),
        ],
    )
    b = {"cnn": baseline("cnn", [0.9] * 5, [0.9] * 5, params=1000, wall=50)}
    by_params = _tradeoff._get_tradeoff_info(tree(b, [s]), "params")
    assert sorted(p.cost for p in by_params.points) == [100, 300, 1000]
    assert by_params.skipped == 1  # trial 2 has no parameter count
    assert "validation accuracy" in by_params.y_title
    assert [p.cost for p in by_params.front] == [
        100,
        300,
        1000,
    ]  # more params, more accuracy each time
    by_time = _tradeoff._get_tradeoff_info(tree(b, [s]), "time")
    # trial 1 (5 s, 0.8) is faster and better than trials 0 (10 s, 0.7) and 2 (7 s, 0.75).
    assert [p.name for p in by_time.front] == ["s trial 1", "baseline: scratch CNN"]
    with pytest.raises(ValueError):
        _tradeoff._get_tradeoff_info(tree(), "memory")


# ------------------------------------------------------------------------------ leaderboard


def test_reference_marks_are_the_published_claims_even_without_baselines():
    marks = _style._get_reference_marks(tree())
    assert [(m.value, m.kind) for m in marks] == [(0.85, "published"), (0.94, "published")]
    # The one published-claims table, titles included.
    assert [(m.baseline, m.value) for m in marks] == [
        (n, r.published_accuracy) for n, r in REFERENCE_MODELS.items()
    ]
    assert [m.label for m in marks] == ["published scratch CNN 85%", "published MobileNetV2 94%"]


def test_reference_marks_include_reproduced_baselines_and_metrics_json_wins():
    b = {
        "cnn": baseline("cnn", [0.8] * 5, [0.9] * 5, published_accuracy=0.86),
        "mobilenet": baseline("mobilenet", [0.96] * 5, [0.9] * 5),
    }
    marks = _style._get_reference_marks(tree(b))
    published = {m.baseline: m.value for m in marks if m.kind == "published"}
    reproduced = {m.baseline: m.value for m in marks if m.kind == "reproduced"}
    assert published == {"cnn": 0.86, "mobilenet": 0.94}
    assert reproduced == {
        "cnn": b["cnn"]["test"]["accuracy"],
        "mobilenet": b["mobilenet"]["test"]["accuracy"],
    }


def test_leaderboard_orders_tested_models_by_validation_then_untested_ones():
    b = {
        "cnn": baseline("cnn", [0.85] * 5, [0.8] * 5),
        "mobilenet": baseline("mobilenet", [0.97] * 5, [0.9] * 5),
    }
    tested = study(
        "tested",
        [trial(0, val=0.93, params=5000, wall=12.0)],
        best={
            "trial_id": "0",
            "val_accuracy": 0.93,
            "test": report([0.92] * 5, 3),
            "params": 5000,
            "wall_time_s": 12.0,
        },
    )
    running_good = study("running_good", [trial(0, val=0.95, params=7), trial(1, "FAIL")])
    running_bad = study("running_bad", [trial(0, val=0.6)])
    only_failed = study("only_failed", [trial(0, "FAIL"), trial(1, "FAIL")])
    info = _leaderboard._get_leaderboard_info(
        tree(b, [running_bad, tested, only_failed, running_good])
    )
    # "tested" leads with the best validation accuracy although MobileNetV2 scored higher on
    # test: selection never looks at the test split.
    assert [r.model for r in info.rows] == [
        "tested",
        "baseline: MobileNetV2",
        "baseline: scratch CNN",
        "running_good",
        "running_bad",
    ]
    accuracies = [r.val_accuracy for r in info.rows[:3]]
    assert accuracies == sorted(accuracies, reverse=True)
    assert info.rows[1].test_accuracy > info.rows[0].test_accuracy
    row = info.rows[0]
    assert (row.params, row.wall_time_s, row.val_accuracy, row.trial_id) == (5000, 12.0, 0.93, "0")
    assert row.balanced_accuracy == pytest.approx(tested.best["test"]["balanced_accuracy"])
    untested = info.rows[3]
    assert untested.test_accuracy is None and untested.val_accuracy == 0.95 and untested.params == 7
    assert (untested.trials_complete, untested.trials_total) == (1, 2)


def test_every_score_carries_its_standard_error():
    b = {"cnn": baseline("cnn", [0.85] * 5, [0.8] * 5)}
    with_n = study(
        "with_n",
        [trial(0, val=0.9)],
        best={"trial_id": "0", "val_accuracy": 0.9, "val_n": 400, "test": report([0.9] * 5, 2)},
    )
    from_meta = study(
        "from_meta",
        [trial(0, val=0.8)],
        meta={
            "engine": "optuna",
            "algorithm": "tpe",
            "space": "cnn",
            "data": {"counts": {"val": 100}},
        },
    )
    rows = {
        r.model: r for r in _leaderboard._get_leaderboard_info(tree(b, [with_n, from_meta])).rows
    }
    tested = rows["with_n"]
    assert tested.val_se == pytest.approx(math.sqrt(0.9 * 0.1 / 400))
    test = with_n.best["test"]
    assert tested.test_se == pytest.approx(
        math.sqrt(test["accuracy"] * (1 - test["accuracy"]) / test["n"])
    )
    assert rows["from_meta"].val_se == pytest.approx(0.04) and rows["from_meta"].test_se is None
    base = rows["baseline: scratch CNN"]
    assert base.val_se == pytest.approx(
        math.sqrt(base.val_accuracy * (1 - base.val_accuracy) / 250)
    )
    table = _leaderboard._leaderboard_table(_leaderboard._get_leaderboard_info(tree(b, [with_n])))
    assert f"{tested.val_accuracy * 100:.1f}% ± {tested.val_se * 100:.1f}" in table


def test_summary_names_the_best_model_and_its_margin_over_each_reference():
    b = {"cnn": baseline("cnn", [0.85] * 5, [0.8] * 5)}
    s = study("s", [trial(0, val=0.95)], best={"trial_id": "0", "test": report([0.95] * 5, 4)})
    summary = _leaderboard._get_summary_info(_leaderboard._get_leaderboard_info(tree(b, [s])))
    assert summary.best.model == "s"
    deltas = dict(summary.deltas)
    assert deltas["published scratch CNN 85%"] == pytest.approx(s.best["test"]["accuracy"] - 0.85)
    assert deltas["published MobileNetV2 94%"] == pytest.approx(s.best["test"]["accuracy"] - 0.94)
    assert _leaderboard._get_summary_info(_leaderboard._get_leaderboard_info(tree())).best is None


# ------------------------------------------------------------------------------ history


def test_history_is_the_running_best_of_completed_trials_only():
    values = [0.5, 0.7, None, 0.6, 0.9, None, 0.8]
    states = ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"]
    s = study("s", [trial(i, st, v) for i, (st, v) in enumerate(zip(states, values))])
    series = _history._get_history_info(tree(studies=[s])).series[0]
    assert series.numbers == [0, 1, 3, 4, 6]
    assert series.best_so_far == [0.5, 0.7, 0.7, 0.9, 0.9]
    assert all(a <= b for a, b in zip(series.best_so_far, series.best_so_far[1:]))
    assert (series.failed, series.pruned) == (1, 1)


def test_history_of_a_study_with_only_failed_trials_is_empty():
    s = study("s", [trial(0, "FAIL"), trial(1, "FAIL")])
    series = _history._get_history_info(tree(studies=[s])).series[0]
    assert series.numbers == [] and series.best_so_far == [] and series.failed == 2


# ------------------------------------------------------------------------------ test reports


def test_confusion_panels_put_the_best_searched_model_first_then_baselines():
    b = {"cnn": baseline("cnn", [0.6, 0.6, 0.9, 0.9, 0.9], [0.8] * 5)}
    weak = study("weak", [trial(0, val=0.8)], best={"trial_id": "0", "test": report([0.7] * 5, 5)})
    strong = study(
        "strong", [trial(0, val=0.9)], best={"trial_id": "0", "test": report([0.95] * 5, 6)}
    )
    # Luckier on test, worse on validation: not the best, since validation selects.
    lucky = study(
        "lucky", [trial(0, val=0.85)], best={"trial_id": "0", "test": report([0.99] * 5, 7)}
    )
    panels = _confusion._get_confusion_info(tree(b, [weak, lucky, strong]))
    assert [p.title for p in panels] == ["best searched: strong", "baseline: scratch CNN"]
    cnn = panels[1]
    assert cnn.classes == CLASSES
    for row in cnn.row_fraction:
        assert sum(row) == pytest.approx(1.0)
    recalls = [cnn.row_fraction[i][i] for i in range(len(CLASSES))]
    assert recalls == pytest.approx([b["cnn"]["test"]["per_class"][c]["recall"] for c in CLASSES])


def test_per_class_recall_shows_the_drawings_engraving_weakness():
    b = {"cnn": baseline("cnn", [0.55, 0.6, 0.95, 0.95, 0.95], [0.8] * 5)}
    info = _per_class._get_per_class_info(tree(b))
    assert info.classes == CLASSES
    ((title, recalls),) = info.models
    assert title == "baseline: scratch CNN"
    assert recalls == [b["cnn"]["test"]["per_class"][c]["recall"] for c in CLASSES]
    assert max(recalls[:2]) < min(recalls[2:])


def test_learning_curves_use_the_best_trial_and_mark_the_fine_tuning_phase():
    history = {"accuracy": [0.5, 0.7], "val_accuracy": [0.45, 0.66]}
    s = study(
        "s",
        [
            trial(0, val=0.6, history={"accuracy": [0.1], "val_accuracy": [0.6]}),
            trial(1, val=0.66, history=history),
        ],
        best={"trial_id": "1"},
    )
    m = baseline("mobilenet", [0.9] * 5, [0.9] * 5)
    m["history"] = {
        "accuracy": [0.5, 0.6, 0.7, 0.8],
        "val_accuracy": [0.5, 0.6, 0.7, 0.75],
        "phase": ["frozen", "frozen", "fine_tune", "fine_tune"],
    }
    curves = _learning_curves._get_learning_curve_info(tree({"mobilenet": m}, [s]))
    assert [c.title for c in curves] == ["s trial 1", "baseline: MobileNetV2"]
    assert curves[0].val_accuracy == [0.45, 0.66]
    assert curves[0].phase_change_epoch is None and curves[1].phase_change_epoch == 3


@pytest.mark.parametrize("count", [1, 4, 5, 24])
def test_learning_curves_plot_any_number_of_studies(count):
    # 22 committed studies (8 rows of 3) once made plotly refuse the figure's row spacing.
    curves = [
        _learning_curves.LearningCurve(f"s{i} trial 0", [0.5, 0.6], [0.4, 0.5], None)
        for i in range(count)
    ]
    fig = _learning_curves.plot_learning_curves(curves, lambda name: "#123456")
    assert len(fig.data) == 2 * count


# ------------------------------------------------------------------------------ parameter figures


def test_distributions_inferred_from_a_keras_tuner_table():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    lrs, units, dropouts = (
        [1e-4, 3e-4, 1e-3, 2e-3, 1e-2],
        [32, 64, 128, 256, 512],
        [0.001, 0.1, 0.25, 0.3, 0.5],
    )
    configs = [
        {
            "lr": lr,
            "units": u,
            "dropout": d,
            "act": "relu",
            "blocks": 2 + i % 4,
            "tuner/epochs": 2,
            "skip": None,
        }
        for i, (lr, u, d) in enumerate(zip(lrs, units, dropouts))
    ]
    configs[-1].update(act="gelu", skip=True)
    d = _optuna_study._infer_distributions(configs)
    assert set(d) == {
        "lr",
        "units",
        "dropout",
        "act",
        "blocks",
        "skip",
    }  # Keras Tuner bookkeeping left out
    assert d["lr"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert d["units"] == IntDistribution(32, 512, log=True)
    # Spans more than a decade, but is spread linearly: a log axis would squash it.
    assert d["dropout"] == FloatDistribution(0.001, 0.5, log=False)
    assert d["blocks"] == IntDistribution(2, 5, log=False)
    assert d["act"] == CategoricalDistribution(["relu", "gelu"])
    assert d["skip"] == CategoricalDistribution([True])


def test_keras_tuner_study_is_rebuilt_and_ranked(results_tree):
    kt = next(s for s in load_results(results_tree).studies if s.engine == "keras-tuner")
    info = _param_importance._get_param_study_info(kt)
    assert info.source == "rebuilt from trials.jsonl" and info.message is None
    assert (info.n_complete, info.n_total) == (11, 12)  # one trial failed
    assert set(info.importances) == {
        "conv_blocks",
        "filters",
        "dropout",
        "learning_rate",
        "optimizer",
    }
    assert sum(info.importances.values()) == pytest.approx(1.0)
    values = list(info.importances.values())
    assert values == sorted(values, reverse=True)
    best = max(t.val_accuracy for t in kt.trials if t.state == "COMPLETE")
    assert info.optuna_study.best_value == best


def test_optuna_study_is_read_from_its_own_storage(results_tree):
    opt = next(s for s in load_results(results_tree).studies if s.name == OPTUNA_STUDY)
    # study.json holds the engine's relative URL, which does not resolve from the test's cwd;
    # the database beside trials.jsonl is found anyway.
    assert not (opt.meta["storage"].startswith("sqlite:////"))
    info = _param_importance._get_param_study_info(opt)
    assert info.source == "optuna storage" and info.note is None and info.message is None
    assert info.n_total == 15 and info.n_complete == 13  # one failed, one pruned
    states = sorted(t.state.name for t in info.optuna_study.trials)
    assert states.count("PRUNED") == 1 and states.count("FAIL") == 1


def test_optuna_study_as_search_run_records_it_uses_the_default_database(results_tree):
    """search.run keeps --storage (None by default) under config and no optuna_study_name."""
    opt = next(s for s in load_results(results_tree).studies if s.name == OPTUNA_STUDY)
    meta = {k: v for k, v in opt.meta.items() if k not in ("storage", "optuna_study_name")}
    meta["config"] = {"storage": None}
    as_recorded = study(opt.name, opt.trials, opt.best, meta=meta)
    as_recorded.directory = opt.directory
    info = _param_importance._get_param_study_info(as_recorded)
    assert info.source == "optuna storage" and info.note is None
    assert info.n_total == 15


def test_optuna_study_without_its_database_falls_back_to_the_table(results_tree, tmp_path):
    opt = next(s for s in load_results(results_tree).studies if s.name == OPTUNA_STUDY)
    moved = study(
        opt.name,
        opt.trials,
        opt.best,
        tmp_path=tmp_path,
        meta=dict(opt.meta, storage="sqlite:///nowhere/optuna.db"),
    )
    info = _param_importance._get_param_study_info(moved)
    assert info.source == "rebuilt from trials.jsonl"
    assert "not found" in info.note
    assert info.n_complete == 13 and info.importances
    assert not (tmp_path / "nowhere").exists()  # loading never creates an empty database


def test_study_with_only_failed_trials_explains_why_there_are_no_figures():
    info = _param_importance._get_param_study_info(study("s", [trial(0, "FAIL"), trial(1, "FAIL")]))
    assert info.message.startswith("only 0 completed trial(s) of 2")
    assert info.importances == {}


# ------------------------------------------------------------------------------ loading


def test_loading_an_empty_results_folder_says_what_is_missing(tmp_path):
    loaded = load_results(tmp_path)
    assert loaded.baselines == {} and loaded.studies == []
    text = " ".join(loaded.notes)
    assert "No reproduced baseline for cnn, mobilenet" in text
    assert "No studies yet" in text


def test_loading_notes_unknown_studies_broken_files_and_missing_best(results_tree, tmp_path):
    import shutil

    root = tmp_path / "results"
    shutil.copytree(results_tree, root)
    (root / "baselines" / "cnn" / "metrics.json").write_text("{not json")
    (root / "searches" / "kt_random_cnn" / "best.json").unlink()
    loaded = load_results(root, studies=["kt_random_cnn", "no_such_study"])
    assert set(loaded.baselines) == {"mobilenet"}
    assert [s.name for s in loaded.studies] == ["kt_random_cnn"]
    assert loaded.studies[0].best is None
    text = " ".join(loaded.notes)
    assert (
        "Could not read" in text and "'no_such_study' not found" in text and "no best.json" in text
    )
    assert math.isfinite(_leaderboard._get_leaderboard_info(loaded).rows[-1].val_accuracy)


def test_ensembles_are_shown_beside_the_best_single_model():
    best = {"trial_id": "0", "val_accuracy": 0.9, "test": report([0.9] * 5, 2)}
    ensemble = {
        "members": {"0": 2, "3": 1},
        "size": 3,
        "candidates": 5,
        "val_accuracy": 0.93,
        "val_n": 300,
        "test": report([0.92] * 5, 5),
    }
    with_ensemble = study("e", [trial(0, val=0.9)], best=best)
    with_ensemble.ensemble = ensemble
    rows = _leaderboard._get_ensemble_info(
        tree(None, [with_ensemble, study("plain", [trial(0, val=0.5)])])
    )
    assert len(rows) == 1 and (rows[0].trials, rows[0].size, rows[0].candidates) == (2, 3, 5)
    assert rows[0].val_se == pytest.approx(math.sqrt(0.93 * 0.07 / 300))
    assert rows[0].test_accuracy == ensemble["test"]["accuracy"]
    assert (rows[0].single_val_accuracy, rows[0].single_test_accuracy) == (
        0.9,
        best["test"]["accuracy"],
    )
    table = _leaderboard._ensemble_table(rows)
    assert "2 (3) of 5" in table and "optimistic" in table


def test_a_committed_optuna_study_without_its_default_database_gets_no_note(results_tree, tmp_path):
    # optuna.db is git-ignored: the committed studies have none, and no storage recorded.
    opt = next(s for s in load_results(results_tree).studies if s.name == OPTUNA_STUDY)
    meta = {k: v for k, v in opt.meta.items() if k not in ("storage", "optuna_study_name")}
    meta["config"] = {"storage": None}
    committed = study(opt.name, opt.trials, opt.best, tmp_path=tmp_path, meta=meta)
    info = _param_importance._get_param_study_info(committed)
    assert info.source == "rebuilt from trials.jsonl"
    assert info.note is None  # was "Optuna storage None not found"
