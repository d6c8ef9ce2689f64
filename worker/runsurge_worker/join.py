"""Joining from the master's URL alone (as `kubeadm join --discovery-token-ca-cert-hash` does): the
worker asks the master's HTTP API for its gRPC and enrolment ports and the CA certificate, and keeps
the certificate only if its sha256 is the fingerprint the operator passed. Nothing else in the answer
is trusted: every later connection is TLS against that pinned CA and the master's identity in it."""

from __future__ import annotations

import hmac
import json
import os
import urllib.error
import urllib.request
from dataclasses import fields
from urllib.parse import urlsplit

from runsurge_pki.ca import fingerprint, parse_fingerprint
from runsurge_worker.config import WorkerConfig


class JoinError(RuntimeError):
    pass


def _default(name: str) -> object:
    return next(f.default for f in fields(WorkerConfig) if f.name == name)


def join(cfg: WorkerConfig) -> None:
    """Fill in cfg.master_grpc, cfg.master_enroll (unless set) and cfg.ca_file from the master."""
    want = parse_fingerprint(cfg.ca_fingerprint)
    url = f"{cfg.master_url.rstrip('/')}/api/join"
    try:
        with urllib.request.urlopen(url, timeout=15) as resp:
            info = json.loads(resp.read(1 << 20))
        ca_pem = info["ca_pem"].encode()
        grpc_port, enroll_port = int(info["grpc_port"]), int(info["enroll_port"])
        host = info.get("grpc_host") or urlsplit(cfg.master_url).hostname
    except urllib.error.HTTPError as e:
        raise JoinError(f"the master at {cfg.master_url} does not offer joining ({e.code}): "
                        "check RUNSURGE_MASTER_URL") from None
    except (urllib.error.URLError, OSError) as e:
        raise JoinError(f"cannot reach the master at {cfg.master_url}: {e}: check RUNSURGE_MASTER_URL") from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise JoinError(f"{url} did not answer as a RunSurge master ({e.__class__.__name__})") from None
    try:
        got = fingerprint(ca_pem)
    except ValueError:
        raise JoinError(f"{url} sent something that is not a certificate as its CA") from None
    if not hmac.compare_digest(got, want):
        raise JoinError(f"the master's CA has fingerprint {got}, not {want}: refusing to join (is this the "
                        "right master? ask its operator for `runsurge-pki fingerprint`)")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    if cfg.master_grpc == _default("master_grpc"):
        cfg.master_grpc = f"{host}:{grpc_port}"
    if cfg.master_enroll == _default("master_enroll"):
        cfg.master_enroll = f"{host}:{enroll_port}"
    ca_file = cfg.home / "tls" / "ca.pem"
    ca_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = ca_file.with_suffix(".tmp")
    tmp.write_bytes(ca_pem)
    os.replace(tmp, ca_file)  # never a half-written CA file
    cfg.ca_file = ca_file
