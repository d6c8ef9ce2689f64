"""Durability of what the master acknowledged: a worker completes a burst of tasks at once, the
master is SIGKILLed in the middle of it, and every completion the worker was acknowledged is in the
database when the master comes back (task reports are written in group commits: one transaction per
burst, each acknowledged only after its commit). The rest the worker simply reports again, and every
job ends done, each task billed once.

The worker is built from the generated stubs (tests/adversary/hostile.py) so that it can fire all its
completions at the same moment, which a real worker never lines up so tightly."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adversary"))

from hostile import HostileWorker, db_rows

from localnet import EMAIL, LocalNet
from runsurge_proto import master_pb2

TASKS = 160  # more than two group commits' worth (group_commit.MAX_BATCH)


@pytest.fixture
def net(tmp_path):
    n = LocalNet(tmp_path / "net", sandbox="process", slots=1, heartbeat_s=0.5)
    try:
        n.start(workers=0)
        yield n
    finally:
        n.stop()


def test_every_acknowledged_completion_survives_a_master_killed_mid_burst(net, tmp_path):
    burst = HostileWorker(net, owner=EMAIL, memory=256 << 30, fingerprint="burst-0001")
    burst.register(slots=TASKS, memory_bytes=256 << 30)
    client = net.client()
    script = tmp_path / "noop.py"
    script.write_text("pass\n")
    jobs = [client.submit([script], mode="single")["id"] for _ in range(TASKS)]
    burst.wait_assigned(TASKS, timeout_s=120)
    tasks = {t.task_id: t for t in burst.assigned}
    assert len(tasks) == TASKS

    acked: set[str] = set()
    lock = threading.Lock()
    go = threading.Event()

    def complete(task) -> None:
        go.wait()
        try:
            result = burst.complete(task, wall_s=0.01, cpu_s=0.01)
        except grpc.RpcError:
            return  # not acknowledged: the worker keeps it and reports it again
        if result.result != master_pb2.REPORT_RESULT_ACKNOWLEDGED:
            return
        with lock:
            acked.add(task.task_id)

    threads = [threading.Thread(target=complete, args=(t,)) for t in tasks.values()]
    for th in threads:
        th.start()
    go.set()
    deadline = time.monotonic() + 60
    while not acked and time.monotonic() < deadline:
        time.sleep(0.001)
    net.restart_master()  # SIGKILL, as the first commit of the burst is acknowledged
    for th in threads:
        th.join(timeout=30)
    before = set(acked)
    assert 0 < len(before) < TASKS, f"the kill did not land mid-burst ({len(before)} of {TASKS} acknowledged)"

    done = {tid for (tid,) in db_rows(net, "SELECT id FROM tasks WHERE status = 'done'")}
    assert before <= done, f"acknowledged but lost: {sorted(before - done)}"

    # What was not acknowledged the worker reports again; a report that did land meanwhile is refused
    # as no longer assigned, which is fine: it is done.
    for tid, task in tasks.items():
        if tid in before:
            continue
        # As a worker does: wait for the master to be back, then report again.
        (answer,) = burst.master.CompleteTasks(master_pb2.CompleteTasksRequest(reports=[master_pb2.TaskCompleteRequest(
            worker_id=burst.id, task_id=tid, attempt=task.attempt, status=master_pb2.TASK_STATUS_SUCCEEDED,
            wall_s=0.01, cpu_s=0.01)]), metadata=burst.md, timeout=30, wait_for_ready=True).results
        if answer.result != master_pb2.REPORT_RESULT_ACKNOWLEDGED:
            assert answer.result == master_pb2.REPORT_RESULT_REFUSED and tid in done, (tid, answer)
    for job_id in jobs:
        assert client.wait(job_id, timeout_s=60)["status"] == "done"
    charges = db_rows(net, "SELECT task_id, COUNT(*) FROM ledger_transactions WHERE kind = 'charge' "
                           "GROUP BY task_id HAVING COUNT(*) != 1")
    assert charges == []
    burst.stop()
