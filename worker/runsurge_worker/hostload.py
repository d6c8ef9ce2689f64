"""How busy the contributor's machine is with their own work: CPU used by processes other than the
worker's (the worker, its VMs, sandboxes and smbd are its process tree), from /proc; and whether
it runs on battery, from /sys/class/power_supply.

The CPU figure sums each process's user+system time (with its reaped children's) between two
samples, as a share of the whole host (1.0 = every CPU busy). `users` narrows it to the processes
of the given uids: on a desktop, the person's own session, not system daemons or backups.
"""

from __future__ import annotations

import os
import pwd
import time
from pathlib import Path

from runsurge_worker.monitor import CLK_TCK


def parse_users(text: str) -> set[int] | None:
    """"alice, 1001" → their uids; empty → None (every process counts). Raises ValueError."""
    uids = set()
    for name in (n.strip() for n in text.split(",")):
        if not name:
            continue
        if name.isdigit():
            uids.add(int(name))
            continue
        try:
            uids.add(pwd.getpwnam(name).pw_uid)
        except KeyError:
            raise ValueError(f"busy_users: no user {name!r} on this machine") from None
    return uids or None


def _uid(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class HostLoad:
    def __init__(self, own_pid: int | None = None, users: set[int] | None = None):
        self.own_pid = own_pid or os.getpid()
        self.users = users
        self._prev: dict[tuple[int, int], int] | None = None  # (pid, start time) → CPU ticks
        self._at = 0.0
        self.ncpu = os.cpu_count() or 1

    def _scan(self) -> dict[tuple[int, int], int]:
        parents: dict[int, int] = {}
        ticks: dict[tuple[int, int], int] = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # gone meanwhile
            p = int(pid)
            parents[p] = int(fields[1])
            # utime stime cutime cstime; starttime tells a reused pid from the old process
            ticks[(p, int(fields[19]))] = sum(int(x) for x in fields[11:15])
        own = self._tree(parents)
        out = {}
        for key, t in ticks.items():
            if key[0] in own or (self.users is not None and _uid(str(key[0])) not in self.users):
                continue
            out[key] = t
        return out

    def _tree(self, parents: dict[int, int]) -> set[int]:
        children: dict[int, list[int]] = {}
        for p, pp in parents.items():
            children.setdefault(pp, []).append(p)
        own, todo = set(), [self.own_pid]
        while todo:
            p = todo.pop()
            own.add(p)
            todo.extend(children.get(p, ()))
        return own

    def sample(self) -> float:
        """Share of the host's CPU the other processes used since the last sample (0.0 the first time)."""
        now, ticks = time.monotonic(), self._scan()
        prev, at = self._prev, self._at
        self._prev, self._at = ticks, now
        if prev is None or now <= at:
            return 0.0
        used = sum(max(0, t - prev.get(key, 0)) for key, t in ticks.items())
        return used / CLK_TCK / ((now - at) * self.ncpu)


def on_battery(root: Path = Path("/sys/class/power_supply")) -> bool:
    """True when the machine has a mains supply that is offline and a battery (a laptop unplugged)."""
    mains, battery = [], False
    try:
        supplies = list(root.iterdir())
    except OSError:
        return False
    for dev in supplies:
        try:
            kind = (dev / "type").read_text().strip()
            if kind == "Mains":
                mains.append((dev / "online").read_text().strip() == "1")
            elif kind == "Battery":
                battery = True
        except OSError:
            continue
    return battery and bool(mains) and not any(mains)
