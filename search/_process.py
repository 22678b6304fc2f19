"""This process's clock, memory and lifetime: small helpers the runner and its child share."""

from __future__ import annotations

import contextlib
import datetime as _dt
import signal
import threading


def utc_now() -> str:
    """ISO 8601 timestamp, UTC, to the second: what every results file records."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def rss_mb(field: str = "VmRSS") -> float | None:
    """Resident memory of this process in MiB, from /proc (None where there is no /proc).

    ``VmRSS`` counts everything resident, including pages of memory-mapped files such as the
    image cache (clean file pages the kernel can drop at any time); ``RssAnon`` counts only
    the process's own allocations, the part that can run a machine out of memory; ``VmHWM``
    is the peak of ``VmRSS``.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def release_free_heap() -> None:
    """Hand freed heap pages back to the OS (glibc only; a no-op elsewhere).

    Without it RSS stays at the largest trial's high-water mark, because glibc keeps freed
    arenas; with it RSS tracks live memory, so a real leak shows up and memory is shared
    fairly with the next, possibly bigger, trial.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no-op elsewhere)."""
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within it, SIGTERM (``kill PID``, a job scheduler's or a container's stop) is Ctrl-C:
    the search keeps its finished trials, marks the running one to be retried and says how
    to resume, where Python's default would end it without a word. Main thread only
    (Python's rule for signal handlers); elsewhere it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
