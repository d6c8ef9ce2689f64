"""Schemathesis fuzzes every HTTP route from the API's own OpenAPI spec, logged in as a real user:
no 5xx response and no traceback in any body, whatever it sends."""

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from runsurge_master.api import create_app
from runsurge_master.config import load_config
from runsurge_master.main import build

_state: dict = {}


def _app():
    import tempfile
    from pathlib import Path
    sv = build(load_config(home=Path(tempfile.mkdtemp(prefix="runsurge-fuzz-"))))
    app = create_app(sv)
    client = TestClient(app)
    client.post("/api/auth/register", json={"email": "fuzz@x.org", "password": "horse-42-ok"})
    token = client.post("/api/auth/login", json={"email": "fuzz@x.org", "password": "horse-42-ok"}).json()
    _state["headers"] = {"authorization": f"Bearer {token['access_token']}"}
    return app


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    response = case.call(headers=_state["headers"])
    assert response.status_code < 500, f"{case.method} {case.path}: {response.status_code} {response.text[:300]}"
    assert "Traceback" not in response.text


@pytest.mark.parametrize("path", ["/api/jobs/../../etc/passwd", "/api/jobs/%2e%2e%2f%2e%2e/results",
                                  "/api/jobs/x/results/..%2f..%2f/etc%2fpasswd", "/api/tasks/%00/logs"])
def test_odd_paths_never_reach_the_file_system(path):
    client = TestClient(_app())
    r = client.get(path, headers=_state["headers"])
    assert r.status_code in (404, 400, 422) and "root:" not in r.text
