"""The worker's side of mutual TLS. Its EC key is made here and never leaves the machine; the
master signs a CSR for it at every registration (so a restart or a renewal gets a fresh
certificate naming the worker id). The server side picks up a renewed certificate on the fly."""

from __future__ import annotations

import threading
from pathlib import Path

import grpc

from runsurge_pki.ca import cert_info, key_pem, load_or_create_key, make_csr, now


class WorkerTLS:
    def __init__(self, home: Path, ca_file: Path):
        if not ca_file.is_file():
            raise FileNotFoundError(f"the CA certificate {ca_file} is missing: copy the master's ca.pem "
                                    "(its pki folder) here, or set RUNSURGE_CA_FILE")
        self.ca_pem = ca_file.read_bytes()
        self._key = load_or_create_key(home / "tls" / "worker.key")
        self.key_pem = key_pem(self._key)
        self.cert_path = home / "tls" / "worker.pem"
        self.cert_pem = b""
        self._lock = threading.Lock()
        self._served = b""  # the certificate the gRPC server presents now

    def csr(self) -> bytes:
        return make_csr(self._key, "runsurge-worker")  # the master sets the real name

    def set_certificate(self, cert_pem: bytes, ca_pem: bytes) -> None:
        if ca_pem and ca_pem != self.ca_pem:
            raise ValueError("the master's CA differs from the configured CA file")
        with self._lock:
            self.cert_pem = cert_pem
        self.cert_path.write_bytes(cert_pem)

    def renewal_due(self) -> bool:
        """True once a third of the certificate's life is left."""
        if not self.cert_pem:
            return False
        left = cert_info(self.cert_pem).not_after - now()
        return left.total_seconds() < 10 * 86400

    # -- credentials ---------------------------------------------------------------------------
    def enrollment_credentials(self) -> grpc.ChannelCredentials:
        """Registration: we check the master's certificate; we have none of our own yet."""
        return grpc.ssl_channel_credentials(self.ca_pem)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.ca_pem, self.key_pem, self.cert_pem)

    def server_credentials(self) -> grpc.ServerCredentials:
        def current() -> grpc.ServerCertificateConfiguration | None:
            with self._lock:
                if self.cert_pem == self._served:
                    return None  # unchanged
                self._served = self.cert_pem
            return grpc.ssl_server_certificate_configuration([(self.key_pem, self._served)], self.ca_pem)

        self._served = self.cert_pem
        first = grpc.ssl_server_certificate_configuration([(self.key_pem, self.cert_pem)], self.ca_pem)
        return grpc.dynamic_ssl_server_credentials(first, current, require_client_authentication=True)
