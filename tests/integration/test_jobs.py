"""Real master and worker processes on loopback, talking gRPC and HTTP."""

import collections
import json
import re
import time
from pathlib import Path

from runsurge_client.api import Client

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "wordcount"


def expected_top() -> str:
    total = collections.Counter()
    for part in ("part_a.txt", "part_b.txt"):
        total.update(re.findall(r"[a-z']+", (EXAMPLE / part).read_text().lower()))
    return "".join(f"{w} {n}\n" for w, n in total.most_common(10))


def test_three_stage_job_with_a_peer_to_peer_fetch(net, tmp_path):
    client = net.client()
    job = client.wait(client.submit_spec(EXAMPLE / "job.toml")["id"], timeout_s=120)
    assert job["status"] == "done", job
    tasks = {t["name"]: t for t in job["tasks"]}
    assert tasks["count_a"]["worker_id"] != tasks["count_b"]["worker_id"]  # one slot each: they spread
    (result,) = client.download_results(job["id"], tmp_path / "out")
    assert result.read_text() == expected_top()
    # The merge ran where one count's output was; the other came from the peer, not the master.
    merge_worker = tasks["merge"]["worker_id"]
    other = next(t for t in ("count_a", "count_b") if tasks[t]["worker_id"] != merge_worker)
    remote_id = tasks[other]["outputs"]["counts.json"]
    holders = {loc["data_id"]: loc["holders"] for loc in client.locations(job["id"])}
    assert "master" not in holders[remote_id]
    assert set(holders[remote_id]) == {merge_worker, tasks[other]["worker_id"]}
    logs = net.log("worker0") + net.log("worker1")
    assert re.search(rf"fetched data={remote_id[:12]} .* from peer {tasks[other]['worker_id'][:8]}", logs)
    # metering came back from the worker
    assert all(t["wall_s"] > 0 and t["mem_peak_bytes"] > 1 << 20 for t in job["tasks"])
    assert "words" in client.logs(tasks["count_a"]["id"])


def test_a_raising_script_fails_the_job_and_shows_stderr(net, tmp_path):
    script = tmp_path / "bad.py"
    script.write_text("print('before')\nraise RuntimeError('the data is wrong')\n")
    client = net.client()
    job = client.wait(client.submit([script])["id"], timeout_s=60)
    assert job["status"] == "failed"
    assert "RuntimeError: the data is wrong" in job["error"]
    (task,) = job["tasks"]
    assert task["attempts"] == 1  # a script's own error is not retried elsewhere
    assert "RuntimeError: the data is wrong" in client.logs(task["id"], "stderr")
    assert client.logs(task["id"]) == "before\n"


def test_a_killed_worker_s_task_reruns_on_the_other(net, tmp_path):
    script = tmp_path / "slow.py"
    script.write_text("import time, json\ntime.sleep(4)\njson.dump(sum(range(1000)), open('sum.json', 'w'))\n")
    client = net.client()
    job_id = client.submit([script])["id"]
    deadline = time.monotonic() + 30
    while (task := client.job(job_id)["tasks"][0])["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    first_worker = task["worker_id"]
    victim = next(i for i, port in net.worker_ports.items()
                  if any(w["id"] == first_worker and w["grpc_port"] == port for w in client.workers()))
    net.kill_worker(victim)
    job = client.wait(job_id, timeout_s=60)
    assert job["status"] == "done", job
    (task,) = job["tasks"]
    assert task["worker_id"] != first_worker and task["attempts"] == 2
    (result,) = client.download_results(job_id, tmp_path / "out")
    assert json.loads(result.read_text()) == 499500
    assert not next(w for w in client.workers() if w["id"] == first_worker)["online"]


def test_a_restarted_worker_keeps_its_id(net):
    client = net.client()
    before = {w["grpc_port"]: w["id"] for w in client.workers()}
    net.kill_worker(0)
    net.start_worker(0)
    after = {w["grpc_port"]: w["id"] for w in client.workers()}
    assert after == before and len(after) == 2


def test_sdk_refuses_bad_input_cleanly(net, tmp_path):
    bad = tmp_path / "s.py"
    bad.write_text("print(1)")
    spec = tmp_path / "job.toml"
    spec.write_text('[[tasks]]\nname = "a"\nscript = "s.py"\ninputs = { "x" = "task:a/y" }\noutputs = ["y"]\n')
    client = net.client()
    try:
        client.submit_spec(spec)
    except Exception as e:  # noqa: BLE001
        assert "cycle" in str(e)
    else:
        raise AssertionError("a cyclic spec was accepted")
    assert client.jobs() == []
    anonymous = Client(net.url)
    try:
        anonymous.jobs()
    except Exception as e:  # noqa: BLE001
        assert "not logged in" in str(e)
    else:
        raise AssertionError("no token, yet the jobs were listed")


def test_lost_intermediate_data_is_recomputed_by_its_producer(net, tmp_path):
    """The only holder of an intermediate output dies before its consumer ran: lineage re-runs the producer."""
    (tmp_path / "make.py").write_text("open('x.txt', 'w').write('41')\n")
    (tmp_path / "slow.py").write_text("import time\ntime.sleep(5)\nopen('y.txt', 'w').write('1')\n")
    (tmp_path / "add.py").write_text("open('sum.txt', 'w').write(str(int(open('x').read()) + int(open('y').read())))\n")
    (tmp_path / "job.toml").write_text("""
[[tasks]]
name = "make"
script = "make.py"
outputs = ["x.txt"]
[[tasks]]
name = "slow"
script = "slow.py"
outputs = ["y.txt"]
[[tasks]]
name = "add"
script = "add.py"
inputs = { "x" = "task:make/x.txt", "y" = "task:slow/y.txt" }
outputs = ["sum.txt"]
""")
    client = net.client()
    job_id = client.submit_spec(tmp_path / "job.toml")["id"]
    deadline = time.monotonic() + 30
    while (tasks := {t["name"]: t for t in client.job(job_id)["tasks"]})["make"]["status"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    holder = tasks["make"]["worker_id"]
    assert tasks["slow"]["worker_id"] != holder  # one slot each
    victim = next(i for i, port in net.worker_ports.items()
                  if any(w["id"] == holder and w["grpc_port"] == port for w in client.workers()))
    net.kill_worker(victim)
    job = client.wait(job_id, timeout_s=60)
    assert job["status"] == "done", job
    tasks = {t["name"]: t for t in job["tasks"]}
    assert tasks["make"]["attempts"] == 2 and tasks["make"]["worker_id"] != holder
    (result,) = client.download_results(job_id, tmp_path / "out")
    assert result.read_text() == "42"
