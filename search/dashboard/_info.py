"""What each figure shows, computed as plain data (optuna style: ``_get_<figure>_info``).

Nothing here imports plotly, so every number on the page can be unit-tested without a browser.
Only :func:`_get_param_study_info` touches optuna, because the per-study parameter figures are
drawn by ``optuna.visualization`` itself and need an ``optuna.Study`` to draw from.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from search.dashboard._load import BASELINE_NAMES, DashboardInputs, StudyResults

if TYPE_CHECKING:
    import optuna

# The accuracies the two reference models claim on the art-images test set. They are the
# published claims this project sets out to beat, not our results; a baseline's metrics.json
# may restate them ("published_accuracy"), which then wins.
PUBLISHED_ACCURACY = {"cnn": 0.85, "mobilenet": 0.94}
BASELINE_TITLES = {"cnn": "scratch CNN", "mobilenet": "MobileNetV2"}

# Trees in the fANOVA forest (optuna's default is 64); see _get_param_study_info.
FANOVA_TREES = 16

# Keras Tuner bookkeeping keys that land in a trial's config but are not hyperparameters.
_TUNER_BOOKKEEPING_PREFIX = "tuner/"


def _baseline_title(name: str) -> str:
    return BASELINE_TITLES.get(name, name)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --------------------------------------------------------------------------------------------
# Leaderboard and reference marks


@dataclasses.dataclass
class RefMark:
    """A horizontal reference line on accuracy plots."""

    label: str
    value: float
    kind: str  # "published" | "reproduced"
    baseline: str  # which reference model: "cnn" | "mobilenet"


@dataclasses.dataclass
class LeaderboardRow:
    model: str
    kind: str  # "baseline" | "search"
    engine: str
    algorithm: str
    space: str
    test_accuracy: float | None
    balanced_accuracy: float | None
    val_accuracy: float | None
    params: int | None
    wall_time_s: float | None
    trial_id: str | None = None
    trials_complete: int | None = None
    trials_total: int | None = None
    baseline: str | None = None  # for baseline rows: "cnn" | "mobilenet"


@dataclasses.dataclass
class LeaderboardInfo:
    # Best first: tested models by validation accuracy (how models are selected; the test
    # split only reports), then models without a test score yet, also by validation.
    rows: list[LeaderboardRow]
    marks: list[RefMark]


def _get_reference_marks(inputs: DashboardInputs, split: str = "test") -> list[RefMark]:
    """Published accuracies (always) and the reproduced baselines' accuracy on ``split``."""
    marks = []
    for name in BASELINE_NAMES:
        published = inputs.baselines.get(name, {}).get("published_accuracy", PUBLISHED_ACCURACY[name])
        if _finite(published):
            marks.append(RefMark(f"published {_baseline_title(name)} {published:.0%}", float(published), "published", name))
    for name, metrics in inputs.baselines.items():
        report = metrics.get(split)
        if isinstance(report, dict) and _finite(report.get("accuracy")):
            value = float(report["accuracy"])
            marks.append(RefMark(f"reproduced {_baseline_title(name)} {value:.1%}", value, "reproduced", name))
    return marks


def _best_complete_trial(study: StudyResults):
    complete = [t for t in study.trials if t.state == "COMPLETE" and _finite(t.val_accuracy)]
    return max(complete, key=lambda t: (t.val_accuracy, -t.number)) if complete else None


def _study_best_trial(study: StudyResults):
    """The trial best.json names, else the best completed trial by validation accuracy."""
    if study.best and study.best.get("trial_id") is not None:
        for trial in study.trials:
            if trial.trial_id == str(study.best["trial_id"]):
                return trial
    return _best_complete_trial(study)


def _best_val_accuracy(study: StudyResults) -> float:
    """Validation accuracy of a study's best model (best.json, else its trial); -1 if none."""
    value = (study.best or {}).get("val_accuracy")
    if not _finite(value):
        trial = _study_best_trial(study)
        value = trial.val_accuracy if trial is not None else None
    return float(value) if _finite(value) else -1.0


def _get_leaderboard_info(inputs: DashboardInputs) -> LeaderboardInfo:
    rows = []
    for name, metrics in inputs.baselines.items():
        test = metrics.get("test") or {}
        val = metrics.get("val") or {}
        params = metrics.get("params") or {}
        rows.append(
            LeaderboardRow(
                model=f"baseline: {_baseline_title(name)}",
                kind="baseline",
                baseline=name,
                engine="-",
                algorithm="-",
                space=name,
                test_accuracy=test.get("accuracy"),
                balanced_accuracy=test.get("balanced_accuracy"),
                val_accuracy=val.get("accuracy"),
                params=params.get("total") if isinstance(params, dict) else params,
                wall_time_s=metrics.get("wall_time_s"),
            )
        )
    for study in inputs.studies:
        best = study.best or {}
        test = best.get("test") if isinstance(best.get("test"), dict) else {}
        trial = _study_best_trial(study)
        if not best and trial is None:
            continue  # nothing finished yet: the notes say so
        rows.append(
            LeaderboardRow(
                model=study.name,
                kind="search",
                engine=study.engine,
                algorithm=study.algorithm,
                space=study.space,
                test_accuracy=test.get("accuracy"),
                balanced_accuracy=test.get("balanced_accuracy"),
                val_accuracy=best.get("val_accuracy", trial.val_accuracy if trial else None),
                params=best.get("params", trial.params if trial else None),
                wall_time_s=best.get("wall_time_s", trial.wall_time_s if trial else None),
                trial_id=str(best.get("trial_id", trial.trial_id if trial else "")) or None,
                trials_complete=sum(t.state == "COMPLETE" for t in study.trials),
                trials_total=len(study.trials),
            )
        )

    def order(row: LeaderboardRow):
        # Ranking by the test accuracy would pick the luckiest of several test scores;
        # validation picks, test reports.
        tested = _finite(row.test_accuracy)
        return (
            0 if tested else 1,
            -(row.val_accuracy if _finite(row.val_accuracy) else -1.0),
            -(row.test_accuracy if tested else 0.0),
            row.model,
        )

    rows.sort(key=order)
    return LeaderboardInfo(rows=rows, marks=_get_reference_marks(inputs, "test"))


@dataclasses.dataclass
class SummaryInfo:
    """The one-line answer at the top of the page."""

    best: LeaderboardRow | None
    deltas: list[tuple[str, float]]  # (reference label, best - reference) in accuracy points


def _get_summary_info(leaderboard: LeaderboardInfo) -> SummaryInfo:
    tested = [r for r in leaderboard.rows if _finite(r.test_accuracy)]
    if not tested:
        return SummaryInfo(best=None, deltas=[])
    best = tested[0]
    deltas = [
        (m.label, best.test_accuracy - m.value)
        for m in leaderboard.marks
        if not (m.kind == "reproduced" and m.baseline == best.baseline)  # itself: always +0
    ]
    return SummaryInfo(best=best, deltas=deltas)


# --------------------------------------------------------------------------------------------
# Accuracy against cost, with the Pareto front


@dataclasses.dataclass
class TradeoffPoint:
    series: str  # legend group: a study label or "baselines"
    name: str  # hover label
    cost: float
    accuracy: float


@dataclasses.dataclass
class TradeoffInfo:
    cost: str  # "params" | "time"
    x_title: str
    y_title: str
    points: list[TradeoffPoint]
    front: list[TradeoffPoint]  # ordered by increasing cost
    skipped: int  # completed trials without a usable cost


def _pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower cost, higher accuracy).

    Returned in order of increasing cost. Exact duplicates keep only the first one.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1], i))
    front, best_accuracy = [], -math.inf
    for i in order:
        # Sorted by cost, so a point is undominated iff it is strictly more accurate than every
        # cheaper-or-equal point already seen.
        if points[i][1] > best_accuracy:
            front.append(i)
            best_accuracy = points[i][1]
    return front


def _get_tradeoff_info(inputs: DashboardInputs, cost: str) -> TradeoffInfo:
    if cost not in ("params", "time"):
        raise ValueError(f"cost must be 'params' or 'time', not {cost!r}")
    points, skipped = [], 0
    for study in inputs.studies:
        for t in study.trials:
            if t.state != "COMPLETE" or not _finite(t.val_accuracy):
                continue
            value = t.params if cost == "params" else t.wall_time_s
            if not _finite(value) or value <= 0:
                skipped += 1
                continue
            points.append(TradeoffPoint(study.label, f"{study.name} trial {t.number}", float(value), float(t.val_accuracy)))
    for name, metrics in inputs.baselines.items():
        val = (metrics.get("val") or {}).get("accuracy")
        params = metrics.get("params") or {}
        value = (params.get("total") if isinstance(params, dict) else params) if cost == "params" else metrics.get("wall_time_s")
        if _finite(val) and _finite(value) and value > 0:
            points.append(TradeoffPoint("baselines", f"baseline: {_baseline_title(name)}", float(value), float(val)))
    front = [points[i] for i in _pareto_front([(p.cost, p.accuracy) for p in points])]
    x_title = "parameters (log scale)" if cost == "params" else "training time, s (log scale)"
    return TradeoffInfo(cost, x_title, "validation accuracy (every completed trial)", points, front, skipped)


# --------------------------------------------------------------------------------------------
# Optimization history


@dataclasses.dataclass
class HistorySeries:
    label: str
    engine: str
    numbers: list[int]  # trial numbers of the completed trials, increasing
    values: list[float]  # each trial's val accuracy
    best_so_far: list[float]  # running maximum of values
    failed: int  # FAIL trials left out
    pruned: int  # PRUNED trials left out


@dataclasses.dataclass
class HistoryInfo:
    series: list[HistorySeries]
    marks: list[RefMark]  # reproduced baselines' validation accuracy


def _get_history_info(inputs: DashboardInputs) -> HistoryInfo:
    series = []
    for study in inputs.studies:
        complete = sorted(
            (t for t in study.trials if t.state == "COMPLETE" and _finite(t.val_accuracy)),
            key=lambda t: t.number,
        )
        running, best = [], -math.inf
        for t in complete:
            best = max(best, float(t.val_accuracy))
            running.append(best)
        series.append(
            HistorySeries(
                label=study.label,
                engine=study.engine,
                numbers=[t.number for t in complete],
                values=[float(t.val_accuracy) for t in complete],
                best_so_far=running,
                failed=sum(t.state == "FAIL" for t in study.trials),
                pruned=sum(t.state == "PRUNED" for t in study.trials),
            )
        )
    marks = [m for m in _get_reference_marks(inputs, "val") if m.kind == "reproduced"]
    return HistoryInfo(series=series, marks=marks)


# --------------------------------------------------------------------------------------------
# Test-set reports: confusion matrices and per-class recall


@dataclasses.dataclass
class ReportModel:
    title: str
    report: dict[str, Any]


def _test_reports(inputs: DashboardInputs) -> list[ReportModel]:
    """The best searched model (by validation accuracy, as models are selected) first, then
    each baseline."""
    searched = [
        (_best_val_accuracy(s), s.best["test"], s.name)
        for s in inputs.studies
        if s.best and isinstance(s.best.get("test"), dict) and _finite(s.best["test"].get("accuracy"))
    ]
    models = []
    if searched:
        _, report, name = max(searched, key=lambda x: x[0])
        models.append(ReportModel(f"best searched: {name}", report))
    for name, metrics in inputs.baselines.items():
        if isinstance(metrics.get("test"), dict) and metrics["test"].get("confusion_matrix"):
            models.append(ReportModel(f"baseline: {_baseline_title(name)}", metrics["test"]))
    return models


@dataclasses.dataclass
class ConfusionPanel:
    title: str
    classes: list[str]
    counts: list[list[int]]  # rows: true class, columns: predicted class
    row_fraction: list[list[float]]  # counts / row total: the diagonal is each class's recall
    accuracy: float


def _get_confusion_info(inputs: DashboardInputs) -> list[ConfusionPanel]:
    panels = []
    for model in _test_reports(inputs):
        counts = [[int(v) for v in row] for row in model.report["confusion_matrix"]]
        fractions = [[v / sum(row) if sum(row) else 0.0 for v in row] for row in counts]
        panels.append(
            ConfusionPanel(model.title, list(model.report["classes"]), counts, fractions, float(model.report["accuracy"]))
        )
    return panels


@dataclasses.dataclass
class PerClassInfo:
    classes: list[str]
    models: list[tuple[str, list[float | None]]]  # (model title, recall per class; None: class absent)


def _get_per_class_info(inputs: DashboardInputs) -> PerClassInfo:
    models = _test_reports(inputs)
    classes: list[str] = []
    for m in models:
        classes += [c for c in m.report["classes"] if c not in classes]
    rows = []
    for m in models:
        per_class = m.report.get("per_class", {})
        rows.append((m.title, [per_class[c]["recall"] if c in per_class else None for c in classes]))
    return PerClassInfo(classes=classes, models=rows)


# --------------------------------------------------------------------------------------------
# Learning curves


@dataclasses.dataclass
class LearningCurve:
    title: str
    train_accuracy: list[float]
    val_accuracy: list[float]
    phase_change_epoch: int | None = None  # 1-based epoch where fine-tuning starts, if any


def _get_learning_curve_info(inputs: DashboardInputs) -> list[LearningCurve]:
    curves = []
    for study in inputs.studies:
        trial = _study_best_trial(study)
        if trial and (trial.history.get("accuracy") or trial.history.get("val_accuracy")):
            curves.append(
                LearningCurve(
                    f"{study.name} trial {trial.number}",
                    list(trial.history.get("accuracy", [])),
                    list(trial.history.get("val_accuracy", [])),
                )
            )
    for name, metrics in inputs.baselines.items():
        history = metrics.get("history") or {}
        if not (history.get("accuracy") or history.get("val_accuracy")):
            continue
        phases = history.get("phase") or []
        change = next((i + 1 for i, p in enumerate(phases) if p != phases[0]), None) if phases else None
        curves.append(
            LearningCurve(
                f"baseline: {_baseline_title(name)}",
                list(history.get("accuracy", [])),
                list(history.get("val_accuracy", [])),
                change,
            )
        )
    return curves


# --------------------------------------------------------------------------------------------
# Per-study parameter figures (importance, parallel coordinates, slices)


@dataclasses.dataclass
class ParamStudyInfo:
    study: str
    label: str
    source: str  # "optuna storage" | "rebuilt from trials.jsonl"
    n_complete: int
    n_total: int
    importances: dict[str, float]  # fANOVA, normalised to sum 1, most important first
    optuna_study: "optuna.Study | None" = None  # what optuna.visualization draws from
    message: str | None = None  # why the figures are not shown, when they are not
    note: str | None = None  # why an Optuna study was rebuilt from the table instead of loaded


def _get_param_study_info(study: StudyResults) -> ParamStudyInfo:
    """Load (Optuna) or rebuild (Keras Tuner) the study as an ``optuna.Study`` and rank params.

    Optuna studies are read from their own SQLite storage so the figures are exactly optuna's.
    Keras Tuner studies, and Optuna studies whose storage cannot be found, are rebuilt in memory
    from the common table with ``optuna.trial.create_trial`` + ``study.add_trials``, so both
    engines get the same figures from the same code.

    Importance is optuna's fANOVA evaluator (functional ANOVA on a random forest, fixed seed)
    for both engines, computed once here and handed to ``plot_param_importances``. It runs
    with 16 trees instead of optuna's 64: on the 500-trial bench the ranking was the same and
    the values within 0.02, at a fifth of the time (1.6 s instead of 8 s per study).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    loaded, fallback_reason = None, None
    if study.engine == "optuna":
        loaded, fallback_reason = _load_optuna_study(study)
    if loaded is not None:
        optuna_study, source = loaded, "optuna storage"
    else:
        optuna_study, source = _rebuild_study(study), "rebuilt from trials.jsonl"

    complete = [
        t for t in optuna_study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value)
    ]
    info = ParamStudyInfo(
        study=study.name,
        label=study.label,
        source=source,
        n_complete=len(complete),
        n_total=len(optuna_study.get_trials(deepcopy=False)) if loaded is not None else len(study.trials),
        importances={},
        optuna_study=optuna_study,
        note=fallback_reason,
    )
    if len(optuna_study.directions) != 1:
        info.message = "multi-objective study: parameter figures need a single objective"
    elif len(complete) < 2:
        info.message = f"only {len(complete)} completed trial(s) of {info.n_total}: nothing to compare yet"
    else:
        try:
            importances = optuna.importance.get_param_importances(
                optuna_study, evaluator=optuna.importance.FanovaImportanceEvaluator(n_trees=FANOVA_TREES, seed=0)
            )
        except (ValueError, RuntimeError) as exc:
            # e.g. every parameter took a single value, so nothing can be ranked.
            info.message = f"parameter importance unavailable: {exc}"
        else:
            info.importances = {k: float(v) for k, v in sorted(importances.items(), key=lambda kv: -kv[1])}
            if not info.importances:
                info.message = "no parameter varied across completed trials"
    return info


def _resolve_storage(study: StudyResults) -> str | None:
    prefix = "sqlite:///"
    # search.run records a --storage URL under config; without one the engine used the
    # default, optuna.db beside trials.jsonl.
    url = study.meta.get("storage") or (study.meta.get("config") or {}).get("storage")
    if not isinstance(url, str) or not url:
        url = prefix + "optuna.db"
    if not url.startswith(prefix):
        return url  # another RDB (postgres, mysql): use as given
    path = Path(url[len(prefix):])
    # The URL is usually relative to the directory the search ran from, so it breaks when the
    # results tree moves or the dashboard runs elsewhere. The database beside trials.jsonl is
    # surely this study's, so it is tried first; the URL as written only after.
    for candidate in (study.directory / path.name, path):
        if candidate.is_file():
            return prefix + str(candidate)
    return None


def _load_optuna_study(study: StudyResults) -> tuple["optuna.Study | None", str | None]:
    import optuna

    url = _resolve_storage(study)
    if url is None:
        return None, f"Optuna storage {study.meta.get('storage')!r} not found"
    try:
        stored = optuna.load_study(study_name=study.meta.get("optuna_study_name") or study.name,
                                   storage=url)
        trials = stored.get_trials(deepcopy=False)
        directions = stored.directions
    except Exception as exc:  # noqa: BLE001 - any storage problem degrades to the rebuilt study
        return None, f"could not load Optuna study from {url}: {type(exc).__name__}: {exc}"
    # Snapshot into memory: the three figures each read every trial, and a snapshot keeps them
    # consistent while a search is still writing to the database.
    snapshot = optuna.create_study(directions=directions)
    snapshot.add_trials(trials)
    return snapshot, None


def _infer_distributions(configs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Search-space distributions that cover every value seen, one per hyperparameter.

    Strings, booleans and mixed types become categorical; ints and floats numeric ranges. A
    range is put on a log scale when it is positive, spans a decade or more for floats (a factor
    16 for ints, so block counts such as 1..10 stay linear) and the values look log-spread: their
    median sits nearer the middle of the range in log space than in linear space. That tells a
    learning rate drawn log-uniformly from 1e-4..1e-2 (median near 1e-3) from a dropout drawn
    uniformly from 0..0.5 whose smallest draw happened to be 0.001 (median near 0.25).
    """
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    seen: dict[str, list[Any]] = {}
    for config in configs:
        for name, value in config.items():
            if value is not None and not name.startswith(_TUNER_BOOKKEEPING_PREFIX):
                seen.setdefault(name, []).append(value)
    distributions = {}
    for name, values in seen.items():
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numeric and all(math.isfinite(v) for v in values):
            low, high = min(values), max(values)
            integer = all(isinstance(v, int) for v in values)
            log = low > 0 and high / low >= (16 if integer else 10) and _looks_log_spread(values)
            if integer:
                distributions[name] = IntDistribution(int(low), int(high), log=log)
            else:
                distributions[name] = FloatDistribution(float(low), float(high), log=log)
        else:
            choices = list(dict.fromkeys(_categorical_value(v) for v in values))
            distributions[name] = CategoricalDistribution(choices)
    return distributions


def _looks_log_spread(values: Sequence[float]) -> bool:
    ordered = sorted(values)
    median = ordered[len(ordered) // 2] if len(ordered) % 2 else (ordered[len(ordered) // 2 - 1] + ordered[len(ordered) // 2]) / 2
    low, high = ordered[0], ordered[-1]
    linear_position = (median - low) / (high - low)
    log_position = (math.log(median) - math.log(low)) / (math.log(high) - math.log(low))
    return abs(log_position - 0.5) < abs(linear_position - 0.5)


def _categorical_value(value: Any) -> Any:
    return value if isinstance(value, (str, bool, int, float)) else str(value)


def _rebuild_study(study: StudyResults) -> "optuna.Study":
    import optuna

    usable = [t for t in study.trials if t.state == "COMPLETE" and _finite(t.val_accuracy)]
    distributions = _infer_distributions([t.config for t in usable])
    rebuilt = optuna.create_study(direction="maximize", study_name=study.name)
    frozen = []
    for t in usable:
        params = {
            k: (_categorical_value(v) if isinstance(distributions[k], optuna.distributions.CategoricalDistribution) else v)
            for k, v in t.config.items()
            if k in distributions and v is not None
        }
        frozen.append(
            optuna.trial.create_trial(
                value=float(t.val_accuracy),
                params=params,
                distributions={k: distributions[k] for k in params},
                user_attrs={"trial_id": t.trial_id, "number": t.number},
            )
        )
    rebuilt.add_trials(frozen)
    return rebuilt
