"""Billing through real jobs on a LocalNet (master + 2 process-sandbox workers): the charge follows
the worker's metering and the documented formula, paying works once, the contributor's earnings
follow, a script's own failure is billed, a killed worker's run is not, /metrics counts it all, and the
same ledger works on PostgreSQL."""

import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from test_postgresql import postgresql  # noqa: F401 - the fixture: a throw-away PostgreSQL server

from localnet import LocalNet
from runsurge_client.api import Client
from runsurge_master import billing
from runsurge_master.billing import Tariff, Usage, quote
from runsurge_master.config import MasterConfig
from runsurge_master.db import Database

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "wordcount"


def call(client, method: str, path: str):
    return client.http.request(method, path, headers={"authorization": f"Bearer {client.access_token}"})


def ledger_invariants(net, url: str = "") -> dict[str, int]:
    db = Database(url or f"sqlite:///{net.root / 'master' / 'master.db'}")
    try:
        with db.session() as s:
            assert billing.unbalanced_postings(s) == []
            balances = billing.balances(s)
        assert sum(balances.values()) == 0
        return balances
    finally:
        db.engine.dispose()


def test_a_real_job_is_billed_from_its_metering_and_paid_once(net):
    client = net.client()
    job = client.wait(client.submit_spec(EXAMPLE / "job.toml")["id"], timeout_s=120)
    assert job["status"] == "done", job
    bill = call(client, "GET", f"/api/jobs/{job['id']}/bill").json()
    tasks = {t["id"]: t for t in job["tasks"]}
    assert sorted(line["task"] for line in bill["lines"]) == ["count_a", "count_b", "merge"]
    defaults = MasterConfig()
    tariff = Tariff(defaults.price_cpu_hour, defaults.price_gib_hour, defaults.platform_fee_percent)
    for line in bill["lines"]:
        t = tasks[line["task_id"]]
        assert line["attempt"] == 1 and line["worker_id"] == t["worker_id"] and line["outcome"] == "done"
        assert abs(line["cpu_s"] - t["cpu_s"]) < 1e-6 and abs(line["wall_s"] - t["wall_s"]) < 1e-6
        assert line["memory_bytes"] == t["memory_bytes"] == 64 << 20
        expected = quote(tariff, Usage(round(line["cpu_s"] * 1e6), round(line["wall_s"] * 1e6), 64 << 20, 1000))
        assert line["amount"] == expected.charge > 0 and not line["paid"]
    assert bill["total"] == bill["due"] == sum(line["amount"] for line in bill["lines"])

    # The LocalNet account owns both the job and the workers: its earnings are pending until it pays.
    earned = call(client, "GET", "/api/earnings").json()
    fee = tariff.fee_percent
    assert earned["pending"] == sum(x["amount"] - x["amount"] * fee // 100 for x in bill["lines"])
    assert earned["paid"] == 0
    per_worker = {w["worker_id"]: w["tasks"] for w in earned["workers"]}
    assert per_worker == {w: sum(t["worker_id"] == w for t in job["tasks"]) for w in per_worker}

    r = call(client, "POST", f"/api/jobs/{job['id']}/pay")
    assert r.status_code == 200 and r.json()["amount"] == bill["total"]
    assert call(client, "POST", f"/api/jobs/{job['id']}/pay").status_code == 409
    earned_after = call(client, "GET", "/api/earnings").json()
    assert (earned_after["pending"], earned_after["paid"]) == (0, earned["pending"])
    balances = ledger_invariants(net)
    assert balances["external:payments"] == -bill["total"]
    assert balances.get("platform:fees", 0) == bill["total"] - earned["pending"]  # tiny charges: fee may round to 0

    # Someone else sees no such bill.
    client.register("eve@example.org", "eve-password")
    eve = Client(net.url)
    eve.login("eve@example.org", "eve-password")
    assert call(eve, "GET", f"/api/jobs/{job['id']}/bill").status_code == 404
    assert call(eve, "GET", "/api/earnings").json()["total"] == 0

    # /metrics saw the job, its tasks, the workers and the placements.
    text = net_metrics(net)
    assert text[("runsurge_jobs", (("status", "done"),))] == 1
    assert text[("runsurge_tasks", (("state", "done"),))] == 3
    assert text[("runsurge_workers_online", ())] == 2
    assert text[("runsurge_tasks_assigned_total", ())] >= 3
    assert text[("runsurge_scheduling_latency_seconds_count", ())] >= 3


def net_metrics(net) -> dict:
    r = httpx.get(f"{net.url}/metrics", timeout=10)
    assert r.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(r.text) for s in fam.samples}


def test_a_failing_script_is_billed_as_failed(net, tmp_path):
    script = tmp_path / "bad.py"
    script.write_text("raise SystemExit(3)\n")
    client = net.client()
    job = client.wait(client.submit([script], mode="single")["id"], timeout_s=60)
    assert job["status"] == "failed"
    (line,) = call(client, "GET", f"/api/jobs/{job['id']}/bill").json()["lines"]
    assert (line["outcome"], line["attempt"]) == ("failed", 1)
    ledger_invariants(net)


def test_a_killed_worker_s_run_is_not_billed(net, tmp_path):
    script = tmp_path / "slow.py"
    script.write_text("import time\ntime.sleep(4)\nopen('done.txt', 'w').write('ok')\n")
    client = net.client()
    job_id = client.submit([script], mode="single")["id"]
    deadline = time.monotonic() + 30
    while (task := client.job(job_id)["tasks"][0])["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    first = task["worker_id"]
    victim = next(i for i, port in net.worker_ports.items()
                  if any(w["id"] == first and w["grpc_port"] == port for w in client.workers()))
    net.kill_worker(victim)
    job = client.wait(job_id, timeout_s=60)
    assert job["status"] == "done", job
    (task,) = job["tasks"]
    assert task["attempts"] == 2 and task["worker_id"] != first
    (line,) = call(client, "GET", f"/api/jobs/{job_id}/bill").json()["lines"]
    assert (line["attempt"], line["worker_id"]) == (2, task["worker_id"])  # only the run that finished
    assert line["wall_s"] >= 4
    ledger_invariants(net)


def test_bill_pay_and_earnings_on_postgresql(tmp_path, postgresql):  # noqa: F811
    net = LocalNet(tmp_path / "net", extra_env={"RUNSURGE_DATABASE_URL": postgresql})
    try:
        net.start(workers=2)
        client = net.client()
        job = client.wait(client.submit_spec(EXAMPLE / "job.toml")["id"], timeout_s=120)
        assert job["status"] == "done", job
        bill = call(client, "GET", f"/api/jobs/{job['id']}/bill").json()
        assert len(bill["lines"]) == 3 and bill["due"] == bill["total"] > 0
        pending = call(client, "GET", "/api/earnings").json()
        assert pending["pending"] > 0 and pending["paid"] == 0 and len(pending["tasks"]) == 3
        assert call(client, "POST", f"/api/jobs/{job['id']}/pay").status_code == 200
        assert call(client, "POST", f"/api/jobs/{job['id']}/pay").status_code == 409
        paid = call(client, "GET", "/api/earnings").json()
        assert (paid["pending"], paid["paid"]) == (0, pending["pending"])
        assert sum(w["tasks"] for w in paid["workers"]) == 3
        assert ledger_invariants(net, postgresql)["external:payments"] == -bill["total"]
    finally:
        net.stop()
