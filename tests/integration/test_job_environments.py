"""A job's packages, end to end on real processes (offline): a wheelhouse built in the test, the
master resolving from it, a bwrap worker building the environment once and reusing it, the task
importing the package and unable to write into it; a wheel whose bytes were changed is refused."""

import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from wheels import make_wheel, run_twice

from localnet import LocalNet

SCRIPT = """
import tinypkg
try:
    open(tinypkg.__file__, "a").write("# changed")
    wrote = "wrote"
except OSError as e:
    wrote = type(e).__name__
open("out.txt", "w").write(f"{tinypkg.VALUE} {wrote}")
"""


@pytest.fixture
def envnet(request, tmp_path):
    src, house = tmp_path / "src", tmp_path / "house"
    make_wheel(src, house, "tinypkg", "1.0")
    # Not under tmp_path: pytest's base temp dir is private (0700), and a root worker runs each
    # bwrap task under a uid of its own, which must reach the task's folder and the environment.
    root = Path(tempfile.mkdtemp(prefix="rs-envnet-"))
    root.chmod(0o755)
    n = LocalNet(root / "net", sandbox="bwrap", slots=1, heartbeat_s=0.5,
                 extra_env={"RUNSURGE_WHEELHOUSE_DIR": str(house), "RUNSURGE_PACKAGE_INDEX_URL": "",
                             "RUNSURGE_MAX_ATTEMPTS": "2"})
    try:
        n.start(workers=getattr(request, "param", 1))
        yield n
    finally:
        n.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_the_environment_is_built_once_imported_and_read_only(envnet, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    outs = run_twice(envnet, script, "tinypkg==1.0\n", tmp_path)
    assert outs == ["tinypkg 1.0 OSError"] * 2 or all(o.startswith("tinypkg 1.0 ") and "wrote" not in o
                                                       for o in outs), outs


@pytest.mark.parametrize("envnet", [0], indirect=True)  # the worker starts after the wheel is changed
def test_a_wheel_whose_bytes_do_not_match_is_refused_by_the_worker(envnet, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    client = envnet.client()
    job_id = client.submit([script], mode="single", requirements="tinypkg")["id"]  # resolved and stored
    store = envnet.root / "master" / "objects"
    wheels = [p for p in store.glob("*/*") if p.parent.name != "incoming" and p.read_bytes()[:2] == b"PK"]
    assert len(wheels) == 1
    wheels[0].write_bytes(wheels[0].read_bytes() + b"tampered")
    envnet.start_worker(0)
    deadline = time.monotonic() + 60
    while "corrupt" not in (client.job(job_id)["tasks"][0]["error"] or ""):
        assert time.monotonic() < deadline, client.job(job_id)
        time.sleep(0.1)
    (task,) = client.job(job_id)["tasks"]
    assert task["status"] != "done" and f"data {wheels[0].name[:12]} from master is corrupt" in task["error"]
    assert not re.search(r"environment (built|reused)", envnet.log("worker0"))  # the task never ran
