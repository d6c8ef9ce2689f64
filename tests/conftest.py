import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))  # localnet: real master/worker processes on loopback
sys.path.insert(0, str(ROOT / "tests" / "integration"))  # jobs: shared job helpers

from localnet import LocalNet  # noqa: E402


@pytest.fixture
def net(tmp_path):
    """A master and two workers with one slot each (process sandbox: for control-plane tests)."""
    n = LocalNet(tmp_path / "net", sandbox="process", slots=1, heartbeat_s=0.5)
    try:
        n.start(workers=2)
        yield n
    finally:
        n.stop()
