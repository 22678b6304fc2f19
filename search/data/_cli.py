"""The data options every command that reads a dataset offers, defined once."""

from __future__ import annotations

import argparse


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """``--data`` (where the images are) and ``--keep-split`` (whose split to use)."""
    parser.add_argument("--data", help="dataset folder (default $ART_DATA, then ./data/art-images)")
    parser.add_argument(
        "--keep-split",
        action="store_true",
        default=None,
        help="keep the dataset's own train/ val/ test/ folders as the split (copies "
        "across them are left out of the later one) instead of re-splitting",
    )
