"""Item 6: a worker can neither fill the master's store nor read an object by its hash. Holding one
task of its owner's job, a hostile worker uploads 40 unrelated objects (all but the task's results
and logs budget are refused, and the garbage collector deletes what nothing references), claims the
victim's result by announcing its hash with no bytes (refused), and names the victim's result as its
own output and log (the report is refused as a worker fault; its owner gets nothing)."""

import hashlib
import time

import grpc
import httpx
import pytest
from hostile import ATTACKER, VICTIM, HostileWorker, db_rows

from runsurge_proto import master_pb2

SPEC = """
[[tasks]]
name = "make"
script = "make.py"
outputs = ["out.txt"]
"""


def store_has(net, data_id):
    return (net.root / "master" / "objects" / data_id[:2] / data_id).exists()


def test_a_worker_cannot_fill_the_store_or_claim_anothers_result(honest, tmp_path):
    (tmp_path / "make.py").write_text("open('out.txt', 'w').write('the victim secret ' * 1000)\n")
    (tmp_path / "job.toml").write_text(SPEC)
    victim = honest.client(VICTIM)
    vjob = victim.submit_spec(tmp_path / "job.toml")
    assert victim.wait(vjob["id"], timeout_s=60)["status"] == "done"
    (result,) = victim.results(vjob["id"])
    secret_id = result["data_id"]
    secret = victim._request("GET", f"/api/jobs/{vjob['id']}/results/make/out.txt").content

    evil = HostileWorker(honest)  # from now on the best fit for the attacker's own job
    try:
        attacker = honest.client(ATTACKER)
        (tmp_path / "make.py").write_text("open('out.txt', 'w').write('mine')\n")
        ajob = attacker.submit_spec(tmp_path / "job.toml")
        task = evil.wait_assigned()
        bill = "select * from ledger_transactions where job_id = ? order by id"
        before = db_rows(honest, bill, vjob["id"]), db_rows(honest, "select * from jobs where id = ?", vjob["id"])

        # 40 unrelated 1 MiB objects: the run's budget (1 result + 2 logs) is all it gets.
        junk, refused = [], 0
        for i in range(40):
            data = bytes([i]) * (1 << 20)
            try:
                junk.append(evil.upload(task.task_id, data).data_id)
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                refused += 1
        assert (len(junk), refused) == (3, 37)
        # The victim's result announced by its hash, without its bytes.
        with pytest.raises(grpc.RpcError) as e:
            evil.upload(task.task_id, b"", data_id=secret_id, size=result["size"])
        assert e.value.code() in (grpc.StatusCode.DATA_LOSS, grpc.StatusCode.RESOURCE_EXHAUSTED)
        # The victim's result named as this run's output and log.
        evil.complete(task, wall_s=0.1, cpu_s=0.1, stdout_data_id=secret_id, outputs=[master_pb2.OutputData(
            name="out.txt", data_id=secret_id, size=result["size"], sha256=secret_id)])

        assert db_rows(honest, "select reason from task_faults where task_id = ? and worker_id = ?",
                       task.task_id, evil.id) == [("result(s) not uploaded: out.txt",)]
        assert all(r["data_id"] != secret_id for r in attacker.results(ajob["id"]))
        r = httpx.get(f"{honest.url}/api/tasks/{task.task_id}/logs",
                      headers={"authorization": f"Bearer {attacker.access_token}"})
        assert "victim secret" not in r.text
        # The victim's job, bill and data are as they were; its result downloads byte for byte.
        assert (db_rows(honest, bill, vjob["id"]), db_rows(honest, "select * from jobs where id = ?", vjob["id"])) \
            == before
        assert victim._request("GET", f"/api/jobs/{vjob['id']}/results/make/out.txt").content == secret
        assert hashlib.sha256(secret).hexdigest() == secret_id

        # Referenced by nothing once that run ended: the collector deletes the junk, never the victim's data.
        deadline = time.monotonic() + 30
        while any(store_has(honest, d) for d in junk):
            assert time.monotonic() < deadline, "unreferenced uploads still in the store"
            time.sleep(0.2)
        assert store_has(honest, secret_id)
        assert victim._request("GET", f"/api/jobs/{vjob['id']}/results/make/out.txt").content == secret
    finally:
        evil.stop()


CHAIN = """
[[tasks]]
name = "make"
script = "make.py"
outputs = ["x.txt"]
[[tasks]]
name = "copy"
script = "copy.py"
inputs = { "x.txt" = "task:make/x.txt" }
outputs = ["out.txt"]
"""


def test_a_producer_cannot_name_anothers_object_as_its_intermediate_output(honest, tmp_path):
    """The master's copy of a hash is never served as a task's intermediate input: a producer that
    names the victim's result as its output (without holding it) gets its consumer nothing but a
    re-run of the producer, by an honest worker."""
    (tmp_path / "make.py").write_text("open('out.txt', 'w').write('the victim secret')\n")
    (tmp_path / "job.toml").write_text(SPEC)
    victim = honest.client(VICTIM)
    vjob = victim.wait(victim.submit_spec(tmp_path / "job.toml")["id"], timeout_s=60)
    (result,) = victim.results(vjob["id"])

    evil = HostileWorker(honest)
    try:
        attacker = honest.client(ATTACKER)
        (tmp_path / "make.py").write_text("open('x.txt', 'w').write('honest x')\n")
        (tmp_path / "copy.py").write_text("open('out.txt', 'w').write(open('x.txt').read())\n")
        (tmp_path / "job.toml").write_text(CHAIN)
        ajob = attacker.submit_spec(tmp_path / "job.toml")
        make = evil.wait_assigned()
        evil.accept = False  # it takes nothing more, and cannot serve what it claimed
        evil.complete(make, wall_s=0.1, cpu_s=0.1, outputs=[master_pb2.OutputData(
            name="x.txt", data_id=result["data_id"], size=result["size"], sha256=result["data_id"])])
        job = attacker.wait(ajob["id"], timeout_s=90)
        assert job["status"] == "done", job
        (out,) = attacker.results(ajob["id"])
        got = attacker._request("GET", f"/api/jobs/{ajob['id']}/results/copy/out.txt").content
        assert got == b"honest x" and out["data_id"] != result["data_id"]
    finally:
        evil.stop()
