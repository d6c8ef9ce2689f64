"""The worker's task queue (the master's prefetch): a worker holds more tasks than slots; the extra ones
get ready and wait, start the moment a slot frees, can be cancelled while waiting, and are reported
to the master (as held; started before complete)."""

import threading
import time

import pytest

from runsurge_proto import master_pb2, worker_pb2
from runsurge_worker import tasks
from runsurge_worker.cache import Cache
from runsurge_worker.sandbox.base import RunResult, SandboxBackend
from runsurge_worker.tasks import TaskRunner

S = master_pb2.TaskStatus


class Master:
    """The worker's stub to the master: records every report in order."""

    def __init__(self):
        self.calls: list[tuple[str, str, int]] = []  # (method, task id, status)
        self.lock = threading.Lock()

    def __getattr__(self, method):
        def call(request, metadata=(), timeout=None):
            with self.lock:
                if method == "CompleteTasks":  # one entry per report, each acknowledged
                    self.calls += [(method, r.task_id, r.status) for r in request.reports]
                    return master_pb2.CompleteTasksResponse(results=[master_pb2.TaskCompleteResult(
                        result=master_pb2.REPORT_RESULT_ACKNOWLEDGED) for _ in request.reports])
                self.calls.append((method, request.task_id, getattr(request, "status", 0)))
        return call

    def reports(self, task_id: str) -> list[str]:
        return [m for m, t, _ in self.calls if t == task_id]


class Link:
    worker_id = "w1"

    def __init__(self):
        self.stub = Master()

    def metadata(self):
        return ()


class Fetcher:
    def fetch(self, task_id, loc, script=False):  # the script is in the cache already
        return "cache"


class Sandbox(SandboxBackend):
    """Each run waits until the test releases it (or it is cancelled)."""

    def __init__(self, root):
        self.task_root = root / "tasks"
        self.started: list[str] = []
        self.release: dict[str, threading.Event] = {}
        self.lock = threading.Lock()

    def run(self, task_dir, script, limits, cancel):
        with self.lock:
            self.started.append(task_dir.name)
            gate = self.release.setdefault(task_dir.name, threading.Event())
        while not gate.wait(0.01):
            if cancel.is_set():
                return RunResult(exit_code=None, wall_s=0, cpu_s=0, mem_avg_bytes=0, mem_peak_bytes=0,
                                 failure="cancelled")
        return RunResult(exit_code=0, wall_s=0.01, cpu_s=0.01, mem_avg_bytes=1, mem_peak_bytes=1)

    def finish(self, task_id):
        with self.lock:
            self.release.setdefault(task_id, threading.Event()).set()


@pytest.fixture
def worker(tmp_path):
    cache = Cache(tmp_path / "cache")
    (tmp_path / "s.py").write_text("pass\n")
    script_id, _ = cache.add_file(tmp_path / "s.py")
    sandbox = Sandbox(tmp_path)
    link = Link()
    runner = TaskRunner(cache, link, Fetcher(), sandbox, slots=1, memory=1 << 30, input_wait_s=5)

    def assign(task_id, attempt=1):
        return runner.accept(worker_pb2.AssignTaskRequest(
            task_id=task_id, script_data_id=script_id, script_name="s.py", attempt=attempt,
            limits=worker_pb2.TaskLimits(memory_bytes=1 << 20, timeout_s=60)))
    return runner, sandbox, link.stub, assign


def until(condition, timeout_s=10):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_queued_task_starts_the_moment_the_slot_frees(worker):
    runner, sandbox, master, assign = worker
    assert assign("t1") == (True, "") and assign("t2") == (True, "")  # more tasks than slots: queued
    until(lambda: sandbox.started)
    time.sleep(0.2)
    (first,) = sandbox.started  # whichever got ready first runs; the other waits for the slot
    second = "t2" if first == "t1" else "t1"
    assert sorted(runner.task_ids()) == ["t1", "t2"]  # the master must not re-queue the waiting one
    assert runner.running_count() == 1 and runner.free_slots() == 0
    assert master.reports(second) == []
    sandbox.finish(first)
    until(lambda: sandbox.started == [first, second])
    until(lambda: master.reports(second) == ["TaskStarted"])  # ran longer than START_REPORT_DELAY_S
    sandbox.finish(second)
    until(lambda: runner.task_ids() == [])
    for t in ("t1", "t2"):  # the start is reported, and before the end
        assert master.reports(t) == ["TaskStarted", "CompleteTasks"]
    assert {(t, s) for m, t, s in master.calls if m == "CompleteTasks"} == {("t1", S.TASK_STATUS_SUCCEEDED),
                                                                          ("t2", S.TASK_STATUS_SUCCEEDED)}


def test_a_task_ending_at_once_reports_its_start_with_its_end(worker, monkeypatch):
    """One call fewer per short task: the master takes the start from the TaskComplete."""
    monkeypatch.setattr(tasks, "START_REPORT_DELAY_S", 5.0)  # "at once", however loaded the machine
    runner, sandbox, master, assign = worker
    sandbox.finish("t1")  # released before it even starts
    assign("t1")
    until(lambda: runner.task_ids() == [])
    assert master.reports("t1") == ["CompleteTasks"]


def test_a_queued_task_cancelled_never_runs(worker):
    runner, sandbox, master, assign = worker
    assign("t1")
    assign("t2")
    until(lambda: sandbox.started)
    (first,) = sandbox.started
    second = "t2" if first == "t1" else "t1"
    assert runner.cancel(second)
    until(lambda: "CompleteTasks" in master.reports(second))
    assert master.reports(second) == ["CompleteTasks"]  # never started
    assert [s for m, t, s in master.calls if t == second] == [S.TASK_STATUS_CANCELLED]
    sandbox.finish(first)
    until(lambda: runner.task_ids() == [])
    assert sandbox.started == [first]


def test_memory_is_reserved_for_queued_tasks(worker):
    runner, sandbox, _, assign = worker
    runner.memory = 2 << 20  # room for two 1 MiB tasks
    assert assign("t1")[0] and assign("t2")[0]
    assert assign("t3") == (False, "not enough free memory")
    sandbox.finish("t1")
    sandbox.finish("t2")
    until(lambda: runner.task_ids() == [])
    assert sorted(sandbox.started) == ["t1", "t2"]


def test_another_attempt_of_a_held_task_is_refused(worker):
    runner, sandbox, _, assign = worker
    assign("t1")
    assert assign("t1") == (True, "already accepted")  # the same assignment again
    accepted, reason = assign("t1", attempt=2)
    assert not accepted and "earlier attempt" in reason
    until(lambda: sandbox.started == ["t1"])
    sandbox.finish("t1")
    until(lambda: runner.task_ids() == [])


def test_a_report_on_a_closed_link_is_dropped_quietly(worker):
    """A worker stopping while a report is pending closes its channel: no traceback from the task
    thread; the master's reconciliation decides what became of the task."""
    import grpc

    from runsurge_proto import master_pb2_grpc
    runner, _, _, _ = worker
    channel = grpc.insecure_channel("127.0.0.1:9")
    runner.link.stub = master_pb2_grpc.MasterServiceStub(channel)
    channel.close()
    runner._call("TaskStarted", master_pb2.TaskStartedRequest(worker_id="w1", task_id="t1"))  # returns
    runner.completions.send(master_pb2.TaskCompleteRequest(worker_id="w1", task_id="t1"))  # returns too


def test_a_task_cancelled_while_its_log_is_uploaded_ends_quietly_as_cancelled(worker, caplog):
    """The owner cancels while the worker uploads the task's log: the master refuses the upload
    ("not your task"). That is the end of the task, not a crash of the worker."""
    from concurrent import futures

    import grpc

    from runsurge_proto import master_pb2_grpc

    class Refusing(master_pb2_grpc.MasterServiceServicer):
        def __init__(self):
            self.completions = []

        def ReceiveData(self, request_iterator, context):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "not your task")

        def CompleteTasks(self, request, context):
            self.completions += [r.status for r in request.reports]
            return master_pb2.CompleteTasksResponse(results=[master_pb2.TaskCompleteResult(
                result=master_pb2.REPORT_RESULT_ACKNOWLEDGED) for _ in request.reports])

        def TaskStarted(self, request, context):
            return master_pb2.Ack()

    runner, sandbox, _, assign = worker
    servicer = Refusing()
    server = grpc.server(futures.ThreadPoolExecutor(2))
    master_pb2_grpc.add_MasterServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    runner.link.stub = master_pb2_grpc.MasterServiceStub(channel)
    real_run = sandbox.run

    def run_with_a_log(task_dir, script, limits, cancel):
        (task_dir / "log.out").write_text("some output\n")
        return real_run(task_dir, script, limits, cancel)

    sandbox.run = run_with_a_log
    try:
        sandbox.finish("t1")
        assign("t1")
        until(lambda: runner.task_ids() == [])
        assert servicer.completions == [S.TASK_STATUS_CANCELLED]
        assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL") or r.exc_info]
    finally:
        channel.close()
        server.stop(None)
