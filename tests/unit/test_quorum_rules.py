"""Quorum rules (quorum.py): what agrees, who wins, trust, and where replicas may go."""

from runsurge_master import quorum
from runsurge_master.placement import Capacity, ReadyTask
from runsurge_master.quorum import FAILED, ReplicaNeed, decide, place_in_order, result_key, trust_after

MiB = 1 << 20
A, B = "a" * 64, "b" * 64


def test_results_compare_each_named_output_s_hash():
    assert result_key({"x": (A, 1), "y": (B, 2)}) == result_key({"y": (B, 99), "x": (A, 1)})  # order, size: no
    assert result_key({"x": (A, 1)}) != result_key({"x": (B, 1)})    # other bytes
    assert result_key({"x": (A, 1)}) != result_key({"z": (A, 1)})    # same bytes under another name
    assert result_key({"x": (A, 1)}) != result_key({"x": (A, 1), "y": (B, 1)})  # an extra output
    assert len(result_key({})) == 64 and result_key({}) != FAILED


def test_two_agreeing_results_decide():
    d = decide([(1, "k"), (2, "k")], 2)
    assert (d.winners, d.losers, d.no_majority) == ((1, 2), (), False)


def test_until_two_results_arrive_the_quorum_waits_for_two():
    assert decide([], 2) == quorum.Decision(wanted=2)
    assert decide([(1, "k")], 2) == quorum.Decision(wanted=2)


def test_a_mismatch_asks_for_a_third_and_the_majority_wins():
    assert decide([(1, "honest"), (2, "lie")], 2) == quorum.Decision(wanted=3)
    d = decide([(1, "honest"), (2, "lie"), (3, "honest")], 2)
    assert (d.winners, d.losers) == ((1, 3), (2,))
    d = decide([(1, "lie"), (2, "honest"), (3, "honest")], 2)  # the liar reported first: order does not matter
    assert (d.winners, d.losers) == ((2, 3), (1,))


def test_three_different_results_mean_no_majority():
    d = decide([(1, "x"), (2, "y"), (3, "z")], 2)
    assert d.no_majority and not d.winners


def test_failures_are_results_too():
    assert decide([(1, FAILED), (2, FAILED)], 2).winners == (1, 2)  # the user's script fails everywhere
    assert decide([(1, FAILED), (2, "k")], 2) == quorum.Decision(wanted=3)  # a claimed failure is outvoted...
    assert decide([(1, FAILED), (2, "k"), (3, "k")], 2).losers == (1,)


def test_without_redundancy_one_result_decides():
    assert decide([(1, "k")], 1).winners == (1,)
    assert decide([], 1) == quorum.Decision(wanted=1)


def test_trust_rises_slowly_and_falls_fast():
    assert trust_after(0, True) == 1
    assert trust_after(quorum.TRUST_CEILING, True) == quorum.TRUST_CEILING
    assert trust_after(100, True) == 100  # an operator's higher setting is kept
    assert trust_after(0, False) == -quorum.TRUST_ODD
    # With the default threshold (-10): a new worker caught once is out, a long clean record survives one lie.
    assert trust_after(0, False) < -10 <= trust_after(quorum.TRUST_CEILING, False)


def caps(*specs):
    """(id, owner, free slots) → capacities and the owner map."""
    return [Capacity(wid, 4096 * MiB, slots) for wid, _, slots in specs], {wid: owner for wid, owner, _ in specs}


def test_replicas_go_to_workers_of_different_contributors():
    workers, owner_of = caps(("a1", "alice", 2), ("a2", "alice", 2), ("b1", "bob", 2))
    placed = place_in_order([ReadyTask("t", MiB)], workers, {"t": ReplicaNeed(2)}, owner_of, set(owner_of))
    assert len(placed) == 2 and {owner_of[w] for _, w in placed} == {"alice", "bob"}
    assert sum(w.free_slots for w in workers) == 6 - 2  # their capacity is used up like any placement


def test_a_third_replica_avoids_the_contributors_that_already_ran_it():
    workers, owner_of = caps(("a1", "alice", 1), ("b1", "bob", 1), ("c1", "carol", 1))
    need = {"t": ReplicaNeed(1, busy={"alice", "bob"}, differ=True)}
    assert place_in_order([ReadyTask("t", MiB)], workers, need, owner_of, set(owner_of)) == [("t", "c1")]


def test_replicas_wait_while_too_few_contributors_are_online():
    workers, owner_of = caps(("a1", "alice", 4), ("a2", "alice", 4))
    assert place_in_order([ReadyTask("t", MiB)], workers, {"t": ReplicaNeed(2)}, owner_of, set(owner_of)) == []
    assert all(w.free_slots == 4 for w in workers)  # not even one replica holds a slot meanwhile
    workers, owner_of = caps(("a1", "alice", 1), ("b1", "bob", 1))
    need = {"t": ReplicaNeed(1, busy={"alice", "bob"})}
    assert place_in_order([ReadyTask("t", MiB)], workers, need, owner_of, set(owner_of)) == []


def test_distrusted_workers_get_no_replicas_but_plain_tasks():
    workers, owner_of = caps(("a1", "alice", 2), ("m1", "mallory", 2), ("b1", "bob", 2))
    trusted = {"a1", "b1"}
    placed = place_in_order([ReadyTask("q", MiB), ReadyTask("p", 100 * MiB)], workers, {"q": ReplicaNeed(2)},
                            owner_of, trusted)
    assert sorted(w for t, w in placed if t == "q") == ["a1", "b1"]
    assert [t for t, _ in placed].count("p") == 1  # a plain task goes anywhere, mallory included
    workers, owner_of = caps(("a1", "alice", 2), ("m1", "mallory", 2))
    assert place_in_order([ReadyTask("q", MiB)], workers, {"q": ReplicaNeed(2)}, owner_of, {"a1"}) == []


def test_a_mixed_window_keeps_submission_order():
    workers, owner_of = caps(("a1", "alice", 1), ("b1", "bob", 1))
    tasks = [ReadyTask("p1", MiB), ReadyTask("q", MiB), ReadyTask("p2", MiB)]
    placed = place_in_order(tasks, workers, {"q": ReplicaNeed(2)}, owner_of, set(owner_of))
    assert placed == [("p1", "a1"), ("q", "b1")]  # q's second replica waits for alice's slot; p2 for any
    workers, owner_of = caps(("a1", "alice", 2), ("b1", "bob", 2))
    placed = place_in_order(tasks, workers, {"q": ReplicaNeed(2)}, owner_of, set(owner_of))
    assert [t for t, _ in placed] == ["p1", "q", "q", "p2"]
    assert place_in_order([ReadyTask("q", MiB)], workers, {"q": ReplicaNeed(0)}, owner_of, set(owner_of)) == []
