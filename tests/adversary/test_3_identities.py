"""Item 3: certificates carry the identity the CA assigns, never a name the requester picks, and each
party accepts only the identity it means to reach. A hostile worker asks for certificates naming a
wildcard, link-local or metadata address (refused; a loopback address is fine to dial but is not in
its certificate); it then plays the master with its CA-signed certificate: a real worker sends it
neither its account's token (enrolment) nor its own (heartbeats); and it answers at an address the
master named for another worker: a real fetcher never sends it the capability."""

import hashlib
from concurrent import futures
from types import SimpleNamespace

import grpc
import pytest
from hostile import HostileWorker, db_rows

from localnet import free_port
from runsurge_pki.ca import cert_info, key_pem, worker_name
from runsurge_proto import common_pb2, master_pb2, master_pb2_grpc
from runsurge_proto.wire import bearer
from runsurge_worker.cache import Cache
from runsurge_worker.fetch import Fetcher, FetchError
from runsurge_worker.tls import WorkerTLS


class FakeServer:
    """Any gRPC service at all, behind the hostile worker's CA-signed certificate: records every call."""

    def __init__(self, evil: HostileWorker, net):
        self.calls: list[tuple[str, dict]] = []
        self.port = free_port()
        fake = self

        class Everything(grpc.GenericRpcHandler):
            def service(self, details):
                fake.calls.append((details.method, dict(details.invocation_metadata)))
                return None  # UNIMPLEMENTED, after we have seen what the caller sent

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[Everything()])
        self.server.add_secure_port(f"127.0.0.1:{self.port}", grpc.ssl_server_credentials(
            [(key_pem(evil.key), evil.cert)], root_certificates=net.ca_file.read_bytes(), require_client_auth=False))
        self.server.start()


def test_identities_are_the_cas_and_only_the_expected_one_is_accepted(honest, tmp_path):
    evil = HostileWorker(honest)
    fake = FakeServer(evil, honest)
    try:
        workers_before = db_rows(honest, "select id, host, cert_serial from workers order by id")
        for host in ("*.example.org", "169.254.169.254", "fe80::1", "0.0.0.0", "ex ample.org"):
            with pytest.raises(grpc.RpcError) as e:
                evil.register(host=host)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, host
        assert db_rows(honest, "select id, host, cert_serial from workers order by id") == workers_before
        info = cert_info(evil.cert)  # registered at 127.0.0.1: an address to dial, not a name it holds
        assert info.hosts == (worker_name(evil.id),) and info.identity == f"spiffe://runsurge.internal/worker/{evil.id}"

        # A real worker whose master addresses lead to the impostor: it sends it nothing.
        real_ports = honest.grpc_port, honest.enroll_port
        honest.grpc_port = fake.port  # (LocalNet hands workers these addresses)
        honest.start_worker(1, wait=False)  # its heartbeats go to the impostor
        honest.grpc_port, honest.enroll_port = real_ports[0], fake.port
        honest.start_worker(2, wait=False)  # its enrolment goes to the impostor
        honest.grpc_port, honest.enroll_port = real_ports
        honest._until(lambda: "heartbeat failed" in honest.log("worker1"), "worker 1 to refuse the impostor")
        honest._until(lambda: "cannot register yet" in honest.log("worker2"), "worker 2 to refuse the impostor")
        assert fake.calls == []  # no handshake completed: no heartbeat, no token of any kind
        assert "Hostname Verification" in honest.log("worker1") or "handshake" in honest.log("worker1").lower()

        # A fetcher told that data is on the honest worker, at the impostor's address.
        honest_id = next(w["id"] for w in honest.client().workers() if w["grpc_port"] == honest.worker_ports[0])
        tls = WorkerTLS(tmp_path / "fetcher", honest.ca_file)
        resp = master_pb2_grpc.MasterServiceStub(evil.enroll_channel()).NodeRegister(master_pb2.NodeRegisterRequest(
            fingerprint="fetcher-0001", memory_bytes=1 << 30, cpus=1, slots=1, host="127.0.0.1", grpc_port=9,
            csr_pem=tls.csr()), metadata=bearer(honest.client(evil.owner).access_token), timeout=10)
        tls.set_certificate(resp.certificate_pem, resp.ca_pem)
        link = SimpleNamespace(tls=tls, metadata=lambda: bearer(resp.worker_token), channel=None)
        fetcher = Fetcher(Cache(tmp_path / "fetcher-cache"), link, 1 << 20)
        data_id = hashlib.sha256(b"anything").hexdigest()
        loc = common_pb2.DataLocation(data_id=data_id, peer_worker_id=honest_id, capability="secret-capability",
                                      peer_address=f"127.0.0.1:{evil.port}", size=8, sha256=data_id)
        with pytest.raises(FetchError, match="UNAVAILABLE"):
            fetcher.fetch("t", loc)
        assert evil.stream_requests == []  # the capability never left the fetcher
        loc.peer_worker_id = evil.id  # control: the worker that really is at that address is reached
        with pytest.raises(FetchError, match="NOT_FOUND"):
            fetcher.fetch("t", loc)
        assert [r.capability for r in evil.stream_requests] == ["secret-capability"]
    finally:
        fake.server.stop(grace=0)
        evil.stop()


def test_a_worker_with_a_certificate_from_before_identities_is_told_to_enrol_again(bare):
    """Upgrading needs no manual step: a worker still holding an old certificate (no identity) is
    answered `reregister` on its next heartbeat, and its next registration gets one."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    from runsurge_pki.ca import CertAuthority

    evil = HostileWorker(bare, owner="old-timer@runsurge.local")
    try:
        ca = CertAuthority(bare.root / "master" / "pki")
        now = dt.datetime.now(dt.UTC)
        old = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, evil.id)]))
               .issuer_name(ca.cert.subject).public_key(evil.key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=30))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
               .sign(ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
        evil.stop()  # no beats of its own while we swap its certificate
        db_rows(bare, "update workers set cert_serial = ? where id = ?", cert_info(old).serial, evil.id)
        bare.restart_master()
        evil.cert = old
        creds = grpc.ssl_channel_credentials(bare.ca_file.read_bytes(), key_pem(evil.key), old)
        evil.master = master_pb2_grpc.MasterServiceStub(grpc.secure_channel(f"127.0.0.1:{bare.grpc_port}", creds))
        assert evil.heartbeat().reregister
        evil.register()
        assert cert_info(evil.cert).identity.endswith(f"/worker/{evil.id}") and not evil.heartbeat().reregister
    finally:
        evil.stop()
