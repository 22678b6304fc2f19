from __future__ import annotations

import pytest

from tests.search.dashboard.fixtures import write_results_tree


@pytest.fixture(scope="session")
def results_tree(tmp_path_factory):
    """The fake results tree (2 baselines, a Keras Tuner and an Optuna study), built once."""
    return write_results_tree(tmp_path_factory.mktemp("results"))
