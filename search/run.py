"""Run an architecture search: ``python -m search.run --space cnn --engine optuna ...``.

Every engine writes the common results table (``search.results``) under
``results/searches/<study>/``; the same command resumes an interrupted study. At the end the
best trial (by validation accuracy) is evaluated once on the test split: ``best.json`` and
``best_model.keras``.

Examples::

    python -m search.run --list-spaces
    python -m search.run --space cnn --engine optuna --algorithm tpe --trials 30 --epochs 15 \\
        --max-image-size 128 --subset 0.5 --max-time 7200
    python -m search.run --space mobilenet --engine keras-tuner --algorithm hyperband --epochs 9
    python -m search.run --space cnn --engine optuna --synthetic --trials 3 --epochs 1  # smoke test
    python -m search.run --space cnn --engine optuna --algorithm nsga2 \\
        --objective accuracy,latency --max-size-mb 3   # the trade-off, within a limit
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any


def run_search(
    space: Any,
    data: Any,
    *,
    engine: str = "optuna",
    algorithm: str | None = None,
    trials: int = 10,
    epochs: int = 10,
    max_time: float | None = None,
    study: str | None = None,
    results: str | os.PathLike | None = None,
    seed: int | None = None,
    storage: str | None = None,
    pruner: str | None = None,
    max_image_size: int | None = None,
    batch_size: int = 32,
    weights: str | None = None,
    max_params: int | None = 50_000_000,
    max_latency_ms: float | None = None,
    max_size_mb: float | None = None,
    latency_format: str | None = None,
    objective: str | None = None,
    callbacks: Iterable = (),
    progress: bool = True,
    verbose: int = 0,
    isolate: bool = True,
    cv_folds: int | None = None,
    extra_settings: dict[str, Any] | None = None,
    heartbeat: int | None = None,
    references: bool = True,
    starting_points: bool = True,
    rungs: str | None = None,
    measure_latency: bool = True,
) -> dict[str, Any]:
    """Run (or resume) a search of ``space`` on ``data`` and evaluate its best trial on test.

    ``space`` is a registered name or a ``spaces.Space``; ``data`` a ``search.data`` source
    (``ArrayData`` or ``ManifestData``). ``isolate`` trains each trial in a child process
    (search.isolation: flat memory, out-of-memory kills recorded as failures); ``False`` trains
    in this process, which is faster for tiny trials. ``rungs`` ("auto" or a ladder, see
    ``search.fidelity``) makes every trial climb fidelity rungs; its last rung's epoch is then
    the trial's budget. ``max_latency_ms`` and ``max_size_mb`` (with ``max_params``) are hard
    limits: a configuration over one is measured (``search.latency``) and refused before it
    trains, a PRUNED row. ``objective`` is ``"accuracy"`` (the default) or ``"accuracy,COST"``
    with COST latency, params or size: a multi-objective Optuna study. A resumed study keeps
    its objective and limits. ``measure_latency`` False skips the latency and size measured
    after every completed trial (limits and cost objectives measure anyway). Returns ``{"study_dir", "records", "best", "ensemble"}``.
    """
    # Long: the public keyword API and the settings study.json records, one line each; the
    # work is in _ladder, _make_engine, _trial_runner and _finish.
    from search.engines import Budget, engine_class
    from search.isolation import close_children
    from search.results import read_json
    from search.study import SearchError, Study
    from spaces import get_space

    space = get_space(space)
    algorithm = algorithm or engine_class(engine).algorithms[0]  # an unknown engine raises
    if trials < 1 or epochs < 1:
        raise SearchError(f"--trials and --epochs must be at least 1 (got {trials}, {epochs})")
    name = study or f"{space.name}-{engine}-{algorithm}"
    the_study = Study(name, engine=engine, algorithm=algorithm, space=space.name, root=results)
    recorded = read_json(the_study.study_json) if the_study.study_json.exists() else {}
    if seed is None:
        seed = recorded.get("seed", 0)  # resuming without --seed keeps the study's seed
    ladder = _ladder(rungs, space, epochs, recorded, name)
    epochs = ladder.epochs if ladder is not None else epochs
    goals = _goals(
        objective,
        {"max_latency_ms": max_latency_ms, "max_size_mb": max_size_mb},
        recorded,
        name,
        latency_format,
    )
    # What study.json records of this run; the engine and the runner are built from it.
    settings = {
        "trials": trials,
        "epochs": epochs,
        "max_time": max_time,
        "pruner": pruner,
        "storage": storage,
        "max_image_size": max_image_size,
        "batch_size": batch_size,
        "weights": weights,
        "max_params": max_params,
        **goals,
        "isolate": isolate,
        "cv_folds": cv_folds,
        "references": references,
        "starting_points": starting_points,
        "rungs": ladder.to_dict() if ladder is not None else None,
        "measure_latency": measure_latency,
        **(extra_settings or {}),
    }
    # Built before study.json is written: the engine checks its storage URL first.
    search_engine = _make_engine(
        engine, algorithm, settings, seed=seed, ladder=ladder, heartbeat=heartbeat
    )
    the_study.open(
        seed=seed,
        settings=settings,
        data=data.describe(),
        reference_configs=space.reference_configs(),
    )
    runner = _trial_runner(space, data, the_study, settings, seed, verbose, callbacks)
    if ladder is not None:
        _decode_rung_sizes(data, ladder, max_image_size)
    try:
        search_engine.run(runner, the_study, Budget(trials, epochs, max_time, progress))
    finally:
        close_children()  # the child that trained the last trial, with its memory
    return _finish(the_study, runner)


def _make_engine(engine: str, algorithm: str, settings, *, seed, ladder, heartbeat):
    """The search engine for ``settings``; ``--heartbeat`` only for an engine whose
    constructor takes it (Optuna's workers share a study through the storage)."""
    from search.engines import get_engine
    from search.engines.base import takes_option
    from search.study import SearchError

    if heartbeat is not None and not takes_option(engine, "heartbeat"):
        raise SearchError(
            f"--heartbeat applies to --engine optuna only (its workers share a "
            f"study through the storage), not {engine!r}"
        )
    beat = {"heartbeat": heartbeat} if heartbeat is not None else {}
    if _multi_objective_engine(engine, settings["objective"]):
        # The engine's study has the objectives, and its sampler learns the limits.
        beat.update(objectives=tuple(settings["objective"].split(",")), limits=_limits(settings))
    return get_engine(
        engine,
        algorithm,
        seed=seed,
        pruner=settings["pruner"],
        storage=settings["storage"],
        references=settings["references"],
        starting_points=settings["starting_points"],
        ladder=ladder,
        **beat,
    )


def _trial_runner(space, data, study, settings, seed: int, verbose: int, callbacks):
    """The runner that trains the study's trials as ``settings`` say."""
    from search.fidelity import Ladder, look_seconds
    from search.trial import TrialRunner
    from spaces import BuildContext

    max_time = settings["max_time"]
    ladder = Ladder.from_dict(settings["rungs"]) if settings["rungs"] else None
    return TrialRunner(
        space,
        data,
        study,
        batch_size=settings["batch_size"],
        seed=seed,
        ctx=BuildContext(
            num_classes=len(data.class_names),
            max_image_size=settings["max_image_size"],
            weights=settings["weights"],
            climbs=ladder is not None,
        ),
        max_params=settings["max_params"],
        max_latency_ms=settings["max_latency_ms"],
        max_size_mb=settings["max_size_mb"],
        latency_format=settings.get("latency_format") or "tflite",
        measure=_when_measured(settings),
        verbose=verbose,
        callbacks=callbacks,
        isolate=settings["isolate"],
        cv_folds=settings["cv_folds"],
        stop_at=None if max_time is None else time.time() + float(max_time),
        look_s=look_seconds(max_time, ladder, settings["max_image_size"]),
    )


def _decode_rung_sizes(data, ladder, max_image_size: int | None) -> None:
    """Decode the training and validation images at every size the ladder names (and at
    --max-image-size) before the first trial, on the search's clock: a trial's first rung is
    timed against the allowances of search.trial, and must not pay for building the cache."""
    sizes = {rung.image_size for rung in ladder.rungs} | {max_image_size}
    for size in sorted(s for s in sizes if s is not None):
        for split in ("train", "val"):
            data.arrays(split, size)


def _finish(study, runner) -> dict[str, Any]:
    """The best trial evaluated once on test (and the ensemble): what ``run_search`` returns."""
    from search.results import read_json
    from search.scoring import finalize

    best = finalize(study, runner)
    ensemble = read_json(study.ensemble_json) if study.ensemble_json.exists() else None
    return {"study_dir": study.dir, "records": study.records(), "best": best, "ensemble": ensemble}


def _multi_objective_engine(engine: str, objective: str | None) -> bool:
    """Whether ``engine`` takes objectives and limits (Optuna); a SearchError for several
    objectives on one that does not (keras-tuner sums them into one score)."""
    from search.engines.base import takes_option
    from search.latency import parse_objective
    from search.study import SearchError

    try:
        objectives = parse_objective(objective)
    except ValueError as exc:
        raise SearchError(str(exc)) from None
    if takes_option(engine, "objectives"):
        return True
    if len(objectives) > 1:
        raise SearchError(
            f"--objective {','.join(objectives)} needs --engine optuna (a multi-objective "
            f"study with a Pareto front); {engine} sums objectives into one score"
        )
    return False


def study_runner(study, results: str | os.PathLike | None = None):
    """The runner a study's trials were trained by, rebuilt from its study.json (space, data,
    settings, seed), in this process and without the search's clock: to train one of its
    trials again (``TrialRunner.retrain``) where its model was not kept."""
    from types import SimpleNamespace

    from search.results import read_json
    from spaces import get_space

    recorded = read_json(study.study_json)
    settings = {
        **{k: None for k in ("max_latency_ms", "max_size_mb", "cv_folds", "rungs", "weights")},
        "objective": "accuracy",
        "batch_size": 32,
        "max_params": None,
        **(recorded.get("config") or {}),
        "isolate": False,
        "max_time": None,
    }
    seed = int(recorded.get("seed") or 0)
    options = ("synthetic", "data", "subset", "max_image_size")
    args = SimpleNamespace(
        **{k: settings.get(k) for k in options},
        seed=seed,
        keep_split=None,
        no_progress=True,
        results=results,
    )
    data, _ = _load_data(args)
    return _trial_runner(get_space(recorded["space"]), data, study, settings, seed, 0, ())


def _limits(settings):
    """The hard limits ``settings`` hold (``search.latency.Limits``)."""
    from search.latency import Limits

    return Limits(settings["max_params"], settings["max_latency_ms"], settings["max_size_mb"])


def _when_measured(settings) -> str | None:
    """When a trial's latency and size are measured: ``"before"`` it trains where a limit or
    the objective needs them (a configuration over a limit is then refused untrained), else
    ``"after"`` a COMPLETE trial (a few seconds: a child process's first TFLite conversion
    costs about 3 s), so that every study has its fronts; None under --no-latency."""
    costly = settings["objective"].split(",")[1:] in (["latency"], ["size"])
    if costly or _limits(settings).measured:
        return "before"
    return "after" if settings.get("measure_latency", True) else None


def _goals(
    objective: str | None,
    limits: dict[str, Any],
    recorded: dict[str, Any],
    study: str,
    latency_format: str | None = None,
):
    """``{"objective", "max_latency_ms", "max_size_mb", "latency_format"}`` for study.json:
    checked (a limit is a positive number, the format one of ``LATENCY_FORMATS``); a resumed
    study keeps its own, and refuses others given."""
    from search.latency import parse_objective
    from search.results import is_number
    from search.study import SearchError

    before = (recorded.get("config") or {}) if recorded else None
    try:
        goals = {
            "objective": ",".join(parse_objective(objective or (before or {}).get("objective")))
        }
    except ValueError as exc:
        raise SearchError(str(exc)) from None
    for key, value in limits.items():
        if value is not None and not (is_number(value) and value > 0):
            raise SearchError(f"--{key.replace('_', '-')} must be a positive number, got {value!r}")
        goals[key] = value if value is not None else (before or {}).get(key)
    goals["latency_format"] = _latency_format(latency_format, before)
    if before is not None:
        old = {"objective": ",".join(parse_objective(before.get("objective")))}
        old.update({key: before.get(key) for key in limits})
        old["latency_format"] = before.get("latency_format") or "tflite"
        changed = [f"{k} {old[k]} -> {goals[k]}" for k in goals if goals[k] != old[k]]
        if changed:
            raise SearchError(
                f"study {study!r} was run with other goals ({'; '.join(changed)}): its trials "
                "were chosen and refused under its own; resume it without them, or pass "
                "--study NAME for a new study"
            )
    return goals


def _latency_format(given: str | None, before: dict[str, Any] | None) -> str:
    """The study's latency format: ``given`` (checked: one of ``LATENCY_FORMATS``, with its
    runtime installed), else the resumed study's, else float TFLite (what studies recorded
    before the option timed)."""
    import importlib.util

    from search._formats import EXTRA
    from search.latency import LATENCY_FORMATS
    from search.study import SearchError

    if given is not None and given not in LATENCY_FORMATS:
        raise SearchError(f"--latency-format {given!r} is not one of {', '.join(LATENCY_FORMATS)}")
    fmt = given or (before or {}).get("latency_format") or "tflite"
    if fmt == "onnx":
        missing = [m for m in ("tf2onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
        if missing:
            raise SearchError(
                f"--latency-format onnx needs {' and '.join(missing)}, not installed here: {EXTRA}"
            )
    return fmt


def _ladder(rungs: str | None, space, epochs: int, recorded: dict[str, Any], study: str):
    """The study's fidelity ladder: ``--rungs`` ("auto": the space's sizes over ``epochs``),
    else the one a resumed study recorded, else None. A resumed study keeps its ladder."""
    from search.fidelity import FidelityError, Ladder, default_ladder, parse_ladder
    from search.study import SearchError

    before = (recorded.get("config") or {}).get("rungs")
    try:
        if rungs is None:
            return Ladder.from_dict(before) if before else None
        if not space.climbs_rungs:
            raise SearchError(
                f"--rungs: space {space.name!r} cannot carry a trial from one rung "
                "to the next (its fit cannot continue from a rung's last epoch); use it without --rungs"
            )
        ladder = (
            default_ladder(space.fidelity_sizes, epochs) if rungs == "auto" else parse_ladder(rungs)
        )
    except FidelityError as exc:
        raise SearchError(str(exc)) from None
    if recorded and (before or None) != ladder.to_dict():
        raise SearchError(
            f"study {study!r} was run with rungs {before}, not {ladder.to_dict()}; "
            "resume it without --rungs, or pass --study NAME for a new study"
        )
    return ladder


def build_parser() -> argparse.ArgumentParser:
    from search.engines.base import ENGINES, algorithms_help

    p = argparse.ArgumentParser(
        prog="python -m search.run",
        description="Architecture search over a registered space with Keras Tuner or Optuna.",
    )
    p.add_argument("--list-spaces", action="store_true", help="list the registered spaces and exit")
    p.add_argument("--space", help="registered space name (see --list-spaces)")
    p.add_argument("--engine", default="optuna", help=f"{' | '.join(ENGINES)} (default: optuna)")
    p.add_argument("--algorithm", help=algorithms_help())
    _add_search_options(p)
    _add_data_options(p)
    _add_run_options(p)
    return p


def _add_search_options(p: argparse.ArgumentParser) -> None:
    """How the search runs: its starting points, rungs, objectives and limits, pruner, budget,
    study and storage."""
    from search.latency import add_limit_options

    p.add_argument(
        "--skip-references",
        action="store_true",
        help="do not start a new study with the space's published recipes (their "
        "reproduced baselines are in results/baselines): for a small time budget",
    )
    p.add_argument(
        "--from-scratch",
        action="store_true",
        help="start a new study from nothing a person wrote in: neither the published "
        "recipes nor the space's starting points (judge the search by itself)",
    )
    p.add_argument(
        "--rungs",
        metavar="auto|SPEC",
        help="multi-fidelity: every trial climbs rungs of input size, training data and "
        "epochs, and only the best third at each rung goes on (optuna). 'auto': "
        "the space's ladder over --epochs (cnn: 64 px on 25%% of the training "
        "images, 96 px on 50%%, full size on all; mobilenet: 160, 224 px, full size; "
        "spaces on cached features: the trial's own size at every rung; a transfer "
        "trial's head, then its tuned top, go on from rung to rung); "
        "or size:fraction:epoch,... "
        "e.g. 64:0.25:8,96:0.5:16,-:1:24 (size '-': uncapped; the last epoch is "
        "the trial's budget)",
    )
    p.add_argument(
        "--objective",
        metavar="accuracy[,latency|params|size]",
        help="accuracy (default: validation accuracy) or accuracy with a cost to minimize "
        "beside it: a multi-objective study (--engine optuna; --algorithm nsga2, tpe, "
        "tpe-multivariate or random), its Pareto front in best.json and the dashboard; the "
        "best model is still the most accurate on validation",
    )
    add_limit_options(p)
    p.add_argument(
        "--pruner",
        help="optuna only: median | hyperband | halving | none (default "
        "median; with --rungs: halving, median or none, default "
        "halving)",
    )
    p.add_argument(
        "--trials",
        type=int,
        default=20,
        help="finished trials the study should reach, all its workers together",
    )
    p.add_argument(
        "--max-time",
        type=_at_least(float, 1, "seconds"),
        help="seconds the whole search may take: no new trial starts after this, and "
        "a trial still training then stops and keeps its best epoch so far",
    )
    p.add_argument("--epochs", type=int, default=10, help="maximum epochs per trial")
    p.add_argument("--study", help="study name (default <space>-<engine>-<algorithm>)")
    p.add_argument(
        "--seed", type=int, help="search seed (default 0; a resumed study keeps its own)"
    )
    p.add_argument(
        "--storage",
        help="optuna RDB URL (default sqlite in the study folder); "
        "workers started with one postgresql:// URL share the study",
    )
    p.add_argument(
        "--heartbeat",
        type=int,
        metavar="SECONDS",
        help="optuna only: how often a running trial reports to the storage (default "
        "30); a trial silent for 3 beats (its worker died) is retried elsewhere",
    )


def _add_data_options(p: argparse.ArgumentParser) -> None:
    """What a trial trains on, and at what size."""
    from search.data import add_data_options

    add_data_options(p)
    p.add_argument(
        "--subset", type=float, help="fraction of the training split to train on (low fidelity)"
    )
    p.add_argument(
        "--max-image-size",
        type=_at_least(int, MIN_IMAGE_SIZE, "pixels"),
        help=f"cap on the input size a trial may pick (low fidelity; at least {MIN_IMAGE_SIZE})",
    )
    p.add_argument("--batch-size", type=_at_least(int, 1, "images"), default=32)
    p.add_argument(
        "--cv",
        type=int,
        metavar="K",
        help="also K-fold cross-validate cheap trials (heads on cached features) over "
        "train + validation, folds never splitting a duplicate group; reported "
        "beside the validation score, which still selects",
    )
    p.add_argument(
        "--weights",
        help="backbone weights: imagenet | none | PATH.h5 "
        "(default imagenet: Keras' cache, see spaces/backbones.py)",
    )
    p.add_argument("--results", help="results root (default $ART_RESULTS, then ./results)")
    p.add_argument(
        "--synthetic",
        action="store_true",
        help="smoke test on a tiny generated dataset (32 px colour classes)",
    )


# The smallest input a trial may be capped to: below it the convolution stages leave no image.
MIN_IMAGE_SIZE = 16


def _at_least(kind, low, unit: str):
    """An argparse ``type``: a ``kind`` (int or float) of at least ``low``; anything else is
    one ``error:`` line (a negative time, a 0 px image or a 0 batch would run a search that
    fails every trial, or quietly trains at another size)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of {unit}") from None
        if not value >= low:  # also refuses nan
            raise argparse.ArgumentTypeError(f"must be at least {low} ({unit}), got {text}")
        return value

    return parse


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """What this process shows, and where trials train."""
    from search.latency import LATENCY_FORMATS

    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--verbose", type=int, default=0, help="keras fit verbosity")
    p.add_argument(
        "--in-process",
        action="store_true",
        help="train trials in this process instead of one child process per trial "
        "(faster for tiny trials; memory grows with every trial)",
    )
    p.add_argument(
        "--no-latency",
        action="store_true",
        help="do not measure each completed trial's TFLite latency and size (a few seconds "
        "a trial; limits and cost objectives still measure)",
    )
    p.add_argument(
        "--latency-format",
        metavar="|".join(LATENCY_FORMATS),
        help="the file a trial's latency and size are measured as: float TFLite in LiteRT "
        "(default), dynamic-range int8 TFLite, or ONNX in onnxruntime (needs tf2onnx and "
        "onnxruntime); limits and the objective's cost apply to it. A resumed study keeps "
        "its own",
    )


def _joined_rungs(argv: Sequence[str]) -> list[str]:
    """``--rungs -:0.5:5,...`` as ``--rungs=-:0.5:5,...``: argparse takes a value that starts
    with ``-`` for an option and refuses it, and a ladder whose rung 0 is uncapped does."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] == "--rungs" and arg.startswith("-:"):
            out[-1] = f"--rungs={arg}"
        else:
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(_joined_rungs(sys.argv[1:] if argv is None else argv))
    from search._files import NotWritableError, disk_full
    from search.data import DataNotFoundError, SplitError
    from spaces import get_space, list_spaces

    if args.list_spaces:
        names = list_spaces()
        width = max(map(len, names))
        for name in names:
            print(f"{name:<{width}}  {get_space(name).description}")
        return 0
    if not args.space:
        print(
            "error: --space is required (or --list-spaces); spaces: " + ", ".join(list_spaces()),
            file=sys.stderr,
        )
        return 2
    from search._process import sigterm_as_interrupt
    from search.study import SearchError

    try:
        with sigterm_as_interrupt():
            outcome = _search_from_args(args)
    except (SearchError, DataNotFoundError, SplitError) as exc:  # SplitError includes LeakError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        if "unknown space" in str(exc):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print(
            "\ninterrupted: finished trials are kept; run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    except Exception as exc:
        refused = exc if isinstance(exc, NotWritableError) else NotWritableError.of(exc)
        if refused is not None and not disk_full(exc):
            print(f"error: {refused}", file=sys.stderr)
            return 2
        if disk_full(exc):
            print(
                "error: the disk is full (" + _first_line(exc) + "); finished trials are "
                "kept: free some space and run the same command again to resume",
                file=sys.stderr,
            )
            return 1
        raise
    _print_summary(outcome)
    return _all_failed(outcome)


def _search_from_args(args) -> dict[str, Any]:
    """``run_search`` as the command line asks for it: the options checked, the data loaded."""
    from search.console import quiet_tensorflow
    from search.engines import engine_class
    from search.study import SearchError
    from spaces import get_space

    space = get_space(args.space)
    engine_class(args.engine)  # an unknown engine fails here, before the data is loaded
    if args.subset is not None and not 0 < args.subset <= 1:
        raise SearchError(f"--subset must be a fraction in (0, 1], got {args.subset}")
    if args.cv is not None and args.cv < 2:
        raise SearchError(f"--cv {args.cv}: cross-validation needs at least 2 folds")
    weights = _resolve_weights(args.weights, space)
    _multi_objective_engine(args.engine, args.objective)  # before the data is loaded
    quiet_tensorflow()  # once the options are checked; before anything imports tensorflow
    data, max_image_size = _load_data(args)
    return run_search(
        space,
        data,
        engine=args.engine,
        algorithm=args.algorithm,
        trials=args.trials,
        epochs=args.epochs,
        max_time=args.max_time,
        study=args.study,
        results=args.results,
        seed=args.seed,
        storage=args.storage,
        pruner=args.pruner,
        max_image_size=max_image_size,
        batch_size=args.batch_size,
        weights=weights,
        progress=not args.no_progress,
        verbose=args.verbose,
        isolate=not args.in_process,
        extra_settings={"subset": args.subset, "data": args.data, "synthetic": args.synthetic},
        heartbeat=args.heartbeat,
        cv_folds=args.cv,
        references=not (args.skip_references or args.from_scratch),
        starting_points=not args.from_scratch,
        rungs=args.rungs,
        objective=args.objective,
        max_latency_ms=args.max_latency_ms,
        max_size_mb=args.max_size_mb,
        latency_format=args.latency_format,
        measure_latency=not args.no_latency,
        **({"max_params": int(args.max_params)} if args.max_params is not None else {}),
    )


def _load_data(args):
    """``(data, max_image_size)``: the generated smoke-test data (32 px) or the dataset."""
    if args.synthetic:
        from search.data import synthetic_data

        return synthetic_data(seed=args.seed or 0), args.max_image_size or 32
    from search.data import load_search_data
    from search.results import results_root

    data = load_search_data(
        args.data,
        results=str(results_root(args.results)),
        subset=args.subset,
        seed=args.seed or 0,
        keep_split=args.keep_split,
        progress=not args.no_progress,
    )
    return data, args.max_image_size


def _first_line(exc: BaseException) -> str:
    from search._files import first_line

    return first_line(exc, 200)


def _all_failed(outcome: dict[str, Any]) -> int:
    """1 (with one line saying so) when every trial of the study failed, else 0."""
    records = outcome["records"]
    if not records or any(r.state != "FAIL" for r in records):
        return 0
    folder = outcome["study_dir"]
    print(
        f"error: all {len(records)} trial(s) failed; their errors are in the error column of "
        f"{folder / 'trials.csv'} (and a trial's log in {folder / 'logs'})",
        file=sys.stderr,
    )
    return 1


def _resolve_weights(flag: str | None, space) -> str | None:
    """``--weights`` for a space with a pretrained backbone (None for the others)."""
    if not space.uses_pretrained_weights:
        return None
    from search.study import SearchError
    from spaces.backbones import get_backbone

    backbone = get_backbone(space.backbones[0])
    try:
        return backbone.resolve_weights(flag)  # checks a file exists and is the headless one
    except (FileNotFoundError, ValueError) as exc:
        raise SearchError(f"--weights {flag!r}: {exc}") from None


def _print_summary(outcome: dict[str, Any]) -> None:
    records = outcome["records"]
    states = {s: sum(r.state == s for r in records) for s in ("COMPLETE", "PRUNED", "FAIL")}
    print(f"study: {outcome['study_dir']}")
    refused = sum(
        r.state == "PRUNED" and (r.error or "").startswith("over a limit") for r in records
    )
    print(
        "trials: "
        + ", ".join(f"{v} {k.lower()}" for k, v in states.items())
        + (f"; {refused} of the pruned refused untrained, over a limit" if refused else "")
    )
    best = outcome["best"]
    if best is None:
        print("no trial completed; no best model")
        return
    from search.results import standard_error

    val_se = standard_error(best["val_accuracy"], best.get("val_n"))
    test = best["test"]
    test_se = standard_error(test["accuracy"], test["n"])
    print(
        f"best trial {best['trial_id']}: val_accuracy {best['val_accuracy']:.4f}"
        + (f" ± {val_se:.4f}" if val_se is not None else "")
        + f", test accuracy {test['accuracy']:.4f} ± {test_se:.4f} on {test['n']} images "
        f"(balanced {test['balanced_accuracy']:.4f}; {best['params']:,} params, "
        f"{best['image_size']} px input)"
    )
    cv = best.get("cv")
    if cv:
        print(
            f"  its {cv['folds']}-fold cross-validation over train + validation: "
            f"{cv['accuracy']:.4f} ± {cv['standard_error']:.4f} on {cv['n']} images"
        )
    if best.get("latency_ms") is not None:
        print(
            f"  where it ships: {best['latency_ms']:.2f} ms per image (median, batch 1, "
            f"{best['latency']['runtime']}, {best['latency']['threads']} thread(s)), "
            f"{best['size_mb']:.2f} MB float TFLite"
        )
    print(f"config: {best['config']}")
    _print_rungs(best.get("rungs"))
    ensemble = outcome.get("ensemble")
    if ensemble:
        test = ensemble["test"]
        print(
            f"ensemble of {len(ensemble['members'])} trials (picked on validation): "
            f"val_accuracy {ensemble['val_accuracy']:.4f}, test accuracy {test['accuracy']:.4f} "
            f"± {ensemble['test_standard_error']:.4f} (balanced {test['balanced_accuracy']:.4f})"
        )


def _print_rungs(report: dict[str, Any] | None) -> None:
    """Trials per fidelity rung, how well each low rung ranked trials as the top did, and
    the warnings (best.json's ``rungs``)."""
    if not report:
        return
    reached = " / ".join(str(n) for n in report["reached"])
    ranks = ", ".join(
        f"rung {c['rung']} {'n/a' if c['spearman'] is None else format(c['spearman'], '.2f')} "
        f"(n={c['n']})"
        for c in report["correlations"]
    )
    print(f"rungs: {reached} trials reached each rung; Spearman with the top: {ranks or '-'}")
    for warning in report["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
