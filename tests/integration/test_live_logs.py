"""Live logs against real master and worker processes: a running task's output is read from its worker
(WorkerService.ReadTaskLog, proxied by the master) while it runs, from an offset, through the API and
`runsurge logs --follow` (a subprocess). The script prints a line, then waits for the test to open a
gate before the next, so "while it runs" is a fact, not a timing. Also the attacks: a script that puts
a link to a host file in its log's place, another user, and a worker that cannot be reached."""

import os
import selectors
import subprocess
import sys
import time
import uuid

import httpx
import pytest
from contributor import until

from localnet import PASSWORD, LocalNet

GATED = """# {nonce}
import os, sys, time
for i in range(3):
    print(f"line {{i}}", flush=True)
    print(f"err {{i}}", file=sys.stderr, flush=True)
    while not os.path.exists({gates!r} + f"/go{{i}}"):
        sum(range(50_000))  # some CPU to meter
        time.sleep(0.01)
print("done é", flush=True)
"""

# Replaces its logs with a link and a hard link to a file of the worker's host, then waits.
SWAPPER = """# {nonce}
import os, sys, time
print("before", flush=True)
os.unlink("log.out")
os.symlink({secret!r}, "log.out")
os.unlink("error.err")
try:
    os.link({secret!r}, "error.err")
except OSError:
    pass
print("after", flush=True)
open({gates!r} + "/swapped", "w").close()
while not os.path.exists({gates!r} + "/end"):
    time.sleep(0.05)
"""


@pytest.fixture
def net(tmp_path):
    """One worker; liveness patient enough that a killed worker still holds its task when asked."""
    n = LocalNet(tmp_path / "net", sandbox="process", slots=2, heartbeat_s=0.5,
                 extra_env={"RUNSURGE_MISSED_HEARTBEATS": "10000"})
    try:
        n.start(workers=1)
        yield n
    finally:
        n.stop()


def cli(net, tmp_path, *args: str, **kw):
    env = {**os.environ, "RUNSURGE_CLIENT_CONFIG": str(tmp_path / "client.json"), "RUNSURGE_PASSWORD": PASSWORD}
    return subprocess.Popen([sys.executable, "-m", "runsurge_client", "--master", net.url, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, **kw)


def read_log(net, token: str, task_id: str, stream: str = "stdout", offset: int = 0) -> httpx.Response:
    return httpx.get(f"{net.url}/api/tasks/{task_id}/logs", params={"stream": stream, "offset": offset},
                     headers={"authorization": f"Bearer {token}"}, timeout=30)


def running_task(client, job_id: str) -> dict:
    (task,) = until(lambda: [t for t in client.job(job_id)["tasks"] if t["status"] == "running"], "the task runs")
    return task


def read_until(stream, text: str, timeout_s: float = 60) -> str:
    """What a child process printed, up to and including `text` (it must appear before the deadline)."""
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    got, deadline = b"", time.monotonic() + timeout_s
    while text.encode() not in got:
        assert time.monotonic() < deadline, f"{text!r} not printed; got {got!r}"
        if sel.select(timeout=1):
            chunk = os.read(stream.fileno(), 4096)
            assert chunk, f"the process ended before printing {text!r}; got {got!r}"
            got += chunk
    return got.decode()


def test_a_running_tasks_log_is_read_live_from_an_offset_and_followed(net, tmp_path):
    gates = tmp_path / "gates"
    gates.mkdir()
    script = tmp_path / "gated.py"
    script.write_text(GATED.format(nonce=uuid.uuid4().hex, gates=str(gates)))
    client = net.client()
    job_id = client.submit([script], mode="single")["id"]
    task = running_task(client, job_id)

    r = until(lambda: (r := read_log(net, client.access_token, task["id"])).text and r, "the first line, live")
    assert r.status_code == 200 and r.text == "line 0\n"
    assert r.headers["x-task-running"] == "1" and r.headers["x-task-status"] == "running"
    first_end = int(r.headers["x-log-offset"])
    assert first_end == len("line 0\n")
    err = read_log(net, client.access_token, task["id"], "stderr")
    assert err.text == "err 0\n"
    # Nothing new yet: a read from the end is empty and says the task still runs.
    r = read_log(net, client.access_token, task["id"], offset=first_end)
    assert r.text == "" and r.headers["x-task-running"] == "1" and int(r.headers["x-log-offset"]) == first_end

    # Another user sees no such task, live or not.
    net.register("other@runsurge.local")
    other = net.client("other@runsurge.local")
    r = read_log(net, other.access_token, task["id"])
    assert r.status_code == 404 and "line" not in r.text

    # `runsurge logs --follow` prints the running task's output as it appears, then exits when it ends.
    assert cli(net, tmp_path, "login", "demo@runsurge.local").wait(timeout=60) == 0
    follower = cli(net, tmp_path, "logs", task["id"], "--follow")
    job_follower = cli(net, tmp_path, "logs", job_id[:8], "--follow")  # the whole job's: its task's, live
    try:
        assert read_until(follower.stdout, "line 0\n") == "line 0\n"
        assert read_until(job_follower.stdout, "line 0\n") == "==> main (stdout, running) <==\nline 0\n"
        (gates / "go0").touch()
        r = until(lambda: (r := read_log(net, client.access_token, task["id"], offset=first_end)).text and r,
                  "the second line, live")
        assert r.text == "line 1\n" and r.headers["x-task-running"] == "1"  # only what is new
        assert client.job(job_id)["tasks"][0]["status"] == "running"
        assert read_until(follower.stdout, "line 1\n") == "line 1\n"
        (gates / "go1").touch()
        (gates / "go2").touch()
        out, errs = follower.communicate(timeout=60)
        job_out, job_errs = job_follower.communicate(timeout=60)
    finally:
        follower.kill()
        job_follower.kill()
    assert job_follower.returncode == 0 and job_out.decode() == "line 1\nline 2\ndone é\n", job_errs
    assert follower.returncode == 0, errs
    assert out.decode() == "line 2\ndone é\n" and b"Traceback" not in errs

    job = client.wait(job_id, timeout_s=60)
    assert job["status"] == "done"
    r = read_log(net, client.access_token, task["id"])  # now the log the master keeps
    assert r.text == "line 0\nline 1\nline 2\ndone é\n" and r.headers["x-task-running"] == "0"
    r = read_log(net, client.access_token, task["id"], offset=first_end)
    assert r.text == "line 1\nline 2\ndone é\n"

    # Its CPU and memory over the run, from the worker's metering samples; the worker's load likewise.
    (run,) = client._json("GET", f"/api/tasks/{task['id']}/usage")["runs"]
    points = run["points"]
    assert run["worker_id"] == job["tasks"][0]["worker_id"] and len(points) >= 3
    assert [p["t_s"] for p in points] == sorted({p["t_s"] for p in points})
    assert max(p["rss_bytes"] for p in points) > 1 << 20 and points[-1]["cpu_s"] > 0
    load = client._json("GET", f"/api/workers/{run['worker_id']}/usage")["points"]
    assert load and max(p["rss_bytes"] for p in load) > 1 << 20
    for path in (f"/api/tasks/{task['id']}/usage", f"/api/workers/{run['worker_id']}/usage"):
        r = httpx.get(net.url + path, headers={"authorization": f"Bearer {other.access_token}"}, timeout=30)
        assert r.status_code == 404, path


def test_a_link_in_the_logs_place_is_not_followed_and_an_unreachable_worker_is_a_clear_503(net, tmp_path):
    gates = tmp_path / "gates"
    gates.mkdir()
    secret = tmp_path / "host-secret.txt"
    secret.write_text("TOPSECRET of the worker's host\n")
    script = tmp_path / "swap.py"
    script.write_text(SWAPPER.format(nonce=uuid.uuid4().hex, gates=str(gates), secret=str(secret)))
    client = net.client()
    job_id = client.submit([script], mode="single")["id"]
    task = running_task(client, job_id)
    until(lambda: (gates / "swapped").exists(), "the script swapped its logs")
    for stream in ("stdout", "stderr"):
        for offset in (0, 7):
            r = read_log(net, client.access_token, task["id"], stream, offset)
            assert r.status_code == 200 and "TOPSECRET" not in r.text, stream
            assert r.headers["x-task-running"] == "1"

    # The worker dies with the task running: the master says so in a sentence, the CLI too.
    net.kill_worker(0)
    r = read_log(net, client.access_token, task["id"])
    assert r.status_code == 503 and "cannot be reached" in r.json()["detail"] and r.headers["retry-after"]
    assert cli(net, tmp_path, "login", "demo@runsurge.local").wait(timeout=60) == 0
    p = cli(net, tmp_path, "logs", task["id"])
    out, errs = p.communicate(timeout=60)
    assert p.returncode == 1 and b"cannot be reached" in errs and b"Traceback" not in errs
    (gates / "end").touch()  # the task's process, if it outlived its worker, ends too
