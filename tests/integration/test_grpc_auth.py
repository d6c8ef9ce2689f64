"""Every gRPC call without a valid token ends with UNAUTHENTICATED and changes nothing."""

import sqlite3

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runsurge_proto import common_pb2, master_pb2, master_pb2_grpc, worker_pb2, worker_pb2_grpc
from runsurge_proto.wire import bearer


def forged(typ="access"):
    return jwt.encode({"sub": "x", "typ": typ, "iss": "runsurge-master", "exp": 2**31}, Ed25519PrivateKey.generate(),
                      algorithm="EdDSA")


def expired(net, typ="access"):
    from runsurge_master.auth import TokenService, load_or_create_key
    return TokenService(load_or_create_key(net.root / "master" / "jwt_ed25519.pem")).issue("x", typ, -60)


def db_rows(net):
    with sqlite3.connect(net.root / "master" / "master.db") as conn:
        return {t: conn.execute(f"select count(*) from {t}").fetchall() for t in ("users", "workers", "jobs", "tasks")}


MASTER_CALLS = [
    ("NodeRegister", master_pb2.NodeRegisterRequest(fingerprint="f" * 16, memory_bytes=1, cpus=1, slots=1,
                                                    host="127.0.0.1", grpc_port=1)),
    ("NodeHeartbeat", master_pb2.NodeHeartbeatRequest(worker_id="w")),
    ("TaskStarted", master_pb2.TaskStartedRequest(worker_id="w", task_id="t")),
    ("TaskComplete", master_pb2.TaskCompleteRequest(worker_id="w", task_id="t")),
]


@pytest.mark.parametrize("token", ["none", "expired", "forged", "garbage"])
def test_master_rejects_calls_without_a_valid_token(net, token):
    stub = master_pb2_grpc.MasterServiceStub(grpc.insecure_channel(f"127.0.0.1:{net.grpc_port}"))
    before = db_rows(net)
    for method, req in MASTER_CALLS:
        md = {"none": (), "expired": bearer(expired(net)), "forged": bearer(forged()),
              "garbage": bearer("abc.def.ghi")}[token]
        with pytest.raises(grpc.RpcError) as e:
            getattr(stub, method)(req, metadata=md, timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED, method
    with pytest.raises(grpc.RpcError) as e:
        list(stub.StreamData(common_pb2.DataRequest(data_id="0" * 64), metadata=bearer(forged("worker"))))
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert db_rows(net) == before


def test_a_user_token_cannot_act_as_a_worker_and_a_worker_only_as_itself(net):
    stub = master_pb2_grpc.MasterServiceStub(grpc.insecure_channel(f"127.0.0.1:{net.grpc_port}"))
    user_token = net.client().access_token
    with pytest.raises(grpc.RpcError) as e:
        stub.NodeHeartbeat(master_pb2.NodeHeartbeatRequest(worker_id="w"), metadata=bearer(user_token))
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    reg = stub.NodeRegister(MASTER_CALLS[0][1], metadata=bearer(user_token))
    other = next(w["id"] for w in net.client().workers() if w["id"] != reg.worker_id)
    with pytest.raises(grpc.RpcError) as e:
        stub.NodeHeartbeat(master_pb2.NodeHeartbeatRequest(worker_id=other), metadata=bearer(reg.worker_token))
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_workers_obey_only_the_master(net):
    port = net.worker_ports[0]
    stub = worker_pb2_grpc.WorkerServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    assign = worker_pb2.AssignTaskRequest(task_id="t", script_data_id="0" * 64)
    for md in [(), bearer(forged("master")), bearer(expired(net, "master")), bearer(net.client().access_token)]:
        with pytest.raises(grpc.RpcError) as e:
            stub.AssignTask(assign, metadata=md, timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
