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
it is the best so far) and sends the row back. The parent sends its ``sys.path``, then
``(runner, config, request)``: the runner (same space, data and study, not isolated), the
trial's values and its ``TrialRequest`` less what stays in the parent (the engine's callbacks:
``TrialRequest.for_child``). Messages on the pipe, child to parent:

- ``("epoch", epoch, logs)`` after every epoch. The parent runs the engine's callbacks (Optuna's
  pruning callback) on those logs and answers ``("continue",)``, ``("prune", message)`` or,
  when a callback raised, ``("fail", message)``.
- ``("done", record, peak_rss_mb)``: the trial's row and the child's peak memory.

The child is a fresh interpreter, ``python -m search.isolation FD`` (a fork of a process that
runs TensorFlow's thread pools is not safe, and unlike multiprocessing's ``spawn`` this does
not re-run the caller's main script), talking over one end of a ``multiprocessing.Pipe``
passed as FD. It dies with its parent (Linux ``PR_SET_PDEATHSIG``), so ``kill -9`` of a search
leaves no orphan training on.
"""

from __future__ import annotations

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

from search._process import die_with_parent, rss_mb, utc_now
from search._request import TrialRequest
from search.hyperparameters import fixed_hyperparameters
from search.results import TrialRecord


class PrunedByParent(Exception):
    """Raised in the child when the parent's engine decided to prune the trial."""


class CallbackFailed(Exception):
    """Raised in the child when one of the engine's callbacks raised in the parent."""


def train_in_child(runner, hp: Any, request: TrialRequest) -> tuple[TrialRecord, float | None]:
    """``runner.train`` for one trial, in a child process; returns (row, child's peak MiB).

    ``runner`` is a ``search.trial.TrialRunner`` (duck-typed: this module never imports the
    runner, which imports it). The request crosses to the child without the engine's
    callbacks (``TrialRequest.for_child``): they run here, on the epochs the child reports."""
    config = runner.declare(hp)
    started, started_at = time.perf_counter(), utc_now()
    # The child's stderr (TensorFlow's start-up chatter, warnings, a crash's traceback) goes to
    # the trial's log file, not over the progress bar; a dead child's error quotes its end.
    log_path = _log_path(runner, request.number)
    parent_end, child_end = multiprocessing.Pipe()
    with open(log_path, "w", encoding="utf-8") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "search.isolation", str(child_end.fileno())],
            pass_fds=(child_end.fileno(),),
            stderr=log,
            env=_child_environment(),
        )
    child_end.close()  # the child's end lives in the child only: its death means EOF here
    seen: dict[str, list[float]] = {}
    try:
        record, peak_mb = _talk_to_child(
            parent_end, (_child_runner(runner), config, request.for_child()), request, seen
        )
        try:
            child.wait(timeout=120)  # exiting takes a moment; a child stuck in it is killed
        except subprocess.TimeoutExpired:
            pass
    finally:
        if child.poll() is None:  # KeyboardInterrupt or an error here: take the child down too
            child.kill()
            child.wait()
        parent_end.close()
    if record is None:
        record = _dead_child_record(
            runner,
            config,
            request,
            child.returncode,
            seen,
            time.perf_counter() - started,
            started_at,
            log_path,
        )
    elif runner.study is None:
        log_path.unlink(missing_ok=True)  # a runner without a study leaves nothing behind
    record.config = config  # the values the engine holds (the child's are equal)
    return record, peak_mb


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
) -> tuple[TrialRecord | None, float | None]:
    """Send the trial, judge each epoch the child reports with the engine's callbacks (its
    logs are gathered in ``seen``), and return the child's row and peak memory; ``(None,
    None)`` when the child died first."""
    try:
        conn.send(list(sys.path))  # so the child unpickles what this process can
        conn.send(trial)
        while True:
            message = conn.recv()
            if message[0] == "epoch":
                _, epoch, logs = message
                for key, value in logs.items():
                    seen.setdefault(key, []).append(value)
                conn.send(_verdict(request, epoch, logs))
            elif message[0] == "done":
                _, record, peak_mb = message
                return record, peak_mb
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return None, None  # the child died; its exit status says how


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
    """``python -m search.isolation FD``: receive one trial on connection FD, train, reply."""
    from multiprocessing.connection import Connection

    die_with_parent()
    conn = Connection(fd)
    try:
        sys.path[:] = conn.recv()
        runner, config, request = conn.recv()
    except EOFError:
        return 1  # the parent is gone
    # The engine's callbacks stayed in the parent: here, one that asks it after every epoch.
    request = dataclasses.replace(
        request, callbacks=(_reporter(conn),), prune_exceptions=(PrunedByParent,)
    )
    try:
        record = runner.train(fixed_hyperparameters(config), request)
        conn.send(("done", record, rss_mb("VmHWM")))
    except KeyboardInterrupt:
        return 130  # Ctrl-C reaches the whole process group; the parent handles it
    finally:
        conn.close()
    return 0


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
