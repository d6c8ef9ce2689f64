"""The master's side of checkpoints (issue 17), on a real master and real workers without VMs: a
task its worker reported checkpointed stays that worker's for checkpoint_grace_s, and runs
elsewhere once it is over (no fault, nothing billed for the saved run); a worker that comes back
without the checkpoint gives the task up at once. The worker is vanishing_checkpoint_worker.py: a
real process-sandbox worker whose checkpoints are never kept."""

import signal
import time
from pathlib import Path

import pytest

from jobs import wait_task
from localnet import LocalNet

VANISHING = Path(__file__).resolve().parent / "vanishing_checkpoint_worker.py"
TASK = "import time\nprint('started', flush=True)\ntime.sleep(3)\nopen('done.txt', 'w').write('ok')\n"


def bill(client, job_id: str) -> dict:
    return client.http.get(f"/api/jobs/{job_id}/bill",
                           headers={"authorization": f"Bearer {client.access_token}"}).json()


@pytest.fixture
def grace_net(request, tmp_path):
    """Master (checkpoint_grace_s: the test's parameter, else 4 s) and worker 0, a vanishing one."""
    grace = getattr(request, "param", 4)
    n = LocalNet(tmp_path / "net", sandbox="process", slots=1, heartbeat_s=0.5,
                 extra_env={"RUNSURGE_CHECKPOINT_GRACE_S": str(grace)})
    with n:
        n.start_master()
        n.start_worker(0, program=[str(VANISHING)])
        yield n


def checkpointed_job(net, tmp_path) -> tuple[object, str, dict]:
    """A one-task job running on worker 0 when it is stopped: its task reported checkpointed."""
    (tmp_path / "task.py").write_text(TASK)
    client = net.client()
    job_id = client.submit([tmp_path / "task.py"], mode="single")["id"]
    task_id = wait_task(client, job_id, None, "running")["main"]["id"]
    deadline = time.monotonic() + 30
    while "started" not in client.task_log(task_id)[0]:  # its script runs
        assert time.monotonic() < deadline
        time.sleep(0.05)
    net.kill_worker(0, signal.SIGTERM)
    assert "Traceback" not in net.log("worker0")
    task = wait_task(client, job_id, None, "checkpointed", timeout_s=10)["main"]
    return client, job_id, task


def test_a_checkpoint_whose_worker_does_not_come_back_runs_elsewhere_after_the_grace(grace_net, tmp_path):
    client, job_id, task = checkpointed_job(grace_net, tmp_path)
    gone = task["worker_id"]
    grace_net.start_worker(1)  # free, but the task is kept for its own worker meanwhile
    job = client.wait(job_id, timeout_s=60)
    assert job["status"] == "done", job
    (task,) = job["tasks"]
    assert task["worker_id"] != gone and task["attempts"] == 2 and task["restore_s"] is None
    assert f"released task={task['id']} by worker={gone}: its worker did not resume its checkpoint within 4 s" \
        in grace_net.log("master")
    (line,) = bill(client, job_id)["lines"]  # the saved run is not billed; the run that ended is, once
    assert line["worker_id"] == task["worker_id"] and line["outcome"] == "done"
    (result,) = client.download_results(job_id, tmp_path / "out")
    assert result.read_text() == "ok"
    workers = {w["id"]: w for w in client.workers()}
    assert workers[gone]["online"] is False


@pytest.mark.parametrize("grace_net", [600], indirect=True)  # far longer than the test
def test_a_worker_back_without_its_checkpoint_gives_the_task_up_at_once(grace_net, tmp_path):
    client, job_id, task = checkpointed_job(grace_net, tmp_path)
    grace_net.start_worker(0, program=[str(VANISHING)])  # the same home: it registers, resuming nothing
    job = client.wait(job_id, timeout_s=60)
    assert job["status"] == "done", job
    assert "its worker came back without its checkpoint" in grace_net.log("master")
    assert "did not resume its checkpoint" not in grace_net.log("master")
    (line,) = bill(client, job_id)["lines"]
    assert line["worker_id"] == task["worker_id"] and line["attempt"] == 2


@pytest.mark.parametrize("grace_net", [600], indirect=True)
def test_a_checkpoint_cancelled_in_its_grace_is_billed_once_for_what_ran_before_the_save(grace_net, tmp_path):
    client, job_id, task = checkpointed_job(grace_net, tmp_path)
    assert task["wall_s"] > 0  # the checkpoint's report carries what ran, kept on the task
    client.cancel(job_id)
    (line,) = bill(client, job_id)["lines"]
    assert (line["worker_id"], line["outcome"], line["attempt"]) == (task["worker_id"], "cancelled", 1)
    assert abs(line["wall_s"] - task["wall_s"]) < 1e-6 and line["amount"] > 0
    # Its worker comes back (listing nothing to resume) and reports nothing new: still one line.
    grace_net.start_worker(0, program=[str(VANISHING)])
    job = client.job(job_id)
    assert job["status"] == "cancelled" and job["tasks"][0]["worker_id"] == task["worker_id"]
    assert bill(client, job_id)["lines"] == [line]
