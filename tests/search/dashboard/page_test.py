"""The assembled page and the command line, without a browser."""

from __future__ import annotations

import re
import threading
import urllib.request

from search.dashboard import load_results, render_dashboard
from search.dashboard.__main__ import main
from search.dashboard._page import make_server
from tests.search.dashboard.fixtures import KT_STUDY, OPTUNA_STUDY, write_keras_tuner_study

# leaderboard, 2 trade-off plots, history, confusion, per-class, learning curves
COMMON_FIGURES = 7
PER_STUDY_FIGURES = 3  # importance, parallel coordinates, slices


def _declared_figures(page: str) -> int:
    return int(re.search(r'<body data-figure-count="(\d+)"', page).group(1))


def test_full_page_declares_every_figure_and_embeds_plotly_once(full_page):
    path, dashboard = full_page
    page = dashboard.html
    assert path.read_text(encoding="utf-8") == page
    assert len(dashboard.figure_names) == COMMON_FIGURES + 2 * PER_STUDY_FIGURES
    assert _declared_figures(page) == len(dashboard.figure_names)
    assert page.count('class="figure"') == len(dashboard.figure_names)
    assert page.count("Plotly.newPlot(") == len(dashboard.figure_names)
    assert len(re.findall(r"\* plotly\.js v\d", page)) == 1  # the library, inline, once
    from plotly.offline import get_plotlyjs

    # Works offline: nothing but plotly.js itself (which names its CDN in its own code) loads
    # or links anything from elsewhere.
    ours = page.replace(get_plotlyjs(), "")
    assert "<script src=" not in ours and "cdn.plot.ly" not in ours and "https://" not in ours
    assert dashboard.notes == []
    assert 'class="empty"' not in page
    for name in (KT_STUDY, OPTUNA_STUDY):
        assert f"{name}: parameter importance (fANOVA)" in dashboard.figure_names
    assert "Best model: baseline: MobileNetV2" in page  # the fixture's MobileNetV2 scores 94.3%


def test_empty_results_give_a_page_that_says_so(tmp_path):
    dashboard = render_dashboard(load_results(tmp_path))
    assert dashboard.figure_names == [] and _declared_figures(dashboard.html) == 0
    for text in (
        "No models yet",
        "No completed trial or baseline",
        "No study has a completed trial yet",
        "No test report yet",
        "No per-epoch history",
        "No studies yet",
        "Missing or incomplete inputs",
    ):
        assert text in dashboard.html


def test_a_study_with_only_failed_trials_gets_a_message_not_figures(tmp_path):
    from search.results import TrialRecord, append_trial, write_json

    d = tmp_path / "searches" / "broken"
    write_json(
        d / "study.json",
        {"study": "broken", "engine": "keras-tuner", "algorithm": "random", "space": "cnn"},
    )
    for n in range(3):
        append_trial(
            d / "trials.jsonl",
            TrialRecord(
                "broken",
                "keras-tuner",
                "random",
                "cnn",
                str(n),
                n,
                "FAIL",
                {"units": 8},
                error="OOM",
            ),
        )
    write_keras_tuner_study(tmp_path, "ok", n_trials=4, with_best=False)
    dashboard = render_dashboard(load_results(tmp_path))
    assert "Parameter figures not shown: only 0 completed trial(s) of 3" in dashboard.html
    assert "ok: parameter importance (fANOVA)" in dashboard.figure_names
    assert not any(name.startswith("broken:") for name in dashboard.figure_names)
    # Without any test report there is no confusion matrix, but the search figures are there.
    assert "confusion" not in dashboard.figure_names and "history" in dashboard.figure_names


def test_the_dashboard_page_lists_the_unreadable_rows(tmp_path):
    import json

    from search.results import TrialRecord, append_trial, write_json

    def row(n):
        return TrialRecord(
            "torn-study",
            "keras-tuner",
            "random",
            "cnn",
            str(n),
            n,
            "COMPLETE",
            {"units": 8},
            val_accuracy=0.5,
            epochs_run=1,
        )

    d = tmp_path / "searches" / "torn-study"
    write_json(
        d / "study.json",
        {"study": "torn-study", "engine": "keras-tuner", "algorithm": "random", "space": "cnn"},
    )
    append_trial(d / "trials.jsonl", row(0))
    with open(d / "trials.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row(1).to_dict())[:40])  # torn by a crash mid-write
    page = render_dashboard(load_results(tmp_path)).html
    assert (
        "Study &#x27;torn-study&#x27;: 1 line of" in page and "could not be read (line 2)" in page
    )


def test_cli_writes_only_the_requested_study(results_tree, tmp_path, capsys):
    out = tmp_path / "page.html"
    assert main(["--results", str(results_tree), "--study", KT_STUDY, "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert _declared_figures(page) == COMMON_FIGURES + PER_STUDY_FIGURES
    assert KT_STUDY in page and OPTUNA_STUDY not in page
    assert f"wrote {out}" in capsys.readouterr().out


def test_server_serves_the_written_page_on_localhost(full_page):
    path, _ = full_page
    server, url = make_server(path, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/dashboard.html")
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            assert response.read() == path.read_bytes()
    finally:
        server.shutdown()
        server.server_close()


def test_importing_the_dashboard_draws_nothing():
    """plotly and optuna load only when a page is drawn."""
    import subprocess
    import sys

    code = (
        "import sys, search.dashboard, search.dashboard.__main__; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('plotly', 'optuna')))"
    )
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        == "[]\n"
    )
