"""A job's packages in QEMU VMs, end to end on real processes (offline): the master resolves from a
wheelhouse built in the test, the qemu worker unpacks the wheels once into a tree and an ext4
image, and each task's VM gets that image as a read-only disc on its sys.path, where it shadows
the guest's own numpy. The second job reuses what the first built."""

import shutil
import tempfile
from pathlib import Path

import pytest
from wheels import make_wheel, run_twice

from localnet import LocalNet

pytestmark = pytest.mark.vm

SCRIPT = """
import subprocess, sys
import numpy, tinypkg
try:
    open(tinypkg.__file__, "a").write("# changed")
    wrote = "wrote"
except OSError as e:
    wrote = type(e).__name__
child = subprocess.run([sys.executable, "-c", "import tinypkg; print(tinypkg.VALUE)"],
                       capture_output=True, text=True).stdout.strip()
open("out.txt", "w").write(" | ".join([numpy.VALUE, tinypkg.VALUE, wrote, child, sys.path[1]]))
"""


@pytest.fixture(scope="module")
def vmnet(image_dir, tmp_path_factory):
    # A long home on purpose: the VMs' sockets must still fit a unix socket's 108 bytes (vm.socket_path).
    root = Path(tempfile.mkdtemp(prefix="rs-vmenv-" + "x" * 60, dir=tmp_path_factory.mktemp("long-home")))
    assert len(str(root / "net" / "worker0" / "sandbox" / "vms" / ("0" * 12) / "qmp.sock")) > 108
    src, house = root / "src", root / "house"
    make_wheel(src, house, "tinypkg", "1.0")
    make_wheel(src, house, "tinypkg", "2.0")
    make_wheel(src, house, "numpy", "99.0")  # shadows the guest's Debian numpy
    n = LocalNet(root / "net", sandbox="qemu", slots=1, heartbeat_s=0.5,
                 extra_env={"RUNSURGE_WHEELHOUSE_DIR": str(house), "RUNSURGE_PACKAGE_INDEX_URL": "",
                             "RUNSURGE_IMAGE_DIR": str(image_dir),
                            "RUNSURGE_POOL_SIZE": "1", "RUNSURGE_MAX_ATTEMPTS": "1"})
    with n:
        n.start(workers=1)
        yield n
    shutil.rmtree(root, ignore_errors=True)


def test_a_vm_task_imports_its_environment_read_only_and_it_is_built_once(vmnet, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    outs = run_twice(vmnet, script, "tinypkg==1.0\nnumpy==99.0\n", tmp_path, timeout_s=600)
    # the environment's numpy, not the guest's; the file cannot be written (a read-only disc);
    # interpreters the script starts see the packages too; sys.path as PYTHONPATH would make it
    assert outs == ["numpy 99.0 | tinypkg 1.0 | OSError | tinypkg 1.0 | /opt/runsurge-env"] * 2, outs


BARE = """
import os, sys
try:
    open("/dev/sr0", "rb").read(1)
    disc = "read"
except OSError as e:
    disc = type(e).__name__
where = "/opt/runsurge-env"
seen = sorted(os.listdir(where)) if os.path.isdir(where) else []
open("out.txt", "w").write(f"{os.path.ismount(where)} | {disc} | {seen} | {where in sys.path}")
"""

OTHER = """
import sys, numpy, tinypkg
open("out.txt", "w").write(" | ".join([tinypkg.VALUE, numpy.__file__.split("/")[1], sys.path[1]]))
"""


def _run(net, script: Path, requirements: str | None, out: Path) -> str:
    client = net.client()
    job = client.wait(client.submit([script], mode="single", requirements=requirements)["id"], timeout_s=600)
    assert job["status"] == "done", job
    (result,) = client.download_results(job["id"], out)
    return result.read_text()


def test_pool_vms_wait_with_the_last_environment_mounted_and_others_never_see_it(vmnet, tmp_path):
    """After the first module test, the pool's next VM was readied with that environment mounted
    ahead (the second job found it so); a job with other requirements gets its own disc in its
    place, and a job without requirements finds no disc at all."""
    log = vmnet.log("worker0")
    assert "environment was mounted in the guest ahead of the task" in log, log
    other, bare = tmp_path / "other.py", tmp_path / "bare.py"
    other.write_text(OTHER)
    bare.write_text(BARE)
    # the pool VM waits with tinypkg 1.0 mounted: it is swapped for the 2.0 disc before the go
    assert _run(vmnet, other, "tinypkg==2.0\n", tmp_path / "o") == "tinypkg 2.0 | usr | /opt/runsurge-env"
    # the next pool VM waits with the 2.0 disc mounted; a bare task gets neither mount nor disc
    assert _run(vmnet, bare, None, tmp_path / "b") == "False | PermissionError | [] | False"
    log = vmnet.log("worker0")
    assert log.count("readied with environment") >= 2, log
