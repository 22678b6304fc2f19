"""``python -m search.dashboard``: write the comparison page, optionally open or serve it."""

from __future__ import annotations

import argparse
import sys

from search.dashboard._page import serve_dashboard, write_dashboard


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m search.dashboard",
        description="Write one self-contained HTML page (works offline) comparing the baselines "
        "and every searched model.",
    )
    parser.add_argument("--study", action="append", metavar="NAME",
                        help="study under <results>/searches/ to include (repeatable; default: all)")
    parser.add_argument("--results", metavar="DIR", help="results folder (default: $ART_RESULTS or ./results)")
    parser.add_argument("--out", metavar="FILE", help="page to write (default: <results>/dashboard.html)")
    parser.add_argument("--open", action="store_true", help="open the page in a web browser")
    parser.add_argument("--serve", action="store_true", help="serve the page on localhost until Ctrl-C")
    parser.add_argument("--port", type=int, default=8000, help="port for --serve (default 8000; 0: any free port)")
    args = parser.parse_args(argv)

    path, dashboard = write_dashboard(out=args.out, results=args.results, studies=args.study)
    for note in dashboard.notes:
        print(f"note: {note}", file=sys.stderr)
    total = sum(dashboard.timings_s.values())
    print(f"wrote {path} ({len(dashboard.figure_names)} figures, {path.stat().st_size / 1e6:.1f} MB, {total:.1f} s)")
    if args.serve:
        serve_dashboard(path, port=args.port, open_browser=args.open)
    elif args.open:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
    return 0


if __name__ == "__main__":
    sys.exit(main())
