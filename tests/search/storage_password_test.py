"""No database password on disk: a ``--storage`` URL's password is used for the run and never
written under the results tree (study.json is tracked in git), whether the run trains, fails
to connect, or resumes (the password then comes from PGPASSWORD / ~/.pgpass)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from search.study import Study
from tests.search.engines.conftest import synthetic_search_args
from tests.search.engines.distributed_test import _free_port, _postgres_bin

PASSWORD = "Pw-n0t-on-disk-7361"


def files_holding(root: Path, text: str) -> list[Path]:
    """Every file under ``root`` whose bytes contain ``text``."""
    return [
        path for path in root.rglob("*") if path.is_file() and text.encode() in path.read_bytes()
    ]


def search(
    results: Path, trials: int, *args: str, env: dict, monkeypatch, capfd
) -> tuple[int, str, str]:
    """``python -m search.run`` (``trials`` trials of study ``pw``) in this process (its
    imports are paid once per worker), with ``env`` set: (exit status, stdout, stderr), the
    file descriptors' whole output, so what a library writes past ``sys.stderr`` is read
    too."""
    from search.run import main

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capfd.readouterr()
    extra = ("--study", "pw", "--in-process", *args)
    code = main(synthetic_search_args(results, epochs=1, trials=trials, seed=0, extra=extra))
    out, err = capfd.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def password_server():
    """A throwaway PostgreSQL server that asks TCP clients for a password; ``(host, port)``
    and a database ``art`` owned by user ``search`` whose password is PASSWORD."""
    pytest.importorskip("psycopg2", reason='pip install -e ".[postgres]"')
    import psycopg2

    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb)")
    folder = Path(tempfile.mkdtemp(prefix="art-pgpw-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server")
        os.chown(folder, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()
    subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(data), "-U", "art", "--auth-local=trust",
         "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    subprocess.run(
        [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l",
         str(folder / "log"), "-o",
         f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    try:
        # Over the socket (trusted): the user with a password, and its database.
        admin = psycopg2.connect(host=str(folder), port=port, user="art", dbname="postgres")
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f"CREATE ROLE search LOGIN PASSWORD '{PASSWORD}'")
            cur.execute("CREATE DATABASE art OWNER search")
        admin.close()
        yield "127.0.0.1", port
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_a_run_and_its_resumes_on_postgresql_write_no_password(
    password_server, tmp_path, monkeypatch, capfd
):
    host, port = password_server
    url = f"postgresql://search:{PASSWORD}@{host}:{port}/art"
    results = tmp_path / "results"
    home = tmp_path / "home"  # no ~/.pgpass of the machine's user
    home.mkdir()
    clean = {"HOME": str(home), "PGPASSWORD": ""}
    with_password = {"HOME": str(home), "PGPASSWORD": PASSWORD}

    def run(trials: int, *args: str, env: dict) -> tuple[int, str, str]:
        return search(results, trials, *args, env=env, monkeypatch=monkeypatch, capfd=capfd)

    code, out, err = run(1, "--storage", url, env=clean)
    assert code == 0, err[-2000:]
    assert PASSWORD not in out + err
    assert files_holding(results, PASSWORD) == []
    study = Study.existing("pw", root=results)
    assert study.recorded_storage() == f"postgresql://search@{host}:{port}/art"

    # A resume without --storage has no password: it says where to put it, in one line.
    code, _, err = run(2, env=clean)
    assert code == 2
    error = err.strip().splitlines()[-1]
    assert error.startswith("error:") and "PGPASSWORD" in error and "~/.pgpass" in error

    # With PGPASSWORD, then ~/.pgpass, it resumes; still nothing on disk.
    code, _, err = run(2, env=with_password)
    assert code == 0, err[-2000:]
    pgpass = home / ".pgpass"
    pgpass.write_text(f"{host}:{port}:art:search:{PASSWORD}\n")
    pgpass.chmod(0o600)
    code, _, err = run(3, env=clean)
    assert code == 0, err[-2000:]
    assert len(study.records()) == 3
    assert files_holding(results, PASSWORD) == []

    # The study.json kept in the storage (another machine's sync) has no password either.
    from search.engines.optuna import sync_from_storage

    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    sync_from_storage(f"postgresql://search@{host}:{port}/art", "pw", tmp_path / "elsewhere")
    assert files_holding(tmp_path / "elsewhere", PASSWORD) == []
    assert (tmp_path / "elsewhere" / "searches" / "pw" / "study.json").exists()


def test_a_failed_connection_writes_no_password(tmp_path, monkeypatch, capfd):
    pytest.importorskip("psycopg2")
    port = _free_port()  # nothing listens there
    results = tmp_path / "results"
    url = f"postgresql://search:{PASSWORD}@127.0.0.1:{port}/art"
    code, out, err = search(
        results, 1, "--storage", url, env={}, monkeypatch=monkeypatch, capfd=capfd
    )
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("error: could not open")
    assert PASSWORD not in out + err
    assert (results / "searches" / "pw" / "study.json").exists()  # written before connecting
    assert files_holding(results, PASSWORD) == []
