"""The share's password survives a worker restart (a checkpointed guest's cifs client logs in again
with the one it mounted with), and only the worker's user can read it."""

import os
import stat

from runsurge_worker.sandbox.samba import _kept_password


def test_the_password_is_made_once_kept_and_private(tmp_path):
    path = tmp_path / "samba" / "private" / "password"
    first = _kept_password(path)
    assert len(first) == 32 and _kept_password(path) == first  # the same after a restart
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    os.remove(path)
    assert _kept_password(path) != first  # a new home (or a lost file) gets a new one
