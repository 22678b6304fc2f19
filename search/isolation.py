"""Train one trial in a fresh child process, so nothing a trial leaves behind outlives it.

Why: TensorFlow keeps part of every trained model alive after ``keras.backend.clear_session()``
(its traced training graph and the functions created when optimizer and metric variables are
built inside it; upstream keras-team/keras#17458, still open). In one process a MobileNetV2
search grew by about 100 MiB per trial here, so a long search would end out of memory. And a
trial that does run out of memory is killed by the kernel with the process it runs in. With a
child per trial the search process stays flat, and a child that dies becomes a FAIL row while
the search goes on.

The engine, its sampler and the results table stay in the parent. The parent lets the space
declare the trial's hyperparameters (``TrialRunner.declare``), then the child rebuilds the
same configuration from those values, trains it with ``TrialRunner.train`` (checkpointing it if
it is the best so far) and sends the row back. The parent sends its ``sys.path`` once, then
for each trial ``(log_path, runner, config, request)``: the file for the trial's stderr, the
runner (same space, data and study, not isolated), the trial's values and its
``TrialRequest`` less what stays in the parent (the engine's callbacks:
``TrialRequest.for_child``); None ends the child. Messages on the pipe, child to parent:

- ``("epoch", epoch, logs)`` after every epoch. The parent runs the engine's callbacks (Optuna's
  pruning callback) on those logs and answers ``("continue",)``, ``("prune", message)`` or,
  when a callback raised, ``("fail", message)``.
- ``("done", record, peak_rss_mb, rss_anon_mb)``: the trial's row, the child's peak memory in
  the trial and its own memory after it (what decides whether it serves another).

**A child serves several trials** (at most ``TRIALS_PER_CHILD``, and only while it has grown
by less than ``CHILD_GROWTH_MB`` since its first trial; a child whose trial failed is not
reused). Starting one costs seconds (importing TensorFlow: 4 s on the 2-core development
machine), as much as a first look at a configuration on cached features takes to train: in
transfer pilot K, a trial spent 3.7 s in its first rung and 5 s between trials, at the
median. Each trial writes its own log (the child points its stderr there), and starts with
its own seeds (``TrialRunner.train``) and an empty Keras session, so a trial's row does not
depend on the trials its child served before (tested against the same trials in one
process). A child is reused only while this process's environment is the one it started
with. ``close_children`` ends the idle one (``search.run`` calls it when a search ends).

Each child is a fresh interpreter, ``python -m search.isolation FD`` (a fork of a process that
runs TensorFlow's thread pools is not safe, and unlike multiprocessing's ``spawn`` this does
not re-run the caller's main script), talking over one end of a ``multiprocessing.Pipe``
passed as FD. It dies with its parent (Linux ``PR_SET_PDEATHSIG``), so ``kill -9`` of a search
leaves no orphan training on.
"""

from __future__ import annotations

import atexit
import dataclasses
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from search._process import die_with_parent, rss_mb, sigterm_as_interrupt, utc_now
from search._request import TrialRequest
from search.hyperparameters import fixed_hyperparameters
from search.results import TrialRecord

# A child trains at most this many trials, and is replaced once it has grown by this much
# since its first (TensorFlow keeps part of every trained model: about 100 MiB a trial for a
# whole MobileNetV2, a few MiB for a head on cached features).
TRIALS_PER_CHILD = 25
CHILD_GROWTH_MB = 1024.0


class PrunedByParent(Exception):
    """Raised in the child when the parent's engine decided to prune the trial."""


class CallbackFailed(Exception):
    """Raised in the child when one of the engine's callbacks raised in the parent."""


def train_in_child(runner, hp: Any, request: TrialRequest) -> tuple[TrialRecord, float | None]:
    """``runner.train`` for one trial, in a child process; returns (row, the child's peak MiB
    in this trial).

    ``runner`` is a ``search.trial.TrialRunner`` (duck-typed: this module never imports the
    runner, which imports it). The request crosses to the child without the engine's
    callbacks (``TrialRequest.for_child``): they run here, on the epochs the child reports."""
    config = runner.declare(hp)
    started, started_at = time.perf_counter(), utc_now()
    # The child's stderr (TensorFlow's chatter, warnings, a crash's traceback) goes to the
    # trial's log file, not over the progress bar; a dead child's error quotes its end.
    log_path = _log_path(runner, request.number)
    child = _idle_child()
    if child is None:
        child = _Child.start(log_path)
    else:
        log_path.write_text("", encoding="utf-8")  # the child appends the trial's stderr
    seen: dict[str, list[float]] = {}
    reply = None
    try:
        reply = _talk_to_child(
            child.conn,
            (str(log_path), _child_runner(runner), config, request.for_child()),
            request,
            seen,
        )
    finally:
        if reply is None:  # died, KeyboardInterrupt or an error here: no child outlives it
            child.stop(wait=False)
    if reply is None:
        peak_mb = None
        record = _dead_child_record(
            runner,
            config,
            request,
            child.process.returncode,
            seen,
            time.perf_counter() - started,
            started_at,
            log_path,
        )
    else:
        record, peak_mb, now_mb = reply
        _keep_or_stop(child, record, now_mb)
        if runner.study is None:
            log_path.unlink(missing_ok=True)  # a runner without a study leaves nothing behind
    record.config = config  # the values the engine holds (the child's are equal)
    return record, peak_mb


@dataclasses.dataclass
class _Child:
    """One child process and this process's end of its pipe."""

    process: subprocess.Popen
    conn: Any
    origin: tuple  # what it started with (_origin): it serves only a parent that still has it
    served: int = 0
    first_mb: float | None = None  # its memory after its first trial

    @classmethod
    def start(cls, log_path: Path) -> _Child:
        origin = _origin()
        parent_end, child_end = multiprocessing.Pipe()
        with open(log_path, "w", encoding="utf-8") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "search.isolation", str(child_end.fileno())],
                pass_fds=(child_end.fileno(),),
                stderr=log,
                env=origin[0],
            )
        child_end.close()  # the child's end lives in the child only: its death is EOF here
        parent_end.send(list(sys.path))  # so the child unpickles what this process can
        return cls(process, parent_end, origin)

    def stop(self, *, wait: bool = True) -> None:
        """End the child: asked to (``wait``: within a minute), else killed."""
        if wait and self.process.poll() is None:
            try:
                self.conn.send(None)
                self.process.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.conn.close()


_idle: _Child | None = None  # the child that served the last trial, waiting for the next


def _idle_child() -> _Child | None:
    """The idle child, when it is alive and started with this process's environment, folder
    and interpreter (a changed variable, such as ``ART_CACHE``, or a relative path read from
    another folder, needs a new child); None otherwise."""
    global _idle
    child, _idle = _idle, None
    if child is None:
        return None
    if child.process.poll() is None and child.origin == _origin():
        return child
    child.stop()
    return None


def _keep_or_stop(child: _Child, record: TrialRecord, now_mb: float | None) -> None:
    """Keep a child that served a trial for the next one, unless it served its
    ``TRIALS_PER_CHILD``, grew by ``CHILD_GROWTH_MB`` or more, or its trial failed."""
    global _idle
    child.served += 1
    if child.first_mb is None:
        child.first_mb = now_mb
    grown = (now_mb or 0.0) - (child.first_mb or 0.0)
    if record.state == "FAIL" or child.served >= TRIALS_PER_CHILD or grown >= CHILD_GROWTH_MB:
        child.stop()
    else:
        _idle = child


def close_children() -> None:
    """End the idle child, if any (a search that ended calls it, so no trained-on child
    waits with its memory after the search; and this process, when it exits)."""
    global _idle
    child, _idle = _idle, None
    if child is not None:
        child.stop()


atexit.register(close_children)


def _log_path(runner, number: int) -> Path:
    """The child's log: ``logs/trial-N.log`` in the study's folder; without a study, a
    temporary file (removed unless the child dies, whose error names it)."""
    if runner.study is None:
        fd, name = tempfile.mkstemp(prefix=f"trial-{number}-", suffix=".log")
        os.close(fd)
        return Path(name)
    path = runner.study.dir / "logs" / f"trial-{number}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _talk_to_child(
    conn, trial: tuple, request: TrialRequest, seen: dict[str, list[float]]
) -> tuple | None:
    """Send the trial, judge each epoch the child reports with the engine's callbacks (its
    logs are gathered in ``seen``), and return the child's row, its peak memory in the trial
    and its memory at the end; None when the child died first."""
    try:
        conn.send(trial)
        while True:
            message = conn.recv()
            if message[0] == "epoch":
                _, epoch, logs = message
                for key, value in logs.items():
                    seen.setdefault(key, []).append(value)
                conn.send(_verdict(request, epoch, logs))
            elif message[0] == "done":
                return message[1:]
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return None  # the child died; its exit status says how


def _origin() -> tuple:
    """What a child starts with: its environment, working folder and interpreter."""
    return (_child_environment(), os.getcwd(), sys.executable)


def _child_environment() -> dict[str, str]:
    """This environment, with the folder this package was imported from first on PYTHONPATH
    (so ``-m search.isolation`` finds the same code even when it is not installed)."""
    root = str(Path(__file__).resolve().parents[1])
    paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


def _verdict(request: TrialRequest, epoch: int, logs: dict) -> tuple:
    """Run the engine's callbacks on one epoch's logs: go on, prune, or fail the trial (an
    error in a callback fails the trial, as it would inside an in-process fit)."""
    try:
        for callback in request.callbacks:
            callback.on_epoch_end(epoch, logs)
    except request.prune_exceptions as exc:
        return ("prune", str(exc) or "pruned")
    except Exception as exc:  # noqa: BLE001 - the trial's failure, not the search's
        return ("fail", f"{type(exc).__name__}: {exc}")
    return ("continue",)


def _child_runner(runner):
    """The runner as the child gets it: same space, data, study and settings, in-process."""
    import copy

    child = copy.copy(runner)
    child.isolate = False
    return child


def _child_main(fd: int) -> int:
    """``python -m search.isolation FD``: receive trials on connection FD, one at a time, and
    train each, until the parent sends None or goes."""
    from multiprocessing.connection import Connection

    die_with_parent()
    conn = Connection(fd)
    try:
        with sigterm_as_interrupt():
            sys.path[:] = conn.recv()
            import keras  # noqa: F401 - TensorFlow's start-up, paid once per child

            while (trial := conn.recv()) is not None:
                conn.send(_serve(conn, *trial))
    except EOFError:
        return 1  # the parent is gone
    except KeyboardInterrupt:
        return 130  # Ctrl-C, or a SIGTERM to the process group: the parent handles it
    finally:
        conn.close()
    return 0


def _serve(conn, log_path: str, runner, config, request) -> tuple:
    """Train one trial: its stderr to its own log, its peak memory counted from its start."""
    _redirect_stderr(log_path)
    _reset_peak_memory()
    # The engine's callbacks stayed in the parent: here, one that asks it after every epoch.
    request = dataclasses.replace(
        request, callbacks=(_reporter(conn),), prune_exceptions=(PrunedByParent,)
    )
    record = runner.train(fixed_hyperparameters(config), request)
    return ("done", record, rss_mb("VmHWM"), rss_mb("RssAnon"))


def _redirect_stderr(path: str) -> None:
    """Point this process's stderr (file descriptor 2, which TensorFlow's C++ logs use too)
    at ``path``."""
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)


def _reset_peak_memory() -> None:
    """Reset VmHWM, so it is this trial's peak (Linux: ``clear_refs`` 5; elsewhere kept)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        pass


def _reporter(conn):
    """A Keras callback that sends each epoch's logs to the parent and obeys its verdict."""
    import keras

    class ReportToParent(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            plain = {k: float(v) for k, v in (logs or {}).items() if _is_number(v)}
            conn.send(("epoch", int(epoch), plain))
            verdict = conn.recv()
            if verdict[0] == "prune":
                raise PrunedByParent(verdict[1])
            if verdict[0] == "fail":
                raise CallbackFailed(verdict[1])

    return ReportToParent()


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _dead_child_record(
    runner, config, request: TrialRequest, exitcode, seen, wall_time_s, started_at, log_path
) -> TrialRecord:
    """The FAIL row of a trial whose process ended without sending its row."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        error = f"the trial's process was killed by {name}"
        if -exitcode == signal.SIGKILL:
            error += (
                " (most often the kernel's out-of-memory killer: try a smaller batch or input size)"
            )
    else:
        error = f"the trial's process exited with code {exitcode} before reporting a result"
    tail = _log_tail(log_path)
    error += f"; its log is {log_path}" + (f", ending: {tail}" if tail else "")
    val_acc = [v for v in seen.get("val_accuracy", []) if math.isfinite(v)]
    return TrialRecord(
        **runner.labels,
        trial_id=request.trial_id,
        number=request.number,
        state="FAIL",
        config=config,
        val_accuracy=max(val_acc) if val_acc else None,
        val_loss=None,
        epochs_run=len(seen.get("loss", [])),
        wall_time_s=round(wall_time_s, 3),
        params=None,
        trainable_params=None,
        error=error,
        history=seen,
        started_at=started_at,
        finished_at=utc_now(),
    )


def _log_tail(path, lines: int = 6) -> str:
    """The last lines of a child's log, without TensorFlow's start-up chatter."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    chatter = ("I0000 ", "W0000 ", "E0000 ", "WARNING: All log messages", "To enable the following")
    kept = [line for line in text.splitlines() if line.strip() and not line.startswith(chatter)]
    return " | ".join(kept[-lines:])[-1500:]


if __name__ == "__main__":
    sys.exit(_child_main(int(sys.argv[1])))
