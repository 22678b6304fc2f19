"""``python -m search.run`` on bad numbers, a read-only results folder, a full disk, a search
whose every trial failed, and TensorFlow's start-up lines (issue #20)."""

from __future__ import annotations

import builtins
import errno
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from search._files import NotWritableError, disk_full, write_text_atomically
from search.run import main

REPO = Path(__file__).resolve().parents[2]
SMALL = ["--space", "cnn", "--synthetic", "--trials", "1", "--epochs", "1", "--no-progress"]


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--max-time", "-5", "--max-time: must be at least 1 (seconds), got -5"),
        ("--max-image-size", "0", "--max-image-size: must be at least 16 (pixels), got 0"),
        ("--max-image-size", "-32", "--max-image-size: must be at least 16 (pixels), got -32"),
        ("--batch-size", "0", "--batch-size: must be at least 1 (images), got 0"),
        ("--max-time", "nan", "--max-time: must be at least 1 (seconds), got nan"),
    ],
)
def test_bad_numbers_are_one_error_line_at_the_command_line(option, value, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*SMALL, option, value])
    assert exc.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].endswith(message)


def read_only_under(monkeypatch, folder: Path) -> None:
    """Writing (or making a folder) under ``folder`` fails as on a read-only mount (tests run
    as root, which ignores permission bits)."""
    real_open, real_mkdir = builtins.open, os.mkdir
    inside = str(folder)

    def refuse(path) -> None:
        if str(os.fspath(path)).startswith(inside):
            raise OSError(errno.EROFS, "Read-only file system", str(path))

    def guarded_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and any(m in mode for m in "wax+"):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def guarded_mkdir(path, *args, **kwargs):
        if not os.path.isdir(path):
            refuse(path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)  # pathlib's
    monkeypatch.setattr(os, "mkdir", guarded_mkdir)


def test_a_read_only_file_is_one_error_naming_the_folder_and_results(tmp_path, monkeypatch):
    read_only_under(monkeypatch, tmp_path)
    with pytest.raises(NotWritableError) as exc:
        write_text_atomically(tmp_path / "study.json", "{}")
    message = str(exc.value)
    assert message.startswith(f"cannot write into {tmp_path}: it is on a read-only file system")
    assert "--results" in message and "\n" not in message
    assert exc.value.errno == errno.EROFS
    assert not list(tmp_path.iterdir())  # no temporary file left


@pytest.mark.parametrize("existing", [False, True], ids=["new-study", "resume"])
def test_search_run_on_a_read_only_results_folder_is_one_error_line(
    existing, tmp_path, monkeypatch, capsys
):
    results = tmp_path / "results"
    argv = [*SMALL, "--max-image-size", "16", "--in-process", "--results", str(results)]
    if existing:
        (results / "searches" / "cnn-optuna-tpe").mkdir(parents=True)
    read_only_under(monkeypatch, results)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot write into ")
    assert "read-only file system" in err[0] and "--results" in err[0]


def test_disk_full_is_told_from_its_chain():
    import sqlite3

    try:
        try:
            raise sqlite3.OperationalError("database or disk is full")
        finally:
            raise AssertionError("Should not reach.")  # what Optuna's trial loop ends in
    except AssertionError as exc:
        assert disk_full(exc)
    assert disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert not disk_full(ValueError("bad"))


@pytest.mark.slow
def test_a_full_disk_during_a_trial_is_one_line_and_the_finished_trials_are_kept(
    tmp_path, monkeypatch, capsys
):
    import sqlite3

    import optuna
    from sqlalchemy.exc import OperationalError

    real = optuna.storages.RDBStorage.set_trial_state_values
    calls = {"n": 0}

    def full_on_the_second_tell(self, trial_id, state, values=None):
        if state.is_finished():
            calls["n"] += 1
            if calls["n"] == 2:
                raise optuna.exceptions.StorageInternalError(
                    "An exception is raised during the commit."
                ) from OperationalError(
                    "UPDATE trials", {}, sqlite3.OperationalError("database or disk is full")
                )
        return real(self, trial_id, state, values)

    monkeypatch.setattr(
        optuna.storages.RDBStorage, "set_trial_state_values", full_on_the_second_tell
    )
    argv = [*SMALL, "--trials", "3", "--max-image-size", "16", "--in-process"]
    assert main([*argv, "--results", str(tmp_path), "--algorithm", "random"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: the disk is full (")
    assert "finished trials are kept" in err[-1] and "Traceback" not in "".join(err)


@pytest.mark.slow
def test_a_search_whose_every_trial_failed_exits_1(tmp_path, monkeypatch, capsys):
    from spaces import get_space

    def broken_build(self, hp, ctx):
        raise ValueError("this configuration cannot be built")

    monkeypatch.setattr(type(get_space("cnn")), "build", broken_build)
    argv = [*SMALL, "--trials", "2", "--max-image-size", "16", "--in-process"]
    assert main([*argv, "--results", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: all 2 trial(s) failed; their errors are in ")
    assert "trials.csv" in err[-1]


@pytest.mark.slow
def test_a_search_prints_no_tensorflow_start_up_lines(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(
        # 16 px: the published net's trial (the first, a reference) converts to TFLite faster.
        [sys.executable, "-m", "search.run", *SMALL, "--max-image-size", "16"]
        + ["--results", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = (done.stdout + done.stderr).splitlines()
    native = [line for line in lines if line[:5] in ("I0000", "W0000", "E0000")]
    assert native == [] and not any("absl::InitializeLog" in line for line in lines)
    assert not any("A new study created" in line for line in lines)  # Optuna's INFO line
    # The trial's own log keeps what TensorFlow wrote.
    log = tmp_path / "searches" / "cnn-optuna-tpe" / "logs" / "trial-0.log"
    assert log.exists()


def test_the_dashboard_on_a_read_only_results_folder_is_one_error_line(
    tmp_path, monkeypatch, capsys
):
    from search.dashboard.__main__ import main as dashboard

    (tmp_path / "searches").mkdir()
    read_only_under(monkeypatch, tmp_path)
    assert dashboard(["--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: cannot write into {tmp_path}: it is on a read-only")
