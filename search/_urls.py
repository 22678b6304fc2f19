"""Database URLs, read in one place: which SQLite file a storage URL names.

The Optuna engine (its storage folder), ``search.study`` (is a resume's storage the recorded
one?) and the dashboard (where is a study's database now?) all ask the same question of a URL;
``sqlite_path`` answers it with SQLAlchemy's own parser, imported only when asked.
"""

from __future__ import annotations

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
