"""This package's search against the plain Keras Tuner loop a user would otherwise write.

    python -m bench.search --data ../shared/data/art-images [--spaces mobilenet-head,mobilenet,cnn]
        [--minutes-per-side 4] [--epochs 2] [--max-image-size 128] [--seed 0]

For each space, back to back on this machine and with the same budget (no trial starts after
``--minutes-per-side``, and the one running then stops, keeping its best epoch so far, on both
sides alike: the package's ``--max-time``, and the same ``search.training.StopAtTime`` in the
plain loop; before 2026-12-01 the plain loop's last trial ran to its end):

- plain: ``keras_tuner.RandomSearch`` over the same space (its models are built by the same
  ``space.build``), written as the Keras Tuner and Keras transfer-learning guides teach:
  ``image_dataset_from_directory`` per trial (the image size is a hyperparameter) on the same
  split (a folder of links to the manifest's files), ``ignore_errors()`` for files TensorFlow
  cannot decode, no caching; MobileNetV2 frozen + head, then, for ``mobilenet``, the top layers
  unfrozen and fitted at the lower learning rate.
- package: ``search.run_search``, by default with the keras-tuner engine and the same
  RandomSearch algorithm (``--package-search keras-tuner:random``: like for like), or the
  package's own search (``--package-search optuna:evolution --package-rungs auto``: rungs
  where the space can climb them), from scratch (neither side starts from a published recipe
  or a starting point), on cold caches (a fresh results folder: decoding and feature caching are paid
  inside its budget), one child process per trial as ``python -m search.run`` runs them.

Each side runs in its own process, so its peak memory (the largest process's, VmHWM) is its own.
Writes ``results/bench/search-<date>.json`` (seconds per trial-epoch, trials and distinct
configurations evaluated per hour (at any fidelity), time to reach the reproduced frozen
baseline's validation accuracy (COMPLETE trials only), best validation accuracy at equal
wall time, peak memory, and package / plain ratios) and ``search-<date>.html`` (best so far
against wall time, both sides, per space). Also counts what ``ignore_errors()`` silently drops
on the raw shared data. A benchmark, never a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SPACES = ("mobilenet-head", "mobilenet", "cnn")
# Configurations evaluated per hour, package / plain (the goals).
GOALS = {"mobilenet-head": 10.0, "mobilenet": 10.0, "cnn": 3.0}
# What happens at the end of a side's budget, kept beside each space's result; a result
# without it came from the code before 2026-12-01.
AT_THE_BUDGET = "no trial starts; the running one stops, keeping its best epoch so far, both sides"
AT_THE_BUDGET_BEFORE = (
    "no trial starts; the running one stops on the package side, runs to its end on the plain side"
)


def peak_rss_mb() -> float:
    """The largest resident set of this process and of every child it waited for (MiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)


def pretrained_weights(space) -> str | None:
    """The ImageNet weights file, as ``python -m search.run`` resolves it (None: the space has
    no pretrained backbone). Without it a transfer space starts from random weights."""
    if not space.uses_pretrained_weights:
        return None
    from spaces.backbones import get_backbone

    return get_backbone(space.backbones[0]).resolve_weights(None)


# -- the plain loop ---------------------------------------------------------------------------


def link_split(manifest, folder: Path) -> dict[str, Path]:
    """``{split: folder/split}`` holding ``<class>/<file>`` links to the manifest's files: the
    same split, in the layout ``image_dataset_from_directory`` reads."""
    out = {}
    for split in ("train", "val"):
        root = folder / split
        for i, entry in enumerate(manifest.subset(split)):
            target = Path(manifest.data_root) / entry["path"]
            link = root / entry["label"] / f"{i:05d}-{target.name}"
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, link)
        out[split] = root
    return out


def run_plain(
    space_name: str,
    folders: dict[str, Path],
    *,
    epochs: int,
    budget_s: float,
    max_image_size: int | None,
    seed: int,
    work: Path,
) -> dict[str, Any]:
    import keras
    import keras_tuner as kt

    from search.training import StopAtTime
    from spaces import BuildContext, get_space
    from spaces.mobilenet import BACKBONE_LAYER

    space = get_space(space_name)
    ctx = BuildContext(
        num_classes=5, max_image_size=max_image_size, weights=pretrained_weights(space)
    )
    start = time.monotonic()
    events: list[dict[str, Any]] = []

    def dataset(split: str, size: int):
        ds = keras.utils.image_dataset_from_directory(
            folders[split],
            image_size=(size, size),
            batch_size=32,
            label_mode="int",
            shuffle=split == "train",
            seed=seed,
            verbose=False,
        )
        return ds.ignore_errors()  # a few files TensorFlow cannot decode would end the search

    class Plain(kt.HyperModel):
        def build(self, hp):
            return space.build(hp, ctx)  # the same models as the package's trials

        def fit(self, hp, model, *args, **kwargs):
            if time.monotonic() - start > budget_s:
                raise kt.errors.FatalError("budget spent")  # ends the search
            t0 = time.monotonic()
            # The budget's end, as the package's --max-time stops its running trial: after the
            # batch that passes it (Keras validates the partial epoch; the best epoch counts).
            budget_end = StopAtTime(time.time() + budget_s - (t0 - start))
            size = int(model.input_shape[1])
            train, val = dataset("train", size), dataset("val", size)
            values = hp.values
            head_epochs, fine_epochs = epochs, 0
            if "fine_tune_layers" in values:
                head_epochs, fine_epochs = space.phase_epochs(values, epochs)
            history = model.fit(
                train, validation_data=val, epochs=head_epochs, verbose=0, callbacks=[budget_end]
            )
            curve = list(history.history.get("val_accuracy", []))
            if fine_epochs > 0 and budget_end.stopped_in_epoch is None:
                # The transfer-learning guide's second phase: unfreeze the top, lower the rate.
                base = model.get_layer(BACKBONE_LAYER)
                base.trainable = True
                for layer in base.layers[: len(base.layers) - int(values["fine_tune_layers"])]:
                    layer.trainable = False
                model.compile(
                    keras.optimizers.Adam(
                        float(values["learning_rate"]) * float(values["fine_tune_lr_factor"])
                    ),
                    "sparse_categorical_crossentropy",
                    metrics=["accuracy"],
                )
                more = model.fit(
                    train,
                    validation_data=val,
                    initial_epoch=head_epochs,
                    epochs=head_epochs + fine_epochs,
                    verbose=0,
                    callbacks=[budget_end],
                )
                curve += list(more.history.get("val_accuracy", []))
            events.append(
                {
                    "end_s": round(time.monotonic() - start, 2),
                    "trial_s": round(time.monotonic() - t0, 2),
                    "epochs": len(curve),
                    "state": "COMPLETE",
                    "config": json.dumps(dict(hp.values), sort_keys=True, default=str),
                    "val_accuracy": max(curve) if curve else None,
                    "stopped_by_budget": budget_end.stopped_in_epoch is not None,
                }
            )
            return {"val_accuracy": max(curve) if curve else 0.0}

    tuner = kt.RandomSearch(
        Plain(),
        objective="val_accuracy",
        max_trials=10**6,
        seed=seed + 1,
        directory=str(work / "plain-kt"),
        project_name=space_name,
        overwrite=True,
    )
    try:
        tuner.search()
    except kt.errors.FatalError:
        pass
    except RuntimeError as exc:  # keras-tuner wraps the FatalError raised in fit
        if "budget spent" not in str(exc):
            raise
    # Like the package side: the search's time is when its last trial ended.
    wall = events[-1]["end_s"] if events else round(time.monotonic() - start, 2)
    return {"events": events, "wall_s": wall}


# -- this package -----------------------------------------------------------------------------


def run_package(
    space_name: str,
    data_dir: str,
    *,
    epochs: int,
    budget_s: float,
    max_image_size: int | None,
    seed: int,
    work: Path,
    search: str = "keras-tuner:random",
    rungs: str | None = None,
) -> dict[str, Any]:
    from search.data import load_search_data
    from search.results import read_trials
    from search.run import run_search

    results = work / "package-results"
    (results / "data").mkdir(parents=True, exist_ok=True)
    # The committed split (the plain side uses it too); every cache starts cold.
    for name in ("split.json", "data_report.json"):
        if (REPO / "results" / "data" / name).exists():
            shutil.copy(REPO / "results" / "data" / name, results / "data" / name)
    started = dt.datetime.now(dt.timezone.utc)
    start = time.monotonic()
    data = load_search_data(data_dir, results=results, seed=seed)
    # The final test evaluation and ensemble are outside the search budget on both sides (the
    # plain loop has none): the rows' finishing times are what is compared.
    from spaces import get_space

    engine, algorithm = search.split(":")
    space = get_space(space_name)
    out = run_search(
        space_name,
        data,
        engine=engine,
        algorithm=algorithm,
        # Rungs where the space can carry a trial from one to the next (cnn), else none.
        rungs=rungs if space.climbs_rungs else None,
        trials=10**6,
        epochs=epochs,
        max_time=budget_s - (time.monotonic() - start),
        study=f"bench-{space_name}",
        results=results,
        seed=seed,
        max_image_size=max_image_size,
        progress=False,
        weights=pretrained_weights(get_space(space_name)),
        # From nothing written in, as the plain side's random search starts.
        references=False,
        starting_points=False,
    )
    events = []
    for row in read_trials(out["study_dir"] / "trials.jsonl"):
        end = dt.datetime.fromisoformat(row.finished_at) - started
        events.append(
            {
                "end_s": round(end.total_seconds(), 2),
                "trial_s": row.wall_time_s,
                "epochs": row.epochs_run,
                "state": row.state,
                "config": json.dumps(row.config, sort_keys=True, default=str),
                "val_accuracy": row.val_accuracy,
            }
        )
    events.sort(key=lambda e: e["end_s"])
    wall = events[-1]["end_s"] if events else round(time.monotonic() - start, 2)
    return {"events": events, "wall_s": wall}


# -- the comparison ---------------------------------------------------------------------------


def best_so_far(events: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """Best validation accuracy against wall time, over COMPLETE trials only: a trial stopped
    at a low fidelity rung (or by a pruner) has a score that is not comparable."""
    curve, best = [], None
    for e in sorted(events, key=lambda e: e["end_s"]):
        if e.get("state", "COMPLETE") != "COMPLETE":
            continue
        if e.get("val_accuracy") is not None and (best is None or e["val_accuracy"] > best):
            best = e["val_accuracy"]
        if best is not None:
            curve.append((e["end_s"], best))
    return curve


def summarize(side: dict[str, Any], target: float | None, equal_s: float) -> dict[str, Any]:
    events = side["events"]
    epochs = sum(e["epochs"] for e in events)
    curve = best_so_far(events)
    reached = next((t for t, v in curve if target is not None and v >= target), None)
    at_equal = [v for t, v in curve if t <= equal_s]
    # Configurations evaluated at some fidelity: distinct ones with a validation score.
    configs = {e.get("config") for e in events if e.get("val_accuracy") is not None}
    return {
        "trials": len(events),
        "configurations": len(configs),
        "configurations_per_hour": round(len(configs) / side["wall_s"] * 3600, 2)
        if side["wall_s"]
        else None,
        "trial_epochs": epochs,
        "wall_s": side["wall_s"],
        "seconds_per_trial_epoch": round(side["wall_s"] / epochs, 2) if epochs else None,
        "trials_per_hour": round(len(events) / side["wall_s"] * 3600, 2)
        if side["wall_s"]
        else None,
        "time_to_target_s": reached,
        "best_val_accuracy": curve[-1][1] if curve else None,
        "best_val_accuracy_at_equal_time": at_equal[-1] if at_equal else None,
        "peak_rss_mb": side.get("peak_rss_mb"),
        # Where the time goes: inside trials (as each trial timed itself) against the whole run
        # (process starts, data loading, caches, predictions kept between them).
        "seconds_in_trials": round(sum(e.get("trial_s") or 0 for e in events), 2),
        "best_so_far": curve,
        "trials_detail": events,
    }


def ratio(package: Any, plain: Any, *, invert: bool = False) -> float | None:
    if package is None or plain is None or not plain or not package:
        return None
    return round((plain / package) if invert else (package / plain), 2)


def frozen_target(space_name: str) -> tuple[float | None, str]:
    """The validation accuracy the reproduced baseline reached (for MobileNetV2: after its
    frozen phase, before fine-tuning), and where it comes from."""
    if space_name == "cnn":
        path = REPO / "results" / "baselines" / "cnn" / "metrics.json"
        if path.exists():
            return json.loads(path.read_text())["val"]["accuracy"], f"{path.relative_to(REPO)} val"
        return None, "no reproduced cnn baseline"
    path = REPO / "results" / "baselines" / "mobilenet" / "metrics.json"
    if not path.exists():
        return None, "no reproduced mobilenet baseline"
    metrics = json.loads(path.read_text())
    curve = metrics["history"]["val_accuracy"]
    head = len(curve) - int(metrics["config"].get("fine_tune_epochs") or 0)
    return max(curve[:head]), f"{path.relative_to(REPO)}: best val of its {head} frozen epochs"


def ignore_errors_losses(data_dir: Path) -> dict[str, Any]:
    """What ``image_dataset_from_directory(...).ignore_errors()`` yields from the raw shared
    data, against the image files it lists."""
    import keras
    import tensorflow as tf

    found = {}
    for split_dir in sorted(
        p
        for p in data_dir.rglob("*")
        if p.is_dir() and p.name in ("training_set", "validation_set")
    ):
        ds = keras.utils.image_dataset_from_directory(
            split_dir, image_size=(64, 64), batch_size=32, shuffle=False, verbose=False
        )
        listed = len(ds.file_paths)
        yielded = int(ds.ignore_errors().reduce(tf.constant(0), lambda n, b: n + tf.shape(b[0])[0]))
        found[str(split_dir.relative_to(data_dir))] = {
            "files_listed": listed,
            "images_yielded": yielded,
            "silently_dropped": listed - yielded,
        }
    return found


def side_main(args) -> None:
    """One side of one space, in this process; prints its JSON result."""
    work = Path(args.work)
    if args.side == "plain":
        from search.data import locate_data, prepare_split

        manifest = prepare_split(locate_data(args.data), verbose=False)
        folders = link_split(manifest, work / "links")
        out = run_plain(
            args.spaces,
            folders,
            epochs=args.epochs,
            budget_s=args.minutes_per_side * 60,
            max_image_size=args.max_image_size,
            seed=args.seed,
            work=work,
        )
    else:
        out = run_package(
            args.spaces,
            args.data,
            epochs=args.epochs,
            budget_s=args.minutes_per_side * 60,
            max_image_size=args.max_image_size,
            seed=args.seed,
            work=work,
            search=args.package_search,
            rungs=args.package_rungs,
        )
    out["peak_rss_mb"] = peak_rss_mb()
    print("BENCH-RESULT " + json.dumps(out))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.search",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", default=os.environ.get("ART_DATA", "../shared/data/art-images"))
    p.add_argument(
        "--spaces", default=",".join(SPACES), help="comma-separated (default: all three)"
    )
    p.add_argument("--minutes-per-side", type=float, default=4.0)
    p.add_argument("--epochs", type=int, default=2, help="epochs per trial, both sides")
    p.add_argument("--max-image-size", type=int, default=128, help="input size cap, both sides")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--package-search",
        default="keras-tuner:random",
        help="the package side's ENGINE:ALGORITHM (default keras-tuner:random, like for like; "
        "e.g. optuna:evolution, the package's own search)",
    )
    p.add_argument(
        "--package-rungs",
        help="the package side's --rungs (auto or a ladder) for spaces that can climb them (cnn)",
    )
    p.add_argument("--out", default=str(REPO / "results" / "bench"))
    p.add_argument("--no-losses", action="store_true", help="skip counting ignore_errors() drops")
    p.add_argument("--side", choices=("plain", "package"), help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.side:
        side_main(args)
        return 0
    spaces = [s for s in args.spaces.split(",") if s]
    unknown = [s for s in spaces if s not in SPACES]
    if unknown:
        print(
            f"error: --spaces {','.join(unknown)}: not benchmarked here; choose from "
            f"{', '.join(SPACES)}",
            file=sys.stderr,
        )
        return 2
    if args.package_search.count(":") != 1:
        print(
            f"error: --package-search {args.package_search}: not ENGINE:ALGORITHM "
            "(e.g. optuna:evolution)",
            file=sys.stderr,
        )
        return 2
    if args.minutes_per_side <= 0 or args.epochs < 1:
        print("error: --minutes-per-side must be positive and --epochs at least 1", file=sys.stderr)
        return 2
    if not Path(args.data).is_dir():
        print(
            f"error: --data {args.data}: no such folder (the art-images dataset)", file=sys.stderr
        )
        return 2

    report: dict[str, Any] = {
        "date": dt.date.today().isoformat(),
        "machine": (
            f"{platform.node()}: {os.cpu_count()} CPU cores, no GPU; the 2-core development "
            "machine, shared with other jobs while this ran (both sides saw the same "
            "kind of load, back to back, not the same load)"
        ),
        "settings": {
            "minutes_per_side": args.minutes_per_side,
            "epochs_per_trial": args.epochs,
            "max_image_size": args.max_image_size,
            "seed": args.seed,
            "algorithm": "plain: keras-tuner's RandomSearch; package (from scratch: no "
            "published recipe or starting point): "
            + args.package_search
            + (f" with --rungs {args.package_rungs}" if args.package_rungs else ""),
            "command": "python -m bench.search " + " ".join(sys.argv[1:]),
        },
        "spaces": {},
    }
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("ART_CACHE", None)  # a cache set for other work would not start cold
    for space in spaces:
        target, target_from = frozen_target(space)
        sides = {}
        for side in ("plain", "package"):
            work = Path(tempfile.mkdtemp(prefix=f"bench-{space}-{side}-"))
            try:
                print(
                    f"{space}: {side} side, {args.minutes_per_side} min ...",
                    file=sys.stderr,
                    flush=True,
                )
                proc = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "bench.search",
                        "--side",
                        side,
                        "--spaces",
                        space,
                        "--work",
                        str(work),
                        "--data",
                        args.data,
                        "--epochs",
                        str(args.epochs),
                        "--minutes-per-side",
                        str(args.minutes_per_side),
                        "--max-image-size",
                        str(args.max_image_size),
                        "--seed",
                        str(args.seed),
                        "--package-search",
                        args.package_search,
                        *(["--package-rungs", args.package_rungs] if args.package_rungs else []),
                    ],
                    cwd=REPO,
                    env=env,
                    capture_output=True,
                    text=True,
                )
            finally:
                shutil.rmtree(work, ignore_errors=True)
            line = next(
                (ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH-RESULT ")), None
            )
            if proc.returncode != 0 or line is None:
                print(f"error: {space} {side} side failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
                return 1
            sides[side] = json.loads(line[len("BENCH-RESULT ") :])
        equal = min(sides["plain"]["wall_s"], sides["package"]["wall_s"])
        plain, package = (summarize(sides[s], target, equal) for s in ("plain", "package"))
        ratios = {
            "configurations_per_hour": ratio(
                package["configurations_per_hour"], plain["configurations_per_hour"]
            ),
            "trials_per_hour": ratio(package["trials_per_hour"], plain["trials_per_hour"]),
            "seconds_per_trial_epoch": ratio(
                package["seconds_per_trial_epoch"], plain["seconds_per_trial_epoch"]
            ),
            "time_to_target": ratio(package["time_to_target_s"], plain["time_to_target_s"]),
            "best_val_accuracy_at_equal_time": ratio(
                package["best_val_accuracy_at_equal_time"], plain["best_val_accuracy_at_equal_time"]
            ),
            "peak_rss": ratio(package["peak_rss_mb"], plain["peak_rss_mb"]),
        }
        report["spaces"][space] = {
            "target_val_accuracy": target,
            "target_from": target_from,
            "equal_time_s": equal,
            "plain": plain,
            "package": package,
            "ratios_package_over_plain": ratios,
            "goal_trials_per_hour_ratio": GOALS[space],
            "goal_met": ratios["configurations_per_hour"] is not None
            and ratios["configurations_per_hour"] >= GOALS[space],
            "at_the_budget": AT_THE_BUDGET,
        }
        print(
            f"{space}: configurations/hour {plain['configurations_per_hour']} plain, "
            f"{package['configurations_per_hour']} package "
            f"(x{ratios['configurations_per_hour']})",
            file=sys.stderr,
            flush=True,
        )
    if not args.no_losses:
        report["ignore_errors_losses"] = ignore_errors_losses(Path(args.data))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"search-{report['date']}"
    if stem.with_suffix(".json").exists():
        # A rerun of some spaces keeps the day's other spaces (each says which run it came from).
        earlier = json.loads(stem.with_suffix(".json").read_text())
        for name, entry in earlier.get("spaces", {}).items():
            if name not in report["spaces"]:
                report["spaces"][name] = {
                    **entry,
                    "run": entry.get("run", earlier["settings"]["command"]),
                    "at_the_budget": entry.get("at_the_budget", AT_THE_BUDGET_BEFORE),
                }
        if "ignore_errors_losses" not in report and "ignore_errors_losses" in earlier:
            report["ignore_errors_losses"] = earlier["ignore_errors_losses"]
    for entry in report["spaces"].values():
        entry.setdefault("run", report["settings"]["command"])
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    write_figure(report, stem.with_suffix(".html"))
    print(f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.html')}")
    return 0


def write_figure(report: dict[str, Any], path: Path) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(report["spaces"])
    fig = make_subplots(rows=1, cols=max(len(names), 1), subplot_titles=names)
    for col, name in enumerate(names, start=1):
        entry = report["spaces"][name]
        for side, colour in (("plain", "#d62728"), ("package", "#1f77b4")):
            curve = entry[side]["best_so_far"]
            fig.add_trace(
                go.Scatter(
                    x=[t / 60 for t, _ in curve],
                    y=[v for _, v in curve],
                    mode="lines+markers",
                    line_shape="hv",
                    line_color=colour,
                    name=f"{side} ({name})",
                    legendgroup=side,
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
        if entry["target_val_accuracy"] is not None:
            fig.add_hline(y=entry["target_val_accuracy"], line_dash="dot", row=1, col=col)
        fig.update_xaxes(title_text="wall time (min)", row=1, col=col)
    fig.update_yaxes(title_text="best validation accuracy so far", row=1, col=1)
    fig.update_layout(
        title=f"Search: this package vs plain Keras Tuner ({report['date']}, "
        f"{report['machine'].split(';')[0]})",
        height=420,
    )
    fig.write_html(path, include_plotlyjs="cdn")


if __name__ == "__main__":
    sys.exit(main())
