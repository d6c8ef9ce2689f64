"""Scheduling by environment locality and the visible "building environment" phase, on real
processes (a master, two process-sandbox workers, a wheelhouse built in the test, offline).

Worker A offers more memory than B, so best fit alone would always pick B: a job that lands on A
once A holds its environment shows the preference (and a job without packages shows the fit)."""

import json
import os
import subprocess
import sys
import time

import pytest
from wheels import make_wheel

from localnet import EMAIL, PASSWORD, LocalNet

SCRIPT = "import tinypkg\nopen('out.txt', 'w').write(tinypkg.VALUE)\n"


def until(ok, what: str, timeout_s: float = 60):
    deadline = time.monotonic() + timeout_s
    while True:
        value = ok()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def cli(net, tmp_path, *args: str) -> str:
    env = {**os.environ, "RUNSURGE_CLIENT_CONFIG": str(tmp_path / "client.json")}
    r = subprocess.run([sys.executable, "-m", "runsurge_client", "--master", net.url, *args], capture_output=True,
                       text=True, env=env, timeout=120, input=PASSWORD + "\n")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    return r.stdout


@pytest.fixture
def localnet2(tmp_path):
    src, house = tmp_path / "src", tmp_path / "house"
    make_wheel(src, house, "tinypkg", "1.0")
    gate = tmp_path / "hold-builds"  # while it exists, environment builds wait (the phase stays visible)
    n = LocalNet(tmp_path / "net", sandbox="process", slots=1, heartbeat_s=0.5,
                 extra_env={"RUNSURGE_WHEELHOUSE_DIR": str(house), "RUNSURGE_PACKAGE_INDEX_URL": "",
                            "RUNSURGE_TEST_HOLD_ENV_BUILD": str(gate)})
    try:
        n.start_master()
        n.start_worker(0, env={"RUNSURGE_MEMORY": str(4 << 30)})  # A: the looser fit
        yield n, gate
    finally:
        n.stop()


def test_a_job_goes_where_its_environment_is_built_and_runs_elsewhere_when_that_worker_is_busy(localnet2, tmp_path):
    net, gate = localnet2
    client = net.client()
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)

    # First job: only A is up; its environment is built there, and the build is a visible phase.
    gate.touch()
    first = client.submit([script], mode="single", requirements="tinypkg==1.0\n")["id"]
    task = until(lambda: next((t for t in client.job(first)["tasks"] if t["phase"] == "building environment"), None),
                 "the building environment phase")
    env = task["environment"]
    assert env["requirements"] == ["tinypkg==1.0"] and len(env["id"]) == 64
    assert "assigned to worker" in task["waiting"] and "building environment" in task["waiting"]
    cli(net, tmp_path, "login", EMAIL, "--password-stdin")
    shown = cli(net, tmp_path, "status", first)
    assert f"environment {env['id'][:12]}: tinypkg==1.0" in shown and "(building environment)" in shown, shown
    as_json = json.loads(cli(net, tmp_path, "status", first, "--json"))
    assert as_json["tasks"][0]["phase"] == "building environment" and as_json["tasks"][0]["environment"] == env
    gate.unlink()
    assert client.wait(first, timeout_s=60)["status"] == "done"
    a = client.job(first)["tasks"][0]["worker_id"]
    assert client.job(first)["tasks"][0]["phase"] is None  # done: no phase any more

    net.start_worker(1)  # B: 2 GiB, the tighter fit
    b = next(w["id"] for w in client.workers() if w["id"] != a)
    until(lambda: any(w["id"] == a and w["environments"] == [env["id"]] for w in client.workers()),
          "A reporting the environment it holds")
    assert next(w for w in client.workers() if w["id"] == b)["environments"] == []

    # Both free: without packages the fit picks B; with the environment A wins.
    plain = tmp_path / "plain.py"
    plain.write_text("open('out.txt', 'w').write('x')\n")
    job = client.wait(client.submit([plain], mode="single")["id"], timeout_s=60)
    assert job["status"] == "done" and job["tasks"][0]["worker_id"] == b
    for _ in range(2):
        job = client.wait(client.submit([script], mode="single", requirements="tinypkg==1.0\n")["id"], timeout_s=60)
        assert job["status"] == "done" and job["tasks"][0]["worker_id"] == a, job

    # A busy (a task that waits for our signal): the next job with the environment runs on B, at once.
    release = tmp_path / "release"
    blocker = tmp_path / "blocker.py"
    blocker.write_text(f"import os, time, tinypkg\nwhile not os.path.exists({str(release)!r}):\n"
                       "    time.sleep(0.05)\nopen('out.txt', 'w').write('released')\n")
    held = client.submit([blocker], mode="single", requirements="tinypkg==1.0\n")["id"]
    until(lambda: client.job(held)["tasks"][0]["status"] == "running", "the blocker running")
    assert client.job(held)["tasks"][0]["worker_id"] == a
    job = client.wait(client.submit([script], mode="single", requirements="tinypkg==1.0\n")["id"], timeout_s=60)
    assert job["status"] == "done" and job["tasks"][0]["worker_id"] == b, job
    release.touch()
    assert client.wait(held, timeout_s=60)["status"] == "done"
    (result,) = client.download_results(job["id"], tmp_path / "out")
    assert result.read_text() == "tinypkg 1.0"
