"""Batched dispatch on a real master and worker over loopback (issue 16): the tasks one scheduling pass
places on a worker travel in one AssignTasks call, completions that finish while the worker's previous
CompleteTasks call is in flight travel together in the next, and a lone task's report is not held
back waiting for company. Calls are counted by the master's /metrics."""

from __future__ import annotations

import signal
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from localnet import LocalNet

BURST = 8
GATE_SCRIPT = """import os, time
open({started!r} + '/' + os.path.basename(os.getcwd()), 'w').close()
while not os.path.exists({gate!r}):
    time.sleep(0.01)
"""


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    n = LocalNet(tmp_path_factory.mktemp("batched") / "net", sandbox="process", slots=BURST, heartbeat_s=0.5)
    try:
        n.start(workers=1)
        yield n
    finally:
        n.stop()


def calls(net) -> dict[tuple[str, str], float]:
    """(metric, method) → value, for the task-carrying calls."""
    text = httpx.get(f"{net.url}/metrics", timeout=10).text
    return {(s.name, s.labels["method"]): s.value for fam in text_string_to_metric_families(text)
            for s in fam.samples if s.name in ("runsurge_task_calls_total", "runsurge_task_call_tasks_total")}


def delta(before: dict, after: dict, name: str, method: str) -> float:
    return after.get((name, method), 0) - before.get((name, method), 0)


def until(condition, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def gated_job(tmp_path, name: str, n: int, gate) -> tuple:
    """A job of n tasks that each say they started (a file in `started`) and then wait for `gate`."""
    started = tmp_path / f"{name}-started"
    started.mkdir()
    folder = tmp_path / name
    folder.mkdir()
    (folder / "wait.py").write_text(GATE_SCRIPT.format(started=str(started), gate=str(gate)))
    lines = [f'name = "{name}"']
    for i in range(n):
        lines += ["[[tasks]]", f'name = "t{i}"', 'script = "wait.py"', 'memory = "64MiB"']
    (folder / "job.toml").write_text("\n".join(lines) + "\n")
    return folder / "job.toml", started


def test_a_burst_on_one_worker_is_carried_by_fewer_calls_than_tasks(net, tmp_path):
    client = net.client()
    gate = tmp_path / "go"
    spec, started = gated_job(tmp_path, "burst", BURST, gate)
    before = calls(net)
    job_id = client.submit_spec(spec)["id"]
    until(lambda: len(list(started.iterdir())) == BURST, "every task running")
    until(lambda: all(t["status"] == "running" for t in client.job(job_id)["tasks"]), "every start reported")
    # The master stops answering; the tasks end, and the worker's first CompleteTasks call hangs in
    # flight: every completion after it must wait, and go in one call once the master is back.
    done_before = net.log("worker0").count("task done ")
    net.master.send_signal(signal.SIGSTOP)
    try:
        gate.touch()
        until(lambda: net.log("worker0").count("task done ") == done_before + BURST, "every task ended")
    finally:
        net.master.send_signal(signal.SIGCONT)
    assert client.wait(job_id, timeout_s=60)["status"] == "done"
    after = calls(net)
    assert delta(before, after, "runsurge_task_calls_total", "AssignTasks") == 1  # one pass placed them all
    assert delta(before, after, "runsurge_task_call_tasks_total", "AssignTasks") == BURST
    assert delta(before, after, "runsurge_task_call_tasks_total", "CompleteTasks") == BURST
    assert delta(before, after, "runsurge_task_calls_total", "CompleteTasks") <= 2 < BURST


def test_a_lone_task_is_reported_while_another_still_runs(net, tmp_path):
    """No batching delay: a task's completion is acknowledged while the only other task held by its
    worker is still running (a reporter that waited for company would wait for that one)."""
    client = net.client()
    gate = tmp_path / "go"
    spec, started = gated_job(tmp_path, "blocker", 1, gate)
    blocker = client.submit_spec(spec)["id"]
    until(lambda: len(list(started.iterdir())) == 1, "the blocker running")
    noop = tmp_path / "noop.py"
    noop.write_text("pass\n")
    try:
        lone = client.wait(client.submit([noop], mode="single")["id"], timeout_s=60)
        assert lone["status"] == "done"
        assert not gate.exists() and client.job(blocker)["tasks"][0]["status"] == "running"
    finally:
        gate.touch()
    assert client.wait(blocker, timeout_s=60)["status"] == "done"
