"""Export a trained model for use: the best one overall, a study's best, a baseline, or a file.

    python -m search.export --best [--out exports/best]
    python -m search.export --baseline mobilenet --format keras,savedmodel,tflite,onnx --quantize
    python -m search.export --model path/to/model.keras --format onnx
    python -m search.export --study NAME --ensemble --format keras,tflite

Writes an export bundle: the model in each format asked for (``model.keras``,
``saved_model/``, ``model.tflite`` and with ``--quantize`` ``model-int8.tflite``,
``model.onnx``), its ``model.json`` sidecar (class names, input size), ``export.json`` (what
was written and how each file was checked) and a ``MODEL_CARD.md``. Every model takes raw RGB
pixels 0-255 at its input size (preprocessing is inside), and answers class probabilities in
the order of the class names.

Every file is checked right after it is written: loaded back in its own runtime and fed the
same sample of real images (the model's test split, or ``--sample DIR``), decoded as
``search.predict`` decodes them; it must give the Keras model's top-1 class on every image and
probabilities within 1e-4 (the int8 variant, lossy by design: the same top-1 class on at least
95% of them). A format whose converter fails, or whose file fails the check, is reported by
name with the reason and the others are still written.

Exit status: 0 when every format was written and passed its check; 1 when some did not (the
others are written); 2 when nothing was written (bad input, no model).

"Best" means the highest validation accuracy among the scored models (baselines and each
study's best, all on the same split), chosen by ``search.results.best_model`` like the
dashboard's leaderboard; the test split only reports, so the exported model's test score is
not the luckiest of several.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from search._files import first_line
from search._formats import checksum, cli_formats, format_versions, size_bytes
from search.console import quiet_tensorflow
from search.data import IMAGE_SUFFIXES, decode_image, load_manifest
from search.latency import Limits, add_limit_options
from search.model_io import BUNDLE_RECORD, FORMATS, FormatError, load_model, sidecar_path
from search.results import ModelResult, best_model, environment_info, load_results, write_json

DEFAULT_CHECK_IMAGES = 32


class ExportError(ValueError):
    pass


def candidates(results: str | None = None) -> list[ModelResult]:
    """Every scored model: baselines and each study's best, each with its test report."""
    return [m for m in load_results(results).models() if m.tested]


def choose(found: list[ModelResult], study: str | None, baseline: str | None) -> ModelResult:
    if study or baseline:
        kind, name = ("study", study) if study else ("baseline", baseline)
        match = [c for c in found if c.kind == kind and c.name == name]
        if not match:
            known = ", ".join(c.name for c in found if c.kind == kind) or "none"
            raise ExportError(f"no scored {kind} named {name!r}; scored {kind} names: {known}")
        return match[0]
    best = best_model(found)  # the dashboard's choice too: validation selects, test only reports
    if best is None:
        raise ExportError(
            "no scored model under results/: run `python -m baselines.run ...` "
            "or `python -m search.run ...` first"
        )
    return best


# --- the sample every exported file is checked on -------------------------------------------


@dataclass
class Sample:
    paths: list[str]
    images: np.ndarray  # uint8 (n, S, S, 3), decoded by search.data.decode_image as predict does
    origin: str  # where the images came from, in words


def _evenly(items: list, n: int) -> list:
    """``n`` items spread over the list (every class of a sorted split is represented)."""
    if len(items) <= n:
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def sample_images(meta: dict[str, Any], n: int, folder: str | Path | None = None) -> Sample:
    """``n`` real images at the model's input size: from ``folder`` (its image files, sorted),
    else from the test split of the model's split manifest."""
    size = int(meta["image_size"])
    if folder is not None:
        folder = Path(folder)
        if not folder.is_dir():
            raise ExportError(f"--sample {folder}: not a folder of images")
        paths = sorted(
            p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        origin = f"folder {folder}"
    else:
        manifest_path = meta.get("manifest")
        if not manifest_path or not Path(manifest_path).exists():
            raise ExportError(
                "cannot check the exported files on real images: the model's split "
                f"manifest {manifest_path or '(none recorded)'} is missing; pass "
                "--sample DIR (a folder of images)"
            )
        manifest = load_manifest(manifest_path)
        paths = [Path(manifest.data_root) / e["path"] for e in manifest.subset("test")]
        origin = f"test split of {manifest_path}"
    images, used, skipped = [], [], 0
    for path in _evenly(paths, n):
        try:
            images.append(decode_image(path, size))
            used.append(str(path))
        except Exception:  # noqa: BLE001 - an undecodable file is not a sample; counted below
            skipped += 1
    if not used:
        raise ExportError(
            f"no decodable image to check the exported files on in {origin}"
            + ("" if folder is not None else "; pass --sample DIR (a folder of images)")
        )
    unread = (
        f" ({skipped} undecodable file{'s' if skipped != 1 else ''} skipped)" if skipped else ""
    )
    return Sample(used, np.stack(images), f"{len(used)} images from the {origin}{unread}")


# --- writing and checking a bundle ---------------------------------------------------------


def _probabilities(model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    return np.concatenate(
        [
            np.asarray(model.predict_on_batch(images[i : i + batch_size].astype(np.float32)))
            for i in range(0, len(images), batch_size)
        ]
    )


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {first_line(exc, 300) if str(exc).strip() else '(no message)'}"


def check_file(
    format_name: str, path: Path, sample: Sample, expected: np.ndarray
) -> dict[str, Any]:
    """Load ``path`` back in its own runtime and compare its answers on the sample with the
    Keras model's: top-1 class per image and the largest probability difference."""
    fmt = FORMATS[format_name]
    loaded = fmt.load(path)
    got = loaded.predict(sample.images, batch_size=32)
    if got.shape != expected.shape:
        raise FormatError(f"{path} answers shape {got.shape}, the Keras model {expected.shape}")
    diff = np.abs(got - expected)
    same = got.argmax(axis=1) == expected.argmax(axis=1)
    agreement = float(same.mean())
    max_diff = float(diff.max())
    problems = []
    if agreement < fmt.min_agreement:
        problems.append(
            f"top-1 class agrees on {int(same.sum())} of {len(same)} images, "
            f"needs {fmt.min_agreement:.0%}"
        )
    if fmt.max_abs_diff is not None and max_diff > fmt.max_abs_diff:
        problems.append(
            f"probabilities differ by up to {max_diff:.2g}, tolerance {fmt.max_abs_diff:g}"
        )
    return {
        "runtime": loaded.runtime,
        "top1_agreement": agreement,
        "top1_agreeing": int(same.sum()),
        "max_abs_diff": max_diff,
        "mean_abs_diff": float(diff.mean()),
        "tolerance": {"max_abs_diff": fmt.max_abs_diff, "min_top1_agreement": fmt.min_agreement},
        "disagreements": [
            {
                "path": sample.paths[i],
                "keras": int(expected[i].argmax()),
                "this": int(got[i].argmax()),
            }
            for i in np.flatnonzero(~same)[:20]
        ],
        "status": "mismatch" if problems else "ok",
        **({"reason": "; ".join(problems)} if problems else {}),
    }


def write_bundle(
    model,
    sidecar: dict[str, Any],
    out: str | Path,
    formats: Sequence[str],
    sample: Sample,
    about: Sequence[str] = (),
    source: str | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Write ``model`` (any Keras model taking ``(batch, S, S, 3)`` pixels 0-255) into ``out`` in
    each of ``formats``, check every file on ``sample`` against ``model``, and write
    ``model.json`` (``sidecar``), ``export.json`` and ``MODEL_CARD.md`` (``about``: markdown
    lines on where the model came from and its scores). Returns the ``export.json`` record.

    A format whose writer or check fails is recorded (``status`` ``failed`` or ``mismatch``,
    with ``reason``); the others are still written.
    """
    out = Path(out)
    class_names, size = _check_inputs(model, sidecar, formats, sample)
    expected = _probabilities(model, sample.images)
    if (out / BUNDLE_RECORD).exists():
        # Re-exporting into a bundle: a format not written this time must not linger beside a
        # model.json and export.json that no longer describe it.
        for fmt in FORMATS.values():
            if fmt.name not in formats:
                _remove(out / fmt.filename)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "model.json", {**sidecar, **({"exported_from": source} if source else {})})
    written = {name: _write_format(name, model, out, sample, expected, log) for name in formats}
    record = {
        "class_names": class_names,
        "image_size": size,
        "input": (
            f"RGB pixels 0-255 (float32; uint8 values cast), shape (batch, {size}, {size}, 3), "
            "each image resized to the input size as search.predict does (bilinear, aspect "
            "ratio not kept); the preprocessing is inside the model"
        ),
        "output": "class probabilities (softmax), in the order of class_names",
        "source": source,
        "manifest": sidecar.get("manifest"),
        "check": {
            "images": len(sample.paths),
            "from": sample.origin,
            "paths": sample.paths,
            "reference": "the Keras model before export, predict_on_batch in float32",
        },
        "formats": written,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {**environment_info(), **format_versions()},
    }
    write_json(out / BUNDLE_RECORD, record)
    (out / "MODEL_CARD.md").write_text(model_card(list(about), record), encoding="utf-8")
    return record


def _check_inputs(
    model, sidecar: dict[str, Any], formats: Sequence[str], sample: Sample
) -> tuple[list[str], int]:
    """The sidecar's class names and input size, once they agree with the model, the formats
    are known and the sample is at that size."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ExportError(
            f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}"
        )
    class_names = list(sidecar.get("class_names") or [])
    size = int(sidecar.get("image_size") or 0)
    shape = tuple(model.input_shape)
    if shape[1:] != (size, size, 3):
        raise ExportError(
            f"the model takes input {shape}, but its sidecar says {size} x {size} RGB images"
        )
    if int(model.output_shape[-1]) != len(class_names):
        raise ExportError(
            f"the model has {model.output_shape[-1]} outputs but its sidecar names "
            f"{len(class_names)} classes"
        )
    if sample.images.shape[1:] != (size, size, 3):
        raise ExportError(f"the check sample is {sample.images.shape[1:]}, not {size} x {size} x 3")
    return class_names, size


def _write_format(
    name: str,
    model,
    out: Path,
    sample: Sample,
    expected: np.ndarray,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Write one format and check it: its ``export.json`` entry, ``failed`` with the reason
    when the converter or the check fails."""
    fmt = FORMATS[name]
    path = out / fmt.filename
    entry: dict[str, Any] = {"file": fmt.filename}
    log(f"writing {name} ({fmt.filename}) ...")
    started = time.perf_counter()
    try:
        fmt.write(model, path)
    except Exception as exc:  # noqa: BLE001 - one converter's failure must not stop the others
        _remove(path)  # half a file, or the previous export's: either would pass for this one
        return {**entry, "status": "failed", "reason": f"converter failed: {_one_line(exc)}"}
    entry["seconds_to_write"] = round(time.perf_counter() - started, 2)
    entry["size_bytes"] = size_bytes(path)
    entry["sha256"] = checksum(path)
    try:
        entry.update(check_file(name, path, sample, expected))
    except Exception as exc:  # noqa: BLE001 - written but unusable: say so, go on
        entry.update(status="failed", reason=f"written but cannot be run: {_one_line(exc)}")
    return entry


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def export(
    choice: ModelResult,
    out: Path,
    formats: Sequence[str],
    sample_folder: str | None = None,
    check_images: int = DEFAULT_CHECK_IMAGES,
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    source = Path(choice.model_path)
    if not source.exists():
        raise ExportError(
            f"{source} is missing (models are not committed: rerun the run that "
            "made it, on this machine)"
        )
    return export_file(
        source, out, formats, sample_folder, check_images, about=_scores(choice), log=log
    )


def export_file(
    source: Path,
    out: Path,
    formats: Sequence[str],
    sample_folder: str | None = None,
    check_images: int = DEFAULT_CHECK_IMAGES,
    about: Sequence[str] = (),
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Export a saved ``.keras`` model with its sidecar (see :func:`write_bundle`)."""
    if source.suffix != ".keras":
        raise ExportError(f"{source}: export reads a .keras model (with its .json sidecar)")
    model, meta = load_model(source)  # fails clearly on a broken file before anything is written
    if not meta.get("class_names") or not meta.get("image_size"):
        raise ExportError(
            f"{source} has no sidecar ({sidecar_path(source)}) naming its classes and "
            "input size; an exported model's callers would have nothing else"
        )
    sample = sample_images(meta, check_images, sample_folder)
    about = list(about) or [
        f"# model {source}",
        "",
        "- test scores: not recorded with this model; "
        "`python -m search.evaluate BUNDLE --split test` measures them",
    ]
    return write_bundle(model, meta, out, formats, sample, about=about, source=str(source), log=log)


def export_ensemble(
    study_name: str,
    results: str | None,
    out: Path,
    formats: Sequence[str],
    sample_folder: str | None = None,
    check_images: int = DEFAULT_CHECK_IMAGES,
    log: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Build a study's ensemble (``ensemble.json``: members picked on validation) into one
    Keras model from its members' kept models, score that model once on the test split (its
    own accuracy, not the kept predictions': each member now reads the image resized from the
    ensemble's input size), and export it like any model."""
    from search.ensemble import ensemble_model
    from search.results import read_json

    study = _existing_study(study_name, results)
    if not study.ensemble_json.exists():
        raise ExportError(
            f"study {study_name!r} has no ensemble ({study.ensemble_json}): an "
            "ensemble is built when a search with two or more completed trials ends"
        )
    meta = study_sidecar(study)
    chosen = read_json(study.ensemble_json)
    members = _ensemble_members(study, chosen, log)
    model = ensemble_model(members, name=f"{study_name}_ensemble")
    size = int(model.input_shape[1])
    sidecar = {
        **{k: meta.get(k) for k in ("class_names", "manifest", "versions")},
        "image_size": size,
        "study": study_name,
        "ensemble": chosen["members"],
    }
    test = test_score(model, meta, size, log, what="the built ensemble")
    sample = sample_images(sidecar, check_images, sample_folder)
    record = write_bundle(
        model,
        sidecar,
        out,
        formats,
        sample,
        about=_ensemble_about(study_name, chosen, test),
        source=f"ensemble of study {study_name}",
        log=log,
    )
    if test is not None:
        record["test_of_exported_model"] = test
        write_json(out / BUNDLE_RECORD, record)
    return record


def export_within_limits(
    study_name: str,
    results: str | None,
    limits,
    out: Path,
    formats: Sequence[str],
    sample_folder: str | None = None,
    check_images: int = DEFAULT_CHECK_IMAGES,
    log: Callable[[str], None] = lambda line: None,
    retrain: bool = False,
) -> dict[str, Any]:
    """Export the study's most accurate trial (on validation) within ``limits`` (a
    ``search.latency.Limits``) from the model the study kept (or, with ``retrain`` where it
    was not kept, trained again from its configuration), scored once on the test split;
    export.json's ``tradeoff`` and the card say what it gave up against the study's best
    (validation accuracy) and what it gained (latency, size, parameters)."""
    study = _existing_study(study_name, results)
    chosen = _within(study, limits)
    meta = study_sidecar(study)
    model, retrained = _trial_model(study, chosen, limits, results, retrain, log)
    size = int(model.input_shape[1])
    sidecar = {
        **{k: meta.get(k) for k in ("class_names", "manifest", "versions")},
        "image_size": size,
        "study": study_name,
        "trial_id": chosen.trial_id,
    }
    test = test_score(model, meta, size, log, what=f"trial {chosen.trial_id}'s model")
    tradeoff = {**_tradeoff(study.best_record(), chosen, limits), "retrained": retrained}
    record = write_bundle(
        model,
        sidecar,
        out,
        formats,
        sample_images(sidecar, check_images, sample_folder),
        about=_limited_about(study_name, chosen, tradeoff, test),
        source=f"trial {chosen.trial_id} of study {study_name}",
        log=log,
    )
    record["tradeoff"] = tradeoff
    if test is not None:
        record["test_of_exported_model"] = test
    write_json(out / BUNDLE_RECORD, record)
    return record


def _trial_model(study, chosen, limits, results, retrain: bool, log) -> tuple[Any, bool]:
    """``(model, retrained)``: the chosen trial's kept model, or (``retrain``) the model of
    its configuration trained again with the study's seed, data and epochs."""
    import keras

    path = study.kept_model_path(chosen)
    if path is not None:
        log(f"trial {chosen.trial_id} (validation {chosen.val_accuracy:.4f}): {path}")
        return keras.saving.load_model(path, compile=False), False
    if not retrain:
        raise ExportError(
            f"trial {chosen.trial_id} of study {study.name!r} is the most accurate within "
            f"{limits.describe()}, but its model was not kept (models/ holds the 10 best "
            "trials' models and those of the fronts against latency, size and parameters; "
            "a study run before that kept only the 10 best): nothing was written; --retrain "
            "trains it again from its configuration (the study's seed, data and epochs)"
        )
    from search.run import study_runner

    log(f"trial {chosen.trial_id}'s model was not kept: training it again ...")
    try:
        return study_runner(study, results).retrain(chosen), True
    except RuntimeError as exc:  # the configuration failed to train again
        raise ExportError(str(exc)) from None


def _existing_study(name: str, results: str | None):
    from search.study import SearchError, Study

    try:
        return Study.existing(name, results)
    except SearchError as exc:
        raise ExportError(str(exc)) from None


def study_sidecar(study) -> dict[str, Any]:
    """The study's best model's sidecar (class names, split manifest): every model of the
    study shares them."""
    from search.results import read_json

    if not sidecar_path(study.best_model_path).exists():
        raise ExportError(
            f"{study.best_model_path} has no sidecar naming the classes: resume "
            f"the study once (python -m search.run ... --study {study.name}) to "
            "write its best model"
        )
    return read_json(sidecar_path(study.best_model_path))


def _within(study, limits):
    """The study's most accurate completed trial (validation) within ``limits``, or an
    ExportError naming the cheapest trial per limit and the trials never measured."""
    from search.latency import FLAGS, UNITS
    from search.results import completed_trials, is_number, within_limits

    bounds = limits.bounds()
    found = within_limits(study.records(), bounds)
    if found:
        return found[0]
    done = completed_trials(study.records())
    nearest = []
    for field in bounds:
        measured = [r for r in done if is_number(getattr(r, field))]
        if len(measured) < len(done):
            nearest.append(f"{len(done) - len(measured)} completed trial(s) have no {field}")
        if measured:
            low = min(measured, key=lambda r: getattr(r, field))
            nearest.append(
                f"lowest {field}: trial {low.trial_id}'s {getattr(low, field):g} {UNITS[field]}"
            )
    raise ExportError(
        f"no completed trial of study {study.name!r} is within {limits.describe()}"
        + (f" ({'; '.join(nearest)})" if nearest else "")
        + ": raise the limit, or search with it (python -m search.run ... "
        + " ".join(f"{FLAGS[f]} {v:g}" for f, v in bounds.items())
        + ")"
    )


def _tradeoff(best, chosen, limits) -> dict[str, Any]:
    """What the chosen trial gave up against the study's best (validation accuracy) and
    gained (each cost both have): export.json's ``tradeoff``."""
    from search.results import COST_FIELDS, is_number

    def figures(r) -> dict[str, Any]:
        return {
            "trial_id": r.trial_id,
            "val_accuracy": r.val_accuracy,
            **{f: getattr(r, f) for f in COST_FIELDS},
        }

    gained = {
        f: getattr(best, f) - getattr(chosen, f)
        for f in COST_FIELDS
        if is_number(getattr(best, f)) and is_number(getattr(chosen, f))
    }
    return {
        "limits": limits.bounds(),
        "chosen": figures(chosen),
        "study_best": figures(best),
        "val_accuracy_given_up": best.val_accuracy - chosen.val_accuracy,
        "gained": gained,
    }


def _limited_about(
    study_name: str, chosen, tradeoff: dict[str, Any], test: dict[str, Any] | None
) -> list[str]:
    """The card's head for a model chosen within limits: the trade-off in words."""
    from search.latency import FLAGS, UNITS
    from search.results import standard_error

    best = tradeoff["study_best"]
    limits = ", ".join(f"{FLAGS[f]} {v:g}" for f, v in tradeoff["limits"].items())
    lines = [
        f"# trial {chosen.trial_id} of study {study_name}, within {limits}",
        "",
        f"- the most accurate trial on validation within the limits: {chosen.val_accuracy:.4f} "
        f"(used for selection); the study's best, trial {best['trial_id']}: "
        f"{best['val_accuracy']:.4f}. Given up: "
        f"{100 * tradeoff['val_accuracy_given_up']:.2f} points of validation accuracy "
        "(differences under two standard errors are noise)",
    ]
    for field, saved in tradeoff["gained"].items():
        mine, theirs = tradeoff["chosen"][field], best[field]
        ratio = f", {theirs / mine:.1f}x less" if mine else ""
        lines.append(
            f"- {field.replace('_ms', '').replace('_mb', '')}: {mine:,.4g} {UNITS[field]} "
            f"against {theirs:,.4g} (gained {saved:,.4g}{ratio})"
        )
    if tradeoff.get("retrained"):
        lines.append(
            "- its model was not kept: trained again from its configuration for this export "
            "(the study's seed, data and epochs)"
        )
    if test is not None:
        se = standard_error(test["accuracy"], test["n"])
        lines.append(
            f"- leak-free test accuracy {test['accuracy']:.4f} ± {se:.4f}, balanced "
            f"{test['balanced_accuracy']:.4f} on {test['n']} images (scored once, at export)"
        )
    lines += ["", "Configuration:", "", "```"]
    lines += [f"{k}: {v}" for k, v in sorted(chosen.config.items())] + ["```"]
    return lines


def _ensemble_members(study, chosen: dict[str, Any], log: Callable[[str], None]) -> list:
    """The ensemble's members as ``(Keras model, weight)``, loaded from the study's kept
    models; a member whose model was not kept is an error."""
    import keras

    by_id = {r.trial_id: r for r in study.records()}
    members = []
    for trial_id, count in chosen["members"].items():
        record = by_id.get(str(trial_id))
        path = study.kept_model_path(record) if record is not None else None
        if path is None:
            raise ExportError(
                f"the model of ensemble member trial {trial_id} of study "
                f"{study.name!r} was not kept (models/ holds the best trials' "
                "models only): export the study's best model (--study without "
                "--ensemble)"
            )
        log(f"member trial {trial_id} (weight {count}/{chosen['size']}): {path}")
        members.append((keras.saving.load_model(path, compile=False), count / chosen["size"]))
    return members


def test_score(
    model, meta: dict[str, Any], size: int, log: Callable[[str], None], what: str = "the model"
) -> dict[str, Any] | None:
    """``model``'s own score on the test split of the study's manifest (``meta``: the study's
    sidecar, :func:`study_sidecar`), or None when the manifest is gone."""
    if not (meta.get("manifest") and Path(meta["manifest"]).exists()):
        return None
    from search.data import load_images
    from search.evaluate import evaluate_model

    manifest = load_manifest(meta["manifest"])
    log(f"scoring {what} on the test split at {size} px ...")
    x, y = load_images(manifest, "test", size, verbose=False)
    return evaluate_model(model, x, y, meta["class_names"])


def _ensemble_about(
    study_name: str, chosen: dict[str, Any], test: dict[str, Any] | None
) -> list[str]:
    from search.results import standard_error

    about = [
        f"# ensemble of study {study_name}",
        "",
        f"- members (trial: times picked): {chosen['members']}, picked on validation by "
        "greedy selection with replacement; validation accuracy of the kept predictions "
        f"{chosen['val_accuracy']:.4f} (optimistic: the score it was picked on)",
    ]
    if test is not None:
        se = standard_error(test["accuracy"], test["n"])
        about.append(
            f"- this exported model's leak-free test accuracy {test['accuracy']:.4f} "
            f"± {se:.4f}, balanced {test['balanced_accuracy']:.4f} on {test['n']} "
            "images (scored once, as built; the kept predictions gave "
            f"{chosen['test']['accuracy']:.4f})"
        )
    return about


def _scores(choice: ModelResult) -> list[str]:
    test = choice.test
    lines = [
        f"# {choice.kind} {choice.name}",
        "",
        f"- leak-free test accuracy {test['accuracy']:.4f}, balanced {test['balanced_accuracy']:.4f} "
        f"on {test['n']} images (scored once, with the Keras model; every exported file agrees "
        "with it on the check sample below)",
    ]
    if choice.val_accuracy is not None:
        lines.append(f"- validation accuracy (used for selection) {choice.val_accuracy:.4f}")
    lines += ["", "| class | precision | recall | f1 | support |", "|---|---|---|---|---|"]
    for name, m in test["per_class"].items():
        lines.append(
            f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
        )
    lines += [
        "",
        "Configuration:",
        "",
        "```",
        *(f"{k}: {v}" for k, v in sorted(choice.config.items())),
        "```",
    ]
    return lines


def model_card(about: list[str], record: dict[str, Any]) -> str:
    size = record["image_size"]
    lines = [
        *about,
        "",
        f"- input: {size} x {size} RGB, pixels 0-255 (preprocessing is inside the model)",
        f"- classes (output order): {', '.join(record['class_names'])}",
        "",
        "## Exported files",
        "",
        f"Each file was loaded back in its own runtime and fed {record['check']['from']}, "
        "decoded as `search.predict` does, against the Keras model.",
        "",
        "| format | file | size | runtime | top-1 agreement | max abs. prob. difference | tolerance | check |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, e in record["formats"].items():
        if e["status"] == "failed":
            lines.append(f"| {name} | {e['file']} | - | - | - | - | - | failed: {e['reason']} |")
            continue
        tol = e["tolerance"]
        stated = (
            f"<= {tol['max_abs_diff']:g}, same top-1 on every image"
            if tol["max_abs_diff"] is not None
            else f"same top-1 on >= {tol['min_top1_agreement']:.0%} of images"
        )
        verdict = "ok" if e["status"] == "ok" else f"mismatch: {e['reason']}"
        lines.append(
            f"| {name} | {e['file']} | {e['size_bytes'] / 1e6:.2f} MB | {e['runtime']} | "
            f"{e['top1_agreeing']}/{record['check']['images']} | {e['max_abs_diff']:.2g} | "
            f"{stated} | {verdict} |"
        )
    lines += [
        "",
        "Use: `python -m search.predict BUNDLE_OR_FILE IMAGE...` (any of the files above, "
        "or this folder); `python -m search.evaluate BUNDLE_OR_FILE --split test`.",
        "",
    ]
    return "\n".join(lines)


def parse_formats(text: str, quantize: bool, saved_model: bool) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in cli_formats()]
    if unknown or not names:
        raise ExportError(
            f"--format {text!r}: unknown format {', '.join(unknown) or '(none given)'}; "
            f"give any of {','.join(cli_formats())}, separated by commas"
        )
    if saved_model and "savedmodel" not in names:
        names.append("savedmodel")
    if quantize:
        if "tflite" not in names:
            raise ExportError(
                "--quantize writes the int8 variant of the TFLite model: add tflite to --format"
            )
        names.insert(names.index("tflite") + 1, "tflite-int8")
    return list(dict.fromkeys(names))


def summary_lines(record: dict[str, Any]) -> list[str]:
    n = record["check"]["images"]
    lines = []
    for name, e in record["formats"].items():
        if e["status"] == "failed":
            lines.append(f"  {name:<12} {e['file']:<18} FAILED: {e['reason']}")
            continue
        verdict = "ok" if e["status"] == "ok" else f"MISMATCH: {e['reason']}"
        lines.append(
            f"  {name:<12} {e['file']:<18} {e['size_bytes'] / 1e6:7.2f} MB  top-1 "
            f"{e['top1_agreeing']}/{n}  max |dp| {e['max_abs_diff']:.1e}  {verdict}"
        )
    return lines


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m search.export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--best", action="store_true", help="the highest validation accuracy (default)"
    )
    which.add_argument("--study", help="a study's best model")
    which.add_argument("--baseline", help="cnn or mobilenet")
    which.add_argument("--model", help="a saved .keras model with its .json sidecar")
    parser.add_argument(
        "--ensemble",
        action="store_true",
        help="with --study: the study's ensemble, built into one model",
    )
    parser.add_argument("--out", help="output folder (default exports/<name>)")
    parser.add_argument("--results", help="results folder (default: $ART_RESULTS, then ./results)")
    parser.add_argument(
        "--format",
        default="keras",
        help=f"formats to write, any of {','.join(cli_formats())} (default keras)",
    )
    parser.add_argument(
        "--quantize",
        action="store_true",
        help="also write a dynamic-range int8 TFLite model (needs tflite in --format)",
    )
    parser.add_argument(
        "--saved-model",
        action="store_true",
        help="also write a TF SavedModel (the same as adding savedmodel to --format)",
    )
    parser.add_argument(
        "--sample",
        help="folder of images to check the exported files on (default: the model's test split)",
    )
    add_limit_options(parser, "pick")
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="with a limit: where the chosen trial's model was not kept, train it again from "
        "its configuration (the study's seed, data and epochs: one trial's training)",
    )
    parser.add_argument(
        "--check-images",
        type=int,
        default=DEFAULT_CHECK_IMAGES,
        help=f"how many images to check each file on (default {DEFAULT_CHECK_IMAGES})",
    )
    return parser


def _export_chosen(
    args: argparse.Namespace, formats: list[str], log: Callable[[str], None]
) -> tuple[str, Path, dict[str, Any]]:
    """Export what the command line chose: what it is in words, where it went, the record."""
    if args.ensemble and not args.study:
        raise ExportError("--ensemble exports a study's ensemble: add --study NAME")
    limits = Limits(args.max_params, args.max_latency_ms, args.max_size_mb)
    if limits.bounds():
        if not args.study or args.ensemble:
            raise ExportError(
                f"{limits.describe()} picks among a study's trials: give --study NAME "
                "(without --ensemble)"
            )
        out = Path(args.out or Path("exports") / f"{args.study}-within-limits")
        record = export_within_limits(
            args.study,
            args.results,
            limits,
            out,
            formats,
            args.sample,
            args.check_images,
            log=log,
            retrain=args.retrain,
        )
        chosen = record["tradeoff"]["chosen"]
        return (
            f"trial {chosen['trial_id']} of study {args.study} (validation accuracy "
            f"{chosen['val_accuracy']:.4f}, the most accurate within {limits.describe()})",
            out,
            record,
        )
    if args.ensemble:
        out = Path(args.out or Path("exports") / f"{args.study}-ensemble")
        record = export_ensemble(
            args.study, args.results, out, formats, args.sample, args.check_images, log=log
        )
        return f"the ensemble of study {args.study}", out, record
    if args.model:
        source = Path(args.model)
        if not source.exists():
            raise ExportError(f"--model {source}: not found")
        out = Path(args.out or Path("exports") / source.parent.name)
        record = export_file(source, out, formats, args.sample, args.check_images, log=log)
        return f"model {source}", out, record
    choice = choose(candidates(args.results), args.study, args.baseline)
    val = choice.val_accuracy
    what = (
        f"{choice.kind} {choice.name} ("
        + (f"validation accuracy {val:.4f}, " if val is not None else "")
        + f"test accuracy {choice.test['accuracy']:.4f})"
    )
    out = Path(args.out or Path("exports") / choice.name)
    return what, out, export(choice, out, formats, args.sample, args.check_images, log=log)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    quiet_tensorflow()  # the package's own lines on the console, not TensorFlow's start-up
    try:
        formats = parse_formats(args.format, args.quantize, args.saved_model)
        if args.check_images < 1:
            raise ExportError(f"--check-images {args.check_images}: give at least 1")
        log = lambda line: print(line, file=sys.stderr)  # noqa: E731
        what, out, record = _export_chosen(args, formats, log)
    except (ExportError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"exported {what} to {out}, checked on {record['check']['from']}:")
    print("\n".join(summary_lines(record)))
    bad = [name for name, e in record["formats"].items() if e["status"] != "ok"]
    for name in bad:
        e = record["formats"][name]
        print(f"{e['status']}: {name} ({out / e['file']}): {e['reason']}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
