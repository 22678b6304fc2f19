"""How fast each exported format predicts on this machine: one image, and a batch of 32.

    python -m bench.export [BUNDLE] [--repeats 30] [--out results/bench/export-<date>.json]

BUNDLE is a folder written by ``python -m search.export`` (default: the newest under
``exports/``). Every format that passed its export check is opened as ``search.predict``
opens it (its own runtime, checksum checked), warmed up, then timed: ``--repeats`` calls on one
image and ``--repeats`` // 3 calls on a batch of 32 (at least 3), on the images the bundle was
checked on, decoded as ``search.predict`` decodes them (random pixels where those files are
gone: the timings do not depend on the pixels). Reports medians and the 10th/90th
percentiles, the runtime, thread settings left at each runtime's default, and the load average
before and after (other jobs on the machine slow every number alike).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

from search.data import decode_image  # noqa: E402
from search.latency import machine, timed  # noqa: E402
from search.model_io import BUNDLE_RECORD, FormatError, open_model  # noqa: E402
from search.results import environment_info, read_json, write_json  # noqa: E402

BATCH = 32


def newest_bundle(root: Path = Path("exports")) -> Path:
    found = sorted(root.glob(f"*/{BUNDLE_RECORD}"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(
            f"no export bundle under {root}/: run `python -m search.export ...` first, or name one"
        )
    return found[-1].parent


def sample(record: dict, size: int) -> tuple[np.ndarray, str]:
    images = []
    for path in record.get("check", {}).get("paths", []):
        try:
            images.append(decode_image(path, size))
        except Exception:  # noqa: BLE001 - a file gone since export: random pixels time the same
            continue
    if images:
        origin = f"{len(images)} of the bundle's check images, repeated to fill a batch"
    else:
        images = list(
            np.random.default_rng(0).integers(0, 256, (BATCH, size, size, 3), dtype=np.uint8)
        )
        origin = "random pixels (the bundle's check images are not on this machine)"
    reps = -(-BATCH // len(images))
    return np.stack((images * reps)[:BATCH]), origin


def bench_bundle(bundle: Path, repeats: int) -> dict:
    record = read_json(bundle / BUNDLE_RECORD)
    images, origin = sample(record, int(record["image_size"]))
    load_before = os.getloadavg()
    results = {}
    for name, entry in record["formats"].items():
        if entry.get("status") != "ok":
            results[name] = {"skipped": f"did not pass its export check: {entry.get('reason')}"}
            continue
        started = time.perf_counter()
        try:
            model, _ = open_model(bundle, name)
        except (FileNotFoundError, ValueError) as exc:
            results[name] = {"skipped": str(exc)}
            continue
        load_s = time.perf_counter() - started
        one, batch = images[:1], images
        for _ in range(3):  # first calls build graphs, allocate tensors, pick kernels
            model.predict(one, batch_size=1)
            model.predict(batch, batch_size=BATCH)
        # timed() calls each lambda at once, inside this iteration.
        single = timed(lambda: model.predict(one, batch_size=1), repeats)  # noqa: B023
        batched = timed(lambda: model.predict(batch, batch_size=BATCH), max(3, repeats // 3))  # noqa: B023
        results[name] = {
            "file": entry["file"],
            "size_bytes": entry["size_bytes"],
            "runtime": model.runtime,
            "load_s": round(load_s, 3),
            "single_image": single,
            "batch_32": batched,
            "batch_32_per_image_ms": batched["median_ms"] / BATCH,
        }
        print(
            f"{name:<12} {entry['size_bytes'] / 1e6:7.2f} MB  one image {single['median_ms']:7.1f} ms  "
            f"batch of 32 {batched['median_ms']:8.1f} ms ({batched['median_ms'] / BATCH:5.1f} ms/image)  "
            f"{model.runtime}",
            flush=True,
        )
    return {
        "bundle": str(bundle),
        "source": record.get("source"),
        "image_size": record["image_size"],
        "images": origin,
        "machine": machine(),
        "date": date.today().isoformat(),
        "load_average_before": list(load_before),
        "load_average_after": list(os.getloadavg()),
        "threads": "each runtime's default",
        "versions": {**environment_info(), **record.get("versions", {})},
        "formats": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "bundle", nargs="?", help="export bundle folder (default: newest under exports/)"
    )
    parser.add_argument(
        "--repeats", type=int, default=30, help="timed single-image calls per format"
    )
    parser.add_argument("--out", help="report file (default results/bench/export-<date>.json)")
    args = parser.parse_args(argv)
    try:
        bundle = Path(args.bundle) if args.bundle else newest_bundle()
        if not (bundle / BUNDLE_RECORD).is_file():
            raise FileNotFoundError(
                f"{bundle} is not an export bundle (no {BUNDLE_RECORD}); "
                "give the folder `python -m search.export` wrote"
            )
        if args.repeats < 1:
            raise ValueError(f"--repeats {args.repeats}: give at least 1")
        report = bench_bundle(bundle, args.repeats)
    except (FileNotFoundError, ValueError, FormatError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out or Path("results") / "bench" / f"export-{report['date']}.json")
    write_json(out, report)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
