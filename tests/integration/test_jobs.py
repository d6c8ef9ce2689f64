"""Real master and worker processes on loopback, talking gRPC and HTTP."""

import collections
import json
import re
import sqlite3
from pathlib import Path

from jobs import wait_task, write_add_job
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
    # Every run has its start, also one so short that its worker folded the start into its end.
    with sqlite3.connect(f"file:{net.root / 'master' / 'master.db'}?mode=ro", uri=True) as db:
        times = db.execute("SELECT started_at, finished_at FROM tasks WHERE job_id = ?", (job["id"],)).fetchall()
    assert len(times) == 3 and all(started and started <= finished for started, finished in times), times


def test_a_raising_script_fails_the_job_and_shows_stderr(net, tmp_path):
    script = tmp_path / "bad.py"
    script.write_text("print('before')\nraise RuntimeError('the data is wrong')\n")
    client = net.client()
    job = client.wait(client.submit([script], mode="single")["id"], timeout_s=60)
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
    job_id = client.submit([script], mode="single")["id"]
    first_worker = wait_task(client, job_id, None, "running")["main"]["worker_id"]
    net.kill_worker(net.index_of(first_worker))
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
    write_add_job(tmp_path, "41", "1", slow_s=5)
    client = net.client()
    job_id = client.submit_spec(tmp_path / "job.toml")["id"]
    tasks = wait_task(client, job_id, "make", "done")
    holder = tasks["make"]["worker_id"]
    assert tasks["slow"]["worker_id"] != holder  # one slot each
    net.kill_worker(net.index_of(holder))
    job = client.wait(job_id, timeout_s=60)
    assert job["status"] == "done", job
    tasks = {t["name"]: t for t in job["tasks"]}
    assert tasks["make"]["attempts"] == 2 and tasks["make"]["worker_id"] != holder
    (result,) = client.download_results(job_id, tmp_path / "out")
    assert result.read_text() == "42"
