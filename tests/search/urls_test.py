"""``search._urls.sqlite_path``: the one reading of a SQLite storage URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from search._urls import has_password, sqlite_path, without_password


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


@pytest.mark.parametrize(
    "url, expected",
    [
        ("postgresql://me:pw@db.example/art", "postgresql://me@db.example/art"),
        (
            "postgresql+psycopg2://me:p%40s:s@db:5433/art?sslmode=require",
            "postgresql+psycopg2://me@db:5433/art?sslmode=require",
        ),
        ("postgresql://:pw@db/art", "postgresql://db/art"),
        ("postgresql://me@db.example/art", "postgresql://me@db.example/art"),
        ("sqlite:///rel/optuna.db", "sqlite:///rel/optuna.db"),
        ("not a url://me:pw@x", "not a url://me@x"),
        (None, None),
    ],
)
def test_without_password_leaves_no_password_at_all(url, expected):
    assert without_password(url) == expected
    assert has_password(url) == (url != expected)
