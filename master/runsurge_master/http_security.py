"""HTTP hardening: security headers on every response, CORS closed unless configured, rate limits per
client address (failed logins, sign-ups), request bodies capped while they stream in (UploadGate and the
body limits), validation errors that quote at most a short excerpt of the input, and the rule that
users see only their own jobs."""

from __future__ import annotations

import threading
import time
from collections import deque

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from runsurge_master.auth import TokenError, TokenService
from runsurge_master.config import MasterConfig
from runsurge_master.models import Job

# The API docs page (api_docs.py) starts Swagger UI with an inline script; its assets are ours too.
_CSP_DOCS = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
             "img-src 'self' data:")
_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"


JSON_BODY_LIMIT = 64 << 10  # every request body but a submission's (credentials, tokens: tiny)
FORM_SLACK = 2 << 20  # a submission's form fields (the spec: up to 1 MiB) and multipart framing
UPLOAD_PATHS = ("/api/jobs", "/api/plan")
EXCERPT = 80  # characters of a rejected value an error may quote


def upload_limit(cfg: MasterConfig) -> int:
    """The most bytes a submission's body may have (its files: max_upload_bytes in total)."""
    return cfg.max_upload_bytes + FORM_SLACK


def install(app: FastAPI, cfg: MasterConfig, tokens: TokenService) -> None:
    app.add_middleware(UploadGate, tokens=tokens, per_user=cfg.max_concurrent_uploads)

    @app.exception_handler(RequestValidationError)
    async def short_validation_errors(request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's default echoes each bad value whole (a 50 MiB string came back in the 422)."""
        detail = [{"loc": list(e.get("loc", ())), "msg": _message(e)[:200], "type": e.get("type", ""),
                   **({"input": _excerpt(e["input"])} if "input" in e else {})} for e in exc.errors()[:20]]
        return JSONResponse({"detail": detail}, status_code=422)

    origins = [o.strip() for o in cfg.cors_origins.split(",") if o.strip()]
    if origins:  # closed by default: browsers refuse cross-origin calls unless the operator opens them
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                           allow_headers=["authorization", "content-type"])

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        h = response.headers
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("Referrer-Policy", "no-referrer")
        h.setdefault("Content-Security-Policy", _CSP_DOCS if request.url.path == "/docs" else _CSP)
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


def _message(error: dict) -> str:
    """Pydantic's message, for people: a pattern mismatch says what was expected, not the regex."""
    if error.get("type") == "string_pattern_mismatch":
        field = str((error.get("loc") or ("",))[-1])
        return "is not an email address" if field == "email" else "is not in the expected format"
    ctx = error.get("ctx") or {}
    for key, words in (("ge", "must be at least"), ("le", "must be at most"), ("gt", "must be more than"),
                       ("lt", "must be less than")):
        if error.get("type", "").endswith(("_than_equal", "_than")) and key in ctx:  # not "Input should be..."
            return f"{words} {ctx[key]}"
    if error.get("type") == "int_parsing":
        return "must be a whole number"
    return str(error.get("msg", ""))


def _excerpt(value: object) -> object:
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= EXCERPT else text[:EXCERPT] + f"… ({len(text)} characters)"


class UploadGate:
    """In front of the submission routes, before a byte of the body is read: the caller must hold a
    valid access token (401 otherwise: no anonymous uploads to temporary disk) and may have at most
    `per_user` submissions streaming at once (429). Their size is capped by the route's body limit,
    which cuts the stream off as soon as it passes it."""

    def __init__(self, app, tokens: TokenService, per_user: int):
        self.app, self.tokens, self.per_user = app, tokens, per_user
        self._active: dict[str, int] = {}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        upload = scope["method"] == "POST" and scope["path"] in UPLOAD_PATHS
        send = _closing(send, always=upload)
        if not upload:
            return await self.app(scope, receive, send)
        auth = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        try:
            user = self.tokens.verify(auth.removeprefix("Bearer ").strip(), "access").sub
        except TokenError as e:
            return await JSONResponse({"detail": f"invalid token: {e}"}, status_code=401,
                                      headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
        if self._active.get(user, 0) >= self.per_user:
            return await JSONResponse({"detail": f"at most {self.per_user} uploads at once"}, status_code=429,
                                      headers={"Retry-After": "5"})(scope, receive, send)
        self._active[user] = self._active.get(user, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:
            self._active[user] -= 1
            if not self._active[user]:
                del self._active[user]


def _closing(send, always: bool):
    """Ask the server to close the connection after a refusal of a body (413) or after any answer to a
    submission: else it would go on reading (and discarding) the rest of a body it refused."""
    async def wrapped(message) -> None:
        if message["type"] == "http.response.start" and (always or message["status"] == 413):
            message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
        await send(message)
    return wrapped


MIN_PREFIX = 4  # hex digits of a job id that may stand for it (`runsurge status bd46d5`)


def own_job(s: Session, job_id: str, user: str) -> Job:
    """The user's job by its id or a unique prefix of it (a deleted job is gone)."""
    job = s.get(Job, job_id)
    prefix = job_id.lower()  # as pasted from anywhere: ids are lower-case hex
    if job is None and MIN_PREFIX <= len(prefix) < 32 and all(c in "0123456789abcdef" for c in prefix):
        found = s.scalars(select(Job).where(Job.owner_id == user, Job.status != "deleted",
                                            Job.id.startswith(prefix, autoescape=True)).limit(2)).all()
        if len(found) > 1:
            raise HTTPException(400, f"job id prefix {job_id!r} matches several of your jobs: give more digits")
        job = found[0] if found else None
    if job is None or job.owner_id != user or job.status == "deleted":  # someone else's job looks like no job
        short = f" (a prefix of a job id needs at least {MIN_PREFIX} characters)" if len(job_id) < MIN_PREFIX else ""
        raise HTTPException(404, f"no such job{short}")
    return job
