"""The master restarts while tasks run: nothing is lost and nothing runs twice."""

import time

from jobs import wait_task


def run_through_a_master_restart(net, tmp_path, sleep_s: float, **restart):
    """Submit a one-task job whose task sleeps `sleep_s`, and restart the master while it runs.
    Returns the job id."""
    (tmp_path / "task.py").write_text(f"import time\ntime.sleep({sleep_s})\nopen('done.txt', 'w').write('ok')\n")
    client = net.client()
    job_id = client.submit([tmp_path / "task.py"], mode="single")["id"]
    wait_task(client, job_id, None, "running")
    net.restart_master(**restart)
    return job_id


def assert_done_once(net, tmp_path, job_id):
    """The job ended with its task run once and its result intact; returns a fresh client."""
    client = net.client()
    job = client.wait(job_id, timeout_s=60)
    assert job["status"] == "done", job
    assert job["tasks"][0]["attempts"] == 1
    assert "reconciled worker=" in net.log("master")
    (result,) = client.download_results(job_id, tmp_path / "out")
    assert result.read_text() == "ok"
    return client


def test_master_restart_mid_task_loses_nothing_and_runs_nothing_twice(net, tmp_path):
    job_id = run_through_a_master_restart(net, tmp_path, 6)
    time.sleep(2.5)  # longer than 3 heartbeat intervals: without reconciliation the task would be re-queued
    client = assert_done_once(net, tmp_path, job_id)
    assert all(w["online"] for w in client.workers())


def test_a_task_that_ends_while_the_master_is_down_is_kept_not_run_again(net, tmp_path):
    """Its report waits for the master; meanwhile the worker still lists the task as its own, so
    reconciliation keeps it instead of re-queueing work that already ran (found by the chaos test)."""
    job_id = run_through_a_master_restart(net, tmp_path, 1, down_s=3)  # the task ends while the master is away
    assert_done_once(net, tmp_path, job_id)
