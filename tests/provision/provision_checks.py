"""pytest-testinfra checks of a host provisioned by ansible/site.yml (master + worker on one host).

Shared by the local test (this machine, no systemd: start-stop-daemon fallback) and the VM-target
test (a Debian VM with systemd, reached over SSH). Paths and ports are the roles' defaults.
"""

from __future__ import annotations

import json
import re

CONFIG = "/etc/runsurge"
MASTER_HOME = "/var/lib/runsurge"
WORKER_HOME = "/var/lib/runsurge-worker"
IMAGE_DIR = "/var/cache/runsurge/images"
HTTP, GRPC, ENROLL, WORKER = 8080, 50051, 50052, 50061
SERVICES = {"runsurge-master": "runsurge", "runsurge-worker": "root"}  # unit -> the user it runs as


def service_pid(host, name: str, systemd: bool) -> int:
    if systemd:
        return int(host.check_output(f"systemctl show -p MainPID --value {name}"))
    return int(host.file(f"/run/runsurge/{name}.pid").content_string.strip())


def check_services(host, systemd: bool) -> None:
    """Both daemons run, as their own users; with systemd, enabled and hardened as declared."""
    for name, user in SERVICES.items():
        if systemd:
            service = host.service(name)
            assert service.is_running, host.run(f"systemctl status {name}; journalctl -u {name} -n 30").stdout
            assert service.is_enabled
        else:
            status = host.run(f"/usr/local/sbin/{name}-daemon status")
            assert status.rc == 0, host.run(f"tail -n 30 /var/log/runsurge/{name}.log").stdout
        pid = service_pid(host, name, systemd)
        assert pid > 0
        assert host.check_output(f"ps -o user= -p {pid}").strip() == user
        unit = host.file(f"/etc/systemd/system/{name}.service")
        assert unit.exists and unit.mode == 0o644
        for line in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes", "ProtectHome=yes",
                     "ReadWritePaths="):
            assert line in unit.content_string, f"{name}.service lacks {line}"
    assert "User=runsurge" in host.file("/etc/systemd/system/runsurge-master.service").content_string
    if systemd:  # what systemd really applies, not just what the file says
        props = host.check_output("systemctl show runsurge-master -p User -p NoNewPrivileges "
                                  "-p ProtectSystem -p PrivateTmp -p ReadWritePaths")
        for expected in ("User=runsurge", "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                         f"ReadWritePaths={MASTER_HOME}"):
            assert expected in props, props


def listening_on_loopback(host, port: int) -> bool:
    """A TCP listener reachable at 127.0.0.1:port (bound there, to any address, or IPv4-mapped as
    gRPC does: [::ffff:127.0.0.1])."""
    local = {line.split()[3] for line in host.check_output("ss -Hltn").splitlines() if line.strip()}
    return bool(local & {f"{a}:{port}" for a in ("127.0.0.1", "0.0.0.0", "*", "[::]", "[::ffff:127.0.0.1]")})


def check_ports(host) -> None:
    for port in (HTTP, GRPC, ENROLL, WORKER):
        assert listening_on_loopback(host, port), f"nothing listens on 127.0.0.1:{port}"
    health = host.check_output(f"python3 -c \"import urllib.request; print(urllib.request.urlopen("
                               f"'http://127.0.0.1:{HTTP}/api/health').read().decode())\"")
    assert health


def _s_client(host, port: int, extra: str = "") -> str:
    cmd = (f"openssl s_client -connect 127.0.0.1:{port} -CAfile {CONFIG}/ca.pem -verify_return_error "
           f"-verify_ip 127.0.0.1 {extra} </dev/null 2>&1")
    return host.run(f"timeout 20 {cmd}").stdout


def check_tls(host) -> None:
    """Every gRPC port speaks TLS with a certificate from the deployment's CA naming 127.0.0.1; the
    mutual-TLS ports (the master's main port, the worker's) refuse a client without a certificate."""
    for port in (GRPC, ENROLL, WORKER):
        out = _s_client(host, port)
        assert "Verify return code: 0 (ok)" in out, f"port {port}:\n{out[-1500:]}"
        assert re.search(r"issuer=CN\s*=\s*RunSurge private CA", out), out[-1500:]
    assert re.search(r"subject=CN\s*=\s*runsurge-master", _s_client(host, ENROLL))
    refused = re.compile(r"alert (certificate required|handshake failure)|SSL alert number (116|40)"
                         r"|unexpected eof while reading")
    for port, mutual in ((GRPC, True), (WORKER, True), (ENROLL, False)):
        # TLS 1.3: the server refuses a certificate-less client after the handshake (an alert or a
        # close); the enrolment port must keep such a client (it has no certificate yet).
        out = host.run(f"timeout 20 sh -c 'sleep 2 | openssl s_client -connect 127.0.0.1:{port} "
                       f"-CAfile {CONFIG}/ca.pem -alpn h2 2>&1' | tr -cd '\\11\\12\\15\\40-\\176'").stdout
        assert bool(refused.search(out)) == mutual, f"port {port} (mutual TLS: {mutual}):\n{out[-1500:]}"


def _mode_owner(host, path: str) -> tuple[int, str, str]:
    f = host.file(path)
    assert f.exists, f"{path} is missing"
    return f.mode, f.user, f.group


def check_permissions(host) -> None:
    """Secrets are 0600 and owned by the daemon that uses them; configuration is not world-readable."""
    expected = {
        f"{MASTER_HOME}/jwt_ed25519.pem": (0o600, "runsurge", "runsurge"),
        f"{MASTER_HOME}/pki/ca.key": (0o600, "runsurge", "runsurge"),
        f"{MASTER_HOME}/pki": (0o700, "runsurge", "runsurge"),
        f"{MASTER_HOME}/tls/master.key": (0o600, "runsurge", "runsurge"),
        MASTER_HOME: (0o750, "runsurge", "runsurge"),
        f"{CONFIG}/master.toml": (0o640, "root", "runsurge"),
        f"{CONFIG}/worker.toml": (0o640, "root", "root"),
        f"{CONFIG}/worker-password": (0o600, "root", "root"),
        f"{CONFIG}/ca.pem": (0o644, "root", "root"),
        WORKER_HOME: (0o700, "root", "root"),
    }
    for path, want in expected.items():
        assert _mode_owner(host, path) == want, f"{path}: {oct(_mode_owner(host, path)[0])} != {oct(want[0])}"
    assert not host.file(f"{CONFIG}/ca.key").exists  # only the master has the CA key, in its home
    key = host.file(f"{MASTER_HOME}/jwt_ed25519.pem").content_string
    assert key.startswith("-----BEGIN PRIVATE KEY-----")
    assert len(host.file(f"{CONFIG}/worker-password").content_string.strip()) == 32


def check_samba(host, worker_smbd: bool) -> None:
    """Samba is installed; the system's own smbd is off (nothing on :445); the worker's smbd (qemu
    sandbox) serves the task share on loopback only."""
    for pkg in ("samba", "samba-common-bin"):
        assert host.package(pkg).is_installed
    listeners = [line.split()[3] for line in host.check_output("ss -Hltn").splitlines() if line.strip()]
    assert not [a for a in listeners if a.endswith((":445", ":139"))], "something serves SMB/NetBIOS"
    if not worker_smbd:
        return
    conf = f"{WORKER_HOME}/sandbox/samba/smb.conf"
    dump = host.check_output(f"testparm -s {conf} 2>/dev/null")
    assert "[runsurge]" in dump
    assert re.search(r"interfaces = 127\.0\.0\.1", dump) and "bind interfaces only = Yes" in dump
    assert f"path = {WORKER_HOME}/sandbox/tasks" in dump
    port = int(re.search(r"smb ports = (\d+)", dump).group(1))
    assert listening_on_loopback(host, port)
    assert not any(f":{port}" in line and "127.0.0.1" not in line
                   for line in host.check_output("ss -Hltn").splitlines()), "smbd listens beyond loopback"
    assert host.process.filter(comm="smbd"), "the worker's smbd is not running"


def check_guest_image(host) -> None:
    current = f"{IMAGE_DIR}/current"
    assert host.file(current).is_symlink
    manifest = json.loads(host.file(f"{current}/manifest.json").content_string)
    for name in ("disk.qcow2", "vmlinuz", "initrd.img"):
        assert host.file(f"{current}/{name}").exists, f"{current}/{name} is missing"
    info = json.loads(host.check_output(f"qemu-img info --output=json {current}/disk.qcow2"))
    assert info["format"] == "qcow2"
    assert manifest["recipe_hash"] == host.file(current).linked_to.rsplit("/", 1)[-1]
