"""Why a job waits, against real master and worker processes: no worker online, none with enough
memory, all suitable workers busy (with counts), waiting for a producer's output. Through the API and
`runsurge why` (a subprocess)."""

import os
import subprocess
import sys
import time

from localnet import EMAIL, PASSWORD, LocalNet

SPEC = """
[[tasks]]
name = "a"
script = "hold.py"
memory = "256MiB"
outputs = ["out.txt"]
[[tasks]]
name = "b"
script = "hold.py"
memory = "256MiB"
outputs = ["out.txt"]
[[tasks]]
name = "c"
script = "hold.py"
memory = "256MiB"
outputs = ["out.txt"]
[[tasks]]
name = "d"
script = "hold.py"
memory = "256MiB"
inputs = { "x" = "task:a/out.txt" }
[[tasks]]
name = "huge"
script = "hold.py"
memory = "8GiB"
"""


def why(net, tmp_path, job_id: str) -> str:
    env = {**os.environ, "RUNSURGE_CLIENT_CONFIG": str(tmp_path / "client.json"), "RUNSURGE_PASSWORD": PASSWORD}
    r = subprocess.run([sys.executable, "-m", "runsurge_client", "--master", net.url, "why", job_id[:8]],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_waiting_reasons(tmp_path):
    net = LocalNet(tmp_path / "net", sandbox="process", slots=1, heartbeat_s=0.5, worker_memory=1 << 30,
                   extra_env={"RUNSURGE_PREFETCH": "0"})  # no queueing on the busy worker: tasks stay ready
    try:
        net.start_master()
        (tmp_path / "hold.py").write_text("import time\ntime.sleep(600)\nopen('out.txt', 'w').write('x')\n")
        (tmp_path / "job.toml").write_text(SPEC)
        client = net.client()
        subprocess.run([sys.executable, "-m", "runsurge_client", "--master", net.url, "login", EMAIL], check=True,
                       env={**os.environ, "RUNSURGE_CLIENT_CONFIG": str(tmp_path / "client.json"),
                            "RUNSURGE_PASSWORD": PASSWORD}, capture_output=True, timeout=60)
        job_id = client.submit_spec(tmp_path / "job.toml")["id"]
        job = client.job(job_id)
        assert job["waiting"] == ["4 task(s): no worker is online", "1 task(s): waiting for the output of task(s) a"]
        out = why(net, tmp_path, job_id)
        assert "4 task(s): no worker is online" in out
        assert "d                    pending  waiting for the output of task(s) a" in out

        net.start_worker(0)  # 1 GiB, one slot: a runs; b and c wait for its slot; huge fits nowhere
        deadline = time.monotonic() + 60
        while (tasks := {t["name"]: t for t in client.job(job_id)["tasks"]})["a"]["status"] != "running":
            assert time.monotonic() < deadline, tasks["a"]
            time.sleep(0.1)
        assert tasks["a"]["waiting"] is None
        assert tasks["b"]["waiting"] == "all 1 suitable worker(s) are busy (1/1 slots in use)"
        assert tasks["c"]["waiting"] == ("all 1 suitable worker(s) are busy (1/1 slots in use); "
                                         "1 ready task(s) of this job ahead of it")
        assert tasks["huge"]["waiting"] == ("needs 8 GiB of memory; no online worker offers that much (the largest "
                                            "offers 1 GiB; 1 online): lower --memory or add a bigger worker")
        out = why(net, tmp_path, job_id)
        assert out.splitlines()[0] == "2 task(s): all 1 suitable worker(s) are busy (1/1 slots in use)"
        assert "huge" in out and "needs 8 GiB" in out

        client.cancel(job_id)
        assert "is cancelled: nothing waits" in why(net, tmp_path, job_id)
        assert client.job(job_id)["waiting"] == []
    finally:
        net.stop()
