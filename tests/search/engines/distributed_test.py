"""Many workers, one Optuna study: the study's trial total, each worker's own draws, concurrent
creation, other machines' running trials left to the heartbeat, and (on a throwaway
PostgreSQL server) two worker processes at once, one of them killed mid-trial."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from sqlalchemy.exc import SQLAlchemyError

from search.engines.optuna import (
    count_finished,
    counts,
    open_optuna_study,
    per_trial_seeded,
    predecessor,
    recover_interrupted,
    retried_numbers,
    stored_row,
    surplus_reason,
    sync_from_storage,
)
from search.results import read_trials
from search.study import SearchError, Study

from .conftest import QUIET_ENV, synthetic_search_command

REPO = Path(__file__).resolve().parents[3]
DIST = optuna.distributions


def _trial(state, **user_attrs):
    return optuna.trial.create_trial(
        state=state,
        value=0.5 if state.name == "COMPLETE" else None,
        params={"x": 1},
        distributions={"x": DIST.IntDistribution(0, 9)},
        user_attrs=user_attrs,
    )


def test_each_worker_draws_its_own_configurations_and_one_worker_reproduces():
    space = {"x": DIST.FloatDistribution(0, 1), "k": DIST.CategoricalDistribution(list("abcdefgh"))}

    def draws(seed: int, workers: int, n: int) -> list[dict]:
        # ``workers`` samplers built alike (what N processes started at once do), taking turns.
        study = optuna.create_study()
        samplers = [
            per_trial_seeded(optuna.samplers.RandomSampler(seed=seed), seed) for _ in range(workers)
        ]
        out = []
        for i in range(n):
            study.sampler = samplers[i % workers]
            trial = study.ask(space)
            study.tell(trial, 0.0)
            out.append(trial.params)
        return out

    two = draws(3, workers=2, n=8)
    assert len({tuple(sorted(p.items())) for p in two}) == 8  # no pair drew the same
    assert draws(3, workers=1, n=8) == draws(3, workers=1, n=8)  # a lone worker reproduces
    assert draws(3, workers=1, n=8) == two  # draws follow the trial number, not the process
    assert draws(4, workers=1, n=8) != two


def test_the_trial_total_is_the_studys_and_late_or_duplicate_retries_are_surplus():
    S = optuna.trial.TrialState
    study = optuna.create_study()
    study.add_trial(_trial(S.COMPLETE, row={}))  # 0 counts
    study.add_trial(_trial(S.FAIL))  # 1 killed, no row ...
    study.add_trial(_trial(S.COMPLETE, row={}))  # 2 counts
    retry = optuna.trial.create_trial(
        state=S.WAITING,
        params={"x": 1},
        distributions={"x": DIST.IntDistribution(0, 9)},
        system_attrs={"failed_trial": 1, "retry_history": [1]},
    )
    study.add_trial(retry)  # 3 ... retried by the heartbeat
    study.add_trial(_trial(S.FAIL, interrupted=True))  # 4 Ctrl-C: redone, not counted
    study.add_trial(_trial(S.FAIL, surplus="late"))  # 5 surplus: not counted
    trials = study.get_trials(deepcopy=False)
    assert predecessor(trials[3]) == 1
    assert count_finished(trials) == 2
    # Trial 3 may run for a total of 3, not for a total of 2 (0 and 2 hold the slots).
    assert surplus_reason(trials, 3, 3) is None
    assert "already taken" in surplus_reason(trials, 3, 2)
    # A second copy of the same retry (two workers resumed at once) is surplus.
    twin = optuna.trial.create_trial(
        state=S.WAITING,
        params={"x": 1},
        distributions={"x": DIST.IntDistribution(0, 9)},
        user_attrs={"retry_of": 1},
    )
    study.add_trial(twin)
    assert "already retries trial 1" in surplus_reason(study.get_trials(deepcopy=False), 6, 10)


def _opener(args):
    root, url = args
    study = Study("race", engine="optuna", algorithm="random", space="cnn", root=root)
    ostudy, created = open_optuna_study(study, url, heartbeat=5)
    return created, ostudy._study_id


def test_workers_creating_one_study_at_once_on_sqlite_all_open_it(tmp_path):
    import multiprocessing

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        opened = pool.map(_opener, [(str(tmp_path), url)] * 4)
    assert sum(created for created, _ in opened) == 1  # one creator: it queues the references
    assert len({study_id for _, study_id in opened}) == 1


def test_a_running_trial_of_another_machine_is_left_to_the_heartbeat(tmp_path):
    study = Study("hosts", engine="optuna", algorithm="random", space="cnn", root=tmp_path)
    ostudy, _ = open_optuna_study(study, f"sqlite:///{tmp_path / 'o.db'}")
    for host in ("another-machine", socket.gethostname()):
        trial = ostudy.ask()
        trial.suggest_int("x", 0, 9)
        trial.set_user_attr("host", host)
        trial.set_user_attr("pid", 2**22 + 12345)  # no such process here
    recover_interrupted(ostudy, study)
    # The other machine's trial runs on; this machine's dead one is failed and queued again.
    assert [(t.state.name, predecessor(t)) for t in ostudy.get_trials()] == [
        ("RUNNING", None),
        ("FAIL", None),
        ("WAITING", 1),
    ]


def test_keras_tuners_chief_worker_variables_are_refused_with_the_optuna_route(monkeypatch):
    from search.engines import get_engine

    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
    with pytest.raises(
        SearchError, match=r"KERASTUNER_TUNER_ID is set: .*--engine optuna --storage"
    ):
        get_engine("keras-tuner", "random")


# --- two worker processes on a throwaway PostgreSQL server -------------------------------------


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL server of its own in a temporary folder, on a free port; its URL."""
    url = os.environ.get("ART_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    pytest.importorskip(
        "psycopg", reason='the postgres extra is not installed: pip install -e ".[postgres]"'
    )
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip(
            "no PostgreSQL server binaries (initdb): apt-get install postgresql "
            "(.ci/run does), or set ART_TEST_POSTGRES_URL"
        )
    folder = Path(tempfile.mkdtemp(prefix="art-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root: the server runs as the postgres user.
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server")
        os.chown(folder, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()
    subprocess.run(
        [
            *run_as,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "art",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    subprocess.run(
        [
            *run_as,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-t",
            "60",
            "-l",
            str(folder / "log"),
            "-o",
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        yield f"postgresql://art@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(folder, ignore_errors=True)


def _worker(results: Path, url: str, trials: int) -> subprocess.Popen:
    # Each worker has its own results folder: what N machines sharing one database look like.
    command = synthetic_search_command(
        results,
        epochs=3,
        trials=trials,
        seed=0,
        extra=("--study", "shared", "--storage", url, "--heartbeat", "2", "--in-process"),
    )
    return subprocess.Popen(
        command,
        cwd=REPO,
        env=QUIET_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_two_workers_share_one_postgres_study_and_a_killed_workers_trial_is_retried(
    postgres_url, tmp_path
):
    trials = 6  # at 4, worker b once ran three trials while a was in its first: no kill
    a, b = (
        _worker(tmp_path / "a", postgres_url, trials),
        _worker(tmp_path / "b", postgres_url, trials),
    )
    storage = None
    try:
        # Kill worker a once it has finished a trial and has been inside the next for a moment.
        deadline, killed = time.monotonic() + 150, None
        while killed is None and time.monotonic() < deadline and a.poll() is None:
            time.sleep(0.1)
            try:
                # Opened once the workers have made the tables (this process must not race them).
                storage = storage or optuna.storages.RDBStorage(
                    postgres_url, skip_table_creation=True
                )
                ts = optuna.load_study(study_name="shared", storage=storage).get_trials()
            except (KeyError, SQLAlchemyError, optuna.exceptions.StorageInternalError):
                storage = None
                continue  # not created yet
            mine = [t for t in ts if t.user_attrs.get("pid") == a.pid]
            running = [t for t in mine if t.state.name == "RUNNING"]
            if (
                any(t.state.name == "COMPLETE" for t in mine)
                and running
                and (time.time() - running[0].datetime_start.timestamp()) > 0.3
            ):
                a.send_signal(signal.SIGKILL)
                killed = running[0].number
        assert killed is not None, (
            "worker a never ran a second trial: " + (a.communicate()[0] or "")[-2000:]
        )
        a.wait(timeout=30)
        rows_a_at_kill = read_trials(tmp_path / "a" / "searches" / "shared" / "trials.jsonl")
        out_b = b.communicate(timeout=240)[0]
        assert b.returncode == 0, out_b[-3000:]
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()

    ts = optuna.load_study(study_name="shared", storage=storage).get_trials()
    retried = retried_numbers(ts)
    counted = [t for t in ts if counts(t, retried)]
    # The study's total, all workers together: exactly --trials, no trial id twice.
    assert count_finished(ts) == trials == len(counted)
    rows_a = read_trials(tmp_path / "a" / "searches" / "shared" / "trials.jsonl")
    rows_b = read_trials(tmp_path / "b" / "searches" / "shared" / "trials.jsonl")
    run_by_a = {r.number for r in rows_a_at_kill}
    assert run_by_a and rows_a == rows_a_at_kill  # a's finished trials are all kept
    by_b = {
        r.number for r in rows_b if r.worker.endswith(str(tmp_path / "b" / "searches" / "shared"))
    }
    assert not run_by_a & by_b  # no trial ran twice
    assert run_by_a | by_b == {t.number for t in counted}
    # No configuration ran twice (the killed trial's retry is the one repeat, and it replaced it).
    configs = [tuple(sorted(map(str, t.params.items()))) for t in counted]
    assert len(set(configs)) == len(configs)
    # The killed trial: failed by the heartbeat, retried once, and the retry finished.
    dead = next(t for t in ts if t.number == killed)
    assert dead.state.name == "FAIL" and stored_row(dead) is None
    (retry,) = [t for t in ts if predecessor(t) == killed]
    assert retry.params == dead.params and retry.number in by_b
    # Every finished trial's whole row is in the storage: the table rebuilt from it alone, on a
    # machine with no study folder, holds every counted trial, a's with their histories.
    synced = sync_from_storage(postgres_url, "shared", tmp_path / "elsewhere")
    rows_elsewhere = read_trials(synced["study_dir"] / "trials.jsonl")
    assert {r.number for r in rows_elsewhere} == {t.number for t in counted}
    assert {r.number: r.history for r in rows_elsewhere if r.number in run_by_a} == {
        r.number: r.history for r in rows_a
    }
    assert (synced["study_dir"] / "study.json").exists()


def test_dashboard_reads_a_study_from_its_storage_alone(tmp_path, capsys):
    """A machine with no study folder: the rows come from the storage, whole, with the worker
    that keeps the model; an unknown study is one error line."""
    from search.dashboard.__main__ import main as dashboard
    from search.results import TrialRecord

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    ostudy = optuna.create_study(study_name="far", storage=url, direction="maximize")
    ostudy.set_user_attr(
        "study_json",
        {
            "study": "far",
            "engine": "optuna",
            "algorithm": "tpe",
            "space": "cnn",
            "seed": 0,
            "config": {"storage": url},
        },
    )
    rows = []
    for number, accuracy in enumerate((0.4, 0.7)):
        row = TrialRecord(
            study="far",
            engine="optuna",
            algorithm="tpe",
            space="cnn",
            trial_id=str(number),
            number=number,
            state="COMPLETE",
            config={"x": number},
            val_accuracy=accuracy,
            epochs_run=2,
            history={"val_accuracy": [accuracy / 2, accuracy]},
            worker=f"machine-{number}:/srv/results/searches/far",
        )
        rows.append(row)
        ostudy.add_trial(
            optuna.trial.create_trial(
                value=accuracy,
                params={"x": number},
                distributions={"x": DIST.IntDistribution(0, 9)},
                user_attrs={"row": row.to_dict()},
            )
        )
    here = tmp_path / "here"
    assert (
        dashboard(
            [
                "--storage",
                url,
                "--study",
                "far",
                "--results",
                str(here),
                "--out",
                str(here / "d.html"),
            ]
        )
        == 0
    )
    assert read_trials(here / "searches" / "far" / "trials.jsonl") == rows
    assert "machine-0:/srv/results/searches/far" in capsys.readouterr().err
    assert (here / "d.html").stat().st_size > 0
    assert dashboard(["--storage", url, "--study", "near", "--results", str(here)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no study 'near'" in err and "far" in err
