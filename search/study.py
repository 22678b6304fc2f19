"""A study: one folder ``results/searches/<study>/`` and the common results table in it.

``Study`` is what engines and the trial runner write through: ``study.json`` (what the search
is, created once and checked on resume), the table (``trials.jsonl`` + its ``trials.csv``
view), per-trial memory (``resources.jsonl``), the best model so far (``checkpoints/``) and, at
the end, the single test evaluation of the best trial (``best.json``, ``best_model.keras``).
The table's format and the rule that picks the best trial live in ``search.results``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from search import results as results_mod
from search._process import utc_now
from search.results import TrialRecord


class SearchError(ValueError):
    """Bad search input (unknown engine/algorithm/pruner, a resumed study that differs...)."""


class Study:
    """One study folder ``results/searches/<study>/`` and the common results table in it."""

    def __init__(self, name: str, *, engine: str, algorithm: str, space: str,
                 root: str | os.PathLike | None = None):
        self.name = name
        self.engine = engine
        self.algorithm = algorithm
        self.space = space
        self.dir = results_mod.study_dir(name, root)
        self.trials_path = self.dir / "trials.jsonl"
        self.csv_path = self.dir / "trials.csv"
        self.study_json = self.dir / "study.json"
        self.best_json = self.dir / "best.json"
        self.best_model_path = self.dir / "best_model.keras"
        self.resources_path = self.dir / "resources.jsonl"
        # The best model so far, kept while the search runs (git-ignored checkpoints/), so
        # the final test evaluation restores it instead of retraining.
        self.checkpoint_path = self.dir / "checkpoints" / "best_trial.keras"
        self.checkpoint_meta = self.dir / "checkpoints" / "best_trial.json"

    # -- study.json ---------------------------------------------------------------------------
    def open(self, *, seed: int, settings: dict[str, Any], data: dict[str, Any],
             reference_configs: list[dict[str, Any]]) -> dict[str, Any]:
        """Create study.json, or check that a resumed study is the same search."""
        now = utc_now()
        if self.study_json.exists():
            info = results_mod.read_json(self.study_json)
            for key, value in (("engine", self.engine), ("algorithm", self.algorithm),
                               ("space", self.space), ("seed", seed)):
                if info.get(key) != value:
                    raise SearchError(
                        f"study {self.name!r} in {self.dir} was created with {key}={info.get(key)!r}, "
                        f"not {value!r}; pass --study NAME to start a different study"
                    )
            old_digest = (info.get("data") or {}).get("digest")
            if old_digest and data.get("digest") and old_digest != data["digest"]:
                raise SearchError(
                    f"study {self.name!r} was run on data {old_digest}, this run's data is "
                    f"{data['digest']}; a resumed search must use the same split"
                )
            info.setdefault("runs", []).append({"started_at": now, "config": settings})
            info["config"] = settings
            info["versions"] = results_mod.environment_info()
            info["updated_at"] = now
        else:
            info = {
                "study": self.name, "engine": self.engine, "algorithm": self.algorithm,
                "space": self.space, "seed": seed, "config": settings, "data": data,
                "reference_configs": reference_configs,
                "versions": results_mod.environment_info(),
                "created_at": now, "updated_at": now,
                "runs": [{"started_at": now, "config": settings}],
            }
        results_mod.write_json(self.study_json, info)
        return info

    # -- trials ----------------------------------------------------------------------------
    def records(self) -> list[TrialRecord]:
        return results_mod.read_trials(self.trials_path)

    def finished(self, trial_id: str) -> TrialRecord | None:
        for record in self.records():
            if record.trial_id == str(trial_id):
                return record
        return None

    def append(self, record: TrialRecord) -> None:
        results_mod.append_trial(self.trials_path, record)
        results_mod.write_csv(self.records(), self.csv_path)

    def log_resources(self, record: TrialRecord, rss_mb: float | None,
                      rss_anon_mb: float | None = None,
                      trial_peak_rss_mb: float | None = None) -> None:
        """One line per trial in resources.jsonl: the search process's memory after the trial
        (``rss_mb`` VmRSS, ``rss_anon_mb`` RssAnon) and, for a trial trained in a child
        process, that child's peak (VmHWM)."""
        # TrialRecord has no resource field; keep memory per trial beside the table.
        line = {"trial_id": record.trial_id, "number": record.number, "state": record.state,
                "rss_mb": rss_mb, "rss_anon_mb": rss_anon_mb,
                "trial_peak_rss_mb": trial_peak_rss_mb, "wall_time_s": record.wall_time_s,
                "at": utc_now()}
        with open(self.resources_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")

    def best_record(self) -> TrialRecord | None:
        """The study's best trial so far, by the one selection rule (search.results)."""
        return results_mod.best_trial(self.records())

    def save_if_best(self, record: TrialRecord, model) -> bool:
        """Checkpoint ``model`` if ``record`` beats every earlier complete trial."""
        best = self.best_record()
        if best is not None and best.trial_id != record.trial_id and \
                best.val_accuracy >= record.val_accuracy:
            return False
        self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint_path.with_name("best_trial.tmp.keras")
        model.save(tmp)
        os.replace(tmp, self.checkpoint_path)
        results_mod.write_json(self.checkpoint_meta, {"trial_id": record.trial_id,
                                                      "val_accuracy": record.val_accuracy})
        return True

    # -- the one test evaluation ------------------------------------------------------------
    def finalize(self, runner) -> dict[str, Any] | None:
        """Evaluate the best trial's model on the test split; write best.json and the model.

        The checkpoint saved when the trial ran is restored; if it is missing or belongs to
        another trial (a kill between the row and the checkpoint), the trial is retrained from
        its config. Nothing is re-evaluated while the best trial is unchanged, so the test
        split is touched once per best model, never for selection.
        """
        best = self.best_record()
        if best is None:
            return None
        if self.best_json.exists() and self.best_model_path.exists():
            previous = results_mod.read_json(self.best_json)
            if previous.get("trial_id") == best.trial_id:
                return previous

        import keras
        from search.evaluate import evaluate_model

        model = None
        if self.checkpoint_meta.exists() and self.checkpoint_path.exists():
            meta = results_mod.read_json(self.checkpoint_meta)
            if meta.get("trial_id") == best.trial_id:
                model = keras.saving.load_model(self.checkpoint_path, compile=False)
        retrained = model is None
        if retrained:
            model = runner.retrain(best)
        size = int(model.input_shape[1])
        x_test, y_test = runner.data.arrays("test", size)
        report = evaluate_model(model, x_test, y_test, runner.data.class_names)
        from search.model_io import save_model

        # The sidecar (class names, input size, split manifest) lets search.evaluate,
        # search.predict and search.export use the model and refuse leaky test folders.
        manifest = getattr(runner.data, "manifest", None)
        save_model(model, self.best_model_path, runner.data.class_names, size,
                   getattr(manifest, "path", None), study=self.name, trial_id=best.trial_id)
        summary = {
            "trial_id": best.trial_id, "config": best.config, "val_accuracy": best.val_accuracy,
            "test": report, "params": best.params, "wall_time_s": best.wall_time_s,
            "number": best.number, "image_size": size, "retrained": retrained,
            "evaluated_at": utc_now(),
        }
        results_mod.write_json(self.best_json, summary)
        del model
        keras.backend.clear_session()
        return summary
