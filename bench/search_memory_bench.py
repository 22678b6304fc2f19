"""Memory flatness of a search: the search process's memory after each of N tiny trials.

    python bench/search_memory_bench.py                 # 15 trials, Optuna random sampler, cnn
    python bench/search_memory_bench.py --compare       # + in-process variants, + a bare Keras loop

Each trial builds a fresh cnn configuration (random sampler, 32 px synthetic images, 1 epoch)
through the real engine and TrialRunner; the runner writes the search process's memory after
each trial to ``resources.jsonl``. Reported: RssAnon per trial (the process's own memory, not
memory-mapped files), the growth from trial 3 on (the first trials pay one-off imports), the
least-squares slope in MiB per trial, and the search's wall time.

By default every trial trains in a child process (search.isolation). ``--compare`` adds the
same search in one process (``isolate=False``), the same without ``clear_session``, and a bare
Keras loop (build a small CNN, fit one epoch, ``clear_session`` + ``gc``) with no search code.
The bare loop grows too: TensorFlow keeps part of every fit's traced graph alive after
``clear_session`` (keras-team/keras#17458), which is why trials run in child processes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run_once(trials: int, clear: bool, isolate: bool, results: str, engine: str) -> list[float]:
    import keras

    if not clear:
        keras.backend.clear_session = lambda *a, **k: None  # what the runner would be without it
    from search.data import synthetic_data
    from search.run import run_search

    study = f"memory-{engine}-{'child' if isolate else 'inproc'}-{'clear' if clear else 'noclear'}"
    out = run_search(
        "cnn",
        synthetic_data(n_train=64, n_val=32, n_test=32),
        engine=engine,
        algorithm="random",
        trials=trials,
        epochs=1,
        max_image_size=32,
        results=results,
        study=study,
        seed=0,
        progress=False,
        isolate=isolate,
    )
    lines = [json.loads(line) for line in open(Path(out["study_dir"]) / "resources.jsonl")]
    return [row["rss_anon_mb"] for row in lines]


def bare_keras_loop(trials: int) -> list[float]:
    import gc

    import keras
    import numpy as np

    from search._process import rss_mb

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 32, 32, 3)).astype("uint8")
    y = rng.integers(0, 5, 64)
    out = []
    for _ in range(trials):
        inputs = keras.Input((32, 32, 3))
        h = keras.layers.Rescaling(1 / 255)(inputs)
        for _ in range(3):
            h = keras.layers.MaxPooling2D(2)(keras.layers.Conv2D(64, 3, activation="relu")(h))
        h = keras.layers.Dense(128, activation="relu")(keras.layers.Flatten()(h))
        model = keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(h))
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, validation_data=(x[:32], y[:32]), epochs=1, verbose=0)
        del model
        keras.backend.clear_session()
        gc.collect()
        out.append(rss_mb("RssAnon"))
    return out


def summarize(label: str, rss: list[float], wall_s: float) -> dict:
    import numpy as np

    x = np.arange(len(rss))
    slope = float(np.polyfit(x[2:], rss[2:], 1)[0]) if len(rss) > 3 else float("nan")
    summary = {
        "label": label,
        "trials": len(rss),
        "rss_anon_mb": [round(v, 1) for v in rss],
        "first": round(rss[0], 1),
        "last": round(rss[-1], 1),
        "growth_from_trial_3_mb": round(rss[-1] - rss[2], 1),
        "slope_mb_per_trial": round(slope, 2),
        "wall_s": round(wall_s, 1),
    }
    print(
        f"{label}: RssAnon {summary['first']} -> {summary['last']} MiB over {len(rss)} trials; "
        f"from trial 3: {summary['growth_from_trial_3_mb']:+} MiB, "
        f"slope {summary['slope_mb_per_trial']:+} MiB/trial; {wall_s:.1f} s"
    )
    print("  per trial:", ", ".join(f"{v:.0f}" for v in rss))
    return summary


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--trials", type=int, default=15)
    p.add_argument("--engine", default="optuna", choices=["optuna", "keras-tuner"])
    p.add_argument(
        "--compare",
        action="store_true",
        help="also run in one process (with and without clear_session) and a bare loop",
    )
    p.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--no-clear", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", help="write the summaries here")
    p.add_argument("--results", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.results:  # child process: one search, RssAnon list on stdout's last line
        if args.bare:
            rss = bare_keras_loop(args.trials)
        else:
            rss = run_once(
                args.trials, not args.no_clear, not args.in_process, args.results, args.engine
            )
        print("RSS " + json.dumps(rss))
        return 0

    import time

    summaries = []
    variants = [("one process per trial (as shipped)", [])]
    if args.compare:
        variants.append(("in one process, clear_session + gc", ["--in-process"]))
        variants.append(("in one process, without clear_session", ["--in-process", "--no-clear"]))
        variants.append(("bare Keras loop, no search code", ["--bare"]))
    with tempfile.TemporaryDirectory() as tmp:
        for label, extra in variants:
            # A fresh process per variant, so one's memory does not count toward the other's.
            t0 = time.perf_counter()
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--trials",
                    str(args.trials),
                    "--engine",
                    args.engine,
                    "--results",
                    tmp,
                    *extra,
                ],
                capture_output=True,
                text=True,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            )
            wall = time.perf_counter() - t0
            if out.returncode != 0:
                print(out.stderr[-3000:], file=sys.stderr)
                return out.returncode
            rss = json.loads(out.stdout.strip().splitlines()[-1][4:])
            summaries.append(summarize(label, rss, wall))
    if len(summaries) > 1:
        ratio = summaries[0]["wall_s"] / summaries[1]["wall_s"]
        print(
            f"wall time, one process per trial / in one process: {ratio:.2f}x "
            f"({args.trials} trials of about a second each; the cost is a fixed few seconds "
            f"per trial, so it shrinks with real trials)"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(summaries, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
