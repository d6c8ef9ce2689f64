"""Item 2: a worker's metering is clamped to what the master can bound itself. A hostile worker
reports 1e9 s of wall and CPU time and a petabyte of output for a task that printed 'hi': the user is
billed no more than the master's own assign → complete interval allows, the result's size is the one
the master measured, and the liar loses trust. Its usage series (10,000 points, times going back or negative,
exabytes of memory) is cut to 200 points, in order, within the clamped metering."""

from datetime import datetime
from fractions import Fraction

from hostile import VICTIM, HostileWorker, db_rows

from runsurge_master.metering import SLACK_S
from runsurge_proto import master_pb2

SPEC = """
[[tasks]]
name = "hi"
script = "hi.py"
outputs = ["out.txt"]
"""


def test_over_reported_metering_is_clamped_and_costs_trust(bare, tmp_path):
    evil = HostileWorker(bare)
    try:
        (tmp_path / "hi.py").write_text("print('hi')\nopen('out.txt', 'w').write('42')\n")
        (tmp_path / "job.toml").write_text(SPEC)
        victim = bare.client(VICTIM)
        job = victim.submit_spec(tmp_path / "job.toml")
        task = evil.wait_assigned()
        data_id = evil.upload(task.task_id, b"42").data_id
        hostile_usage = [master_pb2.UsageSample(t_s=-1.0 if i % 7 == 0 else (i * 37) % 1000,
                                                cpu_s=1e9 - i, rss_bytes=1 << 60) for i in range(10_000)]
        evil.complete(task, wall_s=1e9, cpu_s=1e9, mem_avg_bytes=1 << 40, mem_peak_bytes=1 << 50, usage=hostile_usage,
                      outputs=[master_pb2.OutputData(name="out.txt", data_id=data_id, size=10**15, sha256=data_id)])
        assert victim.wait(job["id"])["status"] == "done"

        (wall, cpu, peak, assigned, finished), = db_rows(
            bare, "select wall_s, cpu_s, mem_peak_bytes, assigned_at, finished_at from tasks where id = ?",
            task.task_id)
        interval = (datetime.fromisoformat(finished) - datetime.fromisoformat(assigned)).total_seconds()
        assert wall <= interval + SLACK_S and cpu <= wall and peak <= 256 << 20
        # The bill: at most 1 CPU and 256 MiB for that interval (the default tariff), nowhere near 1e9 s.
        bound = (interval + SLACK_S) * (Fraction(1_000_000, 3600) + Fraction(250_000, 3600 * 4))
        (amount,), = db_rows(bare, "select amount from ledger_transactions where task_id = ?", task.task_id)
        assert amount <= bound
        assert [r["size"] for r in victim.results(job["id"])] == [2]
        (trust,), = db_rows(bare, "select trust from workers where id = ?", evil.id)
        assert trust < 0
        assert "SECURITY metering clamped" in bare.log("master")
        (run,) = victim._json("GET", f"/api/tasks/{task.task_id}/usage")["runs"]
        times = [p["t_s"] for p in run["points"]]
        assert 0 < len(times) <= 200 and times == sorted(set(times)) and times[-1] <= wall
        assert all(p["cpu_s"] <= cpu and p["rss_bytes"] <= peak for p in run["points"])
    finally:
        evil.stop()
