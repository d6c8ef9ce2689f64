"""Provisioning tests (see ansible/README.md).

Tests marked `provision` change this machine (they install RunSurge as services with Ansible) and
boot VMs; they run only under `make test-provision` (RUNSURGE_TEST_PROVISION=1). The syntax and
lint checks (test_syntax.py) are fast and run in the normal `make test`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # provisioning, provision_checks

from provisioning import ROOT, PlaybookRun, ensure_ansible, make_provision, run, snapshot_sources


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "provision: installs RunSurge on this machine / a VM with Ansible "
                                       "(make test-provision)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("RUNSURGE_TEST_PROVISION") == "1":
        return
    skip = pytest.mark.skip(reason="changes this machine: run with `make test-provision`")
    for item in items:
        if item.get_closest_marker("provision") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def ansible_bin() -> Path:
    return ensure_ansible()


@pytest.fixture(scope="session")
def source_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the sources taken once: every playbook run of the session installs the same code
    even while people edit the work tree (a changed tree is a legitimate change to deploy)."""
    return snapshot_sources(tmp_path_factory.mktemp("sources"))


@pytest.fixture(scope="session")
def local_provisioned(ansible_bin: Path, source_snapshot: Path,
                      tmp_path_factory: pytest.TempPathFactory) -> PlaybookRun:
    """`make provision` on this machine (the local inventory): master + worker as services."""
    first = run(make_provision(source_snapshot), Path("local-first.log"), cwd=ROOT)
    assert first.rc == 0, first.output[-6000:]
    return first
