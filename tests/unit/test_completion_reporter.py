"""The worker's completion reporter (reports.py) against a gRPC MasterService on loopback: completions
that end while a call is in flight go together in the next call; a report the master could not write
is sent again, a refused one is dropped, and each sender returns only once its report is settled."""

from __future__ import annotations

import threading
import time
from concurrent import futures

import grpc
import pytest

from runsurge_proto import master_pb2, master_pb2_grpc
from runsurge_worker.reports import CompletionReporter

R = master_pb2.ReportResult


class Master(master_pb2_grpc.MasterServiceServicer):
    """Answers each report with `answer(task_id, times seen)`; the first call may be held at a gate."""

    def __init__(self, answer):
        self.answer = answer
        self.calls: list[list[str]] = []
        self.first_call = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def CompleteTasks(self, request, context):
        ids = [r.task_id for r in request.reports]
        self.calls.append(ids)
        self.first_call.set()
        self.gate.wait(30)
        seen = [sum(i in call for call in self.calls) for i in ids]
        return master_pb2.CompleteTasksResponse(results=[master_pb2.TaskCompleteResult(result=self.answer(i, n))
                                                         for i, n in zip(ids, seen, strict=True)])


class Link:
    worker_id = "w1"

    def metadata(self):
        return ()


@pytest.fixture
def serve():
    made = []

    def start(master: Master) -> CompletionReporter:
        server = grpc.server(futures.ThreadPoolExecutor(4))
        master_pb2_grpc.add_MasterServiceServicer_to_server(master, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        made.append((server, channel))
        link = Link()
        link.stub = master_pb2_grpc.MasterServiceStub(channel)
        return CompletionReporter(link)
    yield start
    for server, channel in made:
        channel.close()
        server.stop(None)


def report(task_id: str) -> master_pb2.TaskCompleteRequest:
    return master_pb2.TaskCompleteRequest(worker_id="w1", task_id=task_id, status=master_pb2.TASK_STATUS_SUCCEEDED)


def test_completions_ending_during_a_call_go_together_in_the_next(serve):
    master = Master(lambda i, n: R.REPORT_RESULT_ACKNOWLEDGED)
    master.gate.clear()
    reporter = serve(master)
    first = threading.Thread(target=reporter.send, args=(report("t0"),))
    first.start()
    assert master.first_call.wait(10)  # t0 went at once, alone; its call is now held in flight
    others = [threading.Thread(target=reporter.send, args=(report(f"t{i}"),)) for i in range(1, 6)]
    for th in others:
        th.start()
    deadline = time.monotonic() + 10
    while len(reporter._queue) < 5:  # all five wait behind the call in flight
        assert time.monotonic() < deadline
        time.sleep(0.005)
    master.gate.set()
    for th in [first, *others]:
        th.join(10)
        assert not th.is_alive()
    assert master.calls[0] == ["t0"]
    assert sorted(master.calls[1]) == ["t1", "t2", "t3", "t4", "t5"] and len(master.calls) == 2


def test_a_report_the_master_could_not_write_is_sent_again_a_refused_one_is_not(serve):
    master = Master(lambda i, n: R.REPORT_RESULT_REFUSED if i == "gone" else
                    R.REPORT_RESULT_FAILED if n == 1 else R.REPORT_RESULT_ACKNOWLEDGED)
    reporter = serve(master)
    reporter.send(report("gone"))
    assert master.calls == [["gone"]]
    reporter.send(report("t1"))  # returns once acknowledged, on the second attempt
    assert master.calls[1:] == [["t1"], ["t1"]]
