"""Shared fixtures: one synthetic Kaggle-layout dataset per test session, and its split."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "art-images"


@pytest.fixture(scope="session")
def art_dataset(tmp_path_factory) -> tuple[Path, dict[str, list[str]]]:
    """(root, traps): a small dataset with corrupt files, duplicates and odd image modes."""
    from tests.fixtures import make_art_dataset

    root = tmp_path_factory.mktemp("art") / "dataset_updated"
    traps = make_art_dataset(root)
    return root, traps


@pytest.fixture(scope="session")
def split_results(art_dataset, tmp_path_factory):
    """(manifest, results dir) for ``art_dataset``, built once for the session."""
    from search.data import prepare_split

    results = tmp_path_factory.mktemp("results")
    manifest = prepare_split(art_dataset[0], results, verbose=False)
    return manifest, results


@pytest.fixture(autouse=True)
def _isolated_results(tmp_path, monkeypatch):
    """No test writes into the repository's results/ by accident."""
    monkeypatch.setenv("ART_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("ART_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ART_DATA", raising=False)
