"""A small Python SDK over the master's HTTP API."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx

_CONFIG_HOME = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
CONFIG = Path(os.environ.get("RUNSURGE_CLIENT_CONFIG", _CONFIG_HOME / "runsurge" / "client.json"))
DEFAULT_URL = os.environ.get("RUNSURGE_MASTER_URL", "http://127.0.0.1:8080")
FINISHED = ("done", "failed", "cancelled")


class ApiError(RuntimeError):
    """The master said no: the message is its explanation (`status`: the HTTP status, 0 if none)."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


def _field(loc: list) -> str:
    """A validation error's location as the user knows it: `password`, not `body.password`."""
    return ".".join(map(str, loc[1:] if loc and loc[0] in ("body", "query", "path", "form") else loc)) or "request"


class Client:
    def __init__(self, url: str = DEFAULT_URL, access_token: str = "", refresh_token: str = ""):
        self.url = url.rstrip("/")
        self.access_token, self.refresh_token = access_token, refresh_token
        self.http = httpx.Client(base_url=self.url, timeout=httpx.Timeout(60, connect=10))

    # -- credentials ---------------------------------------------------------------------------
    @classmethod
    def from_saved(cls, url: str | None = None) -> Client:
        saved = json.loads(CONFIG.read_text()) if CONFIG.exists() else {}
        return cls(url or saved.get("url", DEFAULT_URL), saved.get("access_token", ""), saved.get("refresh_token", ""))

    def save(self) -> None:
        CONFIG.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(CONFIG, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"url": self.url, "access_token": self.access_token,
                       "refresh_token": self.refresh_token}, f)

    def register(self, email: str, password: str) -> dict:
        return self._json("POST", "/api/auth/register", auth=False, json={"email": email, "password": password})

    def login(self, email: str, password: str) -> None:
        tokens = self._json("POST", "/api/auth/login", auth=False, json={"email": email, "password": password})
        self.access_token, self.refresh_token = tokens["access_token"], tokens["refresh_token"]

    # -- requests ------------------------------------------------------------------------------
    def _request(self, method: str, path: str, auth: bool = True, **kw) -> httpx.Response:
        if auth and not self.access_token:
            raise ApiError("not logged in: run `runsurge login EMAIL` first")
        for again in (True, False):
            headers = {"authorization": f"Bearer {self.access_token}"} if auth else {}
            try:
                r = self.http.request(method, path, headers=headers, **kw)
            except httpx.HTTPError as e:
                raise ApiError(f"cannot reach the master at {self.url}: {e}") from None
            if r.status_code == 401 and auth and again and self.refresh_token:
                self._refresh()
                continue
            if r.status_code >= 400:
                try:
                    detail = r.json().get("detail", r.text)
                except ValueError:
                    detail = r.text
                if not isinstance(detail, str):  # a validation error: "password: String should have..."
                    detail = "; ".join(f"{_field(d.get('loc', []))}: {d.get('msg')}" for d in detail)
                hint = " (run `runsurge login`)" if r.status_code == 401 and auth else ""
                raise ApiError(f"{detail}{hint}", r.status_code)
            return r
        raise AssertionError("unreachable")

    def _refresh(self) -> None:
        try:
            tokens = self._json("POST", "/api/auth/refresh", auth=False, json={"refresh_token": self.refresh_token})
        except ApiError:
            self.refresh_token = ""
            return
        self.access_token, self.refresh_token = tokens["access_token"], tokens["refresh_token"]
        if CONFIG.exists():
            self.save()

    def _json(self, method: str, path: str, auth: bool = True, **kw):
        return self._request(method, path, auth=auth, **kw).json()

    # -- jobs ----------------------------------------------------------------------------------
    def submit(self, files: list[Path], spec: str | None = None, script: str | None = None, mode: str | None = None,
               chunks: int | None = None, aggregator: str | None = None, redundancy: int | None = None,
               memory: str | None = None, requirements: str | None = None) -> dict:
        """Without a spec the master plans the job itself (mode 'auto'); 'single' runs the script as
        one task as it is; 'group' runs it over each zip archive, then `aggregator` over the outputs.
        `redundancy=2` runs each task on workers of 2 different contributors and compares their outputs.
        `memory="2GiB"`: what every task needs (default: RunSurge's estimate).
        `requirements`: the text of a requirements.txt, the packages every task needs."""
        return self._multipart("/api/jobs", files, spec=spec, script=script, mode=mode, chunks=chunks,
                               aggregator=aggregator, redundancy=redundancy, memory=memory,
                               requirements=requirements)

    def plan(self, files: list[Path], **form: object) -> dict:
        """What `submit` with the same arguments would run, without running it."""
        return self._multipart("/api/plan", files, **form)

    def _multipart(self, path: str, files: list[Path], **form: object) -> dict:
        data = {k: str(v) for k, v in form.items() if v is not None}
        handles = [open(f, "rb") for f in files]
        try:
            parts = [("files", (f.name, h, "application/octet-stream")) for f, h in zip(files, handles, strict=True)]
            return self._json("POST", path, data=data, files=parts)
        finally:
            for h in handles:
                h.close()

    def submit_spec(self, spec_path: Path, redundancy: int | None = None, memory: str | None = None,
                    requirements: str | None = None) -> dict:
        """Upload a spec and every file it names (relative to the spec's folder)."""
        import tomllib
        try:
            doc = tomllib.loads(spec_path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ApiError(f"{spec_path}: not valid TOML: {e}") from None
        names = set()
        for t in doc.get("tasks", []):
            if isinstance(t, dict):
                names.add(t.get("script"))
                sources = (t.get("inputs") or {}).values()
                names |= {v for v in sources if isinstance(v, str) and not v.startswith("task:")}
        files = [spec_path.parent / n for n in sorted(n for n in names if isinstance(n, str))]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise ApiError(f"files named in the spec are missing: {', '.join(missing)}")
        return self.submit(files, spec=spec_path.read_text(), redundancy=redundancy, memory=memory,
                           requirements=requirements)

    def jobs(self) -> list[dict]:
        return self._json("GET", "/api/jobs")

    def job(self, job_id: str) -> dict:
        return self._json("GET", f"/api/jobs/{job_id}")

    def cancel(self, job_id: str) -> dict:
        """Stop a running job (its running tasks stop on their workers); returns the job."""
        return self._json("POST", f"/api/jobs/{job_id}/cancel")

    def delete(self, job_id: str) -> None:
        """Delete a finished job and its stored data (results, logs, uploads)."""
        self._request("DELETE", f"/api/jobs/{job_id}")

    def wait(self, job_id: str, progress: Callable[[dict], None] | None = None, poll_s: float = 0.5,
             timeout_s: float | None = None) -> dict:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = self.job(job_id)
            if progress:
                progress(job)
            if job["status"] in FINISHED:
                return job
            if deadline and time.monotonic() > deadline:
                raise ApiError(f"job {job_id} still {job['status']} after {timeout_s:g}s")
            time.sleep(poll_s)

    def logs(self, task_id: str, stream: str = "stdout") -> str:
        """A task's whole log so far (read on while the master returns more)."""
        parts, offset = [], 0
        while True:
            text, offset, _, _ = self.task_log(task_id, stream, offset)
            if not text:
                return "".join(parts)
            parts.append(text)

    def task_log(self, task_id: str, stream: str = "stdout", offset: int = 0) -> tuple[str, int, bool, str]:
        """A task's log from byte `offset`: (text, the next offset, whether it may still grow, its status).
        While the task runs the master reads it from the worker running it."""
        r = self._request("GET", f"/api/tasks/{task_id}/logs", params={"stream": stream, "offset": offset})
        return (r.text, int(r.headers.get("x-log-offset", offset + len(r.content))),
                r.headers.get("x-task-running") == "1", r.headers.get("x-task-status", ""))

    def me(self) -> dict:
        return self._json("GET", "/api/me")

    def forget(self) -> bool:
        """Log out: drop the saved tokens, keep the master's URL (False: no tokens were saved)."""
        had = bool(self.access_token or self.refresh_token)
        self.access_token = self.refresh_token = ""
        if CONFIG.exists():
            self.save()
        return had

    def results(self, job_id: str) -> list[dict]:
        return self._json("GET", f"/api/jobs/{job_id}/results")

    def download_results(self, job_id: str, out_dir: Path) -> list[Path]:
        """Each result as OUT/<file>, or OUT/<task>/<file> when two tasks' results share a name."""
        results = self.results(job_id)
        clash = len({r["name"] for r in results}) < len(results)
        written = []
        for r in results:
            dest = out_dir / r["task"] / r["name"] if clash else out_dir / r["name"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            with self.http.stream("GET", f"/api/jobs/{job_id}/results/{r['task']}/{r['name']}",
                                  headers={"authorization": f"Bearer {self.access_token}"}) as resp:
                if resp.status_code != 200:
                    raise ApiError(f"download of {r['name']} failed: HTTP {resp.status_code}")
                with open(dest, "wb") as f:
                    for block in resp.iter_bytes(1 << 20):
                        f.write(block)
            written.append(dest)
        return written

    def locations(self, job_id: str) -> list[dict]:
        return self._json("GET", f"/api/jobs/{job_id}/locations")

    def workers(self) -> list[dict]:
        return self._json("GET", "/api/workers")
