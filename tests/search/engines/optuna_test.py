"""Optuna engine: end to end, reference enqueued first, resume, interrupts, failures, pruning."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from search.engines import get_engine
from search.engines.optuna import declared_kinds
from search.results import read_json, read_trials
from search.run import run_search
from search.study import SearchError
from spaces import BuildContext, Space, get_space

from .conftest import (
    QUIET_ENV,
    InterruptSecondTraining,
    PruneableSpace,
    check_best,
    check_table,
    synthetic_search_args,
    synthetic_search_command,
)

REPO = Path(__file__).resolve().parents[3]


def search(data, tmp_path, **kw):
    kw.setdefault("engine", "optuna")
    kw.setdefault("epochs", 1)
    # 16 px: these tests are about the engine, not the model; the cnn space's widest
    # configurations (512-filter blocks) train about four times faster than at 32 px.
    kw.setdefault("max_image_size", 16)
    kw.setdefault("progress", False)
    # In this process: these tests are about the engine (their callbacks raise Ctrl-C inside
    # a trial); isolation_test.py runs searches with a child process per trial.
    kw.setdefault("isolate", False)
    kw.setdefault("measure_latency", False)  # tests/search/latency_test.py measures
    return run_search(kw.pop("space", "cnn"), data, results=tmp_path, **kw)


def load(study_dir: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{study_dir / 'optuna.db'}")


@pytest.mark.slow
def test_tpe_search_end_to_end_writes_the_common_table(tiny_data, tmp_path):
    out = search(tiny_data, tmp_path, trials=3, epochs=2, seed=1)
    study_dir = out["study_dir"]
    assert study_dir == tmp_path / "searches" / "cnn-optuna-tpe"
    records = check_table(study_dir, "cnn", 3)
    assert records[0].config == get_space("cnn").reference_configs()[0]
    check_best(study_dir, records)
    study = load(study_dir, "cnn-optuna-tpe")
    assert study.trials[0].user_attrs["reference"] is True
    assert [t.number for t in study.trials] == [r.number for r in records]
    for t, r in zip(study.trials, records):
        assert t.state.name == r.state
        if r.state == "COMPLETE":
            assert t.value == pytest.approx(r.val_accuracy)
    # Every completed trial kept its predictions; the ensemble is picked from them on
    # validation (round one is the best single trial, so it scores at least as well there).
    complete = [r for r in records if r.state == "COMPLETE"]
    assert sorted(p.name for p in (study_dir / "predictions").iterdir()) == sorted(
        f"trial-{r.number}.npz" for r in complete
    )
    ensemble = read_json(study_dir / "ensemble.json")
    assert set(ensemble["members"]) <= {r.trial_id for r in complete}
    assert ensemble["val_accuracy"] >= max(r.val_accuracy for r in complete) - 1e-9
    assert ensemble["test"]["n"] == 20 and ensemble["val_n"] == 20
    assert out["ensemble"] == ensemble


@pytest.mark.slow
def test_resume_keeps_finished_trials_and_does_not_rerun_them(tiny_data, tmp_path):
    search(tiny_data, tmp_path, algorithm="random", trials=2, seed=5)
    study_dir = tmp_path / "searches" / "cnn-optuna-random"
    before = {r.number: r.to_dict() for r in read_trials(study_dir / "trials.jsonl")}
    search(tiny_data, tmp_path, algorithm="random", trials=4)
    rows = check_table(study_dir, "cnn", 4)
    assert {n: before[n] for n in (0, 1)} == {r.number: r.to_dict() for r in rows[:2]}
    assert sum(1 for _ in open(study_dir / "trials.jsonl")) == 4
    study = load(study_dir, "cnn-optuna-random")
    assert len(study.trials) == 4
    # A resumed sampler does not replay the first run's draws.
    assert rows[2].config != rows[1].config and rows[3].config != rows[1].config
    search(tiny_data, tmp_path, algorithm="random", trials=4)  # nothing left to do
    assert len(load(study_dir, "cnn-optuna-random").trials) == 4


@pytest.mark.slow
def test_ctrl_c_mid_trial_then_resume_redoes_only_that_trial(tiny_data, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        # Two trials: the first finishes, the second is interrupted and then retried.
        search(tiny_data, tmp_path, trials=2, epochs=2, callbacks=[InterruptSecondTraining()])
    study_dir = tmp_path / "searches" / "cnn-optuna-tpe"
    before = read_trials(study_dir / "trials.jsonl")
    (interrupted,) = [
        t for t in load(study_dir, "cnn-optuna-tpe").trials if t.user_attrs.get("interrupted")
    ]
    assert interrupted.state.name == "FAIL"
    assert [r.number for r in before] == list(range(interrupted.number))  # nothing after it ran
    assert before[0].config == get_space("cnn").reference_configs()[0]

    search(tiny_data, tmp_path, trials=2, epochs=2)
    rows = check_table(study_dir, "cnn", 2)
    assert [r.to_dict() for r in rows[: len(before)]] == [r.to_dict() for r in before]
    assert interrupted.number not in [r.number for r in rows]
    study = load(study_dir, "cnn-optuna-tpe")
    (retry,) = [t for t in study.trials if t.user_attrs.get("retry_of") == interrupted.number]
    assert retry.params == interrupted.params
    assert next(r for r in rows if r.number == retry.number).config == interrupted.params
    assert sum(1 for _ in open(study_dir / "trials.jsonl")) == 2


@pytest.mark.slow
def test_trial_left_running_by_a_killed_process_is_failed_and_redone(tiny_data, tmp_path):
    search(tiny_data, tmp_path, trials=1)
    study_dir = tmp_path / "searches" / "cnn-optuna-tpe"
    study = load(study_dir, "cnn-optuna-tpe")
    stale = study.ask()  # what a kill -9 leaves behind: RUNNING forever
    stale.suggest_int("conv_blocks", 1, 5)
    stale.set_user_attr("pid", 2**22 + 12345)  # no such process
    stale.set_user_attr("host", os.uname().nodename)

    search(tiny_data, tmp_path, trials=2)
    study = load(study_dir, "cnn-optuna-tpe")
    assert study.trials[1].state.name == "FAIL" and study.trials[1].user_attrs["interrupted"]
    assert study.trials[2].user_attrs["retry_of"] == 1
    rows = check_table(study_dir, "cnn", 2)
    assert [r.number for r in rows] == [0, 2]


@pytest.mark.slow
def test_row_written_but_tell_lost_is_completed_not_rerun(tiny_data, tmp_path):
    from search.results import TrialRecord, append_trial

    search(tiny_data, tmp_path, trials=1)
    study_dir = tmp_path / "searches" / "cnn-optuna-tpe"
    study = load(study_dir, "cnn-optuna-tpe")
    lost = study.ask()  # killed after the runner wrote the row, before Optuna heard back
    blocks = lost.suggest_int("conv_blocks", 1, 5)
    row = TrialRecord(
        study="cnn-optuna-tpe",
        engine="optuna",
        algorithm="tpe",
        space="cnn",
        trial_id="1",
        number=1,
        state="COMPLETE",
        config={"conv_blocks": blocks},
        val_accuracy=0.01,
        epochs_run=1,
    )
    append_trial(study_dir / "trials.jsonl", row)

    search(tiny_data, tmp_path, trials=2)
    study = load(study_dir, "cnn-optuna-tpe")
    assert len(study.trials) == 2  # nothing new ran
    assert study.trials[1].state.name == "COMPLETE" and study.trials[1].value == 0.01


def _search_command(results: Path, epochs: int, trials: int = 2) -> list[str]:
    return synthetic_search_command(results, epochs=epochs, trials=trials, seed=3)


def _search_to_its_end(results: Path, epochs: int, trials: int, *extra: str) -> None:
    """:func:`_search_command`'s search, run to its end in this process (the command line's
    own entry point; its imports are paid once per test worker, not once per run)."""
    from search.run import main

    args = synthetic_search_args(results, epochs=epochs, trials=trials, seed=3, extra=extra)
    assert main(args) == 0


def _search_in_a_trial(
    tmp_path: Path, *, after_one: bool = True
) -> tuple[subprocess.Popen, Path, list[int]]:
    """A search whose trial, hundreds of epochs from its end, trains in a child process (with
    ``after_one``, its second trial: the first finished in a run of its own): the process,
    its study folder and the trial's processes."""
    if after_one:  # in the search process: a child's start-up is tested by the run below
        _search_to_its_end(tmp_path, 1, 1, "--in-process")
    study_dir = tmp_path / "searches" / "cnn-optuna-random"
    # stderr to a file: a pipe nobody reads while the search runs could fill and stall it.
    with open(tmp_path / "stderr.txt", "w") as stderr:
        proc = subprocess.Popen(
            _search_command(tmp_path, 500),
            cwd=REPO,
            env=QUIET_ENV,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    deadline = time.monotonic() + 120
    seen: dict[int, float] = {}
    # Once the trial has run for a second and its process has started: it is training (a
    # configuration that fails in build is over much sooner).
    while time.monotonic() < deadline and proc.poll() is None:
        trials = []
        if (study_dir / "optuna.db").exists():
            try:
                trials = load(study_dir, "cnn-optuna-random").trials
            except Exception:  # noqa: BLE001 - the database may be mid-creation
                pass
        running = [
            t.number for t in trials if t.state.name == "RUNNING" and t.number >= int(after_one)
        ]
        if (
            running
            and time.monotonic() - seen.setdefault(running[0], time.monotonic()) > 1.0
            and children_of(proc.pid)
        ):
            break
        time.sleep(0.2)
    if proc.poll() is not None:
        stderr = (tmp_path / "stderr.txt").read_text()[-2000:]
        pytest.fail("the search ended before it could be stopped: " + stderr)
    trial_processes = children_of(proc.pid)  # the trial trains in a child process
    assert trial_processes, "no trial process found"
    return proc, study_dir, trial_processes


def _all_gone(pids: list[int]) -> bool:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(map(is_running, pids)):
        time.sleep(0.2)
    return not any(map(is_running, pids))


@pytest.mark.slow
def test_kill_dash_9_during_a_trial_then_same_command_resumes(tmp_path):
    proc, study_dir, trial_processes = _search_in_a_trial(tmp_path)
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert _all_gone(trial_processes)  # no orphan keeps training
    finally:
        if proc.poll() is None:
            proc.kill()
    (killed,) = [
        t.number for t in load(study_dir, "cnn-optuna-random").trials if t.state.name == "RUNNING"
    ]
    before = read_trials(study_dir / "trials.jsonl")
    assert [r.number for r in before] == list(range(killed))

    _search_to_its_end(tmp_path, 1, trials=2)
    rows = read_trials(study_dir / "trials.jsonl")
    assert [r.to_dict() for r in rows[:killed]] == [r.to_dict() for r in before]
    # The study's 2 trials: the one finished before the kill, and the killed one's retry.
    assert len(rows) == 2 and killed not in [r.number for r in rows]
    study = load(study_dir, "cnn-optuna-random")
    assert (
        study.trials[killed].state.name == "FAIL" and study.trials[killed].user_attrs["interrupted"]
    )
    assert [t.user_attrs.get("retry_of") for t in study.trials].count(killed) == 1
    assert (study_dir / "best.json").exists()


@pytest.mark.slow
def test_sigterm_during_a_trial_stops_as_ctrl_c_does(tmp_path):
    """``kill PID`` (a job scheduler's or a container's stop): the search says its finished
    trials are kept, exits 130, leaves no trial process behind and marks the trial it stopped
    to be retried, where Python's default ended it without a word."""
    proc, study_dir, trial_processes = _search_in_a_trial(tmp_path, after_one=False)
    try:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == 130, stderr[-2000:]
    assert "interrupted: finished trials are kept" in stderr
    assert "Traceback" not in stderr
    assert _all_gone(trial_processes)
    started = [t for t in load(study_dir, "cnn-optuna-random").trials if t.state.name != "WAITING"]
    *finished, stopped = started  # (WAITING: the space's starting point, queued, not begun)
    assert stopped.state.name == "FAIL" and stopped.user_attrs["interrupted"]
    rows = study_dir / "trials.jsonl"
    kept = read_trials(rows) if rows.exists() else []
    assert [r.number for r in kept] == [t.number for t in finished]  # none for the stopped one


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # fields after "pid (comm)": state, ppid, ...
            found.append(int(stat.parent.name))
    return found


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its exit status is left to collect


@pytest.mark.slow
def test_failing_trials_are_recorded_and_the_search_goes_on(tiny_data, tmp_path, flaky_space):
    out = search(
        tiny_data, tmp_path, space=flaky_space, trials=4, study="flaky-optuna", pruner="none"
    )
    rows = check_table(out["study_dir"], flaky_space, 4)
    assert [r.config["mode"] for r in rows[:3]] == ["raise", "nan", "ok"]
    assert rows[0].state == "FAIL" and "cannot be built" in rows[0].error
    assert rows[1].state == "FAIL" and "NaN" in rows[1].error
    assert rows[2].state == "COMPLETE"
    study = load(out["study_dir"], "flaky-optuna")
    assert [t.state.name for t in study.trials[:3]] == ["FAIL", "FAIL", "COMPLETE"]
    assert check_best(out["study_dir"], rows)["config"]["mode"] == "ok"


@pytest.mark.slow
def test_median_pruner_prunes_through_the_keras_callback(tiny_data, tmp_path):
    # Enqueue a weak config after strong ones: with n_startup_trials=3 and one warm-up epoch,
    # the median pruner stops it after epoch 2 when it trails the earlier trials.
    space = PruneableSpace()
    out = search(
        tiny_data, tmp_path, space=space, trials=4, epochs=6, study="prune", pruner="median"
    )
    rows = read_trials(out["study_dir"] / "trials.jsonl")
    assert rows[3].state == "PRUNED" and rows[3].epochs_run < 6, [
        (r.state, r.history) for r in rows
    ]
    assert load(out["study_dir"], "prune").trials[3].state.name == "PRUNED"


@pytest.mark.slow
def test_cmaes_runs_on_a_numeric_space_and_refuses_a_categorical_only_one(tiny_data, tmp_path):
    out = search(tiny_data, tmp_path, algorithm="cmaes", trials=2)
    assert len(read_trials(out["study_dir"] / "trials.jsonl")) == 2

    class Categorical(Space):
        name = "categorical"

        def build(self, hp, ctx):
            hp.Choice("a", ["x", "y"])
            hp.Boolean("b")
            raise ValueError("never trained")

    kinds = declared_kinds(get_space("cnn"), BuildContext(num_classes=5, max_image_size=32))
    assert kinds["learning_rate"] == "Float" and kinds["pooling"] == "Choice"
    with pytest.raises(
        SearchError, match=r"cmaes needs numeric hyperparameters.*'categorical'.*a, b"
    ):
        get_engine("optuna", "cmaes").check_space(Categorical(), BuildContext(num_classes=5))


def test_bad_engine_arguments_name_the_value_and_choices():
    with pytest.raises(
        SearchError,
        match=r"unknown algorithm 'bayesian' for engine 'optuna'; "
        r"choices: tpe, tpe-multivariate, random, cmaes",
    ):
        get_engine("optuna", "bayesian")
    with pytest.raises(
        SearchError, match=r"unknown pruner 'asha'; choices: median, hyperband, halving, none"
    ):
        get_engine("optuna", "tpe", pruner="asha")


# ------------------------------------------------------------------ storage: URL and driver


@pytest.mark.parametrize(
    "url, hint",
    [
        ("postgresql://me:s3cret@db.example:5432/art", 'pip install "art-arch-search[postgres]"'),
        (
            "postgresql+psycopg2://me:s3cret@db.example/art",
            'pip install "art-arch-search[postgres]"',
        ),
        ("mysql://me:s3cret@db.example/art", "pip install mysqlclient"),
    ],
)
def test_storage_whose_driver_is_missing_is_refused_before_anything_is_written(
    url, hint, tmp_path, capsys, monkeypatch
):
    from search.run import main

    # As if no driver were installed (CI installs the postgres extra): importing one fails.
    for module in ("psycopg", "psycopg2", "MySQLdb", "pymysql"):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(SearchError) as exc:
        get_engine("optuna", "tpe", storage=url)
    message = str(exc.value)
    assert "\n" not in message and "s3cret" not in message
    assert url.replace("s3cret", "***") in message and hint in message
    code = main(
        [
            "--space",
            "cnn",
            "--synthetic",
            "--storage",
            url,
            "--results",
            str(tmp_path),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --storage ") and "Traceback" not in err
    assert "s3cret" not in err and hint in err
    assert not (tmp_path / "searches").exists()  # no study.json for a study that never started


@pytest.mark.parametrize(
    "url, expected",
    [
        ("db.sqlite", "is not a database URL"),
        ("postgres://me:s3cret@db.example/art", "unknown database 'postgres'"),
        ("postgresql://me:s3cret@db.example:port/art", "is not a database URL"),
        (
            "sqlite:///{tmp}/a-file/sub/optuna.db",
            "cannot create folder {tmp}/a-file/sub, {tmp}/a-file is a file",
        ),
    ],
)
def test_malformed_storage_url_is_refused_before_anything_is_written(
    url, expected, tmp_path, capsys
):
    from search.run import main

    (tmp_path / "a-file").write_text("")
    url, expected = url.format(tmp=tmp_path), expected.format(tmp=tmp_path)
    tmp_path = tmp_path / "results"

    with pytest.raises(SearchError, match=re.escape(expected)) as exc:
        get_engine("optuna", "tpe", storage=url)
    assert "s3cret" not in str(exc.value) and "\n" not in str(exc.value)
    assert (
        main(
            [
                "--space",
                "cnn",
                "--synthetic",
                "--storage",
                url,
                "--results",
                str(tmp_path),
                "--no-progress",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("error: --storage ") and expected in err and "Traceback" not in err
    assert not (tmp_path / "searches").exists()


@pytest.mark.slow
def test_resume_without_storage_uses_the_recorded_one_and_refuses_another(
    tiny_data, tmp_path, flaky_space
):
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    search(
        tiny_data,
        tmp_path,
        space=flaky_space,
        study="flaky",
        trials=1,
        storage=elsewhere,
        pruner="none",
    )
    study_dir = tmp_path / "searches" / "flaky"
    # A SQLite file in a folder that does not exist yet is fine: the folder is made.
    search(
        tiny_data,
        tmp_path,
        space=flaky_space,
        study="new",
        trials=1,
        pruner="none",
        storage=f"sqlite:///{tmp_path / 'dbs' / 'new.db'}",
    )
    assert (tmp_path / "dbs" / "new.db").is_file()
    search(tiny_data, tmp_path, space=flaky_space, study="flaky", trials=2, pruner="none")
    assert not (study_dir / "optuna.db").exists()  # no fresh study in the default file
    stored = optuna.load_study(study_name="flaky", storage=elsewhere)
    assert [t.number for t in stored.trials if t.state.is_finished()] == [0, 1]
    assert [r.number for r in read_trials(study_dir / "trials.jsonl")] == [0, 1]
    assert read_json(study_dir / "study.json")["config"]["storage"] == elsewhere

    third = tmp_path / "third.db"
    with pytest.raises(SearchError, match=r"was run with --storage .*elsewhere\.db"):
        search(
            tiny_data,
            tmp_path,
            space=flaky_space,
            study="flaky",
            trials=3,
            storage=f"sqlite:///{third}",
            pruner="none",
        )
    assert not third.exists()


# ------------------------------------------------------- the table against the storage


def tear_lines(path: Path, *, garble: tuple[int, ...] = (), tear_last: bool = True) -> None:
    """Garble whole lines (0-based) and tear the last one: what a crash or a full disk leaves."""
    lines = path.read_text().splitlines()
    for i in garble:
        lines[i] = "\x00\x00" + lines[i][:20]
    text = "\n".join(lines)
    path.write_text(text[: len(text) - len(lines[-1]) // 2] if tear_last else text + "\n")


@pytest.mark.slow
def test_torn_row_is_set_aside_and_re_derived_from_the_optuna_storage(
    tiny_data, tmp_path, flaky_space, capsys
):
    import sqlite3

    search(tiny_data, tmp_path, space=flaky_space, study="flaky", trials=3, pruner="none")
    study_dir = tmp_path / "searches" / "flaky"
    table = study_dir / "trials.jsonl"
    original = table.read_text().splitlines()
    before = read_trials(table)
    tear_lines(table, garble=(0,))  # row 0 garbled, row 2 (the completed one) torn
    # Trial 2's whole row is in the storage; trial 0's is not (what a study run by an older
    # version holds): its row can only be re-derived.
    with sqlite3.connect(study_dir / "optuna.db") as db:
        db.execute(
            "DELETE FROM trial_user_attributes WHERE key = 'row' AND trial_id IN "
            "(SELECT trial_id FROM trials WHERE number = 0)"
        )
    capsys.readouterr()

    search(tiny_data, tmp_path, space=flaky_space, study="flaky", trials=4, pruner="none")
    err = capsys.readouterr().err
    assert (
        f"warning: {table}: 2 lines could not be read (lines 1, 3); moved to {table}.unreadable"
    ) in err
    assert "warning: 1 finished trial (0) had no readable row in" in err
    assert "re-derived from the Optuna storage" in err
    assert "note: 1 finished trial had no row" in err and "copied from the Optuna storage" in err
    stored = load(study_dir, "flaky")
    rows = check_table(study_dir, flaky_space, 4)
    assert [r.number for r in rows] == [t.number for t in stored.trials] == [0, 1, 2, 3]
    trial, row = stored.trials[0], rows[0]
    assert row.state == trial.state.name and row.config == trial.params
    assert "row re-derived from the Optuna storage" in row.error
    # The stored row comes back whole: history, timings, the worker that keeps its weights.
    assert rows[2] == before[2] and rows[2].history["accuracy"] and rows[2].worker
    # Nothing is lost: every original line is in the table or set aside beside it.
    aside = (study_dir / "trials.jsonl.unreadable").read_text().splitlines()
    assert len(aside) == 2 and aside[1] == original[2][: len(aside[1])]
    # The table is whole again: the next run has nothing to set aside or re-derive.
    search(tiny_data, tmp_path, space=flaky_space, study="flaky", trials=4, pruner="none")
    assert "warning" not in capsys.readouterr().err


def test_rows_whose_storage_holds_no_such_study_are_refused(tiny_data, tmp_path, flaky_space):
    search(tiny_data, tmp_path, space=flaky_space, study="flaky", trials=1, pruner="none")
    study_dir = tmp_path / "searches" / "flaky"
    (study_dir / "optuna.db").unlink()  # lost, or the study was run against another storage
    with pytest.raises(
        SearchError,
        match=r"1 row in .*trials\.jsonl but .*optuna\.db holds no "
        r"Optuna study 'flaky'",
    ):
        search(tiny_data, tmp_path, space=flaky_space, study="flaky", trials=2, pruner="none")
    assert [r.number for r in read_trials(study_dir / "trials.jsonl")] == [0]
