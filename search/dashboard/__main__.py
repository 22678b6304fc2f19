"""``python -m search.dashboard``: write the comparison page, optionally open or serve it."""

from __future__ import annotations

import argparse
import sys

from search._files import NotWritableError
from search.console import quiet_tensorflow
from search.dashboard._page import serve_dashboard, write_dashboard


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m search.dashboard",
        description="Write one self-contained HTML page (works offline) comparing the baselines "
        "and every searched model.",
    )
    parser.add_argument(
        "--study",
        action="append",
        metavar="NAME",
        help="study under <results>/searches/ to include (repeatable; default: all)",
    )
    parser.add_argument(
        "--results", metavar="DIR", help="results folder (default: $ART_RESULTS or ./results)"
    )
    parser.add_argument(
        "--out", metavar="FILE", help="page to write (default: <results>/dashboard.html)"
    )
    parser.add_argument("--open", action="store_true", help="open the page in a web browser")
    parser.add_argument(
        "--serve", action="store_true", help="serve the page on localhost until Ctrl-C"
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="port for --serve (default 8000; 0: any free port)"
    )
    parser.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna storage the --study NAMEs ran on (e.g. postgresql://...): their "
        "rows are first copied from it into <results>/searches/<study>/, so a study "
        "whose workers ran on other machines is shown whole",
    )
    return parser


def _sync(storage: str, studies: list[str] | None, results: str | None) -> bool:
    """Copy the studies' rows from the Optuna storage into the results folder; False (the
    error printed) when that cannot be done."""
    if not studies:
        print(
            "error: --storage needs --study NAME (which studies to read from it)", file=sys.stderr
        )
        return False
    from search.engines.optuna import sync_from_storage
    from search.study import SearchError

    for name in studies:
        try:
            synced = sync_from_storage(storage, name, results)
        except SearchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return False
        workers = synced["workers"]
        print(
            f"study {name}: {len(synced['added'])} row(s) copied from the storage into "
            f"{synced['study_dir']}; models stay with their workers: "
            f"{', '.join(workers) if workers else 'none recorded'}",
            file=sys.stderr,
        )
        if synced["without_row"]:
            print(
                f"note: study {name}: {len(synced['without_row'])} finished trial(s) were run "
                "by a version that kept no row in the storage; they are left out",
                file=sys.stderr,
            )
    return True


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    quiet_tensorflow()  # the package's own lines on the console, not TensorFlow's start-up
    if args.storage is not None and not _sync(args.storage, args.study, args.results):
        return 2
    try:
        path, dashboard = write_dashboard(out=args.out, results=args.results, studies=args.study)
    except NotWritableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in dashboard.notes:
        print(f"note: {note}", file=sys.stderr)
    total = sum(dashboard.timings_s.values())
    print(
        f"wrote {path} ({len(dashboard.figure_names)} figures, {path.stat().st_size / 1e6:.1f} MB, {total:.1f} s)"
    )
    if args.serve:
        serve_dashboard(path, port=args.port, open_browser=args.open)
    elif args.open:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
    return 0


if __name__ == "__main__":
    sys.exit(main())
