"""What reusing a trial's child process buys: the same search, a fresh child per trial
against children that serve several trials (``search.isolation.TRIALS_PER_CHILD``).

    python bench/child_reuse_bench.py --data ../shared/data/art-images
        [--space mobilenet-head] [--trials 30] [--epochs 5] [--max-image-size 160]

Both sides run ``python -m search.run`` with the same command and seed (Optuna's random
sampler, no pruning, no latency measurement: the draws depend on the seed alone), each in a
process of its own, on caches warmed by an untimed run of the same command first, in the order
fresh, reused, reused, fresh (so a drift of the machine's speed falls on both sides alike).
Reported: each run's wall time and trials per minute, the reused / fresh ratio of trials per
minute, and whether every trial scored the same on both sides (a child that served trials
before must train a trial as a fresh one does). Writes ``results/bench/child-reuse-<date>.json``.
A benchmark, never a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the package, not bench/search.py beside this file


def run_side(args, quota: int, results: Path, study: str) -> dict:
    """One search (``study`` in ``results``, whose split all runs share) in a process of its
    own, its children serving ``quota`` trials each."""
    command = [
        "--space", args.space, "--engine", "optuna", "--algorithm", "random", "--pruner", "none",
        "--trials", str(args.trials), "--epochs", str(args.epochs),
        "--max-image-size", str(args.max_image_size), "--seed", str(args.seed),
        "--no-latency", "--no-progress", "--study", study, "--results", str(results),
        *(["--data", args.data] if args.data else []),
        *(["--synthetic"] if args.synthetic else []),
    ]  # fmt: skip
    code = (
        "import sys; from search import isolation; "
        f"isolation.TRIALS_PER_CHILD = {quota}; "
        "from search.run import main; sys.exit(main(sys.argv[1:]))"
    )
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *command], cwd=ROOT, check=True)
    wall = time.perf_counter() - started
    rows = [json.loads(line) for line in open(results / "searches" / study / "trials.jsonl")]
    return {
        "trials_per_child": quota,
        "wall_s": round(wall, 1),
        "trials": len(rows),
        "trials_per_minute": round(60 * len(rows) / wall, 2),
        "scores": {r["number"]: r["val_accuracy"] for r in rows},
    }


def main(argv=None) -> int:
    from search.isolation import TRIALS_PER_CHILD

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="dataset folder (default: $ART_DATA, then ./data)")
    p.add_argument("--space", default="mobilenet-head")
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--max-image-size", type=int, default=160)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--synthetic", action="store_true", help="a smoke run on generated images")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="child-reuse-") as tmp:
        print("warming the caches (untimed) ...", flush=True)
        run_side(args, TRIALS_PER_CHILD, Path(tmp), "warm")
        runs = []
        for k, quota in enumerate((1, TRIALS_PER_CHILD, TRIALS_PER_CHILD, 1)):
            runs.append(run_side(args, quota, Path(tmp), f"run-{k}"))
            print(json.dumps({key: v for key, v in runs[-1].items() if key != "scores"}))
    fresh = [r for r in runs if r["trials_per_child"] == 1]
    reused = [r for r in runs if r["trials_per_child"] != 1]

    def rate(side):
        return sum(r["trials"] for r in side) / sum(r["wall_s"] for r in side) * 60

    report = {
        "command": vars(args),
        "machine": {"host": platform.node(), "cpus": os.cpu_count(), "python": sys.version},
        "runs": [{k: v for k, v in r.items() if k != "scores"} for r in runs],
        "trials_per_minute": {"fresh": round(rate(fresh), 2), "reused": round(rate(reused), 2)},
        "ratio_reused_over_fresh": round(rate(reused) / rate(fresh), 3),
        "same_scores": all(r["scores"] == runs[0]["scores"] for r in runs),
    }
    out = ROOT / "results" / "bench" / f"child-reuse-{dt.date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(
        json.dumps(
            {k: report[k] for k in ("trials_per_minute", "ratio_reused_over_fresh", "same_scores")}
        )
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
