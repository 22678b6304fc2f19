"""``--keep-split``: keep the train/val/test split a dataset's folders give, leak-free all the same.

The split is the folders' (``train/``, ``val/``, ``test/`` and their usual names), except:

- copies of one picture (exact or near, one duplicate group) filed in two given splits are
  kept in the earliest of train, val, test and left out of the later ones, so that no image
  scored in validation or test is a copy of one the model trained on; they are counted, with
  examples, in a warning and in the data report;
- a split without a folder is carved out of train, stratified by class, in whole duplicate
  groups: test (or val) takes ``fraction / (train + missing fractions)`` of train's pictures,
  20% of them for the default 70/15/15 with a given val.
"""

from __future__ import annotations

import collections
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

_FOLDS = 20
_EXAMPLES = 5


def keep_given_split(
    manifest,
    report: dict[str, Any],
    given: dict[str, str | None],
    seed: int,
    fractions: Sequence[float],
) -> tuple[Any, dict[str, Any]]:
    """Reassign ``manifest``'s entries (built pooled by ``build_split``) to the splits their
    folders give (``given``: path -> split, train among them); returns the manifest and its
    updated report."""
    entries, crossing = _drop_crossing_copies(manifest.entries, given)
    missing = [s for s in ("val", "test") if s not in {e["split"] for e in entries}]
    if missing:
        _carve_from_train(entries, missing, seed, fractions)
    manifest.entries = entries
    manifest.given_split = True
    manifest.check_disjoint()
    report = dict(report)
    report["kept_files"] = len(entries)
    report["given_split"] = {
        "carved_from_train": {
            s: f"{_carved_share(s, missing, fractions):.0%} of train's pictures" for s in missing
        },
        "crossing_copies": crossing,
    }
    report["split"] = {
        **report["split"],
        "given": True,
        "digest": manifest.digest,
        "counts": manifest.counts(),
    }
    return manifest, report


def _drop_crossing_copies(entries: list[dict[str, Any]], given: dict[str, str | None]):
    """Entries in their given split, less copies of a picture already in an earlier split."""
    order = {"train": 0, "val": 1, "test": 2}
    first: dict[int, dict[str, Any]] = {}
    for e in sorted(entries, key=lambda e: order[given[e["path"]]]):
        first.setdefault(e["group"], e)
    kept, dropped = [], []
    for e in entries:
        split = given[e["path"]]
        keeper = first[e["group"]]
        if given[keeper["path"]] != split:
            dropped.append(
                {
                    "path": e["path"],
                    "split": split,
                    "copy_of": keeper["path"],
                    "kept_in": given[keeper["path"]],
                }
            )
        else:
            kept.append({**e, "split": split})
    by_pair = collections.Counter(f"{d['kept_in']}/{d['split']}" for d in dropped)
    return kept, {
        "files_left_out": len(dropped),
        "pictures": len({d["copy_of"] for d in dropped}),
        "by_splits": dict(by_pair),
        "examples": dropped[:_EXAMPLES],
    }


def _carved_share(split: str, missing: list[str], fractions: Sequence[float]) -> float:
    f = dict(zip(("train", "val", "test"), fractions))
    return round(_FOLDS * f[split] / (f["train"] + sum(f[s] for s in missing))) / _FOLDS


def _carve_from_train(
    entries: list[dict[str, Any]], missing: list[str], seed: int, fractions: Sequence[float]
) -> None:
    """Move whole duplicate groups of train, stratified folds, into the missing splits."""
    from sklearn.model_selection import StratifiedGroupKFold

    train = [e for e in entries if e["split"] == "train"]
    labels = np.array([e["label"] for e in train])
    groups = np.array([e["group"] for e in train])
    folds = np.empty(len(train), dtype=int)
    splitter = StratifiedGroupKFold(n_splits=_FOLDS, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a class with fewer groups than folds is still split
        warnings.simplefilter("ignore", UserWarning)
        for fold, (_, idx) in enumerate(splitter.split(np.zeros(len(train)), labels, groups)):
            folds[idx] = fold
    order = list(np.random.default_rng(seed).permutation(_FOLDS))
    for split in missing:
        n = round(_carved_share(split, missing, fractions) * _FOLDS)
        taken, order = set(order[:n]), order[n:]
        for e, fold in zip(train, folds):
            if fold in taken:
                e["split"] = split


def given_split_lines(report: dict[str, Any]) -> list[str]:
    """The console lines for a kept split: ``warning:`` copies left out, ``note:`` splits
    carved out of train."""
    given = report.get("given_split")
    if not given:
        return []
    out = []
    crossing = given["crossing_copies"]
    if crossing["files_left_out"]:
        pairs = ", ".join(f"{n} {k.replace('/', ' -> ')}" for k, n in crossing["by_splits"].items())
        examples = "; ".join(f"{d['path']} ~ {d['copy_of']}" for d in crossing["examples"][:2])
        out.append(
            f"warning: {crossing['files_left_out']} file(s) are copies of pictures in an earlier given "
            f"split ({pairs}) and are left out of the later one, so that no scored image "
            f"is a copy of a training one: e.g. {examples} (all in data_report.json)"
        )
    for split, share in given["carved_from_train"].items():
        out.append(
            f"note: no {split}/ folder: the {split} split is carved out of train ({share}, "
            "whole duplicate groups, stratified by class)"
        )
    return out
