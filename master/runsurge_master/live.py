"""What workers say in every heartbeat that the master keeps in memory only: the environments each
holds built (placement prefers those workers) and what each task it holds is doing (its phase).

Memory, not the database: each heartbeat repeats the full lists, they mean something only while the
worker is online, and a phase changes several times per task (a row write each time would sit on
every task's path). After a master restart both come back with the next heartbeat; until then
placement has no environment preference (until a worker is sent an environment again: only
environments sent to it are believed) and tasks show no phase. One master process serves gRPC and
HTTP, so this one copy is what both read.
"""

from __future__ import annotations

from runsurge_proto import master_pb2

MAX_ITEMS = 10_000  # a heartbeat's lists are cut there (a worker holds far fewer)
PHASES = frozenset(master_pb2.TaskPhase.values()) - {master_pb2.TASK_PHASE_UNSPECIFIED}


class LiveState:
    def __init__(self) -> None:
        # Each value is replaced whole, never changed in place: readers in HTTP threads see one beat or the next.
        self._environments: dict[str, frozenset[str]] = {}
        self._phases: dict[str, dict[str, int]] = {}  # worker id → task id → master_pb2.TaskPhase
        # Environments whose wheels this master sent each worker: a claim to hold any other is not
        # believed (a worker naming every public environment id would draw every such job).
        self._sent: dict[str, set[str]] = {}

    def heard(self, worker_id: str, request: master_pb2.NodeHeartbeatRequest) -> None:
        sent = self._sent.get(worker_id, set())
        self._environments[worker_id] = frozenset(e for e in request.environment_ids[:MAX_ITEMS] if e in sent)
        self._phases[worker_id] = {p.task_id: p.phase for p in request.task_phases[:MAX_ITEMS] if p.phase in PHASES}

    def sent(self, worker_id: str, environment_id: str) -> None:
        """The worker was given this environment's wheels (with a task): it may hold it from now on."""
        self._sent.setdefault(worker_id, set()).add(environment_id)

    def forget(self, worker_id: str) -> None:
        """The worker went offline or restarted: what it said no longer holds."""
        self._environments.pop(worker_id, None)
        self._phases.pop(worker_id, None)

    def environments(self, worker_id: str) -> frozenset[str]:
        return self._environments.get(worker_id, frozenset())

    def phase(self, worker_id: str | None, task_id: str) -> int | None:
        """The task's phase on that worker, if its last heartbeat named one."""
        return self._phases.get(worker_id or "", {}).get(task_id)
