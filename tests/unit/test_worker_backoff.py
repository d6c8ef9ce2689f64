"""The worker's retry schedule: exponential ceilings, capped, with full jitter (not lock-step)."""
import random

import pytest

from runsurge_worker.backoff import Backoff, phase


def test_ceiling_doubles_then_caps():
    b = Backoff(base_s=1.0, cap_s=10.0, rng=random.Random(1))
    ceilings = []
    for _ in range(8):
        ceilings.append(b.ceiling())
        b.next()
    assert ceilings == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0]


def test_delays_are_within_the_ceiling_and_spread_over_it():
    delays = [Backoff(base_s=1.0, cap_s=60.0, rng=random.Random(seed)) for seed in range(1000)]
    for b in delays:
        for _ in range(3):
            b.next()
    fourth = [b.next() for b in delays]  # ceiling 8 s
    assert all(0 <= d <= 8.0 for d in fourth)
    # Full jitter: a thousand workers retrying together land all over [0, 8], not on one instant.
    buckets = {int(d) for d in fourth}
    assert buckets == set(range(8))
    assert max(fourth) - min(fourth) > 7.0


def test_reset_starts_again_from_the_base():
    b = Backoff(base_s=2.0, cap_s=60.0, rng=random.Random(3))
    for _ in range(5):
        b.next()
    b.reset()
    assert b.ceiling() == 2.0
    assert b.next() <= 2.0


def test_huge_attempt_counts_do_not_overflow():
    b = Backoff(base_s=1.0, cap_s=30.0)
    b.attempt = 10_000
    assert 0 <= b.next() <= 30.0


@pytest.mark.parametrize("base,cap", [(0, 10), (-1, 10), (5, 1)])
def test_bad_parameters_are_refused(base, cap):
    with pytest.raises(ValueError):
        Backoff(base_s=base, cap_s=cap)


def test_phase_is_within_one_interval_and_varies():
    rng = random.Random(7)
    offsets = [phase(2.0, rng) for _ in range(200)]
    assert all(0 <= o <= 2.0 for o in offsets)
    assert max(offsets) - min(offsets) > 1.5


def test_the_master_s_wait_comes_first_and_the_jitter_after_it():
    """A Retry-After (a throttled login): never sooner than it, and the workers it told the same wait
    spread after it rather than all coming back at the same instant."""
    delays = []
    for seed in range(1000):
        b = Backoff(base_s=1.0, cap_s=60.0, rng=random.Random(seed))
        b.next()
        b.next()
        delays.append(b.next(at_least_s=30.0))  # ceiling 4 s
    assert all(30.0 <= d <= 34.0 for d in delays)
    assert {int(d) for d in delays} == {30, 31, 32, 33}
    b = Backoff(base_s=1.0, cap_s=60.0, rng=random.Random(5))
    assert b.next(at_least_s=-3.0) <= 1.0 and b.attempt == 1  # a nonsense wait is no wait; it counts as a retry
