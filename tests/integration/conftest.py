import pytest

from localnet import LocalNet


@pytest.fixture
def net(tmp_path):
    """A master and two workers (process sandbox: these tests exercise the control plane)."""
    n = LocalNet(tmp_path / "net", sandbox="process", slots=1, heartbeat_s=0.5)
    try:
        n.start(workers=2)
        yield n
    finally:
        n.stop()
