"""Database URLs, read in one place: which SQLite file a storage URL names, and the URL as it
may be written down (without its password).

The Optuna engine (its storage folder), ``search.study`` (is a resume's storage the recorded
one?) and the dashboard (where is a study's database now?) all ask the same question of a URL;
``sqlite_path`` answers it with SQLAlchemy's own parser, imported only when asked.

A password is never written anywhere (study.json is tracked in git): ``without_password`` is
what every file records, and the database driver takes the password the way libpq does
(``PGPASSWORD``, ``~/.pgpass``) when the URL has none.
"""

from __future__ import annotations

import re
from pathlib import Path


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite URL names, as written (relative paths stay relative); None for
    another database, an in-memory SQLite database, or a string that is not a URL."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError):
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def without_password(url: str | None) -> str | None:
    """``url`` with no password at all (``postgresql://user@host/db``), what a file may
    record; a URL without one is returned unchanged. (SQLAlchemy's ``URL.set(password=None)``
    keeps the password: None there means "unchanged".)"""
    if url is None:
        return None
    from sqlalchemy.engine import URL, make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError):
        # Not a URL SQLAlchemy reads: drop anything between "user:" and "@" all the same.
        return re.sub(r"(://[^:/@]*):[^@]*@", r"\1@", str(url))
    if parsed.password is None:
        return str(url)
    return URL.create(
        drivername=parsed.drivername,
        username=parsed.username or None,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query=parsed.query,
    ).render_as_string(hide_password=False)


def has_password(url: str | None) -> bool:
    """Whether ``url`` carries a password (given on the command line for this run)."""
    return url is not None and without_password(url) != str(url)
