"""The master restarts while tasks run: nothing is lost and nothing runs twice."""

import time

from jobs import wait_task


def test_master_restart_mid_task_loses_nothing_and_runs_nothing_twice(net, tmp_path):
    (tmp_path / "slow.py").write_text("import time\ntime.sleep(6)\nopen('done.txt', 'w').write('ok')\n")
    client = net.client()
    job_id = client.submit([tmp_path / "slow.py"], mode="single")["id"]
    wait_task(client, job_id, None, "running")
    net.restart_master()
    time.sleep(2.5)  # longer than 3 heartbeat intervals: without reconciliation the task would be re-queued
    client = net.client()
    job = client.wait(job_id, timeout_s=60)
    assert job["status"] == "done", job
    assert job["tasks"][0]["attempts"] == 1
    assert "reconciled worker=" in net.log("master")
    (result,) = client.download_results(job_id, tmp_path / "out")
    assert result.read_text() == "ok"
    assert all(w["online"] for w in client.workers())


def test_a_task_that_ends_while_the_master_is_down_is_kept_not_run_again(net, tmp_path):
    """Its report waits for the master; meanwhile the worker still lists the task as its own, so
    reconciliation keeps it instead of re-queueing work that already ran (found by the chaos test)."""
    (tmp_path / "quick.py").write_text("import time\ntime.sleep(1)\nopen('done.txt', 'w').write('ok')\n")
    client = net.client()
    job_id = client.submit([tmp_path / "quick.py"], mode="single")["id"]
    wait_task(client, job_id, None, "running")
    net.restart_master(down_s=3)  # the task ends while the master is away
    client = net.client()
    job = client.wait(job_id, timeout_s=60)
    assert job["status"] == "done", job
    assert job["tasks"][0]["attempts"] == 1
    assert "reconciled worker=" in net.log("master")
    (result,) = client.download_results(job_id, tmp_path / "out")
    assert result.read_text() == "ok"
