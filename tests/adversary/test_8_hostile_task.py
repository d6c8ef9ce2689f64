"""Item 8 (the part that holds in every sandbox; the VM's own checks are in tests/vm/test_hostile.py):
a task that collects every file it writes cannot turn a flood of files into a flood of results."""

import pytest
from hostile import GC, VICTIM, assert_no_traceback, db_rows

from localnet import LocalNet


@pytest.fixture
def capped(tmp_path):
    n = LocalNet(tmp_path / "net", sandbox="process", heartbeat_s=0.5,
                 extra_env={**GC, "RUNSURGE_MAX_OUTPUT_FILES": "100"})
    try:
        n.start(workers=1)
        n.register(VICTIM)
        yield n
        assert_no_traceback(n)
    finally:
        n.stop()


def test_a_flood_of_output_files_fails_the_task_and_stores_nothing(capped, tmp_path):
    (tmp_path / "flood.py").write_text("for i in range(856):\n    open(f'f{i}.txt', 'w').close()\n")
    victim = capped.client(VICTIM)
    objects = db_rows(capped, "select count(*) from data_objects")
    job = victim.wait(victim.submit([tmp_path / "flood.py"], mode="single")["id"], timeout_s=60)
    assert job["status"] == "failed"
    (task,) = job["tasks"]
    assert "856 files, more than the limit of 100" in task["error"]
    assert victim.results(job["id"]) == []
    assert db_rows(capped, "select count(*) from data_objects")[0][0] <= objects[0][0] + 3  # its script and logs
