"""What earlier runs teach the next plan about memory (real SQLite): finished tasks give their
measured peak; a task killed at its memory limit needed at least that limit, even when the job
failed; the user's other jobs and other users' jobs teach nothing."""

import hashlib

from runsurge_master import lifecycle
from runsurge_master.config import load_config
from runsurge_master.jobspec import parse_spec
from runsurge_master.main import build
from runsurge_master.models import User
from runsurge_master.submission import memory_observations

SPEC = 'name = "job.py (automatic)"\n[[tasks]]\nname = "chunk0-000"\nscript = "s.py"\n' \
       '[[tasks]]\nname = "combine1"\nscript = "s.py"\n'


def make_job(s, owner, statuses, error=None, name=None):
    spec = parse_spec(SPEC if name is None else SPEC.replace("job.py (automatic)", name), {"s.py"}, 64 << 20,
                      60, 100)
    data_id = hashlib.sha256(b"print(1)").hexdigest()
    lifecycle.ensure_data(s, data_id, 8, None)
    job = lifecycle.create_job(s, owner, spec, {"s.py": data_id})
    s.flush()
    for t, (status, peak) in zip(sorted(job.tasks, key=lambda t: t.seq), statuses, strict=True):
        t.status, t.mem_peak_bytes = status, peak
        if status == "failed":
            t.error = error
    job.status = "failed" if any(st == "failed" for st, _ in statuses) else "done"
    return job


def test_peaks_of_done_tasks_and_limits_of_killed_ones_feed_the_estimates(tmp_path):
    sv = build(load_config(home=tmp_path / "m"))
    with sv.db.session() as s:
        for uid in ("u1", "u2"):
            s.add(User(id=uid, email=f"{uid}@x.org", password_hash="x"))
        s.flush()
        make_job(s, "u1", [("done", 40 << 20), ("done", 30 << 20)])
        make_job(s, "u1", [("failed", 50 << 20), ("cancelled", None)], error="memory limit exceeded (64 MiB)")
        make_job(s, "u1", [("failed", 20 << 20), ("cancelled", None)], error="exit code 1")  # the script's bug
        make_job(s, "u1", [("done", 999 << 20), ("done", 999 << 20)], name="other.py (automatic)")
        make_job(s, "u2", [("done", 999 << 20), ("done", 999 << 20)])
        s.flush()
        got = memory_observations(s, "u1", "job.py (automatic)")
    assert sorted(p for _, p in got["chunk"]) == [40 << 20, 64 << 20]  # killed: at least its 64 MiB limit
    assert [p for _, p in got["combine"]] == [30 << 20]
