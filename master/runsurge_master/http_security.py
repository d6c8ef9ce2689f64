"""HTTP hardening: security headers on every response, CORS closed unless configured, a login rate
limit per client address and per account, and the rule that users see only their own jobs."""

from __future__ import annotations

import threading
import time
from collections import deque

from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.orm import Session

from runsurge_master.config import MasterConfig
from runsurge_master.models import Job

# The API docs page loads its script and styles from a CDN; every other page is served by us alone.
_CSP_DOCS = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
             "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com")
_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"


def install(app: FastAPI, cfg: MasterConfig) -> None:
    origins = [o.strip() for o in cfg.cors_origins.split(",") if o.strip()]
    if origins:  # closed by default: browsers refuse cross-origin calls unless the operator opens them
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                           allow_headers=["authorization", "content-type"])

    @app.middleware("http")
    async def headers(request: Request, call_next):  # noqa: ANN001, ANN202
        response = await call_next(request)
        h = response.headers
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("Referrer-Policy", "no-referrer")
        h.setdefault("Content-Security-Policy", _CSP_DOCS if request.url.path in ("/docs", "/redoc") else _CSP)
        if request.url.path.startswith("/api/"):
            h.setdefault("Cache-Control", "no-store")
        return response


class LoginLimiter:
    """At most `limit` failed logins per `window_s` for one address and for one account (so neither
    a single host nor a botnet against one account can guess passwords at speed)."""

    def __init__(self, limit: int, window_s: float = 60.0):
        self.limit, self.window_s = limit, window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def retry_after(self, address: str, account: str) -> int:
        """Seconds to wait, or 0 when a login may be tried now."""
        now = time.monotonic()
        with self._lock:
            waits = [self.window_s - (now - q[0]) for q in (self._recent(f"a:{address}", now),
                                                            self._recent(f"u:{account}", now))
                     if len(q) >= self.limit]
        return int(max(waits, default=0)) + (1 if waits else 0)

    def failed(self, address: str, account: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in (f"a:{address}", f"u:{account}"):
                self._recent(key, now).append(now)
            if len(self._failures) > 100_000:  # bound memory under a spray of addresses
                self._failures = {k: q for k, q in self._failures.items() if q and now - q[-1] < self.window_s}


def own_job(s: Session, job_id: str, user: str) -> Job:
    job = s.get(Job, job_id)
    if job is None or job.owner_id != user:  # someone else's job looks like no job at all
        raise HTTPException(404, "no such job")
    return job
