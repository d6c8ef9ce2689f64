"""Redundancy 2 (a quorum) on real processes: a master and process-sandbox workers owned by three
different contributors. An honest run is decided by two contributors who both earn, for exactly one
charge per task; a worker whose outputs are tampered with (liar_worker.py: the real worker with its
output files altered before hashing) is outvoted by a third contributor, earns nothing and loses trust."""

import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from localnet import EMAIL, LocalNet
from runsurge_client import api as client_api
from runsurge_client import cli
from runsurge_master import billing
from runsurge_master.billing import Tariff, Usage, quote
from runsurge_master.config import MasterConfig
from runsurge_master.db import Database
from runsurge_master.models import LedgerTransaction, Task

LIAR = Path(__file__).resolve().parent / "liar_worker.py"
ALICE, BOB, CAROL, MALLORY = "alice@x.org", "bob@x.org", "carol@x.org", "mallory@x.org"


def write_job(folder: Path) -> Path:
    """make → x.txt ("21", intermediate: it stays on the workers) → double → y.txt ("42", the result)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "make.py").write_text("open('x.txt', 'w').write('21')\n")
    (folder / "double.py").write_text("open('y.txt', 'w').write(str(2 * int(open('x').read())))\n")
    (folder / "job.toml").write_text("""name = "quorum"
[[tasks]]
name = "make"
script = "make.py"
outputs = ["x.txt"]
[[tasks]]
name = "double"
script = "double.py"
inputs = { "x" = "task:make/x.txt" }
outputs = ["y.txt"]
""")
    return folder / "job.toml"


@pytest.fixture
def quorum_net(tmp_path):
    net = LocalNet(tmp_path / "net", heartbeat_s=1.0)
    try:
        net.start_master()
        yield net
    finally:
        net.stop()


def start(net: LocalNet, workers: dict[int, str], liars: tuple[int, ...] = ()) -> None:
    for i, owner in workers.items():
        net.start_worker(i, owner=owner, wait=False, program=[str(LIAR)] if i in liars else None)
    for i in workers:
        net.wait_online(i)


def owners_of(net: LocalNet, emails: list[str]) -> dict[str, str]:
    """Worker id → its contributor's email, as each contributor sees its own workers."""
    return {w["id"]: email for email in emails for w in net.client(email).workers()}


def call(client, method: str, path: str) -> dict:
    r = client.http.request(method, path, headers={"authorization": f"Bearer {client.access_token}"})
    assert r.status_code == 200, r.text
    return r.json()


def check_ledger(net: LocalNet, job_id: str) -> list[LedgerTransaction]:
    """Exactly one charge per task, every posting balanced, the user owes the sum of the charges."""
    db = Database(f"sqlite:///{net.root / 'master' / 'master.db'}")
    try:
        with db.session() as s:
            task_ids = set(s.scalars(select(Task.id).where(Task.job_id == job_id)))
            postings = s.scalars(select(LedgerTransaction).where(LedgerTransaction.job_id == job_id)).all()
            charges = Counter(p.task_id for p in postings if p.kind == "charge")
            assert set(charges) == task_ids and set(charges.values()) == {1}, "not exactly one charge per task"
            assert len({(p.task_id, p.attempt) for p in postings}) == len(postings)
            assert billing.unbalanced_postings(s) == []
            balances = billing.balances(s)
            assert sum(balances.values()) == 0
            owner = s.get(Task, next(iter(task_ids))).job.owner_id
            assert balances[billing.user_account(owner)] == -sum(p.amount for p in postings if p.kind == "charge")
            return list(postings)
    finally:
        db.engine.dispose()


def check_bill(client, job_id: str, workers: dict[str, str]) -> dict[str, int]:
    """Each task's one line is the sum of its agreeing replicas' charges at the documented tariff;
    returns what each contributor earned."""
    defaults = MasterConfig()
    tariff = Tariff(defaults.price_cpu_hour, defaults.price_gib_hour, defaults.platform_fee_percent)
    bill = call(client, "GET", f"/api/jobs/{job_id}/bill")
    assert sorted(line["task"] for line in bill["lines"]) == ["double", "make"]
    earned: Counter[str] = Counter()
    for line in bill["lines"]:
        assert (line["attempt"], line["worker_id"], len(line["replicas"])) == (0, None, 2)
        quotes = [quote(tariff, Usage(round(r["cpu_s"] * 1e6), round(r["wall_s"] * 1e6), line["memory_bytes"], 1000))
                  for r in line["replicas"]]
        assert line["amount"] == sum(q.charge for q in quotes)
        assert [r["earned"] for r in line["replicas"]] == [q.earning for q in quotes]
        for r in line["replicas"]:
            earned[workers[r["worker_id"]]] += r["earned"]
    assert bill["total"] == bill["due"] == sum(line["amount"] for line in bill["lines"])
    return earned


def test_an_honest_quorum_is_done_by_two_contributors_and_charged_once(quorum_net, tmp_path, monkeypatch, capsys):
    net = quorum_net
    start(net, {0: ALICE, 1: BOB, 2: CAROL})
    spec = write_job(tmp_path / "job")
    # Submitted with the CLI, as a new user would.
    monkeypatch.setattr(client_api, "CONFIG", tmp_path / "client.json")
    monkeypatch.setenv("RUNSURGE_PASSWORD", "demo-password-1")
    assert cli.main(["--master", net.url, "login", EMAIL]) == 0
    capsys.readouterr()
    assert cli.main(["--master", net.url, "submit", "--spec", str(spec), "--redundancy", "2"]) == 0
    job_id = capsys.readouterr().out.split()[-1]
    client = net.client()
    job = client.wait(job_id, timeout_s=120)
    assert job["status"] == "done", job
    (result,) = client.download_results(job_id, tmp_path / "out")
    assert result.read_text() == "42"

    workers = owners_of(net, [ALICE, BOB, CAROL])
    for t in job["tasks"]:
        assert t["redundancy"] == 2 and t["waiting"] is None
        assert [(r["status"], r["verdict"]) for r in t["replicas"]] == [("done", "agree")] * 2
        assert len({workers[r["worker_id"]] for r in t["replicas"]}) == 2, "two different contributors"
        assert t["worker_id"] in {r["worker_id"] for r in t["replicas"]}
    make = next(t for t in job["tasks"] if t["name"] == "make")
    x_holders = {h for loc in client.locations(job_id) if loc["data_id"] == make["outputs"]["x.txt"]
                 for h in loc["holders"]}
    assert x_holders == {r["worker_id"] for r in make["replicas"]}  # dependants could fetch from either

    earned = check_bill(client, job_id, workers)
    for email in (ALICE, BOB, CAROL):
        assert call(net.client(email), "GET", "/api/earnings")["total"] == earned[email]
    assert sum(v > 0 for v in earned.values()) >= 2  # every agreeing contributor earned
    postings = check_ledger(net, job_id)
    assert Counter(p.kind for p in postings) == {"charge": 2, "earning": 4}
    assert cli.main(["--master", net.url, "status", job_id]) == 0
    assert capsys.readouterr().out.count("agree") == 4


def test_a_lying_worker_is_outvoted_earns_nothing_and_loses_trust(quorum_net, tmp_path):
    net = quorum_net
    start(net, {0: ALICE, 1: MALLORY}, liars=(1,))
    client = net.client()
    job_id = client.submit_spec(write_job(tmp_path / "job"), redundancy=2)["id"]

    # Alice and Mallory disagree: the task waits for a worker of a third contributor.
    deadline = time.monotonic() + 60
    while True:
        make = next(t for t in client.job(job_id)["tasks"] if t["name"] == "make")
        if make["waiting"] and [r["status"] for r in make["replicas"]] == ["done", "done"]:
            break  # (before: "being placed", a pass in flight, is a waiting reason too)
        assert time.monotonic() < deadline, make
        time.sleep(0.2)
    assert make["status"] == "ready" and make["waiting"].startswith("the results so far differ"), make
    assert [r["status"] for r in make["replicas"]] == ["done", "done"]
    assert len({tuple(r["outputs"].values()) for r in make["replicas"]}) == 2

    start(net, {2: BOB})
    job = client.wait(job_id, timeout_s=120)
    assert job["status"] == "done", job
    (result,) = client.download_results(job_id, tmp_path / "out")
    assert result.read_text() == "42"  # the majority's x.txt, not the tampered one

    workers = owners_of(net, [ALICE, BOB, MALLORY])
    tasks = {t["name"]: t for t in job["tasks"]}
    verdicts = {workers[r["worker_id"]]: r["verdict"] for r in tasks["make"]["replicas"]}
    assert verdicts == {ALICE: "agree", MALLORY: "odd", BOB: "agree"}
    honest = next(r for r in tasks["make"]["replicas"] if r["verdict"] == "agree")
    assert tasks["make"]["outputs"]["x.txt"] == honest["outputs"]["x.txt"]
    # Mallory's trust fell below the threshold: the next task ran on Alice and Bob only.
    assert {workers[r["worker_id"]] for r in tasks["double"]["replicas"]} == {ALICE, BOB}
    trust = {email: w["trust"] for email in (ALICE, BOB, MALLORY) for w in net.client(email).workers()}
    assert trust == {ALICE: 2, BOB: 2, MALLORY: -20}

    earned = check_bill(client, job_id, workers)
    assert earned[MALLORY] == 0 and earned[ALICE] > 0 and earned[BOB] > 0
    mallory = call(net.client(MALLORY), "GET", "/api/earnings")
    assert (mallory["total"], mallory["tasks"]) == (0, [])
    check_ledger(net, job_id)
    assert "SECURITY quorum: worker=" in net.log("master") and "outvoted" in net.log("master")
