"""A job's packages, end to end on real processes (offline): a wheelhouse built in the test, the
master resolving from it, a bwrap worker building the environment once and reusing it, the task
importing the package and unable to write into it; a wheel whose bytes were changed is refused."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from wheels import make_wheel, run_twice

from localnet import EMAIL, PASSWORD, LocalNet

SCRIPT = """
import tinypkg
try:
    open(tinypkg.__file__, "a").write("# changed")
    wrote = "wrote"
except OSError as e:
    wrote = type(e).__name__
open("out.txt", "w").write(f"{tinypkg.VALUE} {wrote}")
"""


@pytest.fixture
def envnet(request, tmp_path):
    src, house = tmp_path / "src", tmp_path / "house"
    make_wheel(src, house, "tinypkg", "1.0")
    make_wheel(src, house, "otherpkg", "2.0")
    # Not under tmp_path: pytest's base temp dir is private (0700), and a root worker runs each
    # bwrap task under a uid of its own, which must reach the task's folder and the environment.
    root = Path(tempfile.mkdtemp(prefix="rs-envnet-"))
    root.chmod(0o755)
    n = LocalNet(root / "net", sandbox="bwrap", slots=1, heartbeat_s=0.5,
                 extra_env={"RUNSURGE_WHEELHOUSE_DIR": str(house), "RUNSURGE_PACKAGE_INDEX_URL": "",
                             "RUNSURGE_MAX_ATTEMPTS": "2"})
    try:
        n.start(workers=getattr(request, "param", 1))
        yield n
    finally:
        n.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_the_environment_is_built_once_imported_and_read_only(envnet, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    outs = run_twice(envnet, script, "tinypkg==1.0\n", tmp_path)
    assert outs == ["tinypkg 1.0 OSError"] * 2 or all(o.startswith("tinypkg 1.0 ") and "wrote" not in o
                                                       for o in outs), outs


@pytest.mark.parametrize("envnet", [0], indirect=True)  # the worker starts after the wheel is changed
def test_a_wheel_whose_bytes_do_not_match_is_refused_by_the_worker(envnet, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    client = envnet.client()
    job_id = client.submit([script], mode="single", requirements="tinypkg")["id"]  # resolved and stored
    store = envnet.root / "master" / "objects"
    wheels = [p for p in store.glob("*/*") if p.parent.name != "incoming" and p.read_bytes()[:2] == b"PK"]
    assert len(wheels) == 1
    wheels[0].write_bytes(wheels[0].read_bytes() + b"tampered")
    envnet.start_worker(0)
    deadline = time.monotonic() + 60
    while "corrupt" not in (client.job(job_id)["tasks"][0]["error"] or ""):
        assert time.monotonic() < deadline, client.job(job_id)
        time.sleep(0.1)
    (task,) = client.job(job_id)["tasks"]
    assert task["status"] != "done" and f"data {wheels[0].name[:12]} from master is corrupt" in task["error"]
    assert not re.search(r"environment (built|reused)", envnet.log("worker0"))  # the task never ran


def stored_wheels(net) -> list[Path]:
    return [p for p in (net.root / "master" / "objects").glob("*/*")
            if p.parent.name != "incoming" and p.read_bytes()[:2] == b"PK"]


@pytest.mark.parametrize("envnet", [0], indirect=True)  # submission only: no worker needed
def test_a_script_importing_a_module_nobody_provides_is_refused_and_nothing_is_stored(envnet, tmp_path):
    script = tmp_path / "by_region.py"
    script.write_text("import tinypkg\nimport nosuchmod\n")
    env = {**os.environ, "RUNSURGE_CLIENT_CONFIG": str(tmp_path / "client.json")}

    def cli(*args, stdin=""):
        return subprocess.run([sys.executable, "-m", "runsurge_client", "--master", envnet.url, *args], input=stdin,
                              capture_output=True, text=True, env=env, timeout=120)
    assert cli("login", EMAIL, "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    r = cli("submit", str(script), "--single")  # no requirements at all
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip() == (
        "runsurge: by_region.py imports 'tinypkg' (line 1), which is neither in the worker image, nor among the "
        "job's files, nor in the job's requirements; list tinypkg in a requirements.txt and submit with "
        "--requirements requirements.txt")
    # The requirements resolve (their wheel is stored while resolving) but do not provide nosuchmod.
    (tmp_path / "requirements.txt").write_text("tinypkg\n")
    r = cli("submit", str(script), "--single", "--requirements", str(tmp_path / "requirements.txt"))
    assert r.returncode != 0 and r.stderr.count("\n") == 1, r.stderr
    assert "by_region.py imports 'nosuchmod' (line 2)" in r.stderr and "nor in the job's requirements (tinypkg)" \
        in r.stderr, r.stderr
    client = envnet.client()
    assert client.jobs() == [] and stored_wheels(envnet) == []
    # Once the script imports only what its requirements provide, the same submission is accepted.
    script.write_text("import tinypkg\n")
    r = cli("submit", str(script), "--single", "--requirements", str(tmp_path / "requirements.txt"), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["environment_id"] and len(stored_wheels(envnet)) == 1


def test_each_task_runs_with_its_own_requirements(envnet, tmp_path):
    probe = ("import importlib.util\n"
             "seen = [m for m in ('tinypkg', 'otherpkg') if importlib.util.find_spec(m)]\n"
             "open('{out}', 'w').write(' '.join(seen) + ' ' + {mod}.VALUE)\n")
    (tmp_path / "a.py").write_text("import tinypkg\n" + probe.format(out="a.txt", mod="tinypkg"))
    (tmp_path / "b.py").write_text("import otherpkg\n" + probe.format(out="b.txt", mod="otherpkg"))
    (tmp_path / "job.toml").write_text(
        'name = "two-envs"\nrequirements = ["tinypkg"]\n'
        '[[tasks]]\nname = "a"\nscript = "a.py"\noutputs = ["a.txt"]\n'
        '[[tasks]]\nname = "b"\nscript = "b.py"\noutputs = ["b.txt"]\nrequirements = ["otherpkg==2.0"]\n')
    client = envnet.client()
    job = client.wait(client.submit_spec(tmp_path / "job.toml")["id"], timeout_s=120)
    assert job["status"] == "done", job
    envs = {t["name"]: t["environment"]["id"] for t in job["tasks"]}
    assert job["environment_id"] == envs["a"] and envs["b"] and envs["a"] != envs["b"]
    results = {p.name: p.read_text() for p in client.download_results(job["id"], tmp_path / "out")}
    assert results == {"a.txt": "tinypkg tinypkg 1.0", "b.txt": "otherpkg otherpkg 2.0"}
    assert len(re.findall(r"environment built env=", envnet.log("worker0"))) == 2
