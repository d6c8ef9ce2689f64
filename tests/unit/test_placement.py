from runsurge_master.placement import Capacity, ReadyTask, place

MiB = 1 << 20


def test_best_fit_prefers_the_tightest_worker_that_fits():
    workers = [Capacity("big", 4096 * MiB, 4), Capacity("small", 600 * MiB, 4)]
    assert place([ReadyTask("t", 512 * MiB)], workers) == [("t", "small")]


def test_locality_beats_fit():
    workers = [Capacity("big", 4096 * MiB, 4, holds={"d1"}), Capacity("small", 600 * MiB, 4)]
    assert place([ReadyTask("t", 512 * MiB, {"d1": 10 * MiB, "d2": 1})], workers) == [("t", "big")]


def test_the_worker_holding_more_bytes_wins():
    workers = [Capacity("a", 1024 * MiB, 4, holds={"small"}), Capacity("b", 1024 * MiB, 4, holds={"large"})]
    task = ReadyTask("t", MiB, {"small": 10, "large": 10_000})
    assert place([task], workers) == [("t", "b")]


def test_slots_and_memory_are_respected_and_used_up():
    workers = [Capacity("w", 1000 * MiB, 2)]
    tasks = [ReadyTask(f"t{i}", 400 * MiB) for i in range(4)]
    assert place(tasks, workers) == [("t0", "w"), ("t1", "w")]  # third: no slot left
    workers = [Capacity("w", 1000 * MiB, 8)]
    assert [t for t, _ in place(tasks, workers)] == ["t0", "t1"]  # third: no memory left


def test_a_task_too_big_for_everyone_waits():
    assert place([ReadyTask("t", 10_000 * MiB)], [Capacity("w", 1000 * MiB, 8)]) == []


def test_several_tasks_spread_when_slots_run_out():
    workers = [Capacity("a", 1000 * MiB, 1), Capacity("b", 1000 * MiB, 1)]
    assert sorted(w for _, w in place([ReadyTask("t1", MiB), ReadyTask("t2", MiB)], workers)) == ["a", "b"]


def test_the_worker_holding_the_environment_wins_by_its_size():
    env = ("e" * 64, 50 * MiB)
    workers = [Capacity("a", 1024 * MiB, 4, holds={"data"}), Capacity("b", 1024 * MiB, 4, environments={env[0]})]
    task = ReadyTask("t", MiB, {"data": 10 * MiB}, environment=env)
    assert place([task], workers) == [("t", "b")]  # 50 MiB of wheels to fetch and build outweigh 10 MiB of data
    task = ReadyTask("t", MiB, {"data": 80 * MiB}, environment=env)
    assert place([task], [Capacity("a", 1024 * MiB, 4, holds={"data"}),
                          Capacity("b", 1024 * MiB, 4, environments={env[0]})]) == [("t", "a")]


def test_a_busy_worker_holding_the_environment_does_not_keep_the_task_waiting():
    env = ("e" * 64, 50 * MiB)
    busy = Capacity("a", 1024 * MiB, 0, environments={env[0]})  # no free slot
    assert place([ReadyTask("t", MiB, environment=env)], [busy, Capacity("b", 1024 * MiB, 1)]) == [("t", "b")]
    short = Capacity("a", 10 * MiB, 4, environments={env[0]})  # not enough memory
    assert place([ReadyTask("t", 512 * MiB, environment=env)], [short, Capacity("b", 1024 * MiB, 1)]) == [("t", "b")]
    # Nobody holds it: placed anyway, by fit.
    assert place([ReadyTask("t", MiB, environment=env)], [Capacity("c", 1024 * MiB, 1)]) == [("t", "c")]
