"""Every MasterService method, fed requests that hypothesis builds from the proto descriptors (any
value of each field's type: huge and NaN numbers, odd strings, nested and repeated fields), sent by
an enrolled hostile worker that holds a task, so the requests get past authentication into the
handlers. None may end in UNKNOWN or INTERNAL (an unhandled exception), and the master still serves."""

import grpc
import httpx
from google.protobuf.descriptor import FieldDescriptor
from hostile import VICTIM, HostileWorker
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runsurge_proto import master_pb2
from runsurge_proto.wire import bearer

F = FieldDescriptor
EXAMPLES = 40  # per method: bounded, the suite stays lean
BAD = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}


def messages(descriptor, ids: dict[str, list[str]], depth: int = 0) -> st.SearchStrategy:
    """Requests of this message type; string fields named like ids mostly take real ids (to reach deep)."""
    fields = {}
    for f in descriptor.fields:
        value = scalar(f, ids, depth)
        fields[f.name] = st.lists(value, max_size=3) if f.is_repeated else value
    cls = master_pb2.__dict__.get(descriptor.name) or _message_class(descriptor)
    return st.fixed_dictionaries({}, optional=fields).map(lambda kw: cls(**kw))


def _message_class(descriptor):
    from google.protobuf import message_factory
    return message_factory.GetMessageClass(descriptor)


def scalar(f, ids, depth):
    t = f.type
    if t == F.TYPE_MESSAGE:
        return messages(f.message_type, ids, depth + 1) if depth < 2 else st.just(_message_class(f.message_type)())
    if t in (F.TYPE_UINT64, F.TYPE_FIXED64):
        return st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 1, 2**31, 2**63 - 1, 2**63, 2**64 - 1]))
    if t in (F.TYPE_UINT32, F.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    if t in (F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32, F.TYPE_ENUM):
        return st.integers(-(2**31), 2**31 - 1)
    if t in (F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64):
        return st.integers(-(2**63), 2**63 - 1)
    if t in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=64 if t == F.TYPE_DOUBLE else 32)
    if t == F.TYPE_BOOL:
        return st.booleans()
    if t == F.TYPE_BYTES:
        return st.binary(max_size=64)
    known = ids.get(f.name)
    text = st.text(max_size=40)
    return st.one_of(st.sampled_from(known), text) if known else text


def fuzz(call, kind: str, name: str, md, requests: st.SearchStrategy, seen: dict[str, set]) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(requests, st.lists(requests, max_size=2))
    def attack(request, more) -> None:
        try:
            if kind == "unary_unary":
                call(request, metadata=md, timeout=10)
            elif kind == "unary_stream":
                list(call(request, metadata=md, timeout=10))
            else:
                call(iter([request, *more]), metadata=md, timeout=10)
            code = grpc.StatusCode.OK
        except grpc.RpcError as e:
            code = e.code()
            assert code not in BAD, f"{name}: {code.name} {e.details()}"
        seen.setdefault(name, set()).add(code.name)

    attack()


def test_no_request_makes_a_handler_fail(bare, tmp_path):
    evil = HostileWorker(bare)
    try:
        (tmp_path / "hi.py").write_text("print('hi')\n")
        victim = bare.client(VICTIM)
        job = victim.submit([tmp_path / "hi.py"], mode="single")
        task = evil.wait_assigned()
        ids = {"worker_id": [evil.id], "task_id": [task.task_id], "data_id": [task.script_data_id, "0" * 64],
               "bad_peer_worker_id": [evil.id], "bad_data_id": ["0" * 64], "host": ["127.0.0.1"],
               "stdout_data_id": ["0" * 64], "fingerprint": ["hostile-0001"]}
        user = bare.client(evil.owner).access_token
        service = master_pb2.DESCRIPTOR.services_by_name["MasterService"]
        seen: dict[str, set] = {}

        # NodeRegister last: re-registering renews the hostile worker's certificate, refusing the old one.
        for method in sorted(service.methods, key=lambda m: m.name == "NodeRegister"):
            stub = (evil.enroll_channel() if method.name == "NodeRegister" else evil.master_channel)
            md = bearer(user if method.name == "NodeRegister" else evil.token)
            path = f"/{service.full_name}/{method.name}"
            req_cls = _message_class(method.input_type)
            out_cls = _message_class(method.output_type)
            kind = ("stream" if method.client_streaming else "unary") + "_" + (
                "stream" if method.server_streaming else "unary")
            call = getattr(stub, kind)(path, request_serializer=req_cls.SerializeToString,
                                       response_deserializer=out_cls.FromString)

            fuzz(call, kind, method.name, md, messages(method.input_type, ids), seen)
        assert set(seen) == {m.name for m in service.methods}
        # Still serving: HTTP, and the victim's job as it was or run on (the fuzz may have completed it).
        assert httpx.get(f"{bare.url}/api/health").status_code == 200
        assert victim.job(job["id"])["status"] in ("running", "done", "failed")
        assert bare.master.poll() is None
    finally:
        evil.stop()
