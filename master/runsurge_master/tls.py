"""The master's side of mutual TLS: its CA and certificate, gRPC credentials, and which worker
certificates it still accepts (the worker's current one, never a revoked one)."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from functools import lru_cache

import grpc
from sqlalchemy import select

from runsurge_master.config import MasterConfig
from runsurge_master.db import Database
from runsurge_master.models import RevokedCert, Worker
from runsurge_pki.ca import MASTER_CN, MASTER_NAME, CertAuthority, cert_info, now, write_private

log = logging.getLogger("runsurge.tls")
RENEW_BEFORE = dt.timedelta(days=30)
REVOCATION_REFRESH_S = 5.0


@lru_cache(maxsize=4096)
def serial_of(pem: bytes) -> str:
    return cert_info(pem).serial


@lru_cache(maxsize=4096)
def _identity_of(pem: bytes) -> str:
    return cert_info(pem).identity


class MasterTLS:
    def __init__(self, cfg: MasterConfig, db: Database):
        self.db = db
        self.ca = CertAuthority.open_or_create(cfg.pki_dir)
        self.ca_pem = self.ca.ca_pem
        self.key_pem, self.cert_pem = self._own_certificate(cfg)
        self._serials: dict[str, str | None] = {}  # worker id → its current certificate serial
        self._revoked: set[str] = set()
        self._revoked_at = 0.0
        self._lock = threading.Lock()

    def _own_certificate(self, cfg: MasterConfig) -> tuple[bytes, bytes]:
        """Issued on first start; re-issued when the configured hosts change or expiry nears."""
        key_path, cert_path = cfg.home / "tls" / "master.key", cfg.home / "tls" / "master.pem"
        hosts = sorted(h.strip() for h in cfg.tls_hosts.split(",") if h.strip())
        if key_path.exists() and cert_path.exists():  # (one from before identities is re-issued)
            info = cert_info(cert_path.read_bytes())
            if (sorted(info.hosts) == sorted({*hosts, MASTER_NAME}) and info.identity
                    and info.not_after - now() > RENEW_BEFORE):
                return key_path.read_bytes(), cert_path.read_bytes()
        key, cert = self.ca.issue(MASTER_CN, hosts)
        write_private(key_path, key)
        cert_path.write_bytes(cert)
        log.info("issued the master's certificate for %s", ", ".join(hosts))
        return key, cert

    # -- credentials ---------------------------------------------------------------------------
    def server_credentials(self, require_client_cert: bool) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials([(self.key_pem, self.cert_pem)], root_certificates=self.ca_pem,
                                           require_client_auth=require_client_cert)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """For calling workers: they check our certificate, we check theirs (dial with
        expect_identity(worker_name(id)): only that worker's certificate answers at its address)."""
        return grpc.ssl_channel_credentials(self.ca_pem, self.key_pem, self.cert_pem)

    # -- enrolment and acceptance --------------------------------------------------------------
    def enroll(self, worker_id: str, csr_pem: bytes) -> tuple[bytes, str, dt.datetime]:
        cert = self.ca.sign_csr(csr_pem, worker_id)
        info = cert_info(cert)
        with self._lock:
            self._serials[worker_id] = info.serial
        return cert, info.serial, info.not_after.replace(tzinfo=None)

    @staticmethod
    def has_identity(cert_pem: bytes) -> bool:
        """False for a worker certificate from before identities: the worker is told to register again."""
        return bool(cert_pem) and _identity_of(cert_pem) != ""

    def check_worker(self, worker_id: str, cert_pem: bytes) -> str | None:
        """None if this certificate may act as `worker_id` now, else why not."""
        if not cert_pem:
            return "no client certificate"
        serial = serial_of(cert_pem)
        if serial in self.revoked():
            return "this certificate has been revoked"
        with self._lock:
            current = self._serials.get(worker_id, "?")
        if current == "?":
            with self.db.session() as s:
                current = s.scalar(select(Worker.cert_serial).where(Worker.id == worker_id))
            with self._lock:
                self._serials[worker_id] = current
        if serial != current:
            return "not this worker's current certificate"
        return None

    def revoked(self) -> set[str]:
        """Revocations from the CA's CRL (runsurge-pki revoke) and the database, refreshed every few s."""
        if time.monotonic() - self._revoked_at > REVOCATION_REFRESH_S:
            with self.db.session() as s:
                revoked = set(s.scalars(select(RevokedCert.serial)))
            self._revoked = revoked | self.ca.revoked()
            self._revoked_at = time.monotonic()
        return self._revoked

    def forget(self, worker_id: str) -> None:
        with self._lock:
            self._serials.pop(worker_id, None)
