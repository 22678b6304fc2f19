"""Small helpers every writer and every error message shares.

- ``replaced_atomically(path)``: write a file whole or not at all (a crash, a full disk or
  Ctrl-C mid-write leaves the previous version, never half a file);
- ``first_line(exc)``: an exception's message cut to its first line, for one-line errors.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replaced_atomically(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without an exception, the
    temporary file replaces ``path`` in one step (``os.replace``), else it is removed.

    The temporary name keeps ``path``'s extension (``model.tmp.keras``, ``rows.tmp.npz``), so
    writers that choose the format by the extension (Keras, numpy) write the right one, and
    it holds ``.tmp.`` so that a folder scan can tell it from finished files."""
    path = Path(path)
    suffix = "".join(path.suffixes[-1:])
    tmp = path.with_name(f"{path.name[: len(path.name) - len(suffix)]}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all."""
    with replaced_atomically(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """``exc``'s message up to its first line break (cut to ``limit`` characters), or the
    exception's type name when it has no message."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if limit is None else line[:limit]
