"""Bandwidth caps (`download_limit_bps`, `upload_limit_bps`): one token bucket per direction, shared
by every transfer of the worker, so the contributor's connection keeps room for its owner."""

from __future__ import annotations

import threading
import time


class TokenBucket:
    """`rate` bytes per second on average, bursts of at most `burst` bytes (default: a quarter
    second's, earned while idle): n bytes through a fresh bucket take at least (n - burst) / rate."""

    def __init__(self, rate: float, burst: float | None = None):
        if rate <= 0:
            raise ValueError("a rate limit must be positive")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else rate / 4)
        self._tokens = self.burst
        self._at = time.monotonic()
        self._lock = threading.Lock()

    def take(self, n: int) -> None:
        """Block until `n` bytes may pass. Larger than a burst is fine: the debt is slept off."""
        with self._lock:  # one transfer at a time takes its share: the others queue behind it
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            self._tokens -= n
            debt = -self._tokens
            if debt > 0:
                time.sleep(debt / self.rate)
                self._tokens = 0.0
                self._at = time.monotonic()


def bucket(rate: int) -> TokenBucket | None:
    return TokenBucket(rate) if rate > 0 else None
