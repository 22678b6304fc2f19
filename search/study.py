"""A study: one folder ``results/searches/<study>/`` and the common results table in it.

``Study`` is what engines and the trial runner write through: ``study.json`` (what the search
is, created once and checked on resume), the table (``trials.jsonl`` + its ``trials.csv``
view), per-trial memory (``resources.jsonl``), the best model so far (``checkpoints/``) and, at
the end, the single test evaluation of the best trial (``best.json``, ``best_model.keras``).
The table's format and the rule that picks the best trial live in ``search.results``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
from pathlib import Path
from typing import Any

from search import results as results_mod
from search._process import utc_now
from search._urls import sqlite_path
from search.results import TrialRecord, TrialTable, UnreadableLine


@dataclasses.dataclass(frozen=True)
class WarmStart:
    """Continue trial ``from_trial`` of the same configuration: load its kept weights
    (``weights``, a ``.weights.h5`` file) and train epochs ``initial_epoch`` .. ``epochs - 1``
    (``TrialRunner.run``; only for spaces whose ``warm_starts`` is True)."""

    from_trial: str
    weights: str
    initial_epoch: int


class SearchError(ValueError):
    """Bad search input (unknown engine/algorithm/pruner, a resumed study that differs...)."""


def mask_url(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***`` (for messages and logs)."""
    return re.sub(r"(://[^:/@]*:).*@", r"\1***@", str(url))


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
        # Each completed trial's class probabilities on val and test (search.trial), and the
        # ensemble built from them on validation (search.ensemble).
        self.predictions_dir = self.dir / "predictions"
        self.ensemble_json = self.dir / "ensemble.json"
        self.checkpoint_meta = self.dir / "checkpoints" / "best_trial.json"

    def rung_weights_path(self, trial_id: str) -> Path:
        """Where a trial keeps its weights for a later trial that continues it (keras-tuner
        Hyperband's promotions; git-ignored with the rest of checkpoints/)."""
        return self.dir / "checkpoints" / "rungs" / f"trial-{trial_id}.weights.h5"

    def warm_start(self, from_trial: str, initial_epoch: int) -> "WarmStart | None":
        """Continue trial ``from_trial``'s kept weights from ``initial_epoch``; None when it
        kept none (it failed, or its file is gone): the trial then trains from scratch."""
        weights = self.rung_weights_path(str(from_trial))
        if not weights.exists():
            return None
        return WarmStart(from_trial=str(from_trial), weights=str(weights),
                         initial_epoch=int(initial_epoch))

    @classmethod
    def existing(cls, name: str, root: str | os.PathLike | None = None) -> "Study":
        """An existing study folder, with the engine, algorithm and space its study.json names."""
        folder = results_mod.study_dir(name, root)
        if not (folder / "study.json").exists():
            raise SearchError(f"no study {name!r} under {folder.parent} (no {folder / 'study.json'})")
        info = results_mod.read_json(folder / "study.json")
        return cls(name, engine=str(info.get("engine", "")), algorithm=str(info.get("algorithm", "")),
                   space=str(info.get("space", "")), root=root)

    # -- study.json ---------------------------------------------------------------------------
    def open(self, *, seed: int, settings: dict[str, Any], data: dict[str, Any],
             reference_configs: list[dict[str, Any]]) -> dict[str, Any]:
        """Create study.json, or check that a resumed study is the same search: same engine,
        algorithm, space, seed, data and storage (no ``settings["storage"]`` means the one
        study.json records; another one is refused before anything is written)."""
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
            self._check_same_space(info, reference_configs)
            old_digest = (info.get("data") or {}).get("digest")
            if old_digest and data.get("digest") and old_digest != data["digest"]:
                raise SearchError(
                    f"study {self.name!r} was run on data {old_digest}, this run's data is "
                    f"{data['digest']}; a resumed search must use the same split"
                )
            settings = self._resumed_storage(info, settings)
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

    def recorded_storage(self) -> str | None:
        """The storage URL study.json records (None: the engine's default, in this folder)."""
        if not self.study_json.exists():
            return None
        return _recorded_storage(results_mod.read_json(self.study_json))

    def _resumed_storage(self, info: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
        """A resumed study keeps the storage it was run with: none given means the recorded
        one; another one is refused (it would start a fresh study and rerun every trial)."""
        if "storage" not in settings:
            return settings
        given, recorded = settings["storage"], _recorded_storage(info)
        if given is not None and _storage_key(given, self.dir) != _storage_key(recorded, self.dir):
            where = (f"was run with --storage {mask_url(recorded)}" if recorded is not None else
                     f"keeps its Optuna trials in the default SQLite file {self.dir / 'optuna.db'}")
            raise SearchError(
                f"study {self.name!r} in {self.dir} {where}, not {mask_url(given)}; resume it "
                "without --storage (its recorded storage is used), or pass --study NAME to start "
                "a different study")
        return {**settings, "storage": recorded}

    def _check_same_space(self, info: dict[str, Any], reference_configs: list[dict[str, Any]]) -> None:
        """Refuse to resume a study whose space has changed since it was created: its engine
        would meet trials from another space (Optuna refuses changed distributions inside
        every new trial). The recorded reference configurations tell the version apart."""
        recorded = info.get("reference_configs")
        current = json.loads(json.dumps(reference_configs, default=str))
        if recorded is None or recorded == current:
            return
        old = {k for config in recorded for k in config}
        new = {k for config in current for k in config}
        changes = [f"added {', '.join(sorted(new - old))}" if new - old else "",
                   f"removed {', '.join(sorted(old - new))}" if old - new else ""]
        what = "; ".join(c for c in changes if c) or "values changed"
        raise SearchError(
            f"study {self.name!r} in {self.dir} was created with another version of space "
            f"{self.space!r} (its reference configuration differs: {what}); it cannot be "
            "resumed with this one: pass --study NAME to start a new study")

    # -- trials ----------------------------------------------------------------------------
    def records(self) -> list[TrialRecord]:
        return results_mod.read_trials(self.trials_path)

    def table(self) -> TrialTable:
        """The table as read: good rows, and the lines that could not be read."""
        return results_mod.read_table(self.trials_path)

    def set_aside_unreadable(self) -> list[UnreadableLine]:
        """Move unreadable lines of trials.jsonl to trials.jsonl.unreadable (nothing is
        deleted) and return them; the CSV view is rewritten from the rows that remain."""
        moved = results_mod.set_aside_unreadable(self.trials_path)
        if moved:
            results_mod.write_csv(self.records(), self.csv_path)
        return moved

    def finished(self, trial_id: str) -> TrialRecord | None:
        for record in self.records():
            if record.trial_id == str(trial_id):
                return record
        return None

    @property
    def worker(self) -> str:
        """``host:/abs/folder``: where this machine keeps the study (and the weights it trains)."""
        return f"{socket.gethostname()}:{self.dir.resolve()}"

    def append(self, record: TrialRecord, *, stamp: bool = True) -> None:
        """Append a row; ``stamp`` names this machine's folder as the trial's worker when the
        row names none (False: a row copied or re-derived from another worker's records)."""
        if stamp and record.worker is None:
            record.worker = self.worker
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
        split is touched once per best model, never for selection. Then the ensemble of the
        study's trials is rebuilt (``build_ensemble``), scored on test once per composition.
        """
        best = self.best_record()
        if best is None:
            return None
        if self.best_json.exists() and self.best_model_path.exists():
            previous = results_mod.read_json(self.best_json)
            if previous.get("trial_id") == best.trial_id:
                self.build_ensemble(runner.data)
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
        # A row re-derived from an engine's records may lack the parameter count: the model has it.
        params = best.params if best.params is not None else int(model.count_params())
        val_n = len(runner.data.arrays("val", size)[1])
        summary = {
            "trial_id": best.trial_id, "config": best.config, "val_accuracy": best.val_accuracy,
            "val_n": val_n,
            "val_standard_error": results_mod.standard_error(best.val_accuracy, val_n),
            "test_standard_error": results_mod.standard_error(report["accuracy"], report["n"]),
            "test": report, "params": params, "wall_time_s": best.wall_time_s,
            "number": best.number, "image_size": size, "retrained": retrained, "cv": best.cv,
            "evaluated_at": utc_now(),
        }
        results_mod.write_json(self.best_json, summary)
        del model
        keras.backend.clear_session()
        self.build_ensemble(runner.data)
        return summary

    def kept_model_path(self, record: TrialRecord) -> Path | None:
        """Where the study keeps ``record``'s model as it is used (flip averaging included):
        ``models/trial-N.keras``, else the best-trial checkpoint when it is that trial's;
        None when neither is there (a trial that fell out of the best kept, or ran before
        models were kept)."""
        path = self.dir / "models" / f"trial-{record.number}.keras"
        if path.exists():
            return path
        if self.checkpoint_meta.exists() and self.checkpoint_path.exists():
            if results_mod.read_json(self.checkpoint_meta).get("trial_id") == record.trial_id:
                return self.checkpoint_path
        return None

    def build_ensemble(self, data, rounds: int = 25) -> dict[str, Any] | None:
        """Greedy ensemble selection over the completed trials' kept predictions, on
        validation only; its test accuracy is computed once per ensemble and written to
        ensemble.json. None when fewer than two trials kept predictions."""
        import numpy as np

        from search._metrics import classification_metrics
        from search.ensemble import greedy_ensemble
        from search.trial import KEPT_MODELS

        # The candidates are the trials whose models the study keeps (its best by
        # validation), so the ensemble picked builds into one model without training.
        kept = {}
        for record in results_mod.ranked_trials(self.records())[:KEPT_MODELS]:
            path = self.predictions_dir / f"trial-{record.number}.npz"
            if path.exists() and self.kept_model_path(record) is not None:
                with np.load(path) as npz:
                    kept[record.trial_id] = (npz["val"], npz["test"])
        if len(kept) < 2:
            return None
        y_val, y_test = data.labels("val"), data.labels("test")
        ensemble = greedy_ensemble({k: v for k, (v, _) in kept.items()}, y_val, rounds=rounds)
        members = dict(sorted(ensemble.counts.items(), key=lambda kv: int(kv[0])))
        if self.ensemble_json.exists():
            previous = results_mod.read_json(self.ensemble_json)
            if previous.get("members") == members:
                return previous  # the same ensemble: the test split is not read again
        test_probabilities = ensemble.average({k: t for k, (_, t) in kept.items()})
        report = classification_metrics(y_test, test_probabilities.argmax(-1), data.class_names)
        summary = {
            "members": members, "size": ensemble.size, "rounds": rounds,
            "candidates": len(kept),
            "val_accuracy": ensemble.val_accuracy, "val_n": int(len(y_val)),
            "val_standard_error": results_mod.standard_error(ensemble.val_accuracy, len(y_val)),
            "val_log_loss": ensemble.val_log_loss,
            "test": report,
            "test_standard_error": results_mod.standard_error(report["accuracy"], report["n"]),
            "note": ("greedy selection with replacement (Caruana et al. 2004) on validation; "
                     "its validation score is the one it was picked on, an optimistic estimate"),
            "evaluated_at": utc_now(),
        }
        results_mod.write_json(self.ensemble_json, summary)
        return summary


def _recorded_storage(info: dict[str, Any]) -> str | None:
    """study.json's storage: ``config.storage``, else (a study.json an older version rewrote
    on a resume without --storage) the latest one its runs name."""
    recorded = (info.get("config") or {}).get("storage")
    if recorded:
        return recorded
    for run in reversed(info.get("runs") or []):
        if (run.get("config") or {}).get("storage"):
            return run["config"]["storage"]
    return None


def _storage_key(url: str | None, directory: Path) -> str:
    """What two storage URLs are compared by: None is the default SQLite file in the study
    folder, and a SQLite URL is its file's absolute path."""
    if url is None:
        url = f"sqlite:///{directory / 'optuna.db'}"
    path = sqlite_path(url)
    return url if path is None else f"sqlite:///{path.resolve()}"
