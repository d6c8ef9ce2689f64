"""HTTP hardening: security headers on every response, CORS closed unless configured, rate limits per
client address (failed logins, sign-ups), and the rule that users see only their own jobs."""

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
    """At most `limit` failures per `window_s` from one client address: that address then waits. Never
    per account: anyone could then lock the owner out (OWASP ASVS 2.2.1); a botnet guessing one
    account is held back by each address's budget and by the password rules (accounts.py)."""

    def __init__(self, limit: int, window_s: float = 60.0):
        self.limit, self.window_s = limit, window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def retry_after(self, address: str) -> int:
        """Seconds to wait, or 0 when this address may try now."""
        now = time.monotonic()
        with self._lock:
            q = self._recent(address, now)
            if len(q) < self.limit:
                return 0
            return int(self.window_s - (now - q[0])) + 1

    def failed(self, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._recent(address, now).append(now)
            if len(self._failures) > 100_000:  # bound memory under a spray of addresses
                self._failures = {k: q for k, q in self._failures.items() if q and now - q[-1] < self.window_s}


def own_job(s: Session, job_id: str, user: str) -> Job:
    job = s.get(Job, job_id)
    if job is None or job.owner_id != user:  # someone else's job looks like no job at all
        raise HTTPException(404, "no such job")
    return job
