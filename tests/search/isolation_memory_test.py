"""A 6-trial Optuna search with one child process per trial (search.isolation), built once:
its rows are those of the same trials run in the search process, and the search process's
memory stays flat across the children. (A module of its own: its module fixture keeps these
tests on one xdist worker while the other isolation tests spread over both.)"""

from __future__ import annotations

import numpy as np
import pytest

from .isolation_test import check_same_rows, resources, search

# Every test here trains models (and starts child processes): not in the fast subset.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def optuna_pair(tiny_data, tmp_path_factory):
    """A 6-trial Optuna search with one child per trial, and the same search's first 3 trials
    in this process (a child per trial costs seconds to start; the memory test needs the 6,
    the same-rows test the first 3)."""
    root = tmp_path_factory.mktemp("optuna-pair")
    isolated = search(tiny_data, root / "child", trials=6, epochs=1, isolate=True)
    in_process = search(tiny_data, root / "here", trials=3, epochs=1, isolate=False)
    return isolated, in_process


def test_isolated_optuna_trials_give_the_same_rows_as_in_process_ones(optuna_pair):
    isolated, in_process = optuna_pair
    check_same_rows(isolated, in_process, 6)


def test_the_search_process_memory_stays_flat_across_isolated_trials(optuna_pair):
    out, _ = optuna_pair
    anon = [line["rss_anon_mb"] for line in resources(out["study_dir"])]
    assert len(anon) == 6 and all(a is not None for a in anon)
    # From trial 2 on (the first ones pay one-off imports and Optuna's set-up): in-process,
    # these same trials grow the process by about 14 MiB each (bench/search_memory_bench.py).
    slope = np.polyfit(np.arange(len(anon) - 2), anon[2:], 1)[0]
    assert slope < 2.0, anon
