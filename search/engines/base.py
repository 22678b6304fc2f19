"""What every engine shares: the study folder, the progress bar, the engine interface.

An engine (``Engine.run``) only decides which configuration to try next and when to stop; it
hands each configuration to the shared ``TrialRunner`` (search/trial.py), which trains it and
writes the row through ``Study``. ``Study.finalize`` then evaluates the best trial's model on
the test split once and writes ``best.json`` and ``best_model.keras``.
"""

from __future__ import annotations

import abc
import datetime as _dt
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

from search import results as results_mod
from search.results import TrialRecord


class SearchError(ValueError):
    """Bad search input (unknown engine/algorithm/pruner, a resumed study that differs...)."""


class TrialFailed(Exception):
    """Raised to an engine so it books a trial as failed (the row is already written)."""


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
        now = _utc_now()
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
                "at": _utc_now()}
        with open(self.resources_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")

    def best_record(self) -> TrialRecord | None:
        complete = [r for r in self.records() if r.state == "COMPLETE" and r.val_accuracy is not None]
        if not complete:
            return None
        # Validation accuracy only; ties go to the earlier trial.
        return max(complete, key=lambda r: (r.val_accuracy, -r.number))

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
            "evaluated_at": _utc_now(),
        }
        results_mod.write_json(self.best_json, summary)
        del model
        keras.backend.clear_session()
        return summary


class Progress:
    """tqdm bar on stderr: trials done, best so far, last trial time, ETA."""

    def __init__(self, total: int, done: int, study: Study, *, enabled: bool = True):
        from tqdm.auto import tqdm

        self.total, self.done = total, done
        best = study.best_record()
        self.best = best.val_accuracy if best else None
        self.times: list[float] = []
        self.bar = tqdm(total=total, initial=min(done, total), desc=study.name, unit="trial",
                        file=sys.stderr, disable=not enabled, dynamic_ncols=True)
        self._refresh(None)

    def update(self, record: TrialRecord) -> None:
        self.times.append(record.wall_time_s)
        if record.state == "COMPLETE" and record.val_accuracy is not None:
            self.best = record.val_accuracy if self.best is None else max(self.best, record.val_accuracy)
        self.done += 1
        if record.state == "FAIL":
            self.bar.write(f"trial {record.number} failed: {record.error}", file=sys.stderr)
        self.bar.update(1)
        self._refresh(record)

    def _refresh(self, record: TrialRecord | None) -> None:
        postfix = {"best": "-" if self.best is None else f"{self.best:.4f}"}
        if record is not None:
            postfix["last"] = f"#{record.number} {record.state} {record.wall_time_s:.0f}s"
        if self.times:
            remaining = max(self.total - self.done, 0)
            eta = remaining * sum(self.times) / len(self.times)
            postfix["eta"] = _fmt_seconds(eta)
        self.bar.set_postfix(postfix, refresh=True)

    def close(self) -> None:
        self.bar.close()


class Engine(abc.ABC):
    """Decides which configurations to try; the shared TrialRunner trains them."""

    name: ClassVar[str]
    algorithms: ClassVar[tuple[str, ...]]

    def __init__(self, algorithm: str, *, seed: int = 0, pruner: str | None = None,
                 storage: str | None = None):
        if algorithm not in self.algorithms:
            raise SearchError(f"unknown algorithm {algorithm!r} for engine {self.name!r}; "
                              f"choices: {', '.join(self.algorithms)}")
        self.algorithm = algorithm
        self.seed = seed
        self.pruner = pruner
        self.storage = storage

    @abc.abstractmethod
    def run(self, runner, study: Study, *, trials: int, epochs: int,
            max_time: float | None = None, progress: bool = True) -> None:
        """Run trials until ``trials`` have finished in this study (earlier runs included) or
        ``max_time`` seconds have passed; never rerun a finished trial."""


ENGINES: dict[str, str] = {
    "keras-tuner": "search.engines.keras_tuner:KerasTunerEngine",
    "optuna": "search.engines.optuna:OptunaEngine",
}


def get_engine(name: str, algorithm: str | None = None, **kwargs: Any) -> Engine:
    """Engine ``name`` with ``algorithm`` (its default when None); imports it lazily."""
    import importlib

    if name not in ENGINES:
        raise SearchError(f"unknown engine {name!r}; choices: {', '.join(ENGINES)}")
    module, cls_name = ENGINES[name].split(":")
    cls = getattr(importlib.import_module(module), cls_name)
    return cls(algorithm or cls.algorithms[0], **kwargs)


def deadline_from(max_time: float | None) -> float | None:
    return None if max_time is None else time.monotonic() + float(max_time)


def _fmt_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
