"""Attacks on a real master (and workers) on loopback. Every test's master log is read at the end:
an attack may be refused, but never with a traceback."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # hostile: the attacker's worker

from hostile import GC, VICTIM, assert_no_traceback

from localnet import LocalNet


@pytest.fixture
def bare(tmp_path):
    """A master alone (no honest worker): the hostile worker is the only place tasks can go."""
    n = LocalNet(tmp_path / "net", sandbox="process", slots=1, heartbeat_s=0.5, extra_env=GC)
    try:
        n.start(workers=0)
        n.register(VICTIM)
        yield n
        assert_no_traceback(n)
    finally:
        n.stop()


@pytest.fixture
def honest(tmp_path):
    """A master and one honest worker (process sandbox, 512 MiB: a worse fit than a 256 MiB one)."""
    n = LocalNet(tmp_path / "net", sandbox="process", slots=1, heartbeat_s=0.5, worker_memory=512 << 20,
                 extra_env=GC)
    try:
        n.start(workers=1)
        n.register(VICTIM)
        yield n
        assert_no_traceback(n)
    finally:
        n.stop()
