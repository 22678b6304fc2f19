"""The dashboard's multi-fidelity section (search.dashboard._rungs): points per rung reached,
the best top-rung score against wall time, and the rank-correlation table."""

from search.dashboard import render_dashboard
from search.dashboard._rungs import _get_rungs_info
from search.results import TrialRecord, append_trial, load_results, study_dir, write_json
from tests.search.dashboard.fixtures import write_results_tree


def _row(number, scores, minute, state):
    rungs = [
        {
            "rung": k,
            "val_accuracy": s,
            "image_size": 64 + 32 * k,
            "fraction": 1.0,
            "epochs": k + 1,
            "continued": k > 0,
            "seconds": 10.0,
        }
        for k, s in enumerate(scores)
    ]
    return TrialRecord(
        study="climb",
        engine="optuna",
        algorithm="evolution",
        space="cnn",
        trial_id=str(number),
        number=number,
        state=state,
        config={"n": number},
        val_accuracy=scores[-1],
        rungs=rungs,
        started_at=f"2026-11-29T10:{minute:02d}:00+00:00",
        finished_at=f"2026-11-29T10:{minute + 1:02d}:00+00:00",
    )


def _write_study(root):
    folder = study_dir("climb", root)
    folder.mkdir(parents=True)
    write_json(
        folder / "study.json",
        {"study": "climb", "engine": "optuna", "algorithm": "evolution", "space": "cnn"},
    )
    rows = [
        _row(0, [0.5, 0.6, 0.7], 0, "COMPLETE"),
        _row(1, [0.3], 2, "PRUNED"),
        _row(2, [0.6, 0.65], 3, "PRUNED"),
        _row(3, [0.7, 0.75, 0.8], 5, "COMPLETE"),
        _row(4, [0.4, 0.5, 0.6], 9, "COMPLETE"),
    ]
    for row in rows:
        append_trial(folder / "trials.jsonl", row)


def test_rungs_info_marks_each_trial_at_its_highest_rung(tmp_path):
    _write_study(tmp_path)
    info = _get_rungs_info(load_results(tmp_path))
    (series,) = info.series
    assert [(p.number, p.rung, p.top, round(p.minutes)) for p in series.points] == [
        (0, 2, True, 1),
        (1, 0, False, 3),
        (2, 1, False, 4),
        (3, 2, True, 6),
        (4, 2, True, 10),
    ]
    # The staircase steps only at a better top-rung score (trial 4 is worse than trial 3).
    assert series.best_values == [0.7, 0.8] and series.best_minutes == [1.0, 6.0]
    assert series.report["reached"] == [5, 4, 3]


def test_the_section_appears_only_for_studies_with_rungs(tmp_path):
    plain = write_results_tree(tmp_path / "plain")
    assert "rungs" not in render_dashboard(load_results(plain)).figure_names
    _write_study(tmp_path / "plain")
    page = render_dashboard(load_results(tmp_path / "plain"))
    assert "rungs" in page.figure_names
    assert "How the search spent its time" in page.html
    assert "only 3 trial(s) reached the top rung" in page.html
