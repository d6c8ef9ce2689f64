"""Prefetch with real processes (2 workers × 1 slot, the default prefetch of 2): tasks queued on a
worker are cancelled unrun when their job fails, re-run elsewhere when their worker dies, kept through
a master restart, and moved off a worker busy with a long task."""

import time


def write_spec(folder, tasks: dict[str, str], outputs: bool = False, memory: dict[str, str] | None = None,
               name: str = "job.toml") -> None:
    """One task per name, running the given script body; optionally declaring out.txt."""
    lines = []
    for task, body in tasks.items():
        (folder / f"{task}.py").write_text(body)
        lines += ["[[tasks]]", f'name = "{task}"', f'script = "{task}.py"']
        if outputs:
            lines.append('outputs = ["out.txt"]')
        if memory and task in memory:
            lines.append(f'memory = "{memory[task]}"')
    (folder / name).write_text("\n".join(lines) + "\n")


def marking(marks, name: str, sleep_s: float) -> str:
    """A script that first leaves a mark outside its folder (it started), then sleeps."""
    return f"import time, pathlib\npathlib.Path({str(marks)!r}, {name!r}).touch()\ntime.sleep({sleep_s})\n"


def wait_tasks(client, job_id: str, running: int, assigned: int, timeout_s: float = 30) -> dict:
    """The job's tasks by name once `running` of them run and `assigned` more wait on workers."""
    deadline = time.monotonic() + timeout_s
    while True:
        tasks = {t["name"]: t for t in client.job(job_id)["tasks"]}
        states = [t["status"] for t in tasks.values()]
        if states.count("running") == running and states.count("assigned") == assigned:
            return tasks
        assert time.monotonic() < deadline, states
        time.sleep(0.05)


def test_tasks_queued_behind_a_failing_task_are_cancelled_unrun(net, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    tasks = {"bad": "import time\ntime.sleep(1)\nraise SystemExit('bad data')\n"}
    tasks |= {f"s{i}": marking(marks, f"s{i}", 30) for i in range(1, 5)}
    # bad takes one worker's whole memory, so nothing queues behind it; the other worker gets a
    # task in its slot and two in its queue (the fourth waits in the master).
    write_spec(tmp_path, tasks, memory={"bad": "2GiB"})
    client = net.client()
    job = client.wait(client.submit_spec(tmp_path / "job.toml")["id"], timeout_s=30)
    assert job["status"] == "failed" and "bad data" in job["error"]
    by_name = {t["name"]: t for t in job["tasks"]}
    other = {n for n, t in by_name.items() if n != "bad" and t["worker_id"]}
    assert len(other) == 3 and len({by_name[n]["worker_id"] for n in other}) == 1
    assert all(by_name[n]["status"] == "cancelled" for n in tasks if n != "bad")
    time.sleep(1.5)
    assert len([n for n in other if (marks / n).exists()]) == 1  # the queued two never started


def test_a_killed_worker_s_queued_tasks_run_on_the_other(net, tmp_path):
    body = "import time\ntime.sleep(2)\nopen('out.txt', 'w').write({name!r})\n"
    write_spec(tmp_path, {f"t{i}": body.format(name=f"t{i}") for i in range(6)}, outputs=True)
    client = net.client()
    job_id = client.submit_spec(tmp_path / "job.toml")["id"]
    tasks = wait_tasks(client, job_id, running=2, assigned=4)
    victim = next(t["worker_id"] for t in tasks.values() if t["status"] == "running")
    held = [n for n, t in tasks.items() if t["worker_id"] == victim]
    assert len(held) == 3  # one running, two queued
    net.kill_worker(net.index_of(victim))
    job = client.wait(job_id, timeout_s=60)
    assert job["status"] == "done", job
    by_name = {t["name"]: t for t in job["tasks"]}
    assert all(by_name[n]["worker_id"] != victim and by_name[n]["attempts"] == 2 for n in held)
    results = client.download_results(job_id, tmp_path / "out")
    assert sorted(p.read_text() for p in results) == [f"t{i}" for i in range(6)]


def test_a_master_restart_keeps_the_queued_tasks(net, tmp_path):
    write_spec(tmp_path, {f"t{i}": "import time\ntime.sleep(3)\n" for i in range(4)})
    client = net.client()
    job_id = client.submit_spec(tmp_path / "job.toml")["id"]
    wait_tasks(client, job_id, running=2, assigned=2)  # one queued on each worker
    seen = net.log("master").count("reconciled worker=")
    net.restart_master()
    deadline = time.monotonic() + 30  # the restarted master asks both workers what they run
    while net.log("master").count("reconciled worker=") < seen + 2:
        assert time.monotonic() < deadline, "the restarted master did not reconcile both workers"
        time.sleep(0.1)
    # The job runs on for seconds more (3 s tasks queued), past 3 heartbeat intervals: without the
    # reconciliation's fresh liveness window the tasks would be re-queued (attempts 2).
    client = net.client()
    job = client.wait(job_id, timeout_s=60)
    assert job["status"] == "done", job
    assert [t["attempts"] for t in job["tasks"]] == [1, 1, 1, 1]  # nothing lost, nothing run twice
    assert "reconciled worker=" in net.log("master")


def test_a_task_queued_behind_a_long_one_moves_to_the_idle_worker(net, tmp_path):
    write_spec(tmp_path, {"long": "import time\ntime.sleep(8)\n"}, memory={"long": "1GiB"}, name="long.toml")
    write_spec(tmp_path, {f"s{i}": f"open('out.txt', 'w').write('s{i}')\n" for i in (1, 2)}, outputs=True)
    client = net.client()
    long_job = client.submit_spec(tmp_path / "long.toml")["id"]
    (long,) = wait_tasks(client, long_job, running=1, assigned=0).values()
    # s1 takes the idle worker's slot; s2 queues behind long (the tighter fit) and would wait 8 s
    # there while the other worker idles: it moves.
    job = client.wait(client.submit_spec(tmp_path / "job.toml")["id"], timeout_s=6, poll_s=0.1)
    assert job["status"] == "done", job
    s2 = next(t for t in job["tasks"] if t["name"] == "s2")
    assert s2["attempts"] == 2 and s2["worker_id"] != long["worker_id"]
    assert "moving queued task=" in net.log("master")
    assert client.job(long_job)["status"] == "running"
