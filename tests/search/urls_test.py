"""``search._urls.sqlite_path``: the one reading of a SQLite storage URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from search._urls import sqlite_path


@pytest.mark.parametrize(
    "url, expected",
    [
        ("sqlite:///optuna.db", Path("optuna.db")),
        ("sqlite:////abs/dir/optuna.db", Path("/abs/dir/optuna.db")),
        ("sqlite:///rel/dir/optuna.db?timeout=60", Path("rel/dir/optuna.db")),
        ("sqlite+pysqlite:///x.db", Path("x.db")),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("postgresql://me:pw@db.example/art", None),
        ("db.sqlite", None),
        ("", None),
    ],
)
def test_sqlite_path_names_the_file_of_a_sqlite_url_only(url, expected):
    assert sqlite_path(url) == expected
