"""How long the dashboard takes with many trials.

Writes a synthetic results tree to a temp folder: both baselines, a Keras-Tuner-style study
(``trials.jsonl`` only) and an Optuna study in SQLite, each with ``--trials`` trials (500 by
default), then times loading, rendering and writing the page, stage by stage. With
``--browser`` it also times headless Chromium until every figure has drawn.

    python bench/dashboard_bench.py [--trials 500] [--repeat 3] [--browser] [--keep DIR]

The synthetic tree comes from the test fixtures (tests/search/dashboard/fixtures.py), so the
bench and the tests draw the same kind of data.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

from search.dashboard import write_dashboard  # noqa: E402
from search.latency import machine  # noqa: E402
from search.results import load_results  # noqa: E402
from tests.search.dashboard.fixtures import (  # noqa: E402
    write_baselines,
    write_keras_tuner_study,
    write_optuna_study,
)


def build_tree(root: Path, n_trials: int) -> float:
    start = time.perf_counter()
    write_baselines(root)
    write_keras_tuner_study(root, "bench_keras_tuner", n_trials=n_trials, seed=11)
    # Random sampling: TPE would spend most of this setup time choosing synthetic configs.
    write_optuna_study(root, "bench_optuna", n_trials=n_trials, seed=12, sampler="random")
    return time.perf_counter() - start


def browser_time(page: Path, expected: int) -> float:
    from playwright.sync_api import sync_playwright

    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        tab = browser.new_page(viewport={"width": 1400, "height": 900})
        start = time.perf_counter()
        tab.goto(page.resolve().as_uri(), wait_until="load")
        tab.wait_for_function(
            "n => Array.from(document.querySelectorAll('.figure .js-plotly-plot'))"
            ".filter(d => d.querySelector('svg.main-svg, canvas')).length >= n",
            arg=expected,
            timeout=120_000,
        )
        elapsed = time.perf_counter() - start
        browser.close()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=500, help="trials per study (default 500)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed renders (default 3; the best is reported)"
    )
    parser.add_argument(
        "--browser", action="store_true", help="also time headless Chromium drawing the page"
    )
    parser.add_argument(
        "--keep", metavar="DIR", help="build the tree in DIR and keep it (default: a temp folder)"
    )
    args = parser.parse_args()

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="dashboard_bench_"))
    try:
        setup = build_tree(root / "results", args.trials)
        print(f"machine: {machine()}, Python {platform.python_version()}")
        print(
            f"synthetic tree: 2 studies x {args.trials} trials (Keras Tuner table + Optuna SQLite), "
            f"built in {setup:.1f} s under {root}"
        )

        renders = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            path, dashboard = write_dashboard(root / "dashboard.html", root / "results")
            renders.append((time.perf_counter() - start, dashboard))
        best_time, dashboard = min(renders, key=lambda r: r[0])
        print(
            f"render + write: best {best_time:.2f} s of {args.repeat} "
            f"({', '.join(f'{t:.2f}' for t, _ in renders)} s); {len(dashboard.figure_names)} figures, "
            f"{path.stat().st_size / 1e6:.1f} MB"
        )
        print(
            "  by stage (best run): "
            + ", ".join(f"{k} {v:.2f} s" for k, v in dashboard.timings_s.items())
        )

        start = time.perf_counter()
        load_results(root / "results")
        print(f"  of which loading the results tree: {time.perf_counter() - start:.2f} s")
        if args.browser:
            print(
                f"headless Chromium, load until every figure drew: {browser_time(path, len(dashboard.figure_names)):.2f} s"
            )
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
