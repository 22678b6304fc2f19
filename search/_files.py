"""Small helpers every writer and every error message shares.

- ``replaced_atomically(path)``: write a file whole or not at all (a crash, a full disk or
  Ctrl-C mid-write leaves the previous version, never half a file);
- ``first_line(exc)``: an exception's message cut to its first line, for one-line errors;
- ``NotWritableError``: what a write to a read-only (or full) results folder raises, one line
  that the command-line tools print as ``error:``; ``disk_full(exc)`` tells a full disk from
  the other errors a failed trial or storage write ends in.
"""

from __future__ import annotations

import contextlib
import errno
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
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, NotWritableError):
            refused = NotWritableError.of(exc, path.parent)
            if refused is not None:
                raise refused from exc
        raise


class NotWritableError(OSError):
    """A results file could not be written because its folder is read-only (or not this
    user's) or its disk is full; the message is one line naming the folder and --results."""

    _WHY = {
        errno.EROFS: "it is on a read-only file system",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is used up",
    }

    @classmethod
    def of(
        cls, exc: BaseException, folder: str | os.PathLike | None = None
    ) -> NotWritableError | None:
        """The error for ``exc`` raised while writing into ``folder`` (default: the folder of
        the file ``exc`` names); None for another error (a missing folder, a bad name...),
        which stays as it is."""
        why = cls._WHY.get(exc.errno) if isinstance(exc, OSError) else None
        if why is None:
            return None
        if folder is None:
            named = exc.filename if isinstance(exc.filename, (str, os.PathLike)) else None
            folder = Path(named).parent if named else "the results folder"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            todo = "free some space, or give another results folder with --results"
        else:
            todo = "give a results folder you can write to with --results (or $ART_RESULTS)"
        error = cls(f"cannot write into {folder}: {why}; {todo}")
        error.errno = exc.errno
        return error


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it was raised from or during, says the disk is full
    (``ENOSPC``, SQLite's "database or disk is full")."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(exc).lower()
        if "database or disk is full" in text or "no space left on device" in text:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


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
