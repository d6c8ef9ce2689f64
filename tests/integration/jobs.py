"""Small helpers the integration tests share: waiting on a task, and a 3-task job with a slow branch."""

import time


def wait_task(client, job_id: str, name: str | None, status: str, timeout_s: float = 30) -> dict:
    """The job's tasks by name once task `name` (or the only task) reaches `status`."""
    deadline = time.monotonic() + timeout_s
    while True:
        tasks = {t["name"]: t for t in client.job(job_id)["tasks"]}
        task = tasks[name] if name else next(iter(tasks.values()))
        if task["status"] == status:
            return tasks
        assert time.monotonic() < deadline, f"task {name or '(only)'} still {task['status']}"
        time.sleep(0.05)


def write_add_job(folder, x_text: str, y_text: str, slow_s: float) -> None:
    """make → x.txt (quick), slow → y.txt (after `slow_s`), add = int(x) + int(y) → sum.txt.
    With one slot per worker, make and slow run on different workers."""
    (folder / "make.py").write_text(f"open('x.txt', 'w').write({x_text!r})\n")
    (folder / "slow.py").write_text(f"import time\ntime.sleep({slow_s})\nopen('y.txt', 'w').write({y_text!r})\n")
    (folder / "add.py").write_text("open('sum.txt', 'w').write(str(int(open('x').read()) + int(open('y').read())))\n")
    (folder / "job.toml").write_text("""
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
