"""`make provision` on this machine, a job over HTTP on the provisioned network, then testinfra
checks of the host, then a second `make provision` that changes nothing.

PID 1 here is not systemd: the daemons run under the start-stop-daemon fallback; the units are
installed all the same (the VM-target test checks them under systemd).
"""

from __future__ import annotations

import collections
import os
import re
import secrets
import subprocess
from pathlib import Path

import pytest
from provision_checks import (
    MASTER_HOME,
    check_guest_image,
    check_permissions,
    check_ports,
    check_samba,
    check_services,
    check_tls,
)
from provisioning import ROOT, make_provision, run

from runsurge_client.api import Client

pytestmark = pytest.mark.provision
# pytest-testinfra is installed by `make test-provision`; the normal `make test` skips this module.
testinfra = pytest.importorskip("testinfra")

EXAMPLE = ROOT / "examples" / "wordcount"
SYSTEMD = Path("/run/systemd/system").exists()


@pytest.fixture(scope="module")
def host(local_provisioned):
    return testinfra.get_host("local://")


def _sandbox(host) -> str:
    return re.search(r'sandbox = "(\w+)"', host.file("/etc/runsurge/worker.toml").content_string).group(1)


def test_first_run_succeeds(local_provisioned):
    recap = local_provisioned.recap
    assert recap and all(counts["failed"] == 0 and counts["unreachable"] == 0 for counts in recap.values())
    print(f"first `make provision`: {local_provisioned.seconds:.0f}s, recap {recap}")


def test_services_run(host):
    check_services(host, SYSTEMD)


def test_ports_listen_with_tls(host):
    check_ports(host)
    check_tls(host)


def test_secrets_and_config_permissions(host):
    check_permissions(host)


def test_samba(host):
    check_samba(host, worker_smbd=_sandbox(host) == "qemu")


def test_guest_image_present(host):
    check_guest_image(host)


def expected_top() -> str:
    total = collections.Counter()
    for part in ("part_a.txt", "part_b.txt"):
        total.update(re.findall(r"[a-z']+", (EXAMPLE / part).read_text().lower()))
    return "".join(f"{w} {n}\n" for w, n in total.most_common(10))


def test_job_over_http_completes_on_the_provisioned_network(host, tmp_path):
    """The README's flow against the provisioned master: an account, a 3-task job, its result."""
    email, password = f"provision-{secrets.token_hex(4)}@runsurge.local", secrets.token_urlsafe(16)
    subprocess.run(["runuser", "-u", "runsurge", "--", "/opt/runsurge/venv/bin/runsurge-master",
                    "--config", "/etc/runsurge/master.toml", "create-user", email],
                   env={**os.environ, "RUNSURGE_PASSWORD": password}, check=True, cwd=MASTER_HOME)
    client = Client("http://127.0.0.1:8080")
    client.login(email, password)
    job = client.wait(client.submit_spec(EXAMPLE / "job.toml")["id"], timeout_s=900)
    assert job["status"] == "done", job
    (result,) = client.download_results(job["id"], tmp_path / "out")
    assert result.read_text() == expected_top()
    sandbox = _sandbox(host)
    print(f"job {job['id']} done on the provisioned worker (sandbox {sandbox}): "
          + ", ".join(f"{t['name']} {t['wall_s']:.1f}s" for t in job["tasks"]))


def test_second_run_changes_nothing(local_provisioned, source_snapshot, tmp_path):
    second = run(make_provision(source_snapshot), Path("local-second.log"), cwd=ROOT)
    assert second.rc == 0, second.output[-6000:]
    print(f"second `make provision`: {second.seconds:.0f}s, recap {second.recap}")
    for name, counts in second.recap.items():
        assert counts["changed"] == 0, f"{name} changed: {second.changed_tasks()}"
        assert counts["failed"] == 0
