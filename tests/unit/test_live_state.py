"""live.py: what heartbeats said, kept per worker; a heartbeat's malformed entries are dropped."""

from runsurge_master.live import LiveState
from runsurge_proto import master_pb2

ENV = "ab" * 32


def beat(envs, phases):
    return master_pb2.NodeHeartbeatRequest(
        worker_id="w", environment_ids=envs,
        task_phases=[master_pb2.TaskPhaseReport(task_id=t, phase=p) for t, p in phases])


def test_each_heartbeat_replaces_what_the_last_said_and_bad_entries_are_dropped():
    live = LiveState()
    live.sent("w", ENV)
    live.heard("w", beat([ENV, "not-an-id", "../" + ENV], [("t1", master_pb2.TASK_PHASE_BUILDING_ENVIRONMENT),
                                                          ("t2", 99), ("t3", master_pb2.TASK_PHASE_UNSPECIFIED)]))
    assert live.environments("w") == {ENV}
    assert live.phase("w", "t1") == master_pb2.TASK_PHASE_BUILDING_ENVIRONMENT
    assert live.phase("w", "t2") is None and live.phase("w", "t3") is None
    assert live.phase("other", "t1") is None  # a phase counts only from the task's own worker
    live.heard("w", beat([], [("t1", master_pb2.TASK_PHASE_RUNNING)]))
    assert live.environments("w") == frozenset() and live.phase("w", "t1") == master_pb2.TASK_PHASE_RUNNING
    live.forget("w")
    assert live.phase("w", "t1") is None and live.environments("w") == frozenset()
    assert live.phase(None, "t1") is None


def test_a_worker_claiming_an_environment_it_was_never_sent_is_not_believed():
    """Environment ids of public requirement sets can be computed by anyone: a worker naming them
    all must not draw every job that uses them."""
    live = LiveState()
    other = "cd" * 32
    live.sent("w", ENV)
    live.heard("w", beat([ENV, other], []))
    assert live.environments("w") == {ENV}
    live.heard("x", beat([ENV], []))  # never sent to x
    assert live.environments("x") == frozenset()
