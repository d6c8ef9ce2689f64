"""A worker joining or coming back (NodeRegister): what it may claim (check_registration, before any
database work), and what the master records: the worker row (new, or its restart: whatever it ran is
gone but for the checkpoints it resumes), its certificate signed from its CSR, and the data it says it
holds (only objects the master knows)."""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from runsurge_master import lifecycle
from runsurge_master.denied import DeniedError
from runsurge_master.lifecycle import Cancels
from runsurge_master.models import DataLocation, DataObject, User, Worker, utcnow
from runsurge_master.tls import MasterTLS
from runsurge_pki.ca import PkiError
from runsurge_proto.wire import is_data_id

log = logging.getLogger("runsurge.registration")


@dataclass
class Registered:
    worker_id: str
    certificate_pem: bytes
    cancels: Cancels  # tasks of its previous run to stop (after the commit)


class Registrar:
    """`worker_lost(session, worker, reason)`: liveness's step for a worker whose runs are gone."""

    def __init__(self, tls: MasterTLS, worker_lost: Callable[[Session, Worker, str], Cancels]):
        self.tls, self.worker_lost = tls, worker_lost

    def register(self, s: Session, owner_id: str, r) -> Registered:
        if s.get(User, owner_id) is None:  # the account was deleted after its token was issued
            raise DeniedError("UNAUTHENTICATED", "invalid token: no such account")
        cancels: Cancels = []
        w = s.scalar(select(Worker).where(Worker.owner_id == owner_id, Worker.fingerprint == r.fingerprint))
        if w is None:
            w = Worker(owner_id=owner_id, fingerprint=r.fingerprint)
            s.add(w)
            log.info("worker joined fingerprint=%s", r.fingerprint[:12])
        else:  # a restart: whatever it was running is gone, but for the checkpoints it resumes
            cancels = self.worker_lost(s, w, "worker restarted")
            lifecycle.resume_checkpoints(s, w.id, set(r.checkpointed_task_ids))
        w.host, w.grpc_port = r.host, r.grpc_port
        w.memory_bytes, w.cpus, w.slots = r.memory_bytes, r.cpus, r.slots
        # Schedulable from its first heartbeat over mutual TLS (its server starts once it has the
        # certificate); until then "no beat since registering" marks it as new.
        w.sandbox, w.online = r.sandbox, False
        w.registered_at = w.last_heartbeat = utcnow()
        s.flush()
        try:
            cert, w.cert_serial, w.cert_not_after = self.tls.enroll(w.id, r.csr_pem)
        except PkiError as e:
            raise DeniedError("INVALID_ARGUMENT", str(e)) from None
        s.execute(delete(DataLocation).where(DataLocation.worker_id == w.id))
        cached = {d for d in r.cached_data_ids if is_data_id(d)}
        for data_id in s.scalars(select(DataObject.id).where(DataObject.id.in_(cached))):
            s.add(DataLocation(data_id=data_id, worker_id=w.id))
        return Registered(w.id, cert, cancels)


_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def check_host(host: str) -> str | None:
    """A worker's advertised address, used only to dial it: a literal IP address that reaches a host
    (no unspecified, multicast, link-local or cloud metadata address) or a DNS name (no wildcard)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if len(host) > 253 or not all(_HOST_LABEL.match(label) for label in host.rstrip(".").split(".")):
            return "host must be an IP address or a DNS name (letters, digits, hyphens; no wildcard)"
        if host.rstrip(".").split(".")[-1].isdigit():
            return "host must be an IP address or a DNS name"
        return None
    if not ip.is_loopback and (ip.is_unspecified or ip.is_multicast or ip.is_link_local or ip.is_reserved):
        return "host must be an address the master and peers can dial (not link-local, multicast or unspecified)"
    return None


def check_registration(r) -> str | None:
    if not 8 <= len(r.fingerprint) <= 128:
        return "fingerprint must be 8-128 characters"
    if problem := check_host(r.host):
        return problem
    if not 0 < r.grpc_port < 65536:
        return "grpc_port must be 1-65535"
    if r.memory_bytes <= 0 or not 0 < r.cpus <= 4096 or not 0 < r.slots <= 1024:
        return "memory, cpus and slots must be positive"
    return None
