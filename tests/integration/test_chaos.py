"""Chaos: a 100-task job over 3 workers survives a worker killed with SIGKILL, a master restart and a
worker cut off from the network; it completes with exactly the output of running the same scripts
one after the other in plain Python, and the ledger holds exactly one charge per task.

Real processes, no mocks: a master and 3 workers with 2 slots each, in the `process` sandbox (each
task is a plain subprocess: the test is about the control plane, and 100 VM boots would take many
minutes). Worker 2 runs in a network namespace of its own, joined to ours by a veth pair with private
addresses; the master and the other workers listen on our end's address so all of them reach each
other (peer fetches included). "Dropping its network" sets its end of the pair down for longer than
3 heartbeat intervals. Needs root and `ip netns` (skipped otherwise).

The job: 64 `gen` tasks (one per seed file) → 32 `pair` tasks (each multiplies two gen outputs,
fetched from peers) → 3 `group` tasks (sum ~11 pairs each) → `final`. Each task pauses 0.2-0.4 s so
the chaos lands on running work; intermediate outputs live only on workers, so a lost worker makes
the master re-run producers (lineage).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from localnet import LocalNet
from runsurge_master import billing
from runsurge_master.db import Database
from runsurge_master.models import LedgerTransaction, Task, Worker

GENS, PAIRS, GROUPS = 64, 32, 3
HEARTBEAT_S = 1.0  # 1 s rather than 0.5: steadier on a loaded 2-core machine
DEADLINE_S = 300  # the whole test stops by itself well within this

GEN = """import json, os, time
time.sleep(float(os.environ.get("CHAOS_PAUSE_S", "0.4")))
i = int(open("seed.txt").read())
json.dump({"i": i, "values": [pow(i * 1000 + k, 3, 1000003) for k in range(300)]}, open("nums.json", "w"))
"""
PAIR = """import json, os, time
time.sleep(float(os.environ.get("CHAOS_PAUSE_S", "0.4")))
a, b = json.load(open("a.json")), json.load(open("b.json"))
json.dump({"ids": [a["i"], b["i"]], "values": [x * y % 1000003 for x, y in zip(a["values"], b["values"])]},
          open("pair.json", "w"))
"""
GROUP = """import json, os, time
time.sleep(float(os.environ.get("CHAOS_PAUSE_S", "0.2")))
parts = [json.load(open(n)) for n in sorted(os.listdir(".")) if n.startswith("p") and n.endswith(".json")]
json.dump({"ids": [i for p in parts for i in p["ids"]], "values": [sum(v) for v in zip(*(p["values"] for p in parts))]},
          open("group.json", "w"))
"""
FINAL = """import hashlib, json, os, time
time.sleep(float(os.environ.get("CHAOS_PAUSE_S", "0.2")))
parts = [json.load(open(f"g{k}.json")) for k in range(3)]
ids = sorted(i for p in parts for i in p["ids"])
values = [sum(v) for v in zip(*(p["values"] for p in parts))]
text = json.dumps({"ids": ids, "values": values}, sort_keys=True)
open("result.json", "w").write(json.dumps({"digest": hashlib.sha256(text.encode()).hexdigest(), "ids": ids,
                                           "total": sum(values), "values": values}))
"""


def write_job(folder: Path) -> list[dict]:
    """The job's files and spec; returns the tasks (name, script, inputs: local name → source, output)."""
    folder.mkdir(parents=True)
    for name, text in {"gen.py": GEN, "pair.py": PAIR, "group.py": GROUP, "final.py": FINAL}.items():
        (folder / name).write_text(text)
    tasks = []
    for i in range(GENS):
        (folder / f"seed{i:02d}.txt").write_text(str(i))
        tasks.append({"name": f"gen{i:02d}", "script": "gen.py", "inputs": {"seed.txt": f"seed{i:02d}.txt"},
                      "output": "nums.json"})
    for j in range(PAIRS):
        tasks.append({"name": f"pair{j:02d}", "script": "pair.py", "output": "pair.json",
                      "inputs": {"a.json": f"task:gen{2 * j:02d}/nums.json",
                                 "b.json": f"task:gen{2 * j + 1:02d}/nums.json"}})
    for k in range(GROUPS):
        tasks.append({"name": f"group{k}", "script": "group.py", "output": "group.json",
                      "inputs": {f"p{j:02d}.json": f"task:pair{j:02d}/pair.json" for j in range(k, PAIRS, GROUPS)}})
    tasks.append({"name": "final", "script": "final.py", "output": "result.json",
                  "inputs": {f"g{k}.json": f"task:group{k}/group.json" for k in range(GROUPS)}})
    assert len(tasks) == 100
    spec = ['name = "chaos"']
    for t in tasks:
        inputs = ", ".join(f'"{local}" = "{src}"' for local, src in t["inputs"].items())
        spec += ["[[tasks]]", f'name = "{t["name"]}"', f'script = "{t["script"]}"', f"inputs = {{ {inputs} }}",
                 f'outputs = ["{t["output"]}"]', 'memory = "64MiB"']
    (folder / "job.toml").write_text("\n".join(spec) + "\n")
    return tasks


def run_sequentially(folder: Path, tasks: list[dict], work: Path) -> bytes:
    """The same scripts one after the other in plain Python (no pauses): the reference output."""
    produced: dict[str, Path] = {}
    for t in tasks:  # the spec lists producers before their consumers
        d = work / t["name"]
        d.mkdir(parents=True)
        shutil.copy(folder / t["script"], d / t["script"])
        for local, src in t["inputs"].items():
            shutil.copy(produced[src[5:]] if src.startswith("task:") else folder / src, d / local)
        subprocess.run([sys.executable, t["script"]], cwd=d, check=True, timeout=60,
                       env={"PATH": os.environ.get("PATH", ""), "CHAOS_PAUSE_S": "0"})
        produced[f"{t['name']}/{t['output']}"] = d / t["output"]
    return produced["final/result.json"].read_bytes()


# -- the network namespace ---------------------------------------------------------------------
@dataclass
class Netns:
    name: str
    host_if: str     # our end of the veth pair
    ns_if: str       # its end, inside the namespace
    host_addr: str   # our end's address: the master and the other workers listen there
    ns_addr: str     # the namespaced worker's address

    def link(self, up: bool) -> None:
        ip("-n", self.name, "link", "set", self.ns_if, "up" if up else "down")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


def free_subnet() -> tuple[str, str]:
    """A /30 under 10.200.0.0/13 derived from our pid (parallel runs differ) that no route here uses."""
    pid = os.getpid()
    for n in range(pid, pid + 64):
        prefix, last = f"10.{200 + (n >> 14) % 8}.{(n >> 6) % 256}.", (n % 64) * 4
        host_addr, ns_addr = f"{prefix}{last + 1}", f"{prefix}{last + 2}"
        routes = ip("-4", "route", "show", "table", "all", "to", "match", ns_addr).stdout.splitlines()
        if all(r.startswith("default") for r in routes):  # nothing here uses that range
            return host_addr, ns_addr
    pytest.skip("no free private /30 for the test's veth pair")


@pytest.fixture
def netns():
    if os.geteuid() != 0:
        pytest.skip("the chaos test needs root to make a network namespace")
    if shutil.which("ip") is None:
        pytest.skip("the chaos test needs `ip` (iproute2) for its network namespace")
    pid = os.getpid()
    ns = Netns(f"runsurge-chaos-{pid}", f"rsc{pid}h", f"rsc{pid}n", *free_subnet())
    made = ip("netns", "add", ns.name, check=False)
    if made.returncode != 0:
        pytest.skip(f"`ip netns add` is unavailable here: {made.stderr.strip()}")
    try:
        ip("link", "add", ns.host_if, "type", "veth", "peer", "name", ns.ns_if, "netns", ns.name)
        ip("addr", "add", f"{ns.host_addr}/30", "dev", ns.host_if)
        ip("link", "set", ns.host_if, "up")
        ip("-n", ns.name, "addr", "add", f"{ns.ns_addr}/30", "dev", ns.ns_if)
        ip("-n", ns.name, "link", "set", "lo", "up")
        ns.link(up=True)
        yield ns
    finally:  # deleting our end deletes the pair (and its addresses); then the namespace
        ip("link", "del", ns.host_if, check=False)
        ip("netns", "del", ns.name, check=False)


# -- the test ----------------------------------------------------------------------------------
def test_a_100_task_job_survives_kill_master_restart_and_network_drop(netns, tmp_path):
    started = time.monotonic()
    deadline = started + DEADLINE_S
    tasks = write_job(tmp_path / "job")
    expected = run_sequentially(tmp_path / "job", tasks, tmp_path / "sequential")

    net = LocalNet(tmp_path / "net", sandbox="process", slots=2, heartbeat_s=HEARTBEAT_S, host=netns.host_addr)
    try:
        net.start_master()
        net.start_worker(0, wait=False)
        net.start_worker(1, wait=False)
        net.start_worker(2, wait=False, netns=netns.name, host=netns.ns_addr)
        for i in range(3):
            net.wait_online(i)
        client = net.client()
        ids = {i: w["id"] for w in client.workers() for i, port in net.worker_ports.items()
               if w["grpc_port"] == port}
        assert len(ids) == 3
        job_id = client.submit_spec(tmp_path / "job" / "job.toml")["id"]

        def state() -> list[dict]:
            job = client.job(job_id)
            assert job["status"] == "running", f"job {job['status']} before the chaos was over: {job.get('error')}"
            return job["tasks"]

        def until(what: str, ok) -> None:
            while not ok():
                assert time.monotonic() < deadline, f"timed out waiting for {what}; logs in {net.root}"
                time.sleep(0.05)

        def progress(min_done: int, running_on: int | None = None) -> bool:
            tasks_ = state()
            return sum(t["status"] == "done" for t in tasks_) >= min_done and (running_on is None or any(
                t["status"] == "running" and t["worker_id"] == ids[running_on] for t in tasks_))

        # 1. SIGKILL worker 0 while it runs a task (its cached gen outputs go with it).
        until("8 tasks done and worker 0 running one", lambda: progress(8, running_on=0))
        net.kill_worker(0)
        # 2. Kill and restart the master while the others run tasks; then bring worker 0 back.
        until("20 tasks done", lambda: progress(20))
        net.restart_master()
        client = net.client()
        net.start_worker(0)
        # 3. Cut worker 2 off while it runs a task, for longer than 3 heartbeat intervals; then restore.
        until("worker 2 running a task", lambda: progress(0, running_on=2))
        netns.link(up=False)
        time.sleep(HEARTBEAT_S * 3 + 3)
        netns.link(up=True)
        net.wait_online(2)
        chaos_over = time.monotonic() - started

        job = client.wait(job_id, timeout_s=max(10, deadline - time.monotonic()))
        assert job["status"] == "done", job.get("error")
        (result,) = client.download_results(job_id, tmp_path / "out")
        assert result.read_bytes() == expected

        # The chaos hit running work: each fault re-queued tasks, and the restart reconciled.
        master_log = net.log("master")
        lines = master_log.splitlines()
        requeues = [line for line in lines if " requeue task=" in line]
        for i in (0, 2):
            assert any(f"(worker {ids[i][:8]})" in line for line in requeues), f"no task of worker {i} re-queued"
        assert "reconciled worker=" in master_log
        assert any(t["attempts"] > 1 for t in job["tasks"])
        # ...and nothing beyond it (each of these happened before the fixes that name the chaos test):
        # no task failed to fetch from a master that was back, nor waited in vain for the input
        # locations a killed master never sent; and a worker, once (back) online, was neither
        # refused work nor declared offline (slow reconnects after the master's restart).
        assert not [line for line in requeues if "from master failed" in line or "arrived in time" in line]
        for wid in ids.values():
            back = max(n for n, line in enumerate(lines) if f"worker registered worker={wid}" in line)
            assert not [line for line in lines[back:] if ("dispatch failed" in line or "worker offline" in line)
                        and f"worker={wid}" in line]

        bill = client.http.get(f"/api/jobs/{job_id}/bill",
                               headers={"authorization": f"Bearer {client.access_token}"}).json()
        assert sorted(line["task_id"] for line in bill["lines"]) == sorted(t["id"] for t in job["tasks"])
        check_ledger(net, job_id, ids, master_log)
        print(f"chaos test: chaos over at {chaos_over:.1f}s, job done at {time.monotonic() - started:.1f}s, "
              f"{len(requeues)} re-queues, attempts {Counter(t['attempts'] for t in job['tasks'])}")
    finally:
        net.stop()


def check_ledger(net: LocalNet, job_id: str, ids: dict[int, str], master_log: str) -> None:
    """Exactly one charge per task; every successful run billed once (no task done twice unnoticed,
    no duplicate earnings); re-runs for lost data paid by the platform; every posting balances."""
    db = Database(f"sqlite:///{net.root / 'master' / 'master.db'}")
    try:
        with db.session() as s:
            task_ids = set(s.scalars(select(Task.id).where(Task.job_id == job_id)))
            assert len(task_ids) == 100
            assert s.scalar(select(func.count()).select_from(Task).where(Task.job_id == job_id,
                                                                         Task.status != "done")) == 0
            postings = s.scalars(select(LedgerTransaction).where(LedgerTransaction.job_id == job_id,
                                                                 LedgerTransaction.kind != "payment")).all()
            charges = Counter(p.task_id for p in postings if p.kind == "charge")
            assert set(charges) == task_ids and set(charges.values()) == {1}, "not exactly one charge per task"
            assert len({(p.task_id, p.attempt) for p in postings}) == len(postings), "an attempt billed twice"
            assert {p.kind for p in postings} <= {"charge", "recompute"}
            assert all(p.outcome == "done" for p in postings), "a failed or lost run was billed"
            # Each completion that finished a task counted once on its worker and billed once.
            assert sum(s.scalars(select(Worker.tasks_done))) == len(postings)
            # Each lineage re-run is one recomputation (paid by the platform), no more.
            assert master_log.count("lineage: re-running task=") == sum(p.kind == "recompute" for p in postings)
            assert {p.worker_id for p in postings} == set(ids.values()), "the work was not spread over 3 workers"
            assert billing.unbalanced_postings(s) == []
            balances = billing.balances(s)
            assert sum(balances.values()) == 0
            owner = s.get(Task, next(iter(task_ids))).job.owner_id
            assert balances[billing.user_account(owner)] == -sum(p.amount for p in postings if p.kind == "charge")
    finally:
        db.engine.dispose()
