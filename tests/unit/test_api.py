"""The HTTP API in process, on a real SQLite database and object store (no workers needed)."""

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from runsurge_master.api import create_app
from runsurge_master.config import load_config
from runsurge_master.main import build
from runsurge_master.models import DataObject, Job, Task

SPEC = """
[[tasks]]
name = "a"
script = "s.py"
inputs = { "in.txt" = "data.txt" }
outputs = ["out.txt"]
[[tasks]]
name = "b"
script = "s.py"
inputs = { "in.txt" = "task:a/out.txt" }
"""


@pytest.fixture
def api(tmp_path):
    sv = build(load_config(home=tmp_path / "m"))
    with TestClient(create_app(sv)) as client:
        yield client, sv


def login(client, email="u@x.org"):
    client.post("/api/auth/register", json={"email": email, "password": "horse-42-ok"})
    r = client.post("/api/auth/login", json={"email": email, "password": "horse-42-ok"})
    assert r.status_code == 200
    return {"authorization": f"Bearer {r.json()['access_token']}"}


def files(**named):
    return [("files", (name, data, "application/octet-stream")) for name, data in named.items()]


def counts(sv):
    with sv.db.session() as s:
        rows = tuple(s.scalar(select(func.count()).select_from(m)) for m in (Job, Task, DataObject))
    stored = [p for p in sv.store.root.rglob("*") if p.is_file()]
    return rows, stored


def test_accounts(api):
    client, _ = api
    assert client.post("/api/auth/register", json={"email": "a@b.co", "password": "horse-42-ok"}).status_code == 201
    assert client.post("/api/auth/register", json={"email": "A@b.co", "password": "horse-42-ok"}).status_code == 409
    assert client.post("/api/auth/register", json={"email": "bad", "password": "horse-42-ok"}).status_code == 422
    assert client.post("/api/auth/login", json={"email": "a@b.co", "password": "wrong-password"}).status_code == 401
    tokens = client.post("/api/auth/login", json={"email": "a@b.co", "password": "horse-42-ok"}).json()
    refreshed = client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    # an access token is not a refresh token, and vice versa
    assert client.post("/api/auth/refresh", json={"refresh_token": tokens["access_token"]}).status_code == 401
    assert client.get("/api/jobs", headers={"authorization": f"Bearer {tokens['refresh_token']}"}).status_code == 401


def test_submit_builds_the_dag(api):
    client, sv = api
    h = login(client)
    r = client.post("/api/jobs", headers=h, data={"spec": SPEC}, files=files(**{"s.py": b"print(1)", "data.txt": b"x"}))
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["tasks_total"] == 2 and [t["status"] for t in job["tasks"]] == ["ready", "pending"]
    assert job["tasks"][1]["depends_on"] == ["a"]
    single = client.post("/api/jobs", headers=h, data={"mode": "single"},
                         files=files(**{"job.py": b"print(2)", "d.csv": b"1,2"}))
    assert single.status_code == 201 and single.json()["tasks"][0]["inputs"].keys() == {"d.csv"}


@pytest.mark.parametrize("spec, uploads, message", [
    (SPEC, {"s.py": b"x", "data.txt": b"x", "extra.bin": b"x"}, "not used by any task"),
    (SPEC.replace("task:a/out.txt", "task:b/in.txt"), {"s.py": b"x", "data.txt": b"x"}, "does not declare"),
    (SPEC, {"s.py": b"\xff\xfe\x00binary", "data.txt": b"x"}, "not a UTF-8 text file"),
    (SPEC, {"../s.py": b"x", "data.txt": b"x"}, "not a valid file name"),
    (None, {"a.py": b"x", "b.py": b"x"}, "send a job spec"),
    (None, {"job.py": b"print(1)"}, "no main block"),  # automatic mode needs to know what to run
    (None, {"job.py": b"def f(:\n"}, "line 1"),
    ("[[tasks]\n", {"s.py": b"x"}, "not valid TOML"),
])
def test_bad_submissions_are_refused_and_store_nothing(api, spec, uploads, message):
    client, sv = api
    h = login(client)
    before = counts(sv)
    data = {"spec": spec} if spec else {}
    r = client.post("/api/jobs", headers=h, data=data, files=files(**uploads))
    assert r.status_code == 400 and message in r.json()["detail"]
    assert "Traceback" not in r.text
    assert counts(sv) == before


def test_oversized_uploads_are_refused_and_store_nothing(api):
    client, sv = api
    sv.cfg.max_upload_bytes = 1 << 20
    h = login(client)
    before = counts(sv)
    r = client.post("/api/jobs", headers=h, data={"mode": "single"},
                    files=files(**{"job.py": b"print(1)", "big.bin": b"x" * (1 << 20)}))
    assert r.status_code == 413 and r.json()["detail"] == "uploads larger than 1 MiB in total"
    assert counts(sv) == before


@pytest.mark.parametrize("field, value, says", [("chunks", "0", "must be at least 1"),
                                                ("chunks", "many", "must be a whole number")])
def test_a_form_field_out_of_range_is_said_in_words(api, field, value, says):
    client, sv = api
    h = login(client)
    before = counts(sv)
    r = client.post("/api/jobs", headers=h, data={"mode": "chunks", field: value},
                    files=files(**{"job.py": b"print(1)", "d.csv": b"1\n2\n"}))
    assert r.status_code == 422 and [(e["loc"][-1], e["msg"]) for e in r.json()["detail"]] == [(field, says)]
    assert counts(sv) == before


def test_a_job_id_prefix_in_any_case_finds_the_job_and_a_too_short_one_says_so(api):
    client, _ = api
    h = login(client)
    job = client.post("/api/jobs", headers=h, data={"mode": "single"}, files=files(**{"job.py": b"print(1)"})).json()
    assert client.get(f"/api/jobs/{job['id'][:6].upper()}", headers=h).json()["id"] == job["id"]
    r = client.get(f"/api/jobs/{job['id'][:3]}", headers=h)
    assert r.status_code == 404
    assert r.json()["detail"] == "no such job (a prefix of a job id needs at least 4 characters)"


def test_users_see_only_their_own_jobs(api):
    client, _ = api
    alice, bob = login(client, "alice@x.org"), login(client, "bob@x.org")
    job = client.post("/api/jobs", headers=alice, data={"mode": "single"},
                      files=files(**{"job.py": b"print(1)"})).json()
    assert client.get(f"/api/jobs/{job['id']}", headers=alice).status_code == 200
    assert client.get(f"/api/jobs/{job['id']}", headers=bob).status_code == 404
    assert client.get(f"/api/jobs/{job['id']}/results", headers=bob).status_code == 404
    assert client.get(f"/api/tasks/{job['tasks'][0]['id']}/logs", headers=bob).status_code == 404
    assert client.get("/api/jobs", headers=bob).json() == []


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic dXNlcjpwYXNz"])
def test_every_private_route_needs_a_token(api, header):
    client, _ = api
    h = {"authorization": header} if header else {}
    for method, path in [("GET", "/api/jobs"), ("GET", "/api/jobs/x"), ("GET", "/api/workers"),
                         ("GET", "/api/tasks/x/logs"), ("GET", "/api/jobs/x/results"), ("GET", "/api/me")]:
        assert client.request(method, path, headers=h).status_code == 401, path
    assert client.post("/api/jobs", headers=h, files=files(**{"job.py": b"1"})).status_code == 401


def test_failed_logins_are_rate_limited_per_address(api):
    client, sv = api
    client.post("/api/auth/register", json={"email": "v@x.org", "password": "horse-42-ok"})
    for _ in range(sv.cfg.login_attempts_per_minute):
        assert client.post("/api/auth/login", json={"email": "v@x.org", "password": "guess-guess"}).status_code == 401
    r = client.post("/api/auth/login", json={"email": "v@x.org", "password": "horse-42-ok"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0  # even the right password waits


def test_security_headers_and_closed_cors(api):
    client, _ = api
    r = client.get("/api/health", headers={"origin": "https://evil.example"})
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"
    assert "access-control-allow-origin" not in r.headers
    pre = client.options("/api/jobs", headers={"origin": "https://evil.example",
                                               "access-control-request-method": "POST"})
    assert "access-control-allow-origin" not in pre.headers


def test_every_route_refuses_expired_forged_and_foreign_tokens(api):
    """The HTTP half of the authorization matrix: every route, every bad credential, no change."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from runsurge_master.auth import TokenService
    client, sv = api
    owner = login(client, "owner@x.org")
    job = client.post("/api/jobs", headers=owner, data={"mode": "single"},
                      files=files(**{"job.py": b"print(1)"})).json()
    task = job["tasks"][0]["id"]
    other = login(client, "other@x.org")
    user_id = sv.tokens.verify(owner["authorization"][7:], "access").sub
    bad = {
        "expired": sv.tokens.issue(user_id, "access", -5),
        "forged": TokenService(Ed25519PrivateKey.generate()).issue(user_id, "access", 60),
        "refresh-as-access": sv.tokens.issue(user_id, "refresh", 60),
        "worker token": sv.tokens.issue("w", "worker", 60, owner=user_id),
    }
    routes = [r for r in sv_routes(client) if r[1].startswith("/api/") and r[1] not in PUBLIC]
    assert len(routes) >= 8
    before = counts(sv)
    for method, path in routes:
        url = path.replace("{job_id}", job["id"]).replace("{task_id}", task).replace(
            "{task_name}", "main").replace("{file_name}", "x")
        for what, token in bad.items():
            r = client.request(method, url, headers={"authorization": f"Bearer {token}"})
            assert r.status_code == 401, (method, url, what, r.status_code)
        if "{job_id}" in path or "{task_id}" in path:  # another user's valid token: as if it did not exist
            r = client.request(method, url, headers=other)
            assert r.status_code in (404, 422), (method, url, r.status_code)
    assert counts(sv) == before


PUBLIC = {"/api/health", "/api/join", "/api/auth/register", "/api/auth/login", "/api/auth/refresh"}


def sv_routes(client):
    return [(m, r.path) for r in client.app.routes for m in getattr(r, "methods", ()) if m in ("GET", "POST")]


def test_job_views_cost_the_same_queries_for_any_number_of_tasks(api):
    """No query per task (the CLI polls a job while it runs; a job may have thousands of tasks)."""
    from sqlalchemy import event

    client, sv = api
    h = login(client)
    statements = []
    event.listen(sv.db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))

    def cost(n):
        spec = "".join(f'[[tasks]]\nname = "t{i}"\nscript = "s.py"\noutputs = ["o.txt"]\n'
                       f'inputs = {{ "in.txt" = "data.txt" }}\n' for i in range(n))
        statements.clear()
        r = client.post("/api/jobs", headers=h, files=files(**{"s.py": b"pass\n", "data.txt": b"x"}),
                        data={"spec": spec})
        assert r.status_code == 201 and len(r.json()["tasks"]) == n
        submit = len(statements)
        statements.clear()
        assert len(client.get(f"/api/jobs/{r.json()['id']}", headers=h).json()["tasks"]) == n
        get = len(statements)
        statements.clear()
        assert client.get("/api/jobs", headers=h).status_code == 200
        return submit, get, len(statements)

    small, large = cost(2), cost(40)
    assert large[1:] == small[1:], (small, large)  # (the list now has two jobs)
    assert large[0] <= small[0], (small, large)  # creating the rows is not a query per row either


def test_a_login_for_an_unknown_account_does_the_same_password_work(api, monkeypatch):
    """Unknown emails are checked against a stand-in hash (one scrypt, like a wrong password), so how
    long a login takes does not tell whether the account exists."""
    import hashlib

    from runsurge_master import auth
    client, _ = api
    client.post("/api/auth/register", json={"email": "k@x.org", "password": "horse-42-ok"})
    calls = []
    real = hashlib.scrypt
    monkeypatch.setattr(auth.hashlib, "scrypt", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    for email in ("k@x.org", "nobody@x.org", "not\u200ban@x.org"):
        calls.clear()
        assert client.post("/api/auth/login", json={"email": email, "password": "wrong-one-x"}).status_code == 401
        assert len(calls) == 1, email
