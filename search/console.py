"""What a command-line tool prints: the package's own lines, not TensorFlow's C++ start-up.

TensorFlow's native runtime writes start-up notes (oneDNN, CUDA probing, CPU features, absl's
"All log messages before absl::InitializeLog()") straight to file descriptor 2 when it is
imported; TF 2.21 writes some of them even under ``TF_CPP_MIN_LOG_LEVEL=3``, before it reads
the variable. They say nothing a user acts on. ``quiet_tensorflow`` imports tensorflow with
that descriptor set aside and the level raised for the import only (TensorFlow keeps the level
it read), so the trial processes a search starts, which inherit the environment, still write
TensorFlow's lines to their logs. A ``TF_CPP_MIN_LOG_LEVEL`` the user set is left to work as
they asked.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


def quiet_tensorflow() -> None:
    """Import tensorflow now without its native start-up lines on the console (a no-op when
    it is imported already or the user set ``TF_CPP_MIN_LOG_LEVEL``). What the import wrote
    is shown after all when it fails."""
    if "tensorflow" in sys.modules or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    try:
        with _descriptor_2_set_aside() as captured:
            try:
                import tensorflow  # noqa: F401
            except ImportError:
                captured.failed = True  # the command fails later, with these lines shown
    finally:
        os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)


@contextlib.contextmanager
def native_lines_aside() -> Iterator[None]:
    """Keep what native code writes to file descriptor 2 inside the block (LiteRT's "Created
    TensorFlow Lite XNNPACK delegate" line) off the console; shown after all if it fails."""
    with _descriptor_2_set_aside():
        yield


class _Captured:
    failed = False


@contextlib.contextmanager
def _descriptor_2_set_aside() -> Iterator[_Captured]:
    """Send what is written to file descriptor 2 to a temporary file; write it back when the
    block fails (an exception, or ``failed`` set)."""
    captured = _Captured()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as aside:
        os.dup2(aside.fileno(), 2)
        try:
            yield captured
        except BaseException:
            captured.failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if captured.failed:
                aside.seek(0)
                sys.stderr.write(aside.read().decode("utf-8", "replace"))
