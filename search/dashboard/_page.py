"""Assemble the single self-contained HTML page, and serve it on localhost."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import html
import http.server
import os
import re
import time
from pathlib import Path
from typing import Any

from search.dashboard import _info
from search.dashboard._load import DashboardInputs, load_results


@dataclasses.dataclass
class Dashboard:
    """A rendered page and what went into it (the figure count lets tests check the browser)."""

    html: str
    figure_names: list[str]
    notes: list[str]
    timings_s: dict[str, float]


class _Page:
    """Collects page sections; every plotly figure gets a numbered, named container."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.figure_names: list[str] = []

    def add(self, markup: str) -> None:
        self.parts.append(markup)

    def figure(self, name: str, fig: Any) -> None:
        import plotly.io as pio

        index = len(self.figure_names)
        self.figure_names.append(name)
        div = pio.to_html(
            fig,
            include_plotlyjs=False,  # plotly.js is embedded once, in <head>
            full_html=False,
            div_id=f"figure-{index}-{_slug(name)}",
            config={"responsive": True, "displaylogo": False},
        )
        self.add(f'<div class="figure" data-figure="{html.escape(name)}">{div}</div>')

    def empty(self, message: str) -> None:
        self.add(f'<p class="empty">{html.escape(message)}</p>')


def render_dashboard(inputs: DashboardInputs) -> Dashboard:
    """Build the page for already-loaded results."""
    from search.dashboard import _render

    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - clock
        clock = now

    page = _Page()
    colors = _render.Colors()
    for study in inputs.studies:  # fix each study's colour in study order, whatever figure comes first
        colors.register(study.name, study.label, f"best searched: {study.name}")

    leaderboard = _info._get_leaderboard_info(inputs)
    summary = _info._get_summary_info(leaderboard)
    notes = list(inputs.notes)

    page.add(_summary_html(summary, inputs))
    page.add("<h2>Leaderboard</h2>")
    page.add(
        '<p class="lead">Baselines and each study\'s best model, ranked by validation accuracy (how '
        "models are selected); the test accuracy is each model's one score on the held-out test split. "
        "Dashed red lines: the published claims; dotted grey: our reproduction of each baseline.</p>"
    )
    if leaderboard.rows:
        page.figure("leaderboard", _render.make_leaderboard_figure(leaderboard, colors))
        page.add(_leaderboard_table(leaderboard))
    else:
        page.empty("No models yet: train a baseline or run a search, then regenerate this page.")
    lap("leaderboard")

    page.add("<h2>Accuracy against cost</h2>")
    page.add(
        '<p class="lead">Every completed trial (validation accuracy) and the baselines (stars). '
        "The black staircase is the Pareto front: no other model is both smaller (or faster) and more accurate.</p>"
    )
    page.add('<div class="grid">')
    for cost in ("params", "time"):
        tradeoff = _info._get_tradeoff_info(inputs, cost)
        if tradeoff.points:
            page.figure(f"tradeoff-{cost}", _render.make_tradeoff_figure(tradeoff, colors))
        else:
            page.empty(f"No completed trial or baseline with a recorded {'size' if cost == 'params' else 'training time'}.")
    page.add("</div>")
    lap("tradeoff")

    page.add("<h2>Optimization history</h2>")
    history = _info._get_history_info(inputs)
    if any(s.numbers for s in history.series):
        page.figure("history", _render.make_history_figure(history, colors))
    else:
        page.empty("No study has a completed trial yet.")
    lap("history")

    page.add("<h2>Where the errors are</h2>")
    panels = _info._get_confusion_info(inputs)
    if panels:
        page.add('<p class="lead">Test-set confusion matrices, best searched model against each baseline '
                 "(colour: share of the true class; numbers: images).</p>")
        page.figure("confusion", _render.make_confusion_figure(panels))
        page.figure("per-class", _render.make_per_class_figure(_info._get_per_class_info(inputs), colors))
    else:
        page.empty("No test report yet (baselines' metrics.json or a study's best.json).")
    lap("errors")

    page.add("<h2>Learning curves</h2>")
    curves = _info._get_learning_curve_info(inputs)
    if curves:
        page.add('<p class="lead">Each study\'s best trial and the baselines, per epoch.</p>')
        page.figure("learning-curves", _render.make_learning_curve_figure(curves, colors))
    else:
        page.empty("No per-epoch history recorded yet.")
    lap("learning curves")

    page.add("<h2>Hyperparameters, per study</h2>")
    if not inputs.studies:
        page.empty("No studies yet.")
    for study in inputs.studies:
        page.add(f"<h3>{html.escape(study.label)}</h3>")
        info = _info._get_param_study_info(study)
        lap("param importance")
        source = f"{info.n_complete} completed of {info.n_total} trials; figures drawn by optuna.visualization from the study {info.source}"
        if info.note:
            source += f" ({info.note})"
            notes.append(f"Study {study.name!r}: {info.note}; its figures were rebuilt from trials.jsonl.")
        page.add(f'<p class="lead">{html.escape(source)}.</p>')
        if info.message:
            page.empty(f"Parameter figures not shown: {info.message}.")
            continue
        for title, fig in _render.make_param_figures(info):
            page.figure(f"{study.name}: {title}", fig)
        lap("param figures")

    body = "\n".join(page.parts)
    document = _document(body, page.figure_names, notes, inputs)
    lap("html")
    return Dashboard(html=document, figure_names=page.figure_names, notes=notes, timings_s=timings)


def write_dashboard(
    out: str | os.PathLike | None = None,
    results: str | os.PathLike | None = None,
    studies: list[str] | None = None,
) -> tuple[Path, Dashboard]:
    """Load ``results``, render, and write the page to ``out`` (default ``<results>/dashboard.html``)."""
    inputs = load_results(results, studies)
    out = Path(out) if out is not None else inputs.root / "dashboard.html"
    dashboard = render_dashboard(inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(dashboard.html, encoding="utf-8")
    os.replace(tmp, out)  # a browser reloading mid-write never sees half a page
    return out, dashboard


def make_server(page: str | os.PathLike, port: int = 8000, host: str = "127.0.0.1"):
    """An HTTP server for the page's folder on localhost; returns ``(server, url)``.

    ``port=0`` picks a free port. The caller runs ``server.serve_forever()``.
    """
    page = Path(page).resolve()

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
            pass

    handler = functools.partial(QuietHandler, directory=str(page.parent))
    server = http.server.ThreadingHTTPServer((host, port), handler)
    return server, f"http://{host}:{server.server_address[1]}/{page.name}"


def serve_dashboard(page: str | os.PathLike, port: int = 8000, open_browser: bool = False) -> None:
    """Serve the page on localhost until Ctrl-C."""
    server, url = make_server(page, port)
    print(f"Serving {url} (Ctrl-C to stop)", flush=True)
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()


# --------------------------------------------------------------------------------------------
# HTML pieces


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "figure"


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


def _summary_html(summary: _info.SummaryInfo, inputs: DashboardInputs) -> str:
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
        f"{_pct(best.val_accuracy)}) — test accuracy <b>{_pct(best.test_accuracy)}</b> "
        f"(balanced {_pct(best.balanced_accuracy)}), {_params(best.params)} parameters, "
        f"{_duration(best.wall_time_s)} of training.</p><ul>{deltas}</ul></div>"
    )


def _leaderboard_table(info: _info.LeaderboardInfo) -> str:
    head = ("#", "model", "engine", "algorithm", "space", "test acc.", "balanced acc.", "val acc.",
            "params", "training time", "trials (complete / all)")
    rows = []
    for rank, r in enumerate(info.rows, start=1):
        trials = f"{r.trials_complete} / {r.trials_total}" if r.trials_total is not None else "–"
        cells = (rank, r.model, r.engine, r.algorithm, r.space, _pct(r.test_accuracy),
                 _pct(r.balanced_accuracy), _pct(r.val_accuracy), _params(r.params), _duration(r.wall_time_s), trials)
        rows.append(f'<tr class="{r.kind}">' + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return (
        '<table class="leaderboard"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head)
        + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
        + '<p class="small">Searched models without a test accuracy have no best.json yet (search still '
        "running); they rank after the tested ones, by validation accuracy.</p>"
    )


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #222; background: #fafafa; }
main { max-width: 1400px; margin: 0 auto; padding: 16px 28px 60px; }
h1 { margin: 8px 0 2px; font-size: 26px; }
h2 { margin-top: 36px; border-bottom: 2px solid #ddd; padding-bottom: 4px; }
h3 { margin: 26px 0 4px; }
.meta, .small { color: #666; font-size: 13px; }
.lead { color: #444; margin: 4px 0 10px; }
.answer { background: #fff; border-left: 5px solid #1f77b4; padding: 10px 18px; margin: 16px 0; font-size: 17px; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
.answer ul { margin: 4px 0; padding-left: 20px; font-size: 15px; columns: 2; }
.up { color: #2a8a2a; font-weight: 600; } .down { color: #c0392b; font-weight: 600; }
.notes { background: #fff8e1; border: 1px solid #f0d68a; padding: 8px 18px; margin: 12px 0; font-size: 14px; }
.figure { background: #fff; margin: 10px 0; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 14px; }
.empty { background: #f1f1f1; color: #555; padding: 18px; font-style: italic; }
table.leaderboard { border-collapse: collapse; width: 100%; background: #fff; font-size: 14px; margin-top: 8px; }
table.leaderboard th, table.leaderboard td { padding: 6px 10px; border-bottom: 1px solid #e5e5e5; text-align: right; }
table.leaderboard th:nth-child(-n+5), table.leaderboard td:nth-child(-n+5) { text-align: left; }
table.leaderboard tr.baseline { color: #555; background: #f6f6f6; }
table.leaderboard tbody tr:first-child td { font-weight: 600; }
"""


def _document(body: str, figure_names: list[str], notes: list[str], inputs: DashboardInputs) -> str:
    from plotly.offline import get_plotlyjs

    generated = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    studies = ", ".join(s.name for s in inputs.studies) or "none"
    notes_html = (
        '<div class="notes"><b>Missing or incomplete inputs</b><ul>'
        + "".join(f"<li>{html.escape(n)}</li>" for n in notes)
        + "</ul></div>"
        if notes
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="dashboard-figure-count" content="{len(figure_names)}">
<title>Art-images architecture search: results</title>
<style>{_CSS}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head>
<body data-figure-count="{len(figure_names)}">
<main>
<h1>Which model is best on art images?</h1>
<p class="meta">Generated {html.escape(generated)} from {html.escape(str(inputs.root))} — studies: {html.escape(studies)}.</p>
{notes_html}
{body}
</main>
<script type="text/javascript">
// A figure is drawn as soon as its div is parsed, before the grid around it has all its
// cells, so the first figure of a row takes the whole width; fit every figure to its cell.
window.addEventListener("load", function () {{
  document.querySelectorAll(".js-plotly-plot").forEach(function (el) {{ Plotly.Plots.resize(el); }});
}});
</script>
</body>
</html>
"""
