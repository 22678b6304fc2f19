"""The end of a search: its best trial's one test evaluation, then its ensemble's.

Validation selects (``search.results``); the test split only reports, once per best model.
:func:`finalize` writes ``best.json`` and ``best_model.keras`` (with the sidecar that lets
``search.evaluate``, ``search.predict`` and ``search.export`` use it) in the study's folder,
then rebuilds the ensemble of the study's trials (``search.ensemble.build_ensemble``,
``ensemble.json``).
"""

from __future__ import annotations

from typing import Any

from search import results as results_mod
from search._process import utc_now
from search.ensemble import build_ensemble


def finalize(study, runner) -> dict[str, Any] | None:
    """Score ``study``'s best trial on the test split (:func:`score_best_trial`) and rebuild
    its ensemble; returns best.json's content, None when no trial completed.

    ``study`` is a ``search.study.Study``; ``runner`` the ``search.trial.TrialRunner`` that
    ran it (its data, and its ``retrain`` when the checkpoint is gone)."""
    summary = score_best_trial(study, runner)
    if summary is not None:
        _refresh_reports(study, summary)
        build_ensemble(study, runner.data)
    return summary


def _refresh_reports(study, summary: dict[str, Any]) -> None:
    """Keep best.json's ``rungs`` (trials per fidelity rung, each rung's rank correlation with
    the top: ``search.results.rung_report``) and ``front`` (the Pareto fronts of validation
    accuracy against latency, size and parameters: ``search.results.front_summary``) up to
    date with every trial so far; they read no test image, so they are refreshed at every
    finalize, not only when the best trial changes."""
    recorded = results_mod.read_json(study.study_json) if study.study_json.exists() else {}
    records = study.records()
    reports = {
        "rungs": results_mod.rung_report(records, top=results_mod.recorded_top_rung(recorded)),
        "front": results_mod.front_summary(records) or None,
    }
    fresh = {k: v for k, v in reports.items() if v is not None and summary.get(k) != v}
    if fresh:
        summary.update(fresh)
        results_mod.write_json(study.best_json, summary)


def score_best_trial(study, runner) -> dict[str, Any] | None:
    """Evaluate the best trial's model on the test split; write best.json and the model.

    The checkpoint saved when the trial ran is restored; if it is missing or belongs to
    another trial (a kill between the row and the checkpoint), the trial is retrained from
    its config. Nothing is re-evaluated while the best trial is unchanged, so the test split
    is touched once per best model, never for selection."""
    best = study.best_record()
    if best is None:
        return None
    if study.best_json.exists() and study.best_model_path.exists():
        previous = results_mod.read_json(study.best_json)
        if previous.get("trial_id") == best.trial_id:
            return previous

    import keras

    from search.evaluate import evaluate_model
    from search.model_io import save_model

    checkpoint = study.checkpoint_of(best.trial_id)
    retrained = checkpoint is None
    model = (
        runner.retrain(best) if retrained else keras.saving.load_model(checkpoint, compile=False)
    )
    size = int(model.input_shape[1])
    report = evaluate_model(model, *runner.data.arrays("test", size), runner.data.class_names)
    # The sidecar (class names, input size, split manifest) lets search.evaluate,
    # search.predict and search.export use the model and refuse leaky test folders.
    manifest = getattr(runner.data, "manifest", None)
    save_model(
        model,
        study.best_model_path,
        runner.data.class_names,
        size,
        getattr(manifest, "path", None),
        study=study.name,
        trial_id=best.trial_id,
    )
    val_n = len(runner.data.arrays("val", size)[1])
    summary = _summary(best, model, report, size, val_n, retrained)
    results_mod.write_json(study.best_json, summary)
    del model
    keras.backend.clear_session()
    return summary


def _summary(best, model, report: dict[str, Any], size: int, val_n: int, retrained: bool):
    """best.json's content: the best trial's row, its validation and test scores."""
    # A row re-derived from an engine's records may lack the parameter count: the model has it.
    params = best.params if best.params is not None else int(model.count_params())
    return {
        "trial_id": best.trial_id,
        "config": best.config,
        "val_accuracy": best.val_accuracy,
        "val_n": val_n,
        "val_standard_error": results_mod.standard_error(best.val_accuracy, val_n),
        "test_standard_error": results_mod.standard_error(report["accuracy"], report["n"]),
        "test": report,
        "params": params,
        "wall_time_s": best.wall_time_s,
        "number": best.number,
        "image_size": size,
        "retrained": retrained,
        "cv": best.cv,
        # What it costs where it ships (search.latency): None where it was not measured.
        "latency_ms": best.latency_ms,
        "size_mb": best.size_mb,
        "latency": best.latency,
        "evaluated_at": utc_now(),
    }
