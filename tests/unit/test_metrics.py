"""Prometheus /metrics: the gauges follow the database, the latency histogram counts committed
assignments only."""

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from runsurge_master import lifecycle
from runsurge_master.api import create_app
from runsurge_master.config import load_config
from runsurge_master.main import build
from runsurge_master.models import Task, Worker, utcnow


@pytest.fixture
def api(tmp_path):
    sv = build(load_config(home=tmp_path / "m"))
    with TestClient(create_app(sv)) as client:
        yield client, sv


def scrape(client) -> dict[tuple[str, tuple], float]:
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(r.text) for s in fam.samples}


def test_metrics_follow_jobs_tasks_and_workers(api):
    client, sv = api
    client.post("/api/auth/register", json={"email": "u@x.org", "password": "horse-42-ok"})
    token = client.post("/api/auth/login", json={"email": "u@x.org", "password": "horse-42-ok"}).json()
    h = {"authorization": f"Bearer {token['access_token']}"}
    m = scrape(client)
    assert m[("runsurge_jobs", (("status", "running"),))] == 0
    assert m[("runsurge_workers_online", ())] == 0
    job = client.post("/api/jobs", headers=h, data={"mode": "single"},
                      files=[("files", ("job.py", b"print(1)", "text/x-python"))]).json()
    with sv.db.session() as s:
        user_id = s.get(Task, job["tasks"][0]["id"]).job.owner_id
        s.add(Worker(owner_id=user_id, fingerprint="w" * 16, host="h", grpc_port=1, memory_bytes=1 << 30, cpus=2,
                     slots=3))
        s.add(Worker(owner_id=user_id, fingerprint="v" * 16, host="h", grpc_port=2, memory_bytes=1 << 30, cpus=2,
                     slots=5, online=False))
    sv.scheduler.planner.assigned_total = 7
    m = scrape(client)
    assert m[("runsurge_jobs", (("status", "running"),))] == 1
    assert m[("runsurge_tasks", (("state", "ready"),))] == 1
    assert m[("runsurge_tasks", (("state", "done"),))] == 0
    assert m[("runsurge_workers_online", ())] == 1
    assert m[("runsurge_workers_registered", ())] == 2
    assert m[("runsurge_worker_slots", (("state", "total"),))] == 3
    assert m[("runsurge_tasks_assigned_total", ())] == 7
    assert "# TYPE runsurge_scheduling_latency_seconds histogram" in client.get("/metrics").text


def test_scheduling_latency_counts_committed_assignments(api):
    client, sv = api
    client.post("/api/auth/register", json={"email": "u@x.org", "password": "horse-42-ok"})
    token = client.post("/api/auth/login", json={"email": "u@x.org", "password": "horse-42-ok"}).json()
    h = {"authorization": f"Bearer {token['access_token']}"}
    job = client.post("/api/jobs", headers=h, data={"mode": "single"},
                      files=[("files", ("job.py", b"print(1)", "text/x-python"))]).json()
    task_id = job["tasks"][0]["id"]
    before = scrape(client)
    count, total = ("runsurge_scheduling_latency_seconds_count", ()), ("runsurge_scheduling_latency_seconds_sum", ())
    with pytest.raises(RuntimeError), sv.db.session() as s:  # rolled back: not counted
        t = s.get(Task, task_id)
        t.ready_at = utcnow() - timedelta(seconds=100)
        lifecycle.transition(s, t, lifecycle.T.ASSIGNED)
        s.flush()
        raise RuntimeError("placement failed")
    assert scrape(client)[count] == before[count]
    with sv.db.session() as s:
        t = s.get(Task, task_id)
        t.ready_at = utcnow() - timedelta(seconds=2)
        lifecycle.transition(s, t, lifecycle.T.ASSIGNED)
    after = scrape(client)
    assert after[count] == before[count] + 1
    assert after[total] == pytest.approx(before[total] + 2, abs=0.5)
    le5 = ("runsurge_scheduling_latency_seconds_bucket", (("le", "5.0"),))
    le1 = ("runsurge_scheduling_latency_seconds_bucket", (("le", "1.0"),))
    assert after[le5] == before[le5] + 1 and after[le1] == before[le1]


def test_the_scheduler_s_placements_are_observed(api):
    """Through Scheduler.plan (the real placement code): ready → assigned lands in the histogram."""
    client, sv = api
    client.post("/api/auth/register", json={"email": "u@x.org", "password": "horse-42-ok"})
    token = client.post("/api/auth/login", json={"email": "u@x.org", "password": "horse-42-ok"}).json()
    h = {"authorization": f"Bearer {token['access_token']}"}
    job = client.post("/api/jobs", headers=h, data={"mode": "single"},
                      files=[("files", ("job.py", b"print(1)", "text/x-python"))]).json()
    with sv.db.session() as s:
        owner = s.get(Task, job["tasks"][0]["id"]).job.owner_id
        s.add(Worker(owner_id=owner, fingerprint="w" * 16, host="127.0.0.1", grpc_port=1, memory_bytes=1 << 30,
                     cpus=1, slots=1))
    before = scrape(client)
    assigned = sv.scheduler.planner.assigned_total
    assert len(sv.scheduler.plan()) == 1  # places the task (sending it is another coroutine's job)
    assert sv.scheduler.planner.assigned_total == assigned + 1
    after = scrape(client)
    assert after[("runsurge_scheduling_latency_seconds_count", ())] == \
        before[("runsurge_scheduling_latency_seconds_count", ())] + 1
    # the pass that placed it is timed too; a pass with nothing to place is not
    passes = ("runsurge_scheduling_pass_seconds_count", ())
    assert after[passes] == before.get(passes, 0) + 1
    assert sv.scheduler.plan() == []
    assert scrape(client)[passes] == after[passes]
