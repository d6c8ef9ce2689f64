"""site.yml against a Debian VM with systemd as PID 1, over SSH, then pytest-testinfra on it.

The VM boots the guest image from vm-images/ (built if missing: needs root and Debian's mirror)
under QEMU (TCG here: no vmx/svm), on a 12 GiB copy-on-write overlay. Before the play, the test
turns the task image into a host (what a host image would have from the start): a default route
and DNS (QEMU's user-mode network; the task image has none on purpose), the root file system grown
to the overlay, the task firewall and the task user removed. Everything RunSurge needs is then
installed by the playbook: Debian packages from Debian's mirror, RunSurge from the control node's
wheelhouse (the guest never talks to a Python registry), the guest image copied from the control
node. The master uses PostgreSQL here (the local test covers SQLite).

The worker in this VM uses the sandbox named by RUNSURGE_TEST_VM_SANDBOX (default `process`):
the qemu sandbox would boot its own guest inside this TCG guest (emulation inside emulation), far
too slow for a test. The Samba share check therefore looks at the package and the system daemons
here; the worker's own smbd and share are checked by the local test, where the qemu sandbox runs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shlex
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from provision_checks import check_guest_image, check_permissions, check_ports, check_samba, check_services, check_tls
from provisioning import ANSIBLE_DIR, ROOT, run

pytestmark = pytest.mark.provision
# pytest-testinfra is installed by `make test-provision`; the normal `make test` skips this module.
testinfra = pytest.importorskip("testinfra")

SANDBOX = os.environ.get("RUNSURGE_TEST_VM_SANDBOX", "process")
VM_MEMORY_MB = 3072
DISK_GB = 12
CMDLINE = "root=/dev/vda rw console=ttyS0 net.ifnames=0"
SSH_OPTS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"]
# What makes the task image a provisioning target (see the module docstring).
PREPARE = """set -e
ip route replace default via 10.0.2.2
echo 'nameserver 10.0.2.3' > /etc/resolv.conf
resize2fs /dev/vda >/dev/null 2>&1
nft delete table inet runsurge 2>/dev/null || true
systemctl disable --now runsurge-init.service >/dev/null 2>&1 || true
userdel -r runsurge 2>/dev/null || true
date -u -s @{now} >/dev/null
"""


def _builder():
    spec = importlib.util.spec_from_file_location("vm_image_build", ROOT / "vm-images" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hw_virt() -> bool:
    flags = Path("/proc/cpuinfo").read_text()
    return bool(re.search(r"^flags\s*:.*\b(vmx|svm)\b", flags, re.MULTILINE)) and os.access("/dev/kvm", os.W_OK)


class TargetVm:
    def __init__(self, workdir: Path, image: Path):
        self.dir = workdir
        self.key = workdir / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)], check=True)
        pub = self.key.with_suffix(".pub").read_text().split()[:2]
        self.disk = workdir / "disk.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                        str(image / "disk.qcow2"), str(self.disk), f"{DISK_GB}G"], check=True)
        self.ssh_port, self.http_port = _free_port(), _free_port()
        accel = ["-accel", "kvm", "-cpu", "host"] if _hw_virt() else ["-accel", "tcg,tb-size=256", "-cpu", "max"]
        argv = ["qemu-system-x86_64", "-name", "runsurge-provision-target", "-nodefaults", "-no-user-config",
                "-display", "none", "-machine", "pc", *accel, "-smp", "2", "-m", str(VM_MEMORY_MB),
                "-kernel", str(image / "vmlinuz"), "-initrd", str(image / "initrd.img"),
                "-append", f"{CMDLINE} rs.key={pub[0]}:{pub[1]}",
                "-drive", f"file={self.disk},if=none,id=root,format=qcow2,cache=unsafe,discard=unmap",
                "-device", "virtio-blk-pci,drive=root",
                "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22,"
                           f"hostfwd=tcp:127.0.0.1:{self.http_port}-:8080",
                "-device", "virtio-net-pci,netdev=n0",
                "-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=rng0",
                "-serial", f"file:{workdir / 'console.log'}"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(workdir / "qemu.err", "wb"), start_new_session=True)

    def ssh(self, command: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(["ssh", *SSH_OPTS, "-i", str(self.key), "-p", str(self.ssh_port), "root@127.0.0.1",
                               command], capture_output=True, text=True, timeout=timeout)

    def wait_ssh(self, timeout: float = 600) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            assert self.proc.poll() is None, (self.dir / "qemu.err").read_text()
            try:
                if self.ssh("true", timeout=30).returncode == 0:
                    return time.monotonic() - started
            except subprocess.TimeoutExpired:
                pass
            time.sleep(2)
        raise TimeoutError(f"no SSH from the VM in {timeout}s; console: {self.dir / 'console.log'}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def inventory(self, control_dir: Path, image_cache: Path, sources: Path) -> Path:
        target = {"ansible_host": "127.0.0.1", "ansible_port": self.ssh_port, "ansible_user": "root"}
        inventory = {"all": {
            "children": {"master": {"hosts": {"target": target}}, "workers": {"hosts": {"target": target}}},
            "vars": {
                "ansible_ssh_private_key_file": str(self.key),
                "ansible_ssh_common_args": " ".join(SSH_OPTS),
                "ansible_python_interpreter": "/usr/bin/python3",
                "runsurge_deployment": "vm-target",
                "runsurge_control_dir": str(control_dir),
                "runsurge_source_dir": str(sources),
                "runsurge_master_address": "127.0.0.1",
                "runsurge_worker_host": "127.0.0.1",
                "runsurge_db": "postgresql",
                "runsurge_master_http_host": "0.0.0.0",  # reached through QEMU's port forward
                "runsurge_sandbox": SANDBOX,
                "runsurge_vm_image_source": "copy",
                "runsurge_vm_image_local_dir": str(image_cache),
            }}}
        path = self.dir / "hosts.yml"
        path.write_text(yaml.safe_dump(inventory))
        return path


@pytest.fixture(scope="module")
def vm(tmp_path_factory, ansible_bin):
    build = _builder()
    image = build.find_image() or build.build()
    vm = TargetVm(tmp_path_factory.mktemp("vm-target"), image)
    try:
        print(f"VM booted to SSH in {vm.wait_ssh():.0f}s (ssh -p {vm.ssh_port} -i {vm.key} root@127.0.0.1)")
        prepared = vm.ssh(PREPARE.format(now=int(time.time())))
        assert prepared.returncode == 0, prepared.stderr
        vm.image_cache = image.parent
        yield vm
    finally:
        vm.stop()


@pytest.fixture(scope="module")
def first_run(vm, ansible_bin, source_snapshot):
    inventory = vm.inventory(vm.dir / "control", vm.image_cache, source_snapshot)
    result = run([str(ansible_bin / "ansible-playbook"), "-i", str(inventory), "site.yml"], Path("vm-first.log"),
                 cwd=ANSIBLE_DIR)
    print(f"site.yml into the VM: {result.seconds:.0f}s, recap {result.recap}")
    assert result.rc == 0, result.output[-8000:]
    vm.inventory_path = inventory
    return result


@pytest.fixture(scope="module")
def host(vm, first_run):
    return testinfra.get_host(f"ssh://root@127.0.0.1:{vm.ssh_port}", ssh_identity_file=str(vm.key),
                              ssh_extra_args=" ".join(SSH_OPTS[:-2]), timeout=60)


def test_units_active_enabled_and_hardened(host):
    assert host.file("/run/systemd/system").is_directory  # systemd is PID 1 in the target
    check_services(host, systemd=True)


def test_ports_listen_with_tls(host):
    check_ports(host)
    check_tls(host)


def test_secrets_and_config_permissions(host):
    check_permissions(host)


def test_samba_installed_and_system_daemons_off(host):
    check_samba(host, worker_smbd=SANDBOX == "qemu")
    for unit in ("smbd", "nmbd"):
        assert not host.service(unit).is_running
        assert not host.service(unit).is_enabled


def test_guest_image_present(host):
    check_guest_image(host)


def test_master_uses_postgresql(host):
    config = host.file("/etc/runsurge/master.toml").content_string
    assert 'database_url = "postgresql+psycopg://runsurge@/runsurge' in config
    version = host.check_output("runuser -u runsurge -- psql -h /var/run/postgresql -d runsurge -tAc "
                                "'SELECT version_num FROM alembic_version'")
    assert version.strip()
    assert host.service("postgresql").is_enabled


def test_installed_from_the_wheelhouse_only(host):
    """The venv holds exactly the wheelhouse's packages (pip had --no-index: no registry)."""
    wheelhouse = host.check_output("readlink -f /opt/runsurge/venv").rsplit("-", 1)[-1]
    wheels = json.loads(host.file(f"/opt/runsurge/wheelhouse/{wheelhouse}/wheelhouse.json").content_string)
    assert "runsurge_master-0.1.0-py3-none-any.whl" in wheels["wheels"]
    freeze = host.check_output("/opt/runsurge/venv/bin/pip list --format=freeze")
    for name in ("runsurge-master", "runsurge-worker", "runsurge-pki", "runsurge-proto", "runsurge", "psycopg"):
        assert re.search(rf"^{name}==", freeze, re.MULTILINE | re.IGNORECASE), name


def test_job_over_http_on_the_vm(vm, host):
    """The README's HTTP flow against the master in the VM (port-forwarded), run by its worker."""
    from runsurge_client.api import Client

    email, password = f"vm-{secrets.token_hex(4)}@runsurge.local", secrets.token_urlsafe(16)
    made = vm.ssh(f"RUNSURGE_PASSWORD={shlex.quote(password)} runuser -u runsurge -- /opt/runsurge/venv/bin/"
                  f"runsurge-master --config /etc/runsurge/master.toml create-user {email}")
    assert made.returncode == 0, made.stderr
    client = Client(f"http://127.0.0.1:{vm.http_port}")
    client.login(email, password)
    job = client.wait(client.submit_spec(ROOT / "examples" / "wordcount" / "job.toml")["id"], timeout_s=900)
    assert job["status"] == "done", job


def test_second_run_changes_nothing(vm, first_run, ansible_bin):
    second = run([str(ansible_bin / "ansible-playbook"), "-i", str(vm.inventory_path), "site.yml"],
                 Path("vm-second.log"), cwd=ANSIBLE_DIR)
    print(f"second site.yml into the VM: {second.seconds:.0f}s, recap {second.recap}")
    assert second.rc == 0, second.output[-6000:]
    for name, counts in second.recap.items():
        assert counts["changed"] == 0, f"{name} changed: {second.changed_tasks()}"
