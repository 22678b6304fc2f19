"""A study: one folder ``results/searches/<study>/`` and the common results table in it.

``Study`` is what engines and the trial runner write through: ``study.json`` (what the search
is, created once and checked on resume), the table (``trials.jsonl`` + its ``trials.csv``
view), per-trial memory (``resources.jsonl``) and the best model so far (``checkpoints/``). It
names the folder's other files too; the single test evaluation of the best trial that writes
``best.json`` and ``best_model.keras`` at the end is ``search.scoring``'s, and the ensemble
(``ensemble.json``) is ``search.ensemble``'s. The table's format and the rule that ranks the
trials live in ``search.results``.
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
from search._files import replaced_atomically
from search._process import utc_now
from search._urls import sqlite_path, without_password
from search.results import TrialRecord, TrialTable, UnreadableLine


@dataclasses.dataclass(frozen=True)
class WarmStart:
    """Continue trial ``from_trial`` of the same configuration: load its kept weights
    (``weights``, a ``.weights.h5`` file) and train epochs ``initial_epoch`` .. ``epochs - 1``
    (``TrialRunner.run``; only for spaces whose ``warm_starts`` is True). ``score``: the kept
    weights' validation accuracy where it was recorded (a trial stopped over rungs keeps its
    best epoch), which the continuation must beat to replace them."""

    from_trial: str
    weights: str
    initial_epoch: int
    score: float | None = None


class SearchError(ValueError):
    """Bad search input (unknown engine/algorithm/pruner, a resumed study that differs...)."""


def mask_url(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***`` (for messages and logs)."""
    return re.sub(r"(://[^:/@]*:).*@", r"\1***@", str(url))


class Study:
    """One study folder ``results/searches/<study>/`` and the common results table in it."""

    def __init__(
        self,
        name: str,
        *,
        engine: str,
        algorithm: str,
        space: str,
        root: str | os.PathLike | None = None,
    ):
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

    def rung_score_path(self, trial_id: str) -> Path:
        """The validation accuracy of the weights a trial kept (beside them)."""
        return self.dir / "checkpoints" / "rungs" / f"trial-{trial_id}.score.json"

    def warm_start(self, from_trial: str, initial_epoch: int) -> WarmStart | None:
        """Continue trial ``from_trial``'s kept weights from ``initial_epoch``; None when it
        kept none (it failed, or its file is gone): the trial then trains from scratch."""
        weights = self.rung_weights_path(str(from_trial))
        if not weights.exists():
            return None
        scored = self.rung_score_path(str(from_trial))
        try:
            score = float(results_mod.read_json(scored)["val_accuracy"])
        except (OSError, ValueError, KeyError, TypeError):
            score = None  # kept by an older version, or unreadable: the next rung starts afresh
        return WarmStart(
            from_trial=str(from_trial),
            weights=str(weights),
            initial_epoch=int(initial_epoch),
            score=score,
        )

    @classmethod
    def existing(cls, name: str, root: str | os.PathLike | None = None) -> Study:
        """An existing study folder, with the engine, algorithm and space its study.json names."""
        folder = results_mod.study_dir(name, root)
        if not (folder / "study.json").exists():
            raise SearchError(
                f"no study {name!r} under {folder.parent} (no {folder / 'study.json'})"
            )
        info = results_mod.read_json(folder / "study.json")
        return cls(
            name,
            engine=str(info.get("engine", "")),
            algorithm=str(info.get("algorithm", "")),
            space=str(info.get("space", "")),
            root=root,
        )

    # -- study.json ---------------------------------------------------------------------------
    def open(
        self,
        *,
        seed: int,
        settings: dict[str, Any],
        data: dict[str, Any],
        reference_configs: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """Create study.json, or check that a resumed study is the same search: same engine,
        algorithm, space, seed, data and storage (no ``settings["storage"]`` means the one
        study.json records; another one is refused before anything is written)."""
        now = utc_now()
        if "storage" in settings:
            # The password stays in this process (given on the command line, or read by the
            # driver from PGPASSWORD / ~/.pgpass): study.json is tracked in git.
            settings = {**settings, "storage": without_password(settings["storage"])}
        if self.study_json.exists():
            info = without_passwords(results_mod.read_json(self.study_json))
            for key, value in (
                ("engine", self.engine),
                ("algorithm", self.algorithm),
                ("space", self.space),
                ("seed", seed),
            ):
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
                "study": self.name,
                "engine": self.engine,
                "algorithm": self.algorithm,
                "space": self.space,
                "seed": seed,
                "config": settings,
                "data": data,
                "reference_configs": reference_configs,
                "versions": results_mod.environment_info(),
                "created_at": now,
                "updated_at": now,
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
        one; another one is refused (it would start a fresh study and rerun every trial),
        unless the study never ran a trial (a mistyped URL): the new one is recorded."""
        if "storage" not in settings:
            return settings
        given, recorded = settings["storage"], _recorded_storage(info)
        if given is not None and _storage_key(given, self.dir) != _storage_key(recorded, self.dir):
            if not self.ran_a_trial():
                return settings
            where = (
                f"was run with --storage {mask_url(recorded)}"
                if recorded is not None
                else f"keeps its Optuna trials in the default SQLite file {self.dir / 'optuna.db'}"
            )
            raise SearchError(
                f"study {self.name!r} in {self.dir} {where}, not {mask_url(given)}; resume it "
                "without --storage (its recorded storage is used), or pass --study NAME to start "
                "a different study"
            )
        return {**settings, "storage": recorded}

    def _check_same_space(
        self, info: dict[str, Any], reference_configs: list[dict[str, Any]]
    ) -> None:
        """Refuse to resume a study whose space has changed since it was created: its engine
        would meet trials from another space (Optuna refuses changed distributions inside
        every new trial). The recorded reference configurations tell the version apart."""
        recorded = info.get("reference_configs")
        current = json.loads(json.dumps(reference_configs, default=str))
        if recorded is None or recorded == current:
            return
        old = {k for config in recorded for k in config}
        new = {k for config in current for k in config}
        changes = [
            f"added {', '.join(sorted(new - old))}" if new - old else "",
            f"removed {', '.join(sorted(old - new))}" if old - new else "",
        ]
        what = "; ".join(c for c in changes if c) or "values changed"
        raise SearchError(
            f"study {self.name!r} in {self.dir} was created with another version of space "
            f"{self.space!r} (its reference configuration differs: {what}); it cannot be "
            "resumed with this one: pass --study NAME to start a new study"
        )

    # -- trials ----------------------------------------------------------------------------
    def ran_a_trial(self) -> bool:
        """Whether a trial finished here (a row, readable or not) or ran in a child process
        (its log in ``logs/``, written from its start)."""
        table = self.table()
        if table.records or table.unreadable:
            return True
        logs = self.dir / "logs"
        return logs.is_dir() and any(logs.glob("trial-*.log"))

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

    def log_resources(
        self,
        record: TrialRecord,
        rss_mb: float | None,
        rss_anon_mb: float | None = None,
        trial_peak_rss_mb: float | None = None,
    ) -> None:
        """One line per trial in resources.jsonl: the search process's memory after the trial
        (``rss_mb`` VmRSS, ``rss_anon_mb`` RssAnon) and, for a trial trained in a child
        process, that child's peak (VmHWM)."""
        # TrialRecord has no resource field; keep memory per trial beside the table.
        line = {
            "trial_id": record.trial_id,
            "number": record.number,
            "state": record.state,
            "rss_mb": rss_mb,
            "rss_anon_mb": rss_anon_mb,
            "trial_peak_rss_mb": trial_peak_rss_mb,
            "wall_time_s": record.wall_time_s,
            "at": utc_now(),
        }
        with open(self.resources_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")

    def best_record(self) -> TrialRecord | None:
        """The study's best trial so far, by the one selection rule (search.results)."""
        return results_mod.best_trial(self.records())

    def ranked_with(self, record: TrialRecord) -> list[TrialRecord]:
        """The study's trials ranked by the one rule (``search.results.ranked_trials``) as
        they stand once ``record`` is in, replacing any earlier row of the same trial; what
        decides both the best-model checkpoint and the models kept for ensembles."""
        others = [r for r in self.records() if r.trial_id != record.trial_id]
        return results_mod.ranked_trials([*others, record])

    # -- checkpoints ------------------------------------------------------------------------
    def save_if_best(self, record: TrialRecord, model) -> bool:
        """Checkpoint ``model`` if ``record`` is the study's best trial once it is in (by
        :meth:`ranked_with`: a tie goes to the earlier trial, whichever finished first)."""
        ranked = self.ranked_with(record)
        if not ranked or ranked[0].trial_id != record.trial_id:
            return False
        self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        with replaced_atomically(self.checkpoint_path) as tmp:
            model.save(tmp)
        results_mod.write_json(
            self.checkpoint_meta, {"trial_id": record.trial_id, "val_accuracy": record.val_accuracy}
        )
        return True

    def checkpoint_of(self, trial_id: str) -> Path | None:
        """The best-model checkpoint when it holds trial ``trial_id``'s model, else None (no
        checkpoint, or another trial's: a kill between a row and its checkpoint)."""
        if not (self.checkpoint_meta.exists() and self.checkpoint_path.exists()):
            return None
        held = results_mod.read_json(self.checkpoint_meta).get("trial_id")
        return self.checkpoint_path if held == str(trial_id) else None

    def kept_model_path(self, record: TrialRecord) -> Path | None:
        """Where the study keeps ``record``'s model as it is used (flip averaging included):
        ``models/trial-N.keras``, else the best-trial checkpoint when it is that trial's;
        None when neither is there (a trial that fell out of the best kept, or ran before
        models were kept)."""
        path = self.dir / "models" / f"trial-{record.number}.keras"
        if path.exists():
            return path
        return self.checkpoint_of(record.trial_id)


def _recorded_storage(info: dict[str, Any]) -> str | None:
    """study.json's storage: ``config.storage``, else (a study.json an older version rewrote
    on a resume without --storage) the latest one its runs name; without its password."""
    recorded = (info.get("config") or {}).get("storage")
    if recorded:
        return without_password(recorded)
    for run in reversed(info.get("runs") or []):
        if (run.get("config") or {}).get("storage"):
            return without_password(run["config"]["storage"])
    return None


def without_passwords(info: dict[str, Any]) -> dict[str, Any]:
    """study.json's content with no password in any storage URL it records (``config`` and
    every run's; an older version wrote them with the password)."""

    def clean(config):
        if not isinstance(config, dict) or not config.get("storage"):
            return config
        return {**config, "storage": without_password(config["storage"])}

    out = {**info, "config": clean(info.get("config"))} if "config" in info else {**info}
    if isinstance(info.get("runs"), list):
        out["runs"] = [
            {**run, "config": clean(run.get("config"))} if isinstance(run, dict) else run
            for run in info["runs"]
        ]
    return out


def _storage_key(url: str | None, directory: Path) -> str:
    """What two storage URLs are compared by: None is the default SQLite file in the study
    folder, and a SQLite URL is its file's absolute path."""
    if url is None:
        url = f"sqlite:///{directory / 'optuna.db'}"
    url = without_password(url)  # the same database, whether the password is given or not
    path = sqlite_path(url)
    return url if path is None else f"sqlite:///{path.resolve()}"
