"""Memory flatness of a search: process RSS after each of N tiny trials.

    python bench/search_memory_bench.py                 # 15 trials, Optuna random sampler, cnn
    python bench/search_memory_bench.py --compare       # + without clear_session, + a bare Keras loop

Each trial builds a fresh cnn configuration (random sampler, 32 px synthetic images, 1 epoch)
through the real engine and TrialRunner; the runner writes VmRSS after its cleanup to
``resources.jsonl``. Reported: RSS per trial, the growth from trial 3 on (the first trials pay
one-off TensorFlow/Keras initialisation), and the least-squares slope in MiB per trial.

``--compare`` adds two references: the same search with ``clear_session`` disabled, and a bare
Keras loop (build a small CNN, fit one epoch, ``clear_session`` + ``gc``) with no search code
at all. Measured here (Keras 3.15, TensorFlow 2.21, CPU), the bare loop grows too, by about
10 MiB per fit: TensorFlow keeps every fit's traced functions (about 44 per fit) alive after
``clear_session``. The runner's cleanup keeps everything else flat; that residual growth is
upstream's, and the remedy if it matters for a very long search is a fresh process every
few hundred trials (the same command resumes the study).
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


def run_once(trials: int, clear: bool, results: str, engine: str) -> list[float]:
    import keras

    if not clear:
        keras.backend.clear_session = lambda *a, **k: None  # what the runner would be without it
    from search.run import run_search
    from search.trial import synthetic_data

    out = run_search("cnn", synthetic_data(n_train=64, n_val=32, n_test=32), engine=engine,
                     algorithm="random", trials=trials, epochs=1, max_image_size=32,
                     results=results, study=f"memory-{engine}-{'clear' if clear else 'noclear'}",
                     seed=0, progress=False)
    lines = [json.loads(l) for l in open(Path(out["study_dir"]) / "resources.jsonl")]
    return [l["rss_mb"] for l in lines]


def bare_keras_loop(trials: int) -> list[float]:
    import gc

    import keras
    import numpy as np

    from search.trial import rss_mb

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
        out.append(rss_mb())
    return out


def summarize(label: str, rss: list[float]) -> dict:
    import numpy as np

    x = np.arange(len(rss))
    slope = float(np.polyfit(x[2:], rss[2:], 1)[0]) if len(rss) > 3 else float("nan")
    summary = {"label": label, "trials": len(rss), "rss_mb": [round(v, 1) for v in rss],
               "first": round(rss[0], 1), "last": round(rss[-1], 1),
               "growth_from_trial_3_mb": round(rss[-1] - rss[2], 1),
               "slope_mb_per_trial": round(slope, 2)}
    print(f"{label}: RSS {summary['first']} -> {summary['last']} MiB over {len(rss)} trials; "
          f"from trial 3: {summary['growth_from_trial_3_mb']:+} MiB, slope {summary['slope_mb_per_trial']:+} MiB/trial")
    print("  per trial:", ", ".join(f"{v:.0f}" for v in rss))
    return summary


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=15)
    p.add_argument("--engine", default="optuna", choices=["optuna", "keras-tuner"])
    p.add_argument("--compare", action="store_true", help="also run without clear_session")
    p.add_argument("--no-clear", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", help="write the summaries here")
    p.add_argument("--results", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.results:  # child process: one search, RSS list on stdout's last line
        if args.bare:
            rss = bare_keras_loop(args.trials)
        else:
            rss = run_once(args.trials, not args.no_clear, args.results, args.engine)
        print("RSS " + json.dumps(rss))
        return 0

    summaries = []
    variants = [("with clear_session + gc (as shipped)", [])]
    if args.compare:
        variants.append(("without clear_session", ["--no-clear"]))
        variants.append(("bare Keras loop, no search code", ["--bare"]))
    with tempfile.TemporaryDirectory() as tmp:
        for label, extra in variants:
            # A fresh process per variant, so one's memory does not count toward the other's.
            out = subprocess.run(
                [sys.executable, __file__, "--trials", str(args.trials), "--engine", args.engine,
                 "--results", tmp, *extra],
                capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            if out.returncode != 0:
                print(out.stderr[-3000:], file=sys.stderr)
                return out.returncode
            rss = json.loads(out.stdout.strip().splitlines()[-1][4:])
            summaries.append(summarize(label, rss))
    if args.json:
        Path(args.json).write_text(json.dumps(summaries, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
