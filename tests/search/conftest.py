"""Fixtures for search tests."""

from __future__ import annotations

import pytest

from search.data import synthetic_data


@pytest.fixture(scope="session")
def tiny_data():
    # 40 train / 20 val / 20 test images of 32 px, 5 classes that differ by colour.
    return synthetic_data(n_train=40, n_val=20, n_test=20, image_size=32, seed=0)
