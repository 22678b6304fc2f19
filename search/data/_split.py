"""Leak-free train/val/test split: built once, written as a manifest, reused by every run."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from search.data._decode import ScannedFile, scan_files
from search.data._dedup import NEAR_DUPLICATE_THRESHOLD, group_duplicates
from search.data._given import given_split_lines, keep_given_split
from search.data._locate import (
    IMAGE_SUFFIXES,
    empty_class_folders,
    folders_beside_splits,
    given_splits,
    list_labelled_files,
    split_folders,
)
from search.results import results_root, write_json

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.70, 0.15, 0.15)
# The split is made of this many stratified group folds; fractions are multiples of 1/20.
_FOLDS = 20
MANIFEST_VERSION = 1


class SplitError(ValueError):
    """The split cannot be built or used as asked; the message says why and what to do."""


class LeakError(SplitError):
    """A test set shares images (exact or near copies) with the images a model trained on."""


@dataclasses.dataclass
class SplitManifest:
    """Which file goes to which split. ``entries`` rows: path, label, split, group, sha256, phash."""

    data_root: str
    seed: int
    fractions: tuple[float, float, float]
    near_threshold: int
    class_names: list[str]
    entries: list[dict[str, Any]]
    path: Path | None = None  # where the manifest was read from / written to
    given_split: bool = False  # --keep-split: the dataset's split folders, not a re-split

    @property
    def digest(self) -> str:
        """Identifies the exact split (files, labels and assignment), not where data lives."""
        h = hashlib.sha256()
        for e in sorted(self.entries, key=lambda e: e["path"]):
            h.update(f"{e['path']}\t{e['label']}\t{e['split']}\t{e['sha256']}\n".encode())
        return h.hexdigest()[:16]

    def subset(self, split: str) -> list[dict[str, Any]]:
        if split not in SPLITS:
            raise SplitError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        return [e for e in self.entries if e["split"] == split]

    def counts(self) -> dict[str, dict[str, int]]:
        out = {s: {c: 0 for c in self.class_names} for s in SPLITS}
        for e in self.entries:
            out[e["split"]][e["label"]] += 1
        return out

    def check_disjoint(self) -> None:
        """Refuse a manifest in which one duplicate group appears in two splits."""
        splits_of_group: dict[int, set[str]] = collections.defaultdict(set)
        for e in self.entries:
            splits_of_group[e["group"]].add(e["split"])
        shared = {g: s for g, s in splits_of_group.items() if len(s) > 1}
        if shared:
            example = next(iter(shared.items()))
            raise LeakError(
                f"split manifest {self.path or ''} puts {len(shared)} duplicate group(s) in more "
                f"than one split (e.g. group {example[0]} in {sorted(example[1])}); evaluating on "
                "it would score images the model trained on. Delete the manifest and rebuild it."
            )

    def portable_data_root(self) -> str | None:
        """Where the data is, as recorded on disk: relative to the project (the folder holding
        the results tree) when it lies inside it, else None (the digest identifies the data),
        so that no file records a machine's absolute paths."""
        return portable_root(self.data_root, self.path)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": MANIFEST_VERSION,
            "data_root": self.portable_data_root(),
            **({"given_split": True} if self.given_split else {}),
            "seed": self.seed,
            "fractions": list(self.fractions),
            "near_threshold": self.near_threshold,
            "class_names": self.class_names,
            "digest": self.digest,
            "entries": self.entries,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path | None = None) -> SplitManifest:
        if data.get("version") != MANIFEST_VERSION:
            raise SplitError(
                f"{path}: manifest version {data.get('version')} is not "
                f"{MANIFEST_VERSION}; delete it to rebuild the split"
            )
        return cls(
            _resolve_root(data.get("data_root"), path),
            data["seed"],
            tuple(data["fractions"]),
            data["near_threshold"],
            data["class_names"],
            data["entries"],
            path,
            bool(data.get("given_split")),
        )


def _project_of(manifest_path: Path) -> Path:
    return Path(manifest_path).resolve().parent.parent.parent  # <project>/<results>/data/split.json


def portable_root(data_root: str, manifest_path: Path | None) -> str | None:
    if manifest_path is None or not data_root:
        return data_root or None
    try:
        return Path(data_root).resolve().relative_to(_project_of(manifest_path)).as_posix()
    except ValueError:  # outside the project
        return None


def _resolve_root(recorded: str | None, manifest_path: Path | None) -> str:
    """The absolute data folder of a manifest on disk. Data outside the project is not
    recorded: it is looked for where ``--data`` defaults look ($ART_DATA, ./data/art-images),
    else '' (only the cached images can be read). Manifests written before paths were made
    portable hold an absolute path, kept as is."""
    if not recorded:
        from search.data._locate import DataNotFoundError, locate_data

        try:
            return str(locate_data().resolve())
        except DataNotFoundError:
            return ""
    if Path(recorded).is_absolute() or manifest_path is None:
        return recorded
    return str((_project_of(manifest_path) / recorded).resolve())


def default_split_dir(results_dir: str | os.PathLike | None = None) -> Path:
    return results_root(results_dir) / "data"


def prepare_split(
    data_dir: str | os.PathLike,
    results_dir: str | os.PathLike | None = None,
    seed: int = 0,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    near_threshold: int = NEAR_DUPLICATE_THRESHOLD,
    rebuild: bool = False,
    verbose: bool = True,
    keep_split: bool | None = None,
    progress: bool = True,
) -> SplitManifest:
    """Return the split manifest in ``<results>/data/``, building it on first use.

    The manifest is reused as long as it exists, so every run is scored on the same test
    images; a manifest built with another seed or other fractions is refused rather than
    silently replaced (``rebuild=True`` replaces it).

    Split folders (``train/``, ``val/``, ``test/``...) are pooled and re-split leak-free, unless
    ``keep_split`` (``--keep-split``) keeps them (see ``search.data._given``); None accepts
    whichever an existing manifest was built with. ``progress=False`` hides the scan bar.
    """
    out_dir = default_split_dir(results_dir)
    manifest_path = out_dir / "split.json"
    fractions = _check_fractions(fractions)
    data_dir = Path(data_dir)
    if manifest_path.exists() and not rebuild:
        return _reuse_manifest(manifest_path, data_dir, seed, fractions, keep_split, verbose)

    scanned, empty_folders, given = _scan(data_dir, keep_split, verbose, progress)
    manifest, report = build_split(
        scanned,
        str(data_dir.resolve()),
        seed,
        fractions,
        near_threshold,
        empty_class_folders=empty_folders,
    )
    notes = _split_folder_notes(data_dir, fractions, keep_split)
    if keep_split:
        manifest, report = keep_given_split(manifest, report, given, seed, fractions)
        notes += given_split_lines(report)
    manifest.path = manifest_path
    # Whatever the split leaves out without failing is said on the console, not only in the report.
    for line in notes + [f"warning: {w}" for w in report_warnings(report)]:
        print(line, file=sys.stderr)
    report["data_root"] = manifest.portable_data_root()
    write_json(out_dir / "data_report.json", report)
    write_json(manifest_path, manifest.to_json(), indent=None)
    if verbose:
        print(f"Wrote {manifest_path} and {out_dir / 'data_report.json'}", file=sys.stderr)
    return manifest


def _scan(
    data_dir: Path, keep_split: bool | None, verbose: bool, progress: bool
) -> tuple[list[ScannedFile], list[str], dict[str, str | None]]:
    """Decode and hash every image file under ``data_dir``; with the empty class folders and,
    with ``keep_split``, the split each file's folder names (checked before the long scan)."""
    files = list_labelled_files(data_dir)
    if not files:
        raise SplitError(
            f"no image files under {data_dir} (looked for "
            f"{', '.join(sorted(IMAGE_SUFFIXES))} files in its class folders)"
        )
    empty_folders = empty_class_folders(data_dir)
    given = _given_split_of(data_dir, files) if keep_split else {}
    if verbose:
        print(
            f"Scanning {len(files)} files under {data_dir} (decode, hash, find duplicates)...",
            file=sys.stderr,
        )
    scanned = scan_files(data_dir, files, progress=_progress_bar(len(files), verbose and progress))
    return scanned, empty_folders, given


def _reuse_manifest(
    manifest_path: Path,
    data_dir: Path,
    seed: int,
    fractions,
    keep_split: bool | None,
    verbose: bool,
) -> SplitManifest:
    """The existing manifest, refused where it was built with other settings or other files."""
    manifest = load_manifest(manifest_path)
    manifest.data_root = str(data_dir.resolve())  # the same files may have moved
    if manifest.seed != seed or tuple(manifest.fractions) != fractions:
        raise SplitError(
            f"{manifest_path} was built with seed {manifest.seed} and fractions "
            f"{list(manifest.fractions)}, not seed {seed} and {list(fractions)}. Every run "
            "must share one test split: drop the new settings, or rebuild the split on purpose "
            "(--rebuild-split), which makes earlier results incomparable."
        )
    if keep_split is not None and keep_split != manifest.given_split:
        how = (
            "keeps the data's split folders"
            if manifest.given_split
            else "re-splits the pooled data"
        )
        raise SplitError(
            f"{manifest_path} {how}; run {'without' if manifest.given_split else 'with'} "
            "--keep-split, or rebuild the split on purpose (--rebuild-split)"
        )
    _check_files_present(manifest, data_dir)
    if verbose:
        print(
            f"Using split {manifest_path} ({manifest.digest}): "
            + ", ".join(f"{s} {len(manifest.subset(s))}" for s in SPLITS),
            file=sys.stderr,
        )
    return manifest


def _given_split_of(data_dir: Path, files) -> dict[str, str | None]:
    """--keep-split: the split each file's folder names (relative path -> split); needs train."""
    paths = [f.relative_to(data_dir).as_posix() for f, _ in files]
    given = dict(zip(paths, given_splits(data_dir, paths)))
    if "train" not in given.values():
        found = ", ".join(sorted(set(filter(None, given.values())))) or "no split folder"
        raise SplitError(
            f"--keep-split needs a train/ (or training/) folder of class folders "
            f"under {data_dir}; it has {found}"
        )
    return given


def _split_folder_notes(data_dir: Path, fractions, keep_split: bool | None) -> list[str]:
    """One line on what happens to a dataset's own split folders, and any folder left unread."""
    found = split_folders(data_dir)
    if not found:
        return []
    names = ", ".join(f"{d.name}/" for dirs in found.values() for d in dirs)
    lines = [
        f"warning: {data_dir / name} is not a split folder (train/, val/, test/ or their usual "
        "names); it is not read"
        for name in folders_beside_splits(data_dir)
    ]
    if keep_split:
        return lines + [f"note: keeping the split of {names} under {data_dir} (--keep-split)"]
    split = "/".join(f"{round(f * 100)}" for f in fractions)
    return lines + [
        (
            f"note: {names} under {data_dir} are pooled and re-split leak-free "
            f"{split} (--keep-split keeps their split)"
        )
    ]


def load_manifest(path: str | os.PathLike) -> SplitManifest:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise SplitError(f"cannot read split manifest {path}: {exc}") from exc
    manifest = SplitManifest.from_json(data, path)
    manifest.check_disjoint()
    return manifest


def build_split(
    scanned: Sequence[ScannedFile],
    data_root: str,
    seed: int,
    fractions: tuple[float, float, float],
    near_threshold: int,
    empty_class_folders: Sequence[str] = (),
) -> tuple[SplitManifest, dict[str, Any]]:
    """Group duplicates, drop corrupt files and label conflicts, then split groups stratified.

    Refuses (``SplitError``) data that cannot make a classifier's split: nothing decodable,
    fewer than two classes, or a class with fewer distinct pictures than the split's folds.
    """
    grouped = _group(scanned, data_root, near_threshold)
    kept = grouped.kept
    class_names = sorted({s.label for s, _ in kept})
    left_out = _classes_left_out(
        scanned, class_names, grouped.conflicting, grouped.readable, grouped.group_of
    )
    _check_two_classes(class_names, left_out, empty_class_folders, data_root)
    labels = np.array([class_names.index(s.label) for s, _ in kept])
    groups = np.array([g for _, g in kept])
    _check_enough_pictures(labels, groups, class_names, data_root, fractions)
    split_of_row = _assign_splits(labels, groups, seed, fractions)
    entries = [
        {
            "path": s.path,
            "label": s.label,
            "split": split,
            "group": g,
            "sha256": s.sha256,
            "phash": s.phash,
        }
        for (s, g), split in zip(kept, split_of_row)
    ]
    manifest = SplitManifest(data_root, seed, fractions, near_threshold, class_names, entries)
    manifest.check_disjoint()

    report = _split_report(scanned, grouped, groups, left_out, empty_class_folders, manifest)
    return manifest, report


@dataclasses.dataclass
class _Grouping:
    """The decodable files in duplicate groups, and the groups kept (one label each)."""

    readable: list[ScannedFile]
    corrupt: list[ScannedFile]
    group_of: Any  # the duplicate group of each readable file
    dup_stats: dict[str, Any]
    conflicting: set[int]  # groups whose copies are filed under more than one class
    kept: list[tuple[ScannedFile, int]]  # (file, group) outside the conflicting groups


def _group(scanned: Sequence[ScannedFile], data_root: str, near_threshold: int) -> _Grouping:
    """Group the decodable files' duplicates and set aside the groups with conflicting labels;
    nothing decodable is an error."""
    readable = [s for s in scanned if s.ok]
    corrupt = [s for s in scanned if not s.ok]
    if not readable:
        examples = "; ".join(f"{s.path}: {s.reason}" for s in corrupt[:3])
        raise SplitError(
            f"none of the {len(scanned)} image files under {data_root} could be "
            f"decoded (e.g. {examples}); point --data at a folder of readable images"
        )
    group_of, dup_stats = group_duplicates(
        [s.sha256 for s in readable], [s.phash for s in readable], near_threshold
    )
    labels_of_group: dict[int, set[str]] = collections.defaultdict(set)
    for s, g in zip(readable, group_of):
        labels_of_group[int(g)].add(s.label)
    conflicting = {g for g, labels in labels_of_group.items() if len(labels) > 1}
    kept = [(s, int(g)) for s, g in zip(readable, group_of) if int(g) not in conflicting]
    return _Grouping(readable, corrupt, group_of, dup_stats, conflicting, kept)


def _split_report(
    scanned, grouped: _Grouping, groups, left_out, empty_class_folders, manifest: SplitManifest
) -> dict[str, Any]:
    """What the split kept and left out, and why (``split_report.json``)."""
    readable, corrupt, conflicting = grouped.readable, grouped.corrupt, grouped.conflicting
    conflict_files = collections.defaultdict(list)
    for s, g in zip(readable, grouped.group_of):
        if int(g) in conflicting:
            conflict_files[int(g)].append({"path": s.path, "label": s.label})
    return {
        "data_root": manifest.data_root,
        "files": len(scanned),
        "decoded": len(readable),
        "corrupt": {
            "count": len(corrupt),
            "files": [{"path": s.path, "reason": s.reason} for s in corrupt],
        },
        "modes_converted_to_rgb": dict(
            collections.Counter(s.mode for s in readable if s.mode != "RGB")
        ),
        "duplicates": {"near_threshold_bits": manifest.near_threshold, **grouped.dup_stats},
        "label_conflicts": {
            "groups": len(conflicting),
            "files": sum(len(v) for v in conflict_files.values()),
            "detail": list(conflict_files.values()),
        },
        "empty_class_folders": list(empty_class_folders),
        "classes_left_out": left_out,
        "kept_files": len(grouped.kept),
        "kept_groups": len(set(groups.tolist())),
        "split": {
            "seed": manifest.seed,
            "fractions": list(manifest.fractions),
            "digest": manifest.digest,
            "counts": manifest.counts(),
        },
    }


def _check_two_classes(class_names, left_out, empty_class_folders, data_root) -> None:
    if len(class_names) < 2:
        found = (
            f"only one class with usable images, {class_names[0]!r}"
            if class_names
            else "no class with usable images"
        )
        also = "".join(f"; class {c['class']!r} was left out: {c['reason']}" for c in left_out)
        also += "".join(
            f"; class folder {folder} holds no image files" for folder in empty_class_folders
        )
        raise SplitError(
            f"{data_root} has {found}{also}. A classifier needs at least two classes: give the "
            "data folder one <class>/ sub-folder of images per class"
        )


def _check_enough_pictures(labels, groups, class_names, data_root, fractions) -> None:
    """Every class needs a distinct picture (duplicate group) in each fold."""
    n_groups_per_class = [
        len({g for g, label in zip(groups, labels) if label == c}) for c in range(len(class_names))
    ]
    n_files_per_class = np.bincount(labels, minlength=len(class_names))
    too_few = [c for c, n in enumerate(n_groups_per_class) if n < _FOLDS]
    if too_few:
        named = ", ".join(
            f"{class_names[c]!r} has only {n_groups_per_class[c]} "
            f"(in {int(n_files_per_class[c])} files)"
            for c in too_few
        )
        raise SplitError(
            f"too few distinct pictures under {data_root}: class {named}, and every class needs "
            f"at least {_FOLDS} distinct pictures. The leak-free "
            f"{'/'.join(f'{round(f * 100)}' for f in fractions)} split is built from {_FOLDS} "
            "stratified folds of whole duplicate groups (exact and near copies count once). Add "
            f"pictures to {'that class folder' if len(too_few) == 1 else 'those class folders'} "
            f"or remove {'it' if len(too_few) == 1 else 'them'}."
        )


def _assign_splits(labels, groups, seed: int, fractions) -> list[str]:
    """Each row's split: stratified folds of whole duplicate groups, the folds dealt to test,
    val and train."""
    from sklearn.model_selection import StratifiedGroupKFold

    folds = np.empty(len(labels), dtype=int)
    splitter = StratifiedGroupKFold(n_splits=_FOLDS, shuffle=True, random_state=seed)
    for fold, (_, fold_idx) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
        folds[fold_idx] = fold
    # Folds are assigned to splits in a seeded random order, test first, then val, then train.
    fold_order = np.random.default_rng(seed).permutation(_FOLDS)
    n_test = round(fractions[2] * _FOLDS)
    n_val = round(fractions[1] * _FOLDS)
    split_of_fold = {}
    for rank, fold in enumerate(fold_order):
        split_of_fold[int(fold)] = (
            "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
        )
    return [split_of_fold[int(f)] for f in folds]


def _classes_left_out(
    scanned, class_names, conflicting, readable, group_of
) -> list[dict[str, Any]]:
    """Classes that had files but keep none (all undecodable, or all in label conflicts)."""
    files = collections.Counter(s.label for s in scanned)
    corrupt = collections.Counter(s.label for s in scanned if not s.ok)
    conflicts = collections.Counter(
        s.label for s, g in zip(readable, group_of) if int(g) in conflicting
    )
    out = []
    for label in sorted(set(files) - set(class_names)):
        if corrupt[label] == files[label]:
            reason = f"none of its {files[label]} files could be decoded"
        else:
            reason = (
                f"of its {files[label]} files, {corrupt[label]} could not be decoded and "
                f"{conflicts[label]} are copies of pictures filed under another class"
            )
        out.append(
            {
                "class": label,
                "files": files[label],
                "corrupt": corrupt[label],
                "label_conflicts": conflicts[label],
                "reason": reason,
            }
        )
    return out


def report_warnings(report: dict[str, Any]) -> list[str]:
    """What a data report says was left out without failing, one sentence each."""
    root = report.get("data_root", "")
    out = [
        f"class folder {root}/{folder} holds no image files; it is left out"
        for folder in report.get("empty_class_folders", [])
    ]
    corrupt = report.get("corrupt", {}).get("files", [])
    if corrupt:
        out.append(
            f"{len(corrupt)} file(s) under {root} could not be decoded and are skipped: "
            + _first_files(corrupt, with_reason=True)
        )
    out += [
        f"class {c['class']!r} under {root} is left out: {c['reason']}"
        for c in report.get("classes_left_out", [])
    ]
    return out


def format_data_report(report: dict[str, Any]) -> str:
    d = report["duplicates"]
    lines = [
        (
            f"files: {report['files']}  decoded: {report['decoded']}  corrupt (skipped): {report['corrupt']['count']}"
            + (
                f" ({_first_files(report['corrupt']['files'])})"
                if report["corrupt"].get("files")
                else ""
            )
        ),
        f"exact-duplicate groups: {d['exact_groups']} ({d['exact_files']} files)   "
        f"near-duplicate groups (phash <= {d['near_threshold_bits']} bits): {d['near_groups']} ({d['near_files']} files)",
        f"label conflicts left out: {report['label_conflicts']['groups']} groups "
        f"({report['label_conflicts']['files']} files)",
    ]
    if report.get("empty_class_folders"):
        lines.append(
            "empty class folders (no image files, left out): "
            + ", ".join(report["empty_class_folders"])
        )
    for c in report.get("classes_left_out", []):
        lines.append(f"class left out: {c['class']} ({c['reason']})")
    if report.get("given_split"):
        crossing = report["given_split"]["crossing_copies"]
        carved = "".join(
            f"; {s} carved out of train ({share})"
            for s, share in report["given_split"]["carved_from_train"].items()
        )
        lines.append(
            f"split kept from the folders (--keep-split): {crossing['files_left_out']} "
            f"copies across given splits left out{carved}"
        )
    lines.append(
        f"kept: {report['kept_files']} files in {report['kept_groups']} distinct-image groups"
    )
    counts = report["split"]["counts"]
    classes = list(next(iter(counts.values())))
    lines.append(f"{'split':<7}" + "".join(f"{c[:11]:>12}" for c in classes) + f"{'total':>8}")
    for split, per_class in counts.items():
        lines.append(
            f"{split:<7}"
            + "".join(f"{per_class[c]:>12}" for c in classes)
            + f"{sum(per_class.values()):>8}"
        )
    return "\n".join(lines)


_NAMED_FILES = 3  # files named in a one-line warning; the report lists them all


def _first_files(files: list[dict[str, Any]], with_reason: bool = False) -> str:
    named = ", ".join(
        f"{f['path']}" + (f" ({f['reason']})" if with_reason else "") for f in files[:_NAMED_FILES]
    )
    more = len(files) - _NAMED_FILES
    return named + (f" and {more} more (data_report.json lists them all)" if more > 0 else "")


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    fr = tuple(float(f) for f in fractions)
    if len(fr) != 3 or any(f < 0 for f in fr) or abs(sum(fr) - 1) > 1e-6:
        raise SplitError(
            f"split fractions {list(fractions)} must be three numbers (train, val, "
            "test) that add up to 1"
        )
    if any(abs(f * _FOLDS - round(f * _FOLDS)) > 1e-6 for f in fr) or fr[0] == 0:
        raise SplitError(
            f"split fractions {list(fractions)} must be multiples of {1 / _FOLDS} "
            f"(the split is built from {_FOLDS} stratified folds), e.g. 0.7 0.15 0.15"
        )
    return fr


def _check_files_present(manifest: SplitManifest, data_dir: Path) -> None:
    missing = [e["path"] for e in manifest.entries if not (data_dir / e["path"]).is_file()]
    if missing:
        raise SplitError(
            f"{len(missing)} file(s) of split manifest {manifest.path} are not under {data_dir} "
            f"(e.g. {missing[0]}). Point --data at the dataset the split was built from "
            f"({manifest.data_root}), or rebuild the split (--rebuild-split)."
        )


def _progress_bar(total: int, verbose: bool):
    if not verbose:
        return None
    from tqdm import tqdm

    return lambda it: tqdm(it, total=total, desc="scan", unit="img", file=sys.stderr)
