"""Cancel and delete against real master and worker processes: a running task's process is stopped on
its worker, queued and waiting tasks never run, the bill counts only what ran, and a deleted job's
stored data is gone. Through the CLI (a subprocess), as a user would."""

import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

from contributor import until

from localnet import PASSWORD
from runsurge_master.db import Database
from runsurge_master.store import ObjectStore
from runsurge_master.store_gc import collect


def cli(net, tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RUNSURGE_CLIENT_CONFIG": str(tmp_path / "client.json"), "RUNSURGE_PASSWORD": PASSWORD}
    return subprocess.run([sys.executable, "-m", "runsurge_client", "--master", net.url, *args],
                          capture_output=True, text=True, env=env, timeout=60)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def write_job(folder: Path, marks: Path) -> None:
    """Three long tasks for two workers of one slot each (so one of them can only queue), and a fourth
    waiting on the first's output. Each script records its process id when it starts."""
    folder.mkdir()
    nonce = uuid.uuid4().hex  # unique scripts: no other test's job shares their stored objects
    for name in ("long1", "long2", "long3"):
        (folder / f"{name}.py").write_text(
            f"# {nonce}\nimport os, time\nopen({str(marks / name)!r}, 'w').write(str(os.getpid()))\n"
            "print('started', flush=True)\ntime.sleep(600)\nopen('out.txt', 'w').write('x')\n")
    (folder / "after.py").write_text(f"# {nonce}\nopen({str(marks / 'after')!r}, 'w').write('ran')\n")
    (folder / "job.toml").write_text("""
[[tasks]]
name = "long1"
script = "long1.py"
outputs = ["out.txt"]
[[tasks]]
name = "long2"
script = "long2.py"
outputs = ["out.txt"]
[[tasks]]
name = "long3"
script = "long3.py"
outputs = ["out.txt"]
[[tasks]]
name = "after"
script = "after.py"
inputs = { "x" = "task:long1/out.txt" }
""")


def test_cancel_stops_running_tasks_and_bills_only_what_ran_then_delete_removes_the_data(net, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    write_job(tmp_path / "job", marks)
    assert cli(net, tmp_path, "login", "demo@runsurge.local").returncode == 0
    r = cli(net, tmp_path, "submit", "--spec", str(tmp_path / "job" / "job.toml"))
    assert r.returncode == 0, r.stderr
    job_id = r.stdout.split()[-1]
    client = net.client()

    def started() -> dict[str, int]:
        texts = {n: (marks / n).read_text() if (marks / n).exists() else "" for n in ("long1", "long2", "long3")}
        return {n: int(t) for n, t in texts.items() if t}

    until(lambda: len(started()) == 2, "two long tasks started (one per worker)")
    running = started()
    pids = list(running.values())
    assert len(pids) == 2 and all(alive(p) for p in pids)

    r = cli(net, tmp_path, "delete", job_id[:8])  # a running job is not deleted
    assert r.returncode == 1 and "still runs: cancel it first" in r.stderr and "Traceback" not in r.stderr

    r = cli(net, tmp_path, "cancel", job_id[:8])  # a prefix of the id will do
    assert r.returncode == 0, r.stderr
    assert f"cancelled job {job_id}" in r.stdout
    job = client.job(job_id)
    assert job["status"] == "cancelled"
    assert {t["name"]: t["status"] for t in job["tasks"]} == dict.fromkeys(("long1", "long2", "long3", "after"),
                                                                          "cancelled")
    until(lambda: not any(alive(p) for p in pids), "the stopped tasks' processes to end")

    # The stopped runs are billed for the time they ran; the queued and the waiting task for nothing.
    def bill() -> dict:
        return client._json("GET", f"/api/jobs/{job_id}/bill")

    until(lambda: len(bill()["lines"]) == 2, "both stopped runs billed")
    lines = bill()["lines"]
    assert sorted(line["task"] for line in lines) == sorted(running)
    assert all(line["outcome"] == "cancelled" and line["wall_s"] > 0 and line["amount"] > 0 for line in lines)
    until(lambda: all(w["running_tasks"] == 0 for w in client.workers()), "workers idle")
    assert started() == running and not (marks / "after").exists()  # the others never ran
    assert len(bill()["lines"]) == 2  # nothing billed later

    r = cli(net, tmp_path, "cancel", job_id)
    assert r.returncode == 1 and "already cancelled" in r.stderr

    # Delete: the job and its stored objects are gone; its bill is not the user's to lose.
    store = net.root / "master" / "objects"
    script_ids = {p.name for p in store.glob("*/*")}
    r = cli(net, tmp_path, "delete", job_id[:6])
    assert r.returncode == 0, r.stderr
    left = {p.name for p in store.glob("*/*")}
    assert len(script_ids - left) >= 4, "the job's four scripts were deleted from the store"
    r = cli(net, tmp_path, "status", job_id)
    assert r.returncode == 1 and "no such job" in r.stderr
    assert job_id not in cli(net, tmp_path, "status").stdout
    # The garbage collector then runs over a store whose deleted job's rows remain (for the bill): it
    # keeps those rows (they reference the objects) and fails on nothing.
    db = net.root / "master" / "master.db"
    collect(Database(f"sqlite:///{db}"), ObjectStore(store), grace_s=0)
    with sqlite3.connect(db) as c:
        assert c.execute("select count(*) from ledger_transactions where job_id = ?", (job_id,)).fetchone()[0] == 2
        assert c.execute("select status from jobs where id = ?", (job_id,)).fetchone()[0] == "deleted"
