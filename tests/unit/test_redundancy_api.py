"""The `redundancy` option over HTTP, in every submission mode and in a job spec; bad values are
refused with a clear 4xx and store nothing."""

import io
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_api import counts, files, login

from runsurge_master.api import create_app
from runsurge_master.config import load_config
from runsurge_master.jobspec import SpecError, parse_spec
from runsurge_master.main import build

SPEC = """
[[tasks]]
name = "a"
script = "s.py"
outputs = ["out.txt"]
"""
AUTO = Path(__file__).resolve().parents[2] / "examples" / "auto"


def archive() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("n.txt", "1")
    return buf.getvalue()


@pytest.fixture
def api(tmp_path):
    sv = build(load_config(home=tmp_path / "m"))
    with TestClient(create_app(sv)) as client:
        yield client, sv


def test_the_spec_key_is_parsed_and_checked():
    assert parse_spec(SPEC, {"s.py"}, 1, 1, 10).redundancy is None
    assert parse_spec("redundancy = 2\n" + SPEC, {"s.py"}, 1, 1, 10).redundancy == 2
    for bad in ("3", "0", '"2"', "2.0", "true"):
        with pytest.raises(SpecError, match="redundancy must be 1"):
            parse_spec(f"redundancy = {bad}\n" + SPEC, {"s.py"}, 1, 1, 10)


@pytest.mark.parametrize("form, upload", [
    ({"spec": SPEC}, {"s.py": b"open('out.txt', 'w').write('1')"}),
    ({"mode": "single"}, {"job.py": b"print(1)", "d.txt": b"x"}),
    ({"mode": "auto"}, {n: (AUTO / n).read_bytes() for n in ("zscore.py", "measurements.csv")}),
    ({"mode": "group", "script": "count.py", "aggregator": "merge.py"},
     {"count.py": b"open('result.csv', 'w').write('1')", "merge.py": b"print(2)", "p1.zip": archive()}),
])
def test_every_mode_takes_the_redundancy_field(api, form, upload):
    client, _ = api
    h = login(client)
    r = client.post("/api/jobs", headers=h, data={**form, "redundancy": "2"}, files=files(**upload))
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["redundancy"] == 2 and {t["redundancy"] for t in job["tasks"]} == {2}
    assert all(t["replicas"] == [] for t in job["tasks"])
    assert any("redundancy 2" in line for line in job["explanation"])
    plain = client.post("/api/jobs", headers=h, data=form, files=files(**upload)).json()
    assert plain["redundancy"] == 1 and all(t["replicas"] is None for t in plain["tasks"])
    listed = {j["id"]: j["redundancy"] for j in client.get("/api/jobs", headers=h).json()}
    assert listed == {job["id"]: 2, plain["id"]: 1}


def test_a_spec_may_ask_for_a_quorum_itself(api):
    client, _ = api
    h = login(client)
    upload = files(**{"s.py": b"print(1)"})
    r = client.post("/api/jobs", headers=h, data={"spec": "redundancy = 2\n" + SPEC}, files=upload)
    assert r.status_code == 201 and r.json()["redundancy"] == 2
    r = client.post("/api/jobs", headers=h, data={"spec": "redundancy = 2\n" + SPEC, "redundancy": "2"}, files=upload)
    assert r.status_code == 201 and r.json()["redundancy"] == 2


@pytest.mark.parametrize("form, status, message", [
    ({"spec": SPEC, "redundancy": "3"}, 400, "redundancy must be 1 (each task runs once) or 2"),
    ({"spec": SPEC, "redundancy": "0"}, 400, "redundancy must be 1"),
    ({"spec": SPEC, "redundancy": "x"}, 422, "must be a whole number"),
    ({"spec": "redundancy = 3\n" + SPEC}, 400, "job spec: redundancy must be 1"),
    ({"spec": "redundancy = 2\n" + SPEC, "redundancy": "1"}, 400, "redundancy is 2 in the job spec but 1"),
    ({"mode": "single", "redundancy": "5"}, 400, "redundancy must be 1"),
])
def test_bad_redundancy_is_refused_and_stores_nothing(api, form, status, message):
    client, sv = api
    h = login(client)
    before = counts(sv)
    r = client.post("/api/jobs", headers=h, data=form, files=files(**{"s.py": b"print(1)"}))
    assert r.status_code == status, r.text
    assert message in str(r.json()["detail"])
    assert counts(sv) == before == ((0, 0, 0), [])
    assert client.post("/api/plan", headers=h, data=form, files=files(**{"s.py": b"print(1)"})).status_code == status
