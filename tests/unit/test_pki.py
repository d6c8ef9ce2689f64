import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import CertificateSigningRequestBuilder, Name, NameAttribute
from cryptography.x509.oid import NameOID

from runsurge_pki.ca import MASTER_CN, MASTER_NAME, CertAuthority, PkiError, cert_info, make_csr, new_key
from runsurge_pki.cli import main as pki


def test_ca_files_and_permissions(tmp_path):
    ca = CertAuthority.create(tmp_path / "ca")
    assert (tmp_path / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "ca").stat().st_mode & 0o777 == 0o700
    with pytest.raises(PkiError, match="already exists"):
        CertAuthority.create(tmp_path / "ca")
    assert ca.revoked() == set()


def test_worker_csr_is_signed_with_the_master_s_names_only(tmp_path):
    ca = CertAuthority.create(tmp_path / "ca")
    csr = make_csr(new_key(), "i-claim-to-be-the-master")
    info = cert_info(ca.sign_csr(csr, "worker-123"))
    assert info.common_name == "worker-123" and info.hosts == ("worker-123.worker.runsurge.internal",)
    assert info.identity == "spiffe://runsurge.internal/worker/worker-123"
    assert [c.serial for c in ca.issued()] == [info.serial]
    master = cert_info(ca.issue(MASTER_CN, ["127.0.0.1"])[1])
    assert (master.identity, set(master.hosts)) == ("spiffe://runsurge.internal/master",
                                                    {MASTER_NAME, "127.0.0.1"})


def test_bad_csrs_are_refused(tmp_path):
    ca = CertAuthority.create(tmp_path / "ca")
    with pytest.raises(PkiError, match="not a PEM CSR"):
        ca.sign_csr(b"junk", "w")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_csr = (CertificateSigningRequestBuilder().subject_name(Name([NameAttribute(NameOID.COMMON_NAME, "w")]))
               .sign(rsa_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    with pytest.raises(PkiError, match="P-256"):
        ca.sign_csr(rsa_csr, "w")
    other_curve = (CertificateSigningRequestBuilder().subject_name(Name([NameAttribute(NameOID.COMMON_NAME, "w")]))
                   .sign(ec.generate_private_key(ec.SECP384R1()), hashes.SHA256())
                   .public_bytes(serialization.Encoding.PEM))
    with pytest.raises(PkiError, match="P-256"):
        ca.sign_csr(other_curve, "w")


def test_cli_issue_list_revoke(tmp_path, capsys):
    d = str(tmp_path / "ca")
    assert pki(["--dir", d, "init"]) == 0
    out = str(tmp_path / "m")
    assert pki(["--dir", d, "issue", "--host", "127.0.0.1", "--host", "master.local", "--out", out]) == 0
    assert (tmp_path / "m.key").stat().st_mode & 0o777 == 0o600
    serial = cert_info((tmp_path / "m.pem").read_bytes()).serial
    assert pki(["--dir", d, "revoke", serial]) == 0
    assert CertAuthority(tmp_path / "ca").revoked() == {serial}
    capsys.readouterr()
    assert pki(["--dir", d, "list"]) == 0
    assert f"{serial}  revoked" in capsys.readouterr().out
    assert pki(["--dir", d, "revoke", "abcdef"]) == 1
    assert pki(["--dir", str(tmp_path / "none"), "list"]) == 1
