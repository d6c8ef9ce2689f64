"""Item 7: input that used to reach a handler unchecked (HTTP 500, gRPC UNKNOWN with the exception's
text) gets a 4xx / INVALID_ARGUMENT with a short reason, and nothing changes."""

import grpc
import httpx
import pytest
from hostile import VICTIM, HostileWorker, db_rows, snapshot

from localnet import PASSWORD
from runsurge_pki.ca import make_csr, new_key
from runsurge_proto import master_pb2, master_pb2_grpc
from runsurge_proto.wire import bearer


def token(net, email):
    return httpx.post(f"{net.url}/api/auth/login", json={"email": email, "password": PASSWORD},
                      timeout=10).json()["access_token"]


def submit(net, tok, files, **form):
    return httpx.post(f"{net.url}/api/jobs", headers={"authorization": f"Bearer {tok}"}, data=form,
                      files=[("files", (name, body)) for name, body in files.items()], timeout=60)


def test_hostile_http_input_is_refused_with_a_4xx(bare):
    tok = token(bare, VICTIM)
    before = snapshot(bare)
    deep = "name = 'x'\n[[tasks]]\nname = 'a'\nscript = 'a.py'\nx = " + "[" * 20000 + "]" * 20000 + "\n"
    r = submit(bare, tok, {"a.py": b"print(1)\n"}, spec=deep)
    assert r.status_code == 400 and "nested too deeply" in r.json()["detail"]
    huge = ("x = " + " + ".join(["1"] * 50000) + "\nprint(x)\n").encode()
    r = submit(bare, tok, {"big.py": huge}, mode="auto")
    assert r.status_code == 400 and "nested too deeply" in r.json()["detail"], r.text[:300]
    assert len(r.text) < 1000  # the reason, not the script
    assert snapshot(bare) == before

    # An account deleted (by the operator) while its token is still valid.
    gone = "gone@runsurge.local"
    bare.register(gone)
    tok = token(bare, gone)
    db_rows(bare, "delete from users where email = ?", gone)
    before = snapshot(bare)
    assert httpx.get(f"{bare.url}/api/me", headers={"authorization": f"Bearer {tok}"}).status_code == 401
    assert submit(bare, tok, {"a.py": b"print(1)\n"}, mode="single").status_code == 401
    enroll = grpc.secure_channel(f"127.0.0.1:{bare.enroll_port}",
                                 grpc.ssl_channel_credentials(bare.ca_file.read_bytes()))
    with pytest.raises(grpc.RpcError) as e:
        master_pb2_grpc.MasterServiceStub(enroll).NodeRegister(master_pb2.NodeRegisterRequest(
            fingerprint="f" * 16, memory_bytes=1 << 30, cpus=1, slots=1, host="127.0.0.1", grpc_port=9,
            csr_pem=make_csr(new_key(), "x")), metadata=bearer(tok), timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert snapshot(bare) == before


def test_out_of_range_numbers_are_invalid_argument_and_change_nothing(bare, tmp_path):
    evil = HostileWorker(bare)
    try:
        (tmp_path / "hi.py").write_text("print('hi')\n")
        victim = bare.client(VICTIM)
        job = victim.submit([tmp_path / "hi.py"], mode="single")
        task = evil.wait_assigned()
        before = snapshot(bare)
        attempts = [
            lambda: evil.register(memory_bytes=1 << 63),
            lambda: evil.register(memory_bytes=(1 << 64) - 1),
            lambda: evil.heartbeat(memory_used_bytes=1 << 63),
            lambda: evil.heartbeat(running_tasks=1 << 31),
            lambda: evil.complete(task, mem_peak_bytes=1 << 63, wall_s=0.1, cpu_s=0.1),
            lambda: evil.complete(task, cpu_s=float("inf"), wall_s=0.1),
            lambda: evil.complete(task, wall_s=float("nan")),
        ]
        for attack in attempts:
            with pytest.raises(grpc.RpcError) as e:
                attack()
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
            assert len(e.value.details()) < 200 and "Traceback" not in e.value.details()
        after = snapshot(bare)
        # Heartbeats from the beat loop may move last_heartbeat: everything the victim owns is the same.
        for table in ("jobs", "tasks", "data_objects", "ledger_transactions", "ledger_entries"):
            assert after[table] == before[table], table
        assert victim.job(job["id"])["tasks"][0]["status"] in ("assigned", "running")
    finally:
        evil.stop()
