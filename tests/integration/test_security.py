"""The trust boundaries of the gRPC side, attacked: every RPC of the master and of a worker is
called without TLS, with a certificate from another CA, with another worker's certificate, and
with missing, expired, forged or wrong-kind tokens. Each is refused and the database is unchanged."""

import sqlite3
import tempfile
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from jobs import wait_task, write_add_job
from runsurge_master.auth import TokenService, load_or_create_key
from runsurge_pki.ca import CertAuthority, expect_identity, key_pem, make_csr, new_key, worker_name
from runsurge_proto import common_pb2, master_pb2, master_pb2_grpc, worker_pb2, worker_pb2_grpc
from runsurge_proto.wire import bearer

OK_REFUSALS = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNAVAILABLE}


class Identity:
    """A worker identity enrolled like a real worker: our own key, the master signs our CSR."""

    def __init__(self, net, fingerprint):
        self.key = new_key()
        channel = grpc.secure_channel(f"127.0.0.1:{net.enroll_port}",
                                      grpc.ssl_channel_credentials(net.ca_file.read_bytes()))
        resp = master_pb2_grpc.MasterServiceStub(channel).NodeRegister(master_pb2.NodeRegisterRequest(
            fingerprint=fingerprint, memory_bytes=1 << 30, cpus=1, slots=1, host="127.0.0.1", grpc_port=9,
            csr_pem=make_csr(self.key, "x")), metadata=bearer(net.client().access_token), timeout=10)
        self.id, self.token, self.cert = resp.worker_id, resp.worker_token, resp.certificate_pem

    def creds(self, ca_pem):
        return grpc.ssl_channel_credentials(ca_pem, key_pem(self.key), self.cert)


@pytest.fixture
def ids(net):
    return Identity(net, "a" * 16), Identity(net, "b" * 16)


def master_tokens(net):
    return TokenService(load_or_create_key(net.root / "master" / "jwt_ed25519.pem"))


def forged(typ, sub="x"):
    return jwt.encode({"sub": sub, "typ": typ, "iss": "runsurge-master", "exp": 2**31},
                      Ed25519PrivateKey.generate(), algorithm="EdDSA")


def db_state(net):
    with sqlite3.connect(net.root / "master" / "master.db") as conn:
        return {t: conn.execute(f"select * from {t}").fetchall() for t in ("users", "jobs", "tasks", "data_objects")}, \
            conn.execute("select id, cert_serial, online from workers order by id").fetchall()


def other_ca_creds():
    folder = Path(tempfile.mkdtemp())
    ca = CertAuthority.create(folder / "ca")
    key, cert = ca.issue("intruder", ["127.0.0.1"])
    return grpc.ssl_channel_credentials(ca.ca_pem, key, cert)


MASTER_RPCS = {
    "NodeHeartbeat": lambda wid: master_pb2.NodeHeartbeatRequest(worker_id=wid),
    "TaskStarted": lambda wid: master_pb2.TaskStartedRequest(worker_id=wid, task_id="t"),
    "CompleteTasks": lambda wid: master_pb2.CompleteTasksRequest(
        reports=[master_pb2.TaskCompleteRequest(worker_id=wid, task_id="t")]),
}


def call_master(channel, method, req, md):
    stub = master_pb2_grpc.MasterServiceStub(channel)
    if method in ("StreamData", "StreamPythonFile"):
        return list(getattr(stub, method)(req, metadata=md, timeout=10))
    if method == "ReceiveData":
        return stub.ReceiveData(iter([master_pb2.UploadPart(header=master_pb2.UploadHeader(
            worker_id=req, task_id="t", data_id="0" * 64, size=1))]), metadata=md, timeout=10)
    return getattr(stub, method)(MASTER_RPCS[method](req), metadata=md, timeout=10)


ALL_MASTER = [*MASTER_RPCS, "StreamData", "StreamPythonFile", "ReceiveData"]


def master_request(method, wid):
    return common_pb2.DataRequest(data_id="0" * 64, task_id="t") if method.startswith("Stream") else wid


def test_master_refuses_every_rpc_from_every_kind_of_impostor(net, ids):
    a, b = ids
    ca_pem = net.ca_file.read_bytes()
    main = f"127.0.0.1:{net.grpc_port}"
    tokens = master_tokens(net)
    user_token = net.client().access_token
    before = db_state(net)
    attempts = {
        "plain text": (grpc.insecure_channel(main), bearer(a.token)),
        "TLS without a client certificate": (grpc.secure_channel(main, grpc.ssl_channel_credentials(ca_pem)),
                                             bearer(a.token)),
        "a certificate from another CA": (grpc.secure_channel(main, other_ca_creds()), bearer(a.token)),
        "no token": (grpc.secure_channel(main, a.creds(ca_pem)), ()),
        "an expired token": (grpc.secure_channel(main, a.creds(ca_pem)),
                             bearer(tokens.issue(a.id, "worker", -10))),
        "a token signed by another key": (grpc.secure_channel(main, a.creds(ca_pem)), bearer(forged("worker", a.id))),
        "a user's token": (grpc.secure_channel(main, a.creds(ca_pem)), bearer(user_token)),
        "another worker's certificate": (grpc.secure_channel(main, b.creds(ca_pem)), bearer(a.token)),
    }
    for what, (channel, md) in attempts.items():
        for method in ALL_MASTER:
            with pytest.raises(grpc.RpcError) as e:
                call_master(channel, method, master_request(method, a.id), md)
            assert e.value.code() in OK_REFUSALS, f"{method} with {what}: {e.value.code()} {e.value.details()}"
            if what in ("plain text", "TLS without a client certificate", "a certificate from another CA"):
                assert e.value.code() == grpc.StatusCode.UNAVAILABLE  # the TLS handshake itself fails
            else:
                assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED, f"{method} with {what}"
    assert db_state(net) == before


def test_a_worker_acts_only_as_itself_and_only_with_its_current_certificate(net, ids):
    a, b = ids
    ca_pem = net.ca_file.read_bytes()
    main = f"127.0.0.1:{net.grpc_port}"
    stub = master_pb2_grpc.MasterServiceStub(grpc.secure_channel(main, a.creds(ca_pem)))
    stub.NodeHeartbeat(master_pb2.NodeHeartbeatRequest(worker_id=a.id), metadata=bearer(a.token))  # genuine: fine
    with pytest.raises(grpc.RpcError) as e:  # a's certificate and token, b's id
        stub.NodeHeartbeat(master_pb2.NodeHeartbeatRequest(worker_id=b.id), metadata=bearer(a.token))
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    old = a.creds(ca_pem)
    Identity.__init__(a, net, "a" * 16)  # registers again: a new certificate replaces the old one
    with pytest.raises(grpc.RpcError) as e:
        master_pb2_grpc.MasterServiceStub(grpc.secure_channel(main, old)).NodeHeartbeat(
            master_pb2.NodeHeartbeatRequest(worker_id=a.id), metadata=bearer(a.token))
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED and "current certificate" in e.value.details()


def test_a_revoked_certificate_is_refused(net, ids):
    a, _ = ids
    ca_pem = net.ca_file.read_bytes()
    stub = master_pb2_grpc.MasterServiceStub(grpc.secure_channel(f"127.0.0.1:{net.grpc_port}", a.creds(ca_pem)))
    stub.NodeHeartbeat(master_pb2.NodeHeartbeatRequest(worker_id=a.id), metadata=bearer(a.token))
    from runsurge_pki.ca import cert_info
    CertAuthority(net.root / "master" / "pki").revoke(cert_info(a.cert).serial)
    import time
    deadline = time.monotonic() + 30  # the master re-reads revocations now and then
    while True:
        try:
            stub.NodeHeartbeat(master_pb2.NodeHeartbeatRequest(worker_id=a.id), metadata=bearer(a.token))
        except grpc.RpcError as e:
            refused = e
            break
        assert time.monotonic() < deadline, "a revoked certificate was still accepted after 30 s"
        time.sleep(0.2)
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in refused.details()


def test_enrolment_needs_a_user_token_and_a_sound_csr(net):
    stub = master_pb2_grpc.MasterServiceStub(grpc.secure_channel(
        f"127.0.0.1:{net.enroll_port}", grpc.ssl_channel_credentials(net.ca_file.read_bytes())))
    req = master_pb2.NodeRegisterRequest(fingerprint="c" * 16, memory_bytes=1, cpus=1, slots=1, host="127.0.0.1",
                                         grpc_port=9, csr_pem=make_csr(new_key(), "x"))
    before = db_state(net)
    for md in [(), bearer(forged("access")), bearer(master_tokens(net).issue("u", "access", -5))]:
        with pytest.raises(grpc.RpcError) as e:
            stub.NodeRegister(req, metadata=md)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    user = bearer(net.client().access_token)
    for bad in [b"", b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"]:
        req.csr_pem = bad
        with pytest.raises(grpc.RpcError) as e:
            stub.NodeRegister(req, metadata=user)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert db_state(net) == before
    with pytest.raises(grpc.RpcError) as e:  # the enrolment port serves nothing else
        stub.NodeHeartbeat(master_pb2.NodeHeartbeatRequest(worker_id="w"), metadata=user)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED


WORKER_RPCS = {
    "AssignTasks": worker_pb2.AssignTasksRequest(tasks=[worker_pb2.AssignTaskRequest(task_id="t",
                                                                                 script_data_id="0" * 64)]),
    "NotifyData": worker_pb2.NotifyDataRequest(task_id="t", location=common_pb2.DataLocation(data_id="0" * 64)),
    "GetWorkerStatus": worker_pb2.WorkerStatusRequest(),
    "CancelTask": worker_pb2.CancelTaskRequest(task_id="t"),
    "DeleteData": worker_pb2.DeleteDataRequest(data_ids=["0" * 64]),
    "ReadTaskLog": worker_pb2.ReadTaskLogRequest(task_id="t", stream="stdout", max_bytes=1 << 20),
}


def test_a_worker_obeys_only_the_master(net, ids):
    a, _ = ids
    ca_pem = net.ca_file.read_bytes()
    address = f"127.0.0.1:{net.worker_ports[0]}"
    tokens = master_tokens(net)
    attempts = {
        "plain text": (grpc.insecure_channel(address), bearer(tokens.issue("master", "master", 60))),
        "another CA": (grpc.secure_channel(address, other_ca_creds()), bearer(tokens.issue("master", "master", 60))),
        "a worker pretending to be the master": (grpc.secure_channel(address, a.creds(ca_pem)),
                                                 bearer(tokens.issue("master", "master", 60))),
        "a worker's own token": (grpc.secure_channel(address, a.creds(ca_pem)), bearer(a.token)),
        "a forged master token": (grpc.secure_channel(address, a.creds(ca_pem)), bearer(forged("master", "master"))),
        "no token": (grpc.secure_channel(address, a.creds(ca_pem)), ()),
    }
    for what, (channel, md) in attempts.items():
        stub = worker_pb2_grpc.WorkerServiceStub(channel)
        for method, req in WORKER_RPCS.items():
            with pytest.raises(grpc.RpcError) as e:
                getattr(stub, method)(req, metadata=md, timeout=10)
            assert e.value.code() in OK_REFUSALS, f"{method} with {what}"


def test_peer_data_needs_a_capability_for_exactly_that_data(net, ids, tmp_path):
    client = net.client()
    script = tmp_path / "s.py"
    script.write_text("open('o.txt', 'w').write('secret')\n")
    job = client.wait(client.submit([script], mode="single")["id"], timeout_s=60)
    (task,) = job["tasks"]
    data_id = task["outputs"]["o.txt"]
    holder_port = next(w["grpc_port"] for w in client.workers() if w["id"] == task["worker_id"])
    a, _ = ids
    stub = worker_pb2_grpc.WorkerServiceStub(grpc.secure_channel(  # the holder's identity, as a peer dials it
        f"127.0.0.1:{holder_port}", a.creds(net.ca_file.read_bytes()),
        options=expect_identity(worker_name(task["worker_id"]))))
    tokens = master_tokens(net)

    def fetch(capability):
        return b"".join(c.data for c in stub.StreamData(
            common_pb2.DataRequest(data_id=data_id, capability=capability), metadata=bearer(a.token), timeout=10))

    for capability in ["", forged("cap", a.id), tokens.issue(a.id, "cap", 60, data="1" * 64),
                       tokens.issue("someone-else", "cap", 60, data=data_id),
                       tokens.issue(a.id, "cap", -5, data=data_id), tokens.issue(a.id, "worker", 60, data=data_id)]:
        with pytest.raises(grpc.RpcError) as e:
            fetch(capability)
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert fetch(tokens.issue(a.id, "cap", 60, data=data_id)) == b"secret"  # the genuine article works
    with pytest.raises(grpc.RpcError) as e:  # odd data ids never reach the file system
        list(stub.StreamData(common_pb2.DataRequest(data_id="../../etc/passwd"), metadata=bearer(a.token)))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_malformed_and_oversized_messages_are_refused_and_the_master_stays_up(net, ids):
    a, _ = ids
    channel = grpc.secure_channel(f"127.0.0.1:{net.grpc_port}", a.creds(net.ca_file.read_bytes()))
    md = bearer(a.token)
    for method in ("NodeHeartbeat", "TaskStarted", "CompleteTasks"):
        raw = channel.unary_unary(f"/runsurge.v1.MasterService/{method}")
        for payload in (b"\xff\xff\xff\xff\x0f", b"\x0a\xff\xff\xff\xff\xff", b"\x00" * 5 * (1 << 20)):
            with pytest.raises(grpc.RpcError) as e:
                raw(payload, metadata=md, timeout=10)
            too_big = len(payload) > 4 << 20
            assert e.value.code() == (grpc.StatusCode.RESOURCE_EXHAUSTED if too_big else
                                      grpc.StatusCode.INVALID_ARGUMENT), e.value.details()
    raw = channel.stream_unary("/runsurge.v1.MasterService/ReceiveData")
    with pytest.raises(grpc.RpcError) as e:
        raw(iter([b"\xff\xff\xff"]), metadata=md, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    worker0 = next(w["id"] for w in net.client().workers() if w["grpc_port"] == net.worker_ports[0])
    worker = grpc.secure_channel(f"127.0.0.1:{net.worker_ports[0]}", a.creds(net.ca_file.read_bytes()),
                                 options=expect_identity(worker_name(worker0)))
    with pytest.raises(grpc.RpcError) as e:
        worker.unary_stream("/runsurge.v1.WorkerService/StreamData")(b"\x0a\xff\xff", metadata=md, timeout=10).next()
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    stub = master_pb2_grpc.MasterServiceStub(channel)
    stub.NodeHeartbeat(master_pb2.NodeHeartbeatRequest(worker_id=a.id), metadata=md)  # still serving
    assert net.master.poll() is None


def test_a_peer_serving_corrupt_bytes_is_caught_and_the_data_recomputed(net, tmp_path):
    """A worker whose cached copy does not match its data id (tampered, or a disk fault) serves it
    to a peer: the peer rejects it, the master logs the event, drops that copy, re-runs the
    producer, and the job still gets the right answer."""
    write_add_job(tmp_path, "41" + " " * 1000, "1" + " " * 50000, slow_s=4)  # add goes where y is
    client = net.client()
    job_id = client.submit_spec(tmp_path / "job.toml")["id"]
    tasks = wait_task(client, job_id, "make", "done")
    liar = tasks["make"]["worker_id"]
    data_id = tasks["make"]["outputs"]["x.txt"]
    index = net.index_of(liar)
    cached = net.root / f"worker{index}" / "cache" / data_id[:2] / data_id
    cached.write_text("99" + " " * 1000)  # same size, different bytes
    job = client.wait(job_id, timeout_s=60)
    assert job["status"] == "done", job
    (result,) = client.download_results(job_id, tmp_path / "out")
    assert result.read_text() == "42"
    tasks = {t["name"]: t for t in job["tasks"]}
    assert tasks["add"]["worker_id"] != liar and tasks["add"]["attempts"] == 2
    assert tasks["make"]["attempts"] == 2  # recomputed
    assert f"SECURITY corrupt or missing data={data_id[:12]} served by worker={liar}" in net.log("master")
    assert f"rejected data {data_id[:12]}" in net.log(f"worker{1 - index}")


def test_a_worker_cannot_report_on_a_task_that_is_not_its_own(net, ids, tmp_path):
    a, _ = ids
    script = tmp_path / "s.py"
    script.write_text("print(1)\n")
    client = net.client()
    job = client.wait(client.submit([script], mode="single")["id"], timeout_s=60)
    task_id = job["tasks"][0]["id"]
    stub = master_pb2_grpc.MasterServiceStub(grpc.secure_channel(f"127.0.0.1:{net.grpc_port}",
                                                                 a.creds(net.ca_file.read_bytes())))
    before = db_state(net)
    report = master_pb2.TaskCompleteRequest(worker_id=a.id, task_id=task_id, status=master_pb2.TASK_STATUS_FAILED)
    (answer,) = stub.CompleteTasks(master_pb2.CompleteTasksRequest(reports=[report]), metadata=bearer(a.token)).results
    assert answer.result == master_pb2.REPORT_RESULT_REFUSED and "not (or no longer) assigned" in answer.reason
    for call in (lambda: stub.CompleteTasks(master_pb2.CompleteTasksRequest(reports=[  # as another worker
                     report, master_pb2.TaskCompleteRequest(worker_id=job["tasks"][0]["worker_id"], task_id=task_id,
                                                            status=master_pb2.TASK_STATUS_FAILED)]),
                                        metadata=bearer(a.token)),
                 lambda: stub.ReceiveData(iter([master_pb2.UploadPart(header=master_pb2.UploadHeader(
                     worker_id=a.id, task_id=task_id, data_id="0" * 64, size=1))]), metadata=bearer(a.token))):
        with pytest.raises(grpc.RpcError) as e:
            call()
        assert e.value.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.PERMISSION_DENIED)
    assert db_state(net) == before
