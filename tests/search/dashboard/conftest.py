from __future__ import annotations

import pytest

from tests.search.dashboard.fixtures import write_results_tree


@pytest.fixture(scope="session")
def results_tree(tmp_path_factory):
    """The fake results tree (2 baselines, a Keras Tuner and an Optuna study), built once."""
    return write_results_tree(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="session")
def full_page(results_tree, tmp_path_factory):
    """``(path, Dashboard)``: the page of the whole fake tree, rendered and written once.

    Tests only read it (the page test, the server test, the browser test).
    """
    from search.dashboard import write_dashboard

    return write_dashboard(tmp_path_factory.mktemp("page") / "dashboard.html", results_tree)
