"""The private CA behind RunSurge's mutual TLS.

A CA folder holds `ca.pem` (public), `ca.key` (0600), `issued/<serial>.pem` (every certificate it
signed) and `crl.pem` (a signed list of revoked serials). Keys are EC P-256: every TLS stack
(gRPC's BoringSSL included) speaks it. Certificates carry both serverAuth and clientAuth because
each party is a server to some peers and a client to others.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 365
WORKER_DAYS = 30
MASTER_CN = "runsurge-master"
# Every certificate names its holder's role and identity, assigned by the CA, never asked for (as in
# SPIFFE): a URI SAN spiffe://runsurge.internal/master or .../worker/<id>, and the same as a DNS name
# (MASTER_NAME, worker_name(id)), which is what TLS checks: a client dials any address but requires
# the name of the party it means to reach (grpc.ssl_target_name_override, expect_identity).
TRUST_DOMAIN = "runsurge.internal"
MASTER_NAME = f"master.{TRUST_DOMAIN}"
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def worker_name(worker_id: str) -> str:
    return f"{worker_id}.worker.{TRUST_DOMAIN}"


def identity_of(common_name: str) -> tuple[str, str] | None:
    """(DNS name, SPIFFE URI) the CA gives the holder of `common_name` (None: not a name it can carry)."""
    if common_name == MASTER_CN:
        return MASTER_NAME, f"spiffe://{TRUST_DOMAIN}/master"
    if _LABEL.match(common_name):
        return worker_name(common_name), f"spiffe://{TRUST_DOMAIN}/worker/{common_name}"
    return None


def expect_identity(name: str) -> list[tuple[str, str]]:
    """gRPC channel options that accept only a server certificate naming `name` (MASTER_NAME, worker_name)."""
    return [("grpc.ssl_target_name_override", name)]


class PkiError(ValueError):
    """A bad CSR, a missing CA, an unknown serial: the message says which."""


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def write_private(path: Path, data: bytes) -> None:
    """Create a 0600 file atomically (the key is never readable by others, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PkiError(f"{path} is not an EC private key")
        return key
    key = new_key()
    write_private(path, key_pem(key))
    return key


def make_csr(key: ec.EllipticCurvePrivateKey, common_name: str) -> bytes:
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def _san(common_name: str, hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    identity = identity_of(common_name)
    if identity:
        names += [x509.DNSName(identity[0]), x509.UniformResourceIdentifier(identity[1])]
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    return x509.SubjectAlternativeName(names)


@dataclass(frozen=True)
class CertInfo:
    serial: str  # hex
    common_name: str
    not_after: dt.datetime
    hosts: tuple[str, ...]
    identity: str = ""  # the SPIFFE URI the CA gave it ("" for a certificate from before they had one)


def fingerprint(pem: bytes) -> str:
    """`sha256:<hex>` of a certificate's DER bytes: what an operator passes a worker to pin the CA by."""
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return "sha256:" + digest.finalize().hex()


def parse_fingerprint(text: str) -> str:
    """The canonical `sha256:<64 hex>` of what an operator typed (case, colons between bytes and the
    `sha256:` prefix are optional); ValueError for anything else."""
    hexpart = text.strip().lower().removeprefix("sha256:").replace(":", "")
    if not re.fullmatch(r"[0-9a-f]{64}", hexpart):
        raise ValueError(f"a CA fingerprint is sha256: and 64 hex digits (runsurge-pki fingerprint prints it), "
                         f"not {text[:80]!r}")
    return "sha256:" + hexpart


def cert_info(pem: bytes) -> CertInfo:
    cert = x509.load_pem_x509_certificate(pem)
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        hosts = tuple(str(v) for v in san.get_values_for_type(x509.DNSName)) + tuple(
            str(v) for v in san.get_values_for_type(x509.IPAddress))
        uris = [u for u in san.get_values_for_type(x509.UniformResourceIdentifier) if u.startswith("spiffe://")]
    except x509.ExtensionNotFound:
        hosts, uris = (), []
    return CertInfo(serial=format(cert.serial_number, "x"), common_name=str(cn[0].value) if cn else "",
                    not_after=cert.not_valid_after_utc, hosts=hosts, identity=uris[0] if uris else "")


class CertAuthority:
    def __init__(self, folder: Path):
        self.folder = folder
        if not self.cert_path.exists() or not self.key_path.exists():
            raise PkiError(f"no CA in {folder} (create one with `runsurge-pki init --dir {folder}`)")
        self.cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PkiError("the CA key is not an EC key")
        self.key = key

    cert_path = property(lambda self: self.folder / "ca.pem")
    key_path = property(lambda self: self.folder / "ca.key")
    crl_path = property(lambda self: self.folder / "crl.pem")

    @classmethod
    def create(cls, folder: Path, name: str = "RunSurge private CA") -> CertAuthority:
        """A new CA; refuses to overwrite an existing one (that would orphan every certificate)."""
        if (folder / "ca.key").exists():
            raise PkiError(f"a CA already exists in {folder}")
        key = new_key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now() - dt.timedelta(minutes=5)).not_valid_after(now() + dt.timedelta(days=CA_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        write_private(folder / "ca.key", key_pem(key))
        (folder / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        ca = cls(folder)
        ca.write_crl()
        return ca

    @classmethod
    def open_or_create(cls, folder: Path) -> CertAuthority:
        return cls(folder) if (folder / "ca.key").exists() else cls.create(folder)

    @property
    def ca_pem(self) -> bytes:
        return self.cert_path.read_bytes()

    def sign(self, public_key, common_name: str, hosts: list[str], days: int) -> bytes:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                   .issuer_name(self.cert.subject).public_key(public_key)
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now() - dt.timedelta(minutes=5))
                   .not_valid_after(min(now() + dt.timedelta(days=days), self.cert.not_valid_after_utc))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                         ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
        san = _san(common_name, hosts)
        if len(san):
            builder = builder.add_extension(san, critical=False)
        pem = builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
        issued = self.folder / "issued"
        issued.mkdir(exist_ok=True)
        (issued / f"{cert_info(pem).serial}.pem").write_bytes(pem)
        return pem

    def sign_csr(self, csr_pem: bytes, common_name: str, days: int = WORKER_DAYS) -> bytes:
        """Sign a worker's CSR. Only its public key is used: the subject and names come from the
        master (the worker id and the identity it implies), never from the requester; not even the
        address it registered, which is for dialling it, never a name to trust."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError:
            raise PkiError("the certificate request is not a PEM CSR") from None
        if not csr.is_signature_valid:
            raise PkiError("the certificate request's signature is invalid")
        key = csr.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise PkiError("the certificate request must use an EC P-256 key")
        return self.sign(key, common_name, [], days)

    def issue(self, common_name: str, hosts: list[str], days: int = SERVER_DAYS) -> tuple[bytes, bytes]:
        """A key and certificate made here (for the master; workers send CSRs instead)."""
        key = new_key()
        return key_pem(key), self.sign(key.public_key(), common_name, hosts, days)

    def issued(self) -> list[CertInfo]:
        return sorted((cert_info(p.read_bytes()) for p in (self.folder / "issued").glob("*.pem")),
                      key=lambda c: c.not_after)

    def revoked(self) -> set[str]:
        if not self.crl_path.exists():
            return set()
        crl = x509.load_pem_x509_crl(self.crl_path.read_bytes())
        return {format(r.serial_number, "x") for r in crl}

    def revoke(self, serial: str) -> None:
        if not (self.folder / "issued" / f"{serial}.pem").exists():
            raise PkiError(f"this CA issued no certificate with serial {serial}")
        self.write_crl(self.revoked() | {serial})

    def write_crl(self, serials: set[str] = frozenset()) -> None:
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
                   .last_update(now()).next_update(now() + dt.timedelta(days=CA_DAYS)))
        for serial in sorted(serials):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(int(serial, 16)).revocation_date(now()).build())
        crl = builder.sign(self.key, hashes.SHA256())
        tmp = self.crl_path.with_suffix(".tmp")
        tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        os.replace(tmp, self.crl_path)
