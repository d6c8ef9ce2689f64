"""A small pool of ready, never-used VMs, refilled in the background.

`acquire` hands out an idle VM (or makes one on the spot when the pool is empty); the VM is the
caller's from then on and is destroyed after its one task. The pool only ever holds VMs that no
task has touched.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)


class _Disposable(Protocol):
    def alive(self) -> bool: ...
    def destroy(self) -> None: ...


V = TypeVar("V", bound=_Disposable)


class VmPool(Generic[V]):
    def __init__(self, make: Callable[[], V], size: int):
        self._make = make
        self.size = size
        self._idle: list[V] = []
        self._building = 0
        self._stopping = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.failures = 0

    def start(self) -> None:
        if self.size > 0:
            self._thread = threading.Thread(target=self._fill, name="vm-pool", daemon=True)
            self._thread.start()

    def wait_full(self, timeout: float) -> bool:
        """Block until the pool holds `size` idle VMs (tests and benchmarks use this)."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._idle) >= self.size or self._stopping,
                                       timeout) and not self._stopping

    def acquire(self) -> V:
        with self._cond:
            while self._idle:
                vm = self._idle.pop(0)
                self._cond.notify_all()  # the filler makes a replacement
                if vm.alive():
                    return vm
                vm.destroy()
        return self._make()  # pool empty: restore one now rather than wait for the filler

    def _fill(self) -> None:
        backoff = 1.0
        while True:
            with self._cond:
                self._cond.wait_for(
                    lambda: self._stopping or len(self._idle) + self._building < self.size)
                if self._stopping:
                    return
                self._building += 1
            vm = None
            try:
                vm = self._make()
            except Exception:  # keep the filler alive; run() reports its own
                self.failures += 1
                log.exception("could not prepare a pool VM; retrying in %.0fs", backoff)
            with self._cond:
                self._building -= 1
                keep = vm is not None and not self._stopping
                if keep:
                    self._idle.append(vm)
                self._cond.notify_all()
            if vm is not None and not keep:  # made while closing
                vm.destroy()
            if vm is None:  # failed: do not spin on a broken host
                with self._cond:
                    self._cond.wait_for(lambda: self._stopping, backoff)
                backoff = min(backoff * 2, 60.0)
            else:
                backoff = 1.0

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for vm in idle:
            vm.destroy()
        if self._thread is not None:
            self._thread.join(timeout=120)
