"""Item 1: a worker that refuses every task cannot fail other users' jobs. It offers exactly the default
task memory (the scheduler's best fit) and refuses every AssignTask: each task is offered to it once,
then runs on the honest worker; after a few refusals it is benched, and its owner sees why."""

from hostile import ATTACKER, VICTIM, HostileWorker, db_rows


def test_a_refusing_worker_is_avoided_then_benched_and_victims_jobs_complete(honest, tmp_path):
    evil = HostileWorker(honest, memory=256 << 20, accept=False)
    try:
        victim = honest.client(VICTIM)
        (tmp_path / "hi.py").write_text("print('hi')\n")
        jobs = []
        for _ in range(4):  # one after the other: each time the refusing worker is free and the best fit
            job = victim.submit([tmp_path / "hi.py"], mode="single")
            assert victim.wait(job["id"], timeout_s=60)["status"] == "done"
            jobs.append(job)
        offered = [a.task_id for a in evil.assigned]
        assert len(offered) == len(set(offered)) == 3  # once per task, and not at all once benched
        for job in jobs:
            (task,) = victim.job(job["id"])["tasks"]
            assert task["worker_id"] != evil.id
            # Billed once, to the honest worker; nothing to the refuser.
            assert db_rows(honest, "select worker_id from ledger_transactions where task_id = ?", task["id"]) == \
                [(task["worker_id"],)]
        assert db_rows(honest, "select count(*) from ledger_transactions where worker_id = ?", evil.id) == [(0,)]
        (mine,) = honest.client(ATTACKER).workers()
        assert mine["benched"] and mine["benched_until"] and "refused" in mine["bench_reason"]
        assert mine["fault_streak"] == 3
    finally:
        evil.stop()
