"""Shared fixtures (one synthetic Kaggle-layout dataset per test session, its split, a cnn
baseline trained on it) and how the suite runs: the xdist scheduling, one TensorFlow thread
per worker, eager Keras functions, garbage collection between tests."""

from __future__ import annotations

import gc
import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # One TensorFlow thread per xdist worker (and per process it starts: children inherit the
    # environment): the suite runs as many workers as cores, and the tiny models here gain
    # nothing from threads, while two workers' thread pools waiting on each other's cores
    # cost a fifth of the CPU of a cnn search (measured). Set before TensorFlow is imported.
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

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


@pytest.fixture(scope="session")
def cnn_baseline(art_dataset, tmp_path_factory):
    """(metrics, results dir): the cnn baseline trained on ``art_dataset`` at 32 px for 2
    epochs with seed 1, once per test process: the baseline tests check it, the evaluate,
    export and predict tests use its model and results. Tests only read it."""
    from baselines.run import run_baseline

    results = tmp_path_factory.mktemp("cnn_baseline")
    metrics = run_baseline(
        "cnn", str(art_dataset[0]), str(results), seed=1, image_size=32, epochs=2, verbose=0
    )
    return metrics, results


# The longest units of work (modules that run on one worker, see the scheduler below; about
# 60-100 CPU-seconds each, measured), handed out before everything else.
LONGEST_FIRST = (
    "tests/search/isolation_memory_test.py",
    "tests/spaces/mobilenet_test.py",
    "tests/search/engines/distributed_test.py",
)


def pytest_collection_modifyitems(items):
    """The longest units first, then the other tests that train or search (``slow``), then
    the fast ones: xdist hands out work in this order (``--no-loadscope-reorder``), so the
    last units are short ones that even out when the two workers finish."""

    def rank(item):
        module = item.nodeid.split("::", 1)[0]
        if module in LONGEST_FIRST:
            return LONGEST_FIRST.index(module)
        return len(LONGEST_FIRST) + (item.get_closest_marker("slow") is None)

    items.sort(key=rank)


def pytest_xdist_make_scheduler(config, log):
    """``--dist loadscope`` (pyproject.toml), with finer units: a module that defines a
    module-scoped fixture (a trained search, an exported model) is one unit, so the fixture
    is built once, on one worker; every other test is a unit of its own, so a long module's
    tests spread over both workers."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    root = Path(config.rootpath)
    shares_a_fixture: dict[str, bool] = {}

    class ModuleFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            if module not in shares_a_fixture:
                try:
                    text = (root / module).read_text(encoding="utf-8")
                except OSError:
                    text = ""
                found = re.search(r"scope\s*=\s*[\"']module[\"']", text)
                shares_a_fixture[module] = found is not None
            return module if shares_a_fixture[module] else nodeid

    return ModuleFixtureScheduling(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before each test (and its fixtures): collect the garbage, then move every surviving
    object out of the garbage collector's sight (``gc.freeze``).

    TensorFlow keeps part of every model a process trains alive (search/isolation.py), so a
    test process holds more objects test after test, and every ``gc.collect()`` walks them
    all: Keras' ``clear_session`` and the trial runner collect several times per trial, a
    quarter of a second each once a few searches have run, about half the CPU of a tiny
    trial. Frozen objects are still freed by reference counting; collections still free the
    cycles a test makes and drops. Only test processes do this; a search never does."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _eager_functions(request):
    """Keras' train, test and predict functions run eagerly in test processes, unless a test
    is marked ``graph``: tracing them (``tf.function``) cost half the time of a tiny search
    here (18 s against 11 s for the multi-fidelity test's search, measured), for models that
    train on a few dozen images. Searches and trials in child processes (``isolate``, the
    CLI tests, the distributed ones) trace as every user's run does, and so do the tests
    marked ``graph``."""
    import tensorflow as tf

    tf.config.run_functions_eagerly(request.node.get_closest_marker("graph") is None)


@pytest.fixture(autouse=True)
def _isolated_results(tmp_path, monkeypatch):
    """No test writes into the repository's results/ by accident."""
    monkeypatch.setenv("ART_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("ART_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ART_DATA", raising=False)
