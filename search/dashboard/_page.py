"""The page: a list of sections drawn in order into one self-contained HTML file, and serving it.

Each section is one figure module's ``section(page)``; adding a figure is one new module
(``_get_<figure>_info`` + its plot function + ``section``) and one entry in :data:`SECTIONS`.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import html
import http.server
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from search._files import write_text_atomically
from search.dashboard._builder import PageBuilder
from search.dashboard._confusion import section as confusion
from search.dashboard._front import section as front
from search.dashboard._history import section as history
from search.dashboard._leaderboard import section as leaderboard
from search.dashboard._learning_curves import section as learning_curves
from search.dashboard._param_importance import section as param_importance
from search.dashboard._per_class import section as per_class
from search.dashboard._rungs import section as rungs
from search.dashboard._tradeoff import section as tradeoff
from search.results import ResultsTree, load_results

# (stage name for Dashboard.timings_s, section), in page order.
SECTIONS: list[tuple[str, Callable[[PageBuilder], None]]] = [
    ("leaderboard", leaderboard),  # the answer at the top, then the leaderboard
    ("tradeoff", tradeoff),
    ("front", front),  # only where a trial or baseline has a measured latency or size
    ("history", history),
    ("rungs", rungs),  # only where a study climbed fidelity rungs
    ("errors", confusion),
    ("errors", per_class),  # under the confusion matrices' heading
    ("learning curves", learning_curves),
    ("param figures", param_importance),  # books its "param importance" stage itself
]


@dataclasses.dataclass
class Dashboard:
    """A rendered page and what went into it (the figure count lets tests check the browser)."""

    html: str
    figure_names: list[str]
    notes: list[str]
    timings_s: dict[str, float]


def render_dashboard(tree: ResultsTree) -> Dashboard:
    """Build the page for an already-loaded results tree."""
    page = PageBuilder(tree)
    for stage, section in SECTIONS:
        section(page)
        page.lap(stage)
    document = _document("\n".join(page.parts), page.figure_names, page.notes, tree)
    page.lap("html")
    return Dashboard(
        html=document, figure_names=page.figure_names, notes=page.notes, timings_s=page.timings_s
    )


def write_dashboard(
    out: str | os.PathLike | None = None,
    results: str | os.PathLike | None = None,
    studies: list[str] | None = None,
) -> tuple[Path, Dashboard]:
    """Load ``results``, render, and write the page to ``out`` (default ``<results>/dashboard.html``)."""
    tree = load_results(results, studies)
    out = Path(out) if out is not None else tree.root / "dashboard.html"
    dashboard = render_dashboard(tree)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(out, dashboard.html)  # a browser reloading never sees half a page
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


def _document(body: str, figure_names: list[str], notes: list[str], tree: ResultsTree) -> str:
    from plotly.offline import get_plotlyjs

    generated = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    studies = ", ".join(s.name for s in tree.studies) or "none"
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
<p class="meta">Generated {html.escape(generated)} from {html.escape(str(tree.root))} — studies: {html.escape(studies)}.</p>
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
