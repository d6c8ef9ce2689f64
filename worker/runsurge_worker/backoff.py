"""Retry delays for talking to the master: exponential backoff with full jitter.

When the master comes back from an overload or a restart, every worker it lost retries at once; fixed
delays keep them in lock-step and the herd knocks it over again. Full jitter (a uniform draw below the
exponential ceiling) spreads them over the whole window (AWS Architecture Blog, "Exponential Backoff
And Jitter")."""
from __future__ import annotations

import random


class Backoff:
    """`next()` gives the delay before retry n (n = 0, 1, ...): uniform in [0, min(cap, base * 2**n)],
    after what the other side asked us to wait, if it did (`next(at_least_s)`)."""

    def __init__(self, base_s: float = 1.0, cap_s: float = 60.0, rng: random.Random | None = None):
        if base_s <= 0 or cap_s < base_s:
            raise ValueError(f"backoff needs 0 < base ({base_s}) <= cap ({cap_s})")
        self.base_s, self.cap_s = base_s, cap_s
        self._rng = rng or random.Random()
        self.attempt = 0

    def ceiling(self) -> float:
        return min(self.cap_s, self.base_s * 2 ** min(self.attempt, 62))

    def next(self, at_least_s: float = 0.0) -> float:
        """`at_least_s`: the master's own wait (a Retry-After): never sooner, and the jitter on top, so
        the workers it told the same wait do not all come back in the same instant."""
        delay = max(0.0, at_least_s) + self._rng.uniform(0, self.ceiling())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


def phase(interval_s: float, rng: random.Random | None = None) -> float:
    """A random offset within one heartbeat interval, so workers started together do not beat together."""
    return (rng or random).uniform(0, interval_s)
