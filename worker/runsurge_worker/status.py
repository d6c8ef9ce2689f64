"""`runsurge-worker status`: the contributor's view of their worker (like BOINC's manager): running,
suspended and why, or outside its schedule; its tasks; its caps; what it has earned so far.

The running worker writes its state to `status.json` in its home (governor.py) at every change and
every tick; earnings come from the master (GET /api/earnings, with the worker's own account)."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from runsurge_worker.config import WorkerConfig
from runsurge_worker.governor import STATUS_FILE
from runsurge_worker.master_link import LoginError, login

STALE_S = 10.0  # the worker writes the file every governor tick: older than this, it is not running


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def read_status(home: Path) -> dict | None:
    """The worker's last written state, with `state` "not running" when it is gone."""
    try:
        status = json.loads((home / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not _alive(int(status.get("pid", 0))) or time.time() - status.get("updated", 0) > STALE_S:
        status["state"], status["reason"] = "not running", ""
        status["tasks"] = []
    return status


def earnings(cfg: WorkerConfig, worker_id: str) -> dict | str:
    """This worker's earnings (and the account's total), or why they are not available."""
    try:
        token = login(cfg.master_url, cfg.email, cfg.password)
        req = urllib.request.Request(f"{cfg.master_url.rstrip('/')}/api/earnings?limit=1",
                                     headers={"authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            e = json.load(resp)
    except (LoginError, urllib.error.URLError, OSError, ValueError) as exc:
        return f"unavailable ({exc})"
    mine = next((w for w in e["workers"] if w["worker_id"] == worker_id), None)
    return {"account_total_credits": e["total_credits"], "account_pending_credits": e["pending_credits"],
            "this_worker_tasks": mine["tasks"] if mine else 0,
            "this_worker_micro_credits": (mine["pending"] + mine["paid"]) if mine else 0}


def render(status: dict | None, earned: dict | str | None) -> str:
    if status is None:
        return "runsurge-worker: never started here (no status file)"
    state = status["state"] + (f" ({status['reason']})" if status.get("reason") else "")
    lines = [f"state:     {state}", f"worker:    {status.get('worker_id') or '(not registered)'}"]
    if status["state"] == "suspended":
        lines.append(f"tasks:     {'stopped where they are' if status.get('tasks_paused') else 'finishing'}; "
                     "no new work is taken")
    lines.append(f"host CPU used by other processes: {status.get('cpu_other_percent', 0):g}%")
    lines.append(f"schedule:  {status.get('schedule', 'always')}")
    caps = status.get("caps", {})
    lines.append("caps:      " + ", ".join([
        f"CPU {caps.get('max_cpu_percent') or 100:g}% of the host",
        f"memory {caps.get('memory_bytes', 0) >> 20} MiB", f"{caps.get('slots', 0)} slot(s)",
        f"download {_rate(caps.get('download_limit_bps', 0))}", f"upload {_rate(caps.get('upload_limit_bps', 0))}",
        f"cache {caps['cache_max_bytes'] >> 20} MiB" if caps.get("cache_max_bytes") else "cache unlimited"]))
    settings = status.get("settings", {})
    if settings:
        busy = settings.get("busy_cpu_percent", 0)
        when = f"when other processes use {busy:g}% of the host" if busy else "never for CPU use"
        lines.append(f"suspends:  {when}{', on battery' if settings.get('suspend_on_battery') else ''}; "
                     f"resumes after {settings.get('resume_after_idle_s', 0):g} s idle")
    tasks = status.get("tasks", [])
    lines.append(f"tasks ({len(tasks)}):" + ("" if tasks else " none"))
    lines += [f"  {t['task_id']}  {t['state']}  {t['memory_bytes'] >> 20} MiB" for t in tasks]
    if isinstance(earned, dict):
        lines.append(f"earned:    {earned['this_worker_micro_credits'] / 1e6:.6f} credits by this worker "
                     f"({earned['this_worker_tasks']} task(s)); account total {earned['account_total_credits']} "
                     f"({earned['account_pending_credits']} pending)")
    elif earned:
        lines.append(f"earned:    {earned}")
    return "\n".join(lines)


def _rate(bps: int) -> str:
    return f"{bps / (1 << 20):g} MiB/s" if bps else "unlimited"
