"""The master on a real PostgreSQL server (a throw-away cluster this test starts and removes)."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from localnet import LocalNet, free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "wordcount"
PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)


@pytest.fixture
def postgresql():
    if PG_BIN is None:
        pytest.fail("PostgreSQL is not installed (apt-get install postgresql); .ci/run installs it")
    data = Path(tempfile.mkdtemp(prefix="runsurge-pg-"))  # not under pytest's 0700 root-only tmp
    as_postgres = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(data, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    subprocess.run([*as_postgres, PG_BIN / "initdb", "-D", data, "-U", "runsurge", "-A", "trust"],
                   check=True, capture_output=True)
    subprocess.run([*as_postgres, PG_BIN / "pg_ctl", "-D", data, "-w", "-l", data / "log", "start",
                    "-o", f"-p {port} -k {data} -c listen_addresses=''"], check=True, capture_output=True)
    try:
        subprocess.run([PG_BIN / "createdb", "-h", data, "-p", str(port), "-U", "runsurge", "runsurge"], check=True)
        yield f"postgresql+psycopg://runsurge@/runsurge?host={data}&port={port}"
    finally:
        subprocess.run([*as_postgres, PG_BIN / "pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


def test_a_job_runs_with_the_master_on_postgresql(tmp_path, postgresql):
    net = LocalNet(tmp_path / "net", extra_env={"RUNSURGE_DATABASE_URL": postgresql})
    try:
        net.start(workers=2)
        client = net.client()
        job = client.wait(client.submit_spec(EXAMPLE / "job.toml")["id"], timeout_s=120)
        assert job["status"] == "done", job
        assert not (tmp_path / "net" / "master" / "master.db").exists()  # really not SQLite
    finally:
        net.stop()
    out = subprocess.run([PG_BIN / "psql", postgresql.replace("+psycopg", ""), "-tAc",
                          "select count(*) from tasks where status = 'done'"], capture_output=True, text=True)
    assert out.stdout.strip() == "3", out.stderr
