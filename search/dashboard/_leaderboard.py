"""The answer at the top of the page, and the leaderboard: every model, best first."""

from __future__ import annotations

import dataclasses
import html

from search.dashboard._builder import PageBuilder
from search.dashboard._style import (
    BASELINE_COLOR,
    TEMPLATE,
    Colors,
    RefMark,
    _get_reference_marks,
    accuracy_range,
    add_marks,
    baseline_label,
)
from search.results import ModelResult, ResultsTree, is_number, rank_models, standard_error


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
    # Binomial standard errors of the two accuracies (None where the image count is unknown).
    val_se: float | None = None
    test_se: float | None = None


@dataclasses.dataclass
class LeaderboardInfo:
    # Best first, by search.results.rank_models: tested models by validation accuracy (how
    # models are selected; the test split only reports), then models without a test score yet.
    rows: list[LeaderboardRow]
    marks: list[RefMark]


def _row(model: ModelResult) -> LeaderboardRow:
    test = model.test or {}
    scores = dict(
        test_accuracy=test.get("accuracy"),
        balanced_accuracy=test.get("balanced_accuracy"),
        val_accuracy=model.val_accuracy,
        params=model.params,
        wall_time_s=model.wall_time_s,
        val_se=standard_error(model.val_accuracy, model.val_n),
        test_se=standard_error(test.get("accuracy"), test.get("n")),
    )
    if model.study is None:
        return LeaderboardRow(
            model=baseline_label(model.name),
            kind="baseline",
            baseline=model.name,
            engine="-",
            algorithm="-",
            space=model.name,
            **scores,
        )
    study = model.study
    return LeaderboardRow(
        model=model.name,
        kind="search",
        engine=study.engine,
        algorithm=study.algorithm,
        space=study.space,
        trial_id=model.trial_id,
        trials_complete=sum(t.state == "COMPLETE" for t in study.trials),
        trials_total=len(study.trials),
        **scores,
    )


def _get_leaderboard_info(tree: ResultsTree) -> LeaderboardInfo:
    return LeaderboardInfo(
        rows=[_row(m) for m in rank_models(tree.models())], marks=_get_reference_marks(tree, "test")
    )


@dataclasses.dataclass
class SummaryInfo:
    """The one-line answer at the top of the page."""

    best: LeaderboardRow | None
    deltas: list[tuple[str, float]]  # (reference label, best - reference) in accuracy points


def _get_summary_info(leaderboard: LeaderboardInfo) -> SummaryInfo:
    rows = leaderboard.rows
    if not rows or not is_number(rows[0].test_accuracy):
        return SummaryInfo(best=None, deltas=[])
    best = rows[0]  # search.results.best_model: the top of the ranking, when it is tested
    deltas = [
        (m.label, best.test_accuracy - m.value)
        for m in leaderboard.marks
        if not (m.kind == "reproduced" and m.baseline == best.baseline)  # itself: always +0
    ]
    return SummaryInfo(best=best, deltas=deltas)


def plot_leaderboard(info: LeaderboardInfo, colors: Colors):
    import plotly.graph_objects as go

    rows = info.rows
    # The value goes under each bar's name: text on the bars would collide with the reference
    # lines and diamonds, and the zoomed axis cuts off the bars' feet.
    names = [
        f"{r.model}<br><b>{r.test_accuracy:.1%}</b>"
        if r.test_accuracy is not None
        else f"{r.model}<br>(no test yet)"
        for r in rows
    ]
    fig = go.Figure()
    fig.add_bar(
        x=names,
        y=[r.test_accuracy for r in rows],
        marker_color=[colors(r.model) if r.kind == "search" else BASELINE_COLOR for r in rows],
        name="test accuracy",
        customdata=[[r.balanced_accuracy, r.params, r.wall_time_s, r.engine] for r in rows],
        hovertemplate="test accuracy %{y:.2%}<br>balanced %{customdata[0]:.2%}"
        "<br>params %{customdata[1]:,}<br>time %{customdata[2]:.0f} s<extra></extra>",
    )
    fig.add_scatter(
        x=names,
        y=[r.val_accuracy for r in rows],
        mode="markers",
        marker=dict(symbol="diamond", size=11, color="white", line=dict(color="black", width=1.5)),
        name="validation accuracy",
        hovertemplate="validation accuracy %{y:.2%}<extra></extra>",
    )
    add_marks(fig, info.marks)
    fig.update_layout(
        template=TEMPLATE,
        title="Test accuracy of every model (bars), validation accuracy (diamonds)",
        yaxis=dict(
            title="accuracy",
            tickformat=".0%",
            range=accuracy_range(
                [r.test_accuracy for r in rows] + [r.val_accuracy for r in rows], info.marks
            ),
        ),
        legend=dict(orientation="h", y=-0.15),
        height=460,
        bargap=0.35,
    )
    return fig


def section(page: PageBuilder) -> None:
    leaderboard = _get_leaderboard_info(page.tree)
    page.add(_summary_html(_get_summary_info(leaderboard)))
    page.add("<h2>Leaderboard</h2>")
    page.add(
        '<p class="lead">Baselines and each study\'s best model, ranked by validation accuracy (how '
        "models are selected); the test accuracy is each model's one score on the held-out test split. "
        "Dashed red lines: the published claims; dotted grey: our reproduction of each baseline.</p>"
    )
    if leaderboard.rows:
        page.figure("leaderboard", plot_leaderboard(leaderboard, page.colors))
        page.add(_leaderboard_table(leaderboard))
    else:
        page.empty("No models yet: train a baseline or run a search, then regenerate this page.")
    ensembles = _get_ensemble_info(page.tree)
    if ensembles:
        page.add(_ensemble_table(ensembles))


@dataclasses.dataclass
class EnsembleRow:
    study: str
    trials: int  # distinct member trials
    size: int  # picks, with replacement
    candidates: int
    val_accuracy: float | None
    val_se: float | None
    test_accuracy: float | None
    test_se: float | None
    balanced_accuracy: float | None
    single_val_accuracy: float | None  # the study's best single model, for comparison
    single_test_accuracy: float | None


def _get_ensemble_info(tree: ResultsTree) -> list[EnsembleRow]:
    """Each study's greedy ensemble (ensemble.json) beside its best single model."""
    rows = []
    for study in tree.studies:
        e = study.ensemble
        if not e:
            continue
        test, best = e.get("test") or {}, study.best or {}
        rows.append(
            EnsembleRow(
                study=study.name,
                trials=len(e.get("members") or {}),
                size=int(e.get("size") or 0),
                candidates=int(e.get("candidates") or 0),
                val_accuracy=e.get("val_accuracy"),
                val_se=standard_error(e.get("val_accuracy"), e.get("val_n")),
                test_accuracy=test.get("accuracy"),
                test_se=standard_error(test.get("accuracy"), test.get("n")),
                balanced_accuracy=test.get("balanced_accuracy"),
                single_val_accuracy=best.get("val_accuracy"),
                single_test_accuracy=(best.get("test") or {}).get("accuracy"),
            )
        )
    return rows


def _ensemble_table(rows: list[EnsembleRow]) -> str:
    head = (
        "study",
        "members (picks) of candidates",
        "val acc.",
        "test acc.",
        "balanced acc.",
        "best single model: val / test",
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(c))}</td>"
            for c in (
                r.study,
                f"{r.trials} ({r.size}) of {r.candidates}",
                _pct_se(r.val_accuracy, r.val_se),
                _pct_se(r.test_accuracy, r.test_se),
                _pct(r.balanced_accuracy),
                f"{_pct(r.single_val_accuracy)} / {_pct(r.single_test_accuracy)}",
            )
        )
        + "</tr>"
        for r in rows
    )
    return (
        '<h3>Ensembles</h3><p class="small">Each study\'s trials combined by greedy selection with '
        "replacement on validation (Caruana et al. 2004). The validation score is the one the "
        "ensemble was picked on, so it is optimistic; the test score is read once. Ensembles are "
        "not yet exported as one model.</p>"
        '<table class="leaderboard"><thead><tr>'
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr></thead><tbody>"
        + body
        + "</tbody></table>"
    )


def _pct_se(value: float | None, se: float | None) -> str:
    """An accuracy with its standard error in points: "91.9% ± 0.8"."""
    return _pct(value) + (f" ± {se * 100:.1f}" if is_number(value) and se is not None else "")


def _pct(value: float | None, digits: int = 1) -> str:
    return f"{value:.{digits}%}" if isinstance(value, (int, float)) else "–"


def _params(value: int | None) -> str:
    if not isinstance(value, (int, float)):
        return "–"
    return f"{value / 1e6:.2f} M" if value >= 1e6 else f"{value / 1e3:.0f} k"


def _duration(seconds: float | None) -> str:
    if not isinstance(seconds, (int, float)) or seconds <= 0:
        return "–"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _summary_html(summary: SummaryInfo) -> str:
    if summary.best is None:
        return '<div class="answer"><p>No model has a test accuracy yet, so there is no answer to "which is best" yet.</p></div>'
    best = summary.best
    deltas = "".join(
        f'<li><span class="{"up" if d >= 0 else "down"}">{d * 100:+.1f} pts</span> vs {html.escape(label)}</li>'
        for label, d in summary.deltas
    )
    return (
        '<div class="answer">'
        f"<p><b>Best model: {html.escape(best.model)}</b> (highest validation accuracy, "
        f"{_pct_se(best.val_accuracy, best.val_se)}) — test accuracy "
        f"<b>{_pct_se(best.test_accuracy, best.test_se)}</b> "
        f"(balanced {_pct(best.balanced_accuracy)}), {_params(best.params)} parameters, "
        f"{_duration(best.wall_time_s)} of training.</p><ul>{deltas}</ul></div>"
    )


def _leaderboard_table(info: LeaderboardInfo) -> str:
    head = (
        "#",
        "model",
        "engine",
        "algorithm",
        "space",
        "test acc.",
        "balanced acc.",
        "val acc.",
        "params",
        "training time",
        "trials (complete / all)",
    )
    rows = []
    for rank, r in enumerate(info.rows, start=1):
        trials = f"{r.trials_complete} / {r.trials_total}" if r.trials_total is not None else "–"
        cells = (
            rank,
            r.model,
            r.engine,
            r.algorithm,
            r.space,
            _pct_se(r.test_accuracy, r.test_se),
            _pct(r.balanced_accuracy),
            _pct_se(r.val_accuracy, r.val_se),
            _params(r.params),
            _duration(r.wall_time_s),
            trials,
        )
        rows.append(
            f'<tr class="{r.kind}">'
            + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
            + "</tr>"
        )
    return (
        '<table class="leaderboard"><thead><tr>'
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        + '<p class="small">Accuracies are shown ± one binomial standard error (about 0.8 points '
        "on this split's validation and test images at 90%): rows closer than two standard errors "
        "are within noise. Searched models without a test accuracy have no best.json yet (search "
        "still running); they rank after the tested ones, by validation accuracy.</p>"
    )
