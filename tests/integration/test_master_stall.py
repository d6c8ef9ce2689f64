"""A master that was itself late (paused, its event loop blocked) does not blame its workers: the
beats it could not hear while stalled are no worker's fault, so no worker is declared offline, no
task is re-queued and no fault is counted."""

import os
import signal
import time

from sqlalchemy import select

from jobs import wait_task
from runsurge_master.db import Database
from runsurge_master.models import Task


def test_a_stalled_master_requeues_nothing_and_counts_no_fault(net, tmp_path):
    (tmp_path / "task.py").write_text("import time\ntime.sleep(8)\nopen('done.txt', 'w').write('ok')\n")
    client = net.client()
    job_id = client.submit([tmp_path / "task.py"], mode="single")["id"]
    wait_task(client, job_id, None, "running")
    os.killpg(net.master.pid, signal.SIGSTOP)  # the master's loop stalls: heartbeats pile up unheard
    try:
        time.sleep(4)  # > 3 heartbeat intervals of 0.5 s: the liveness window
    finally:
        os.killpg(net.master.pid, signal.SIGCONT)
    job = client.wait(job_id, timeout_s=60)
    assert job["status"] == "done", job
    assert job["tasks"][0]["attempts"] == 1
    log = net.log("master")
    assert "worker offline" not in log
    assert "master stalled" in log
    db = Database(f"sqlite:///{net.root / 'master' / 'master.db'}")
    with db.session() as s:
        assert [t.faults for t in s.scalars(select(Task).where(Task.job_id == job_id))] == [0]
    assert all(w["online"] for w in client.workers())
