"""``python -m search.data``: build (or show) the leak-free split and its data report."""

from __future__ import annotations

import argparse
import sys

from search._files import NotWritableError
from search.console import quiet_tensorflow
from search.data import (
    DataNotFoundError,
    SplitError,
    add_data_options,
    format_data_report,
    locate_data,
    prepare_split,
)
from search.results import read_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search.data", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    split = sub.add_parser("split", help="build the split manifest (default command)")
    download = sub.add_parser("download", help="download the Kaggle dataset with kagglehub")
    for p in (parser, split):
        add_data_options(p)
        p.add_argument("--results", help="results folder (default: $ART_RESULTS, then ./results)")
        p.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
        p.add_argument(
            "--rebuild-split",
            action="store_true",
            help="replace an existing split manifest (earlier results become incomparable)",
        )
        p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    download.add_argument("--to", default="data", help="where kagglehub should put the files")
    args = parser.parse_args(argv)
    quiet_tensorflow()  # the package's own lines on the console, not TensorFlow's start-up

    if args.command == "download":
        return _download(args.to)
    try:
        data_dir = locate_data(args.data)
        manifest = prepare_split(
            data_dir,
            args.results,
            seed=args.seed,
            rebuild=args.rebuild_split,
            keep_split=args.keep_split,
            progress=not args.no_progress,
        )
    except (DataNotFoundError, SplitError, NotWritableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report_path = manifest.path.parent / "data_report.json"
    if report_path.exists():
        print(format_data_report(read_json(report_path)))
    print(f"split manifest: {manifest.path} (digest {manifest.digest})")
    return 0


def _download(target: str) -> int:
    try:
        import kagglehub
    except ImportError:
        print("error: kagglehub is not installed: pip install -e '.[download]'", file=sys.stderr)
        return 2
    path = kagglehub.dataset_download(
        "thedownhill/art-images-drawings-painting-sculpture-engraving"
    )
    print(
        f"Downloaded to {path}\nNow run with --data {path}/dataset/dataset_updated "
        f"or export ART_DATA={path}/dataset/dataset_updated"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
