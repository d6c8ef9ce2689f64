"""examples/pandas in QEMU VMs: `requirements = ["pandas"]` resolved from the package index, the
wheels unpacked once by the worker, both reports equal to the same scripts run on this machine
with the same pandas. Needs the index; skipped, saying so, where it cannot be reached."""

import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

from localnet import LocalNet

pytestmark = pytest.mark.vm
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pandas"
INDEX = "https://pypi.org/simple"


def test_the_pandas_example_runs_in_vms_and_matches_a_local_run(tmp_path, image_dir):
    try:
        httpx.get(f"{INDEX}/pandas/", timeout=5).raise_for_status()
    except httpx.HTTPError as e:
        pytest.skip(f"skipped: the package index {INDEX} is not reachable here ({e})")
    root = Path(tempfile.mkdtemp(prefix="rs-pd-"))  # short: QEMU's socket paths must fit 108 bytes
    with LocalNet(root / "net", sandbox="qemu", slots=1, heartbeat_s=0.5,
                  extra_env={"RUNSURGE_PACKAGE_INDEX_URL": INDEX, "RUNSURGE_IMAGE_DIR": str(image_dir),
                             "RUNSURGE_POOL_SIZE": "1"}) as net:
        net.start(workers=1)
        client = net.client()
        job = client.wait(client.submit_spec(EXAMPLE / "job.toml")["id"], timeout_s=900)
        assert job["status"] == "done", job
        results = {p.name: p.read_text() for p in client.download_results(job["id"], tmp_path / "out")}
        (tree,) = [p for p in (net.root / "worker0" / "environments").iterdir()
                   if p.is_dir() and not p.name.startswith(".")]
        local = tmp_path / "local"
        local.mkdir()
        shutil.copy(EXAMPLE / "orders.csv", local)
        for script in ("by_region.py", "by_month.py"):  # the same wheels, on this machine's python3
            subprocess.run(["/usr/bin/python3", str(EXAMPLE / script)], cwd=local, check=True,
                           env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)})
    shutil.rmtree(root, ignore_errors=True)
    assert set(results) == {"by_region.csv", "by_month.csv"}
    for name, text in results.items():
        assert text == (local / name).read_text(), name
