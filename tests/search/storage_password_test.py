"""No database password on disk: a ``--storage`` URL's password is used for the run and never
written under the results tree (study.json is tracked in git), whether the run trains, fails
to connect, or resumes (the password then comes from PGPASSWORD / ~/.pgpass)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from search.study import Study
from tests.search.engines.distributed_test import _free_port, _postgres_bin

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "Pw-n0t-on-disk-7361"


def files_holding(root: Path, text: str) -> list[Path]:
    """Every file under ``root`` whose bytes contain ``text``."""
    return [
        path for path in root.rglob("*") if path.is_file() and text.encode() in path.read_bytes()
    ]


def search(results: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "search.run", "--space", "cnn", "--algorithm", "random",
        "--synthetic", "--epochs", "1", "--max-image-size", "16", "--study", "pw",
        "--results", str(results), "--no-progress", "--in-process", "--no-latency",
        *args,
    ]  # fmt: skip
    return subprocess.run(
        command,
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )


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
def test_a_run_and_its_resumes_on_postgresql_write_no_password(password_server, tmp_path):
    host, port = password_server
    url = f"postgresql://search:{PASSWORD}@{host}:{port}/art"
    results = tmp_path / "results"
    home = tmp_path / "home"  # no ~/.pgpass of the machine's user
    home.mkdir()
    clean = {"HOME": str(home), "PGPASSWORD": ""}
    first = search(results, "--trials", "1", "--storage", url, env=clean)
    assert first.returncode == 0, first.stderr[-2000:]
    assert PASSWORD not in first.stdout + first.stderr
    assert files_holding(results, PASSWORD) == []
    study = Study.existing("pw", root=results)
    assert study.recorded_storage() == f"postgresql://search@{host}:{port}/art"

    # A resume without --storage has no password: it says where to put it, in one line.
    refused = search(results, "--trials", "2", env=clean)
    assert refused.returncode == 2
    error = refused.stderr.strip().splitlines()[-1]
    assert error.startswith("error:") and "PGPASSWORD" in error and "~/.pgpass" in error

    # With PGPASSWORD, then ~/.pgpass, it resumes; still nothing on disk.
    resumed = search(results, "--trials", "2", env={"HOME": str(home), "PGPASSWORD": PASSWORD})
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    pgpass = home / ".pgpass"
    pgpass.write_text(f"{host}:{port}:art:search:{PASSWORD}\n")
    pgpass.chmod(0o600)
    again = search(results, "--trials", "3", env=clean)
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(study.records()) == 3
    assert files_holding(results, PASSWORD) == []

    # The study.json kept in the storage (another machine's sync) has no password either.
    from search.engines.optuna import sync_from_storage

    os.environ["PGPASSWORD"] = PASSWORD
    try:
        sync_from_storage(f"postgresql://search@{host}:{port}/art", "pw", tmp_path / "elsewhere")
    finally:
        del os.environ["PGPASSWORD"]
    assert files_holding(tmp_path / "elsewhere", PASSWORD) == []
    assert (tmp_path / "elsewhere" / "searches" / "pw" / "study.json").exists()


def test_a_failed_connection_writes_no_password(tmp_path):
    pytest.importorskip("psycopg2")
    port = _free_port()  # nothing listens there
    results = tmp_path / "results"
    failed = search(
        results,
        "--trials",
        "1",
        "--storage",
        f"postgresql://search:{PASSWORD}@127.0.0.1:{port}/art",
    )
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines()[-1].startswith("error: could not open")
    assert PASSWORD not in failed.stdout + failed.stderr
    assert (results / "searches" / "pw" / "study.json").exists()  # written before connecting
    assert files_holding(results, PASSWORD) == []
