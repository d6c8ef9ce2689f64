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
def vmnet(image_dir):
    root = Path(tempfile.mkdtemp(prefix="rs-vmenv-"))  # short: QEMU's socket paths must fit 108 bytes
    src, house = root / "src", root / "house"
    make_wheel(src, house, "tinypkg", "1.0")
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
