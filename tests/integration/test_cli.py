"""The `runsurge` CLI as a user runs it (subprocesses, no terminal) against real master and worker
processes: versions, logging in and out, machine-readable output, job-id prefixes, logs of a whole
job, results of a job that did not succeed, Ctrl-C while waiting, and error texts for people."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from localnet import EMAIL, PASSWORD

BIN = Path(sys.executable).parent


def run(net, tmp_path, *args: str, stdin: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    e = {**os.environ, "RUNSURGE_CLIENT_CONFIG": str(tmp_path / "client.json"), **(env or {})}
    e.pop("RUNSURGE_PASSWORD", None)  # as a user without it set
    r = subprocess.run([sys.executable, "-m", "runsurge_client", "--master", net.url, *args], input=stdin,
                       capture_output=True, text=True, env=e, timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def test_every_program_has_a_version():
    for program in ("runsurge", "runsurge-master", "runsurge-worker", "runsurge-pki"):
        r = subprocess.run([str(BIN / program), "--version"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stdout.strip() == f"{program} 0.1.0", (program, r.stdout, r.stderr)


def test_login_whoami_json_prefixes_logs_results_and_errors(net, tmp_path):
    # No terminal and no password: one clear line, not getpass's traceback.
    r = run(net, tmp_path, "login", EMAIL)
    assert r.returncode == 1 and r.stderr.strip() == ("runsurge: no password: pipe it with --password-stdin, "
                                                      "set RUNSURGE_PASSWORD, or run in a terminal")
    r = run(net, tmp_path, "login", EMAIL, "--password-stdin", stdin="wrong-password\n")
    assert r.returncode == 1 and r.stderr.strip() == "runsurge: wrong email or password"
    r = run(net, tmp_path, "login", EMAIL, "--password-stdin", stdin=PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    assert run(net, tmp_path, "whoami").stdout.strip() == f"{EMAIL} on {net.url}"

    # Validation errors name the field the user typed, in words, not pydantic's location or regex.
    r = run(net, tmp_path, "register", "not-an-email", "--password-stdin", stdin="x\n")
    assert r.returncode == 1 and r.stderr.strip() == "runsurge: email: is not an email address"

    # A job: one task that succeeds, then one that fails after printing.
    (tmp_path / "ok.py").write_text("print('hello from ok')\nopen('out.txt', 'w').write('1')\n")
    (tmp_path / "bad.py").write_text("print('about to fail')\nraise SystemExit('bad input')\n")
    (tmp_path / "job.toml").write_text('[[tasks]]\nname = "ok"\nscript = "ok.py"\noutputs = ["out.txt"]\n'
                                       '[[tasks]]\nname = "bad"\nscript = "bad.py"\n'
                                       'inputs = { "x" = "task:ok/out.txt" }\n')
    r = run(net, tmp_path, "submit", "--spec", str(tmp_path / "job.toml"), "--json")
    assert r.returncode == 0, r.stderr
    job = json.loads(r.stdout)
    assert job["status"] == "running" and job["tasks_total"] == 2
    prefix = job["id"][:6]
    r = run(net, tmp_path, "wait", prefix)
    assert r.returncode == 1  # the job failed
    status = json.loads(run(net, tmp_path, "status", prefix, "--json").stdout)
    assert status["id"] == job["id"] and status["status"] == "failed"
    assert [j["id"] for j in json.loads(run(net, tmp_path, "status", "--json").stdout)] == [job["id"]]
    workers = json.loads(run(net, tmp_path, "workers", "--json").stdout)
    assert len(workers) == 2 and all(w["online"] for w in workers)

    # The logs of the whole job, each task's headed by its name; a failed job has no results to fetch.
    out = run(net, tmp_path, "logs", prefix).stdout
    assert "==> ok (stdout, done) <==\nhello from ok\n" in out and "about to fail" in out
    r = run(net, tmp_path, "result", prefix, "-o", str(tmp_path / "res"))
    assert r.returncode == 1 and f"job {job['id']} is failed, so it has no results" in r.stderr
    assert not (tmp_path / "res").exists()

    # A running job: result says so; logs --follow prints each task's output as it ends, then stops.
    (tmp_path / "slow.py").write_text("import time\ntime.sleep(1.5)\nprint('slow done')\n")
    r = run(net, tmp_path, "submit", str(tmp_path / "slow.py"), "--single")
    slow = r.stdout.split()[-1]
    r = run(net, tmp_path, "result", slow)
    assert r.returncode == 1 and "is running, so it has no results" in r.stderr
    r = run(net, tmp_path, "logs", slow[:8], "--follow")
    assert r.returncode == 0 and r.stdout.endswith("slow done\n"), r

    # A spec with a misspelt key names it; a script that does not parse is not told to try --single.
    (tmp_path / "typo.toml").write_text('[[tasks]]\nname = "a"\nscirpt = "ok.py"\n')
    r = run(net, tmp_path, "submit", "--spec", str(tmp_path / "typo.toml"))
    assert r.returncode == 1 and "unknown key(s) scirpt" in r.stderr
    (tmp_path / "broken.py").write_text("def f(:\n")
    (tmp_path / "data.csv").write_text("a\n1\n")
    r = run(net, tmp_path, "submit", str(tmp_path / "broken.py"), "--data", str(tmp_path / "data.csv"))
    assert r.returncode == 1 and "syntax error" in r.stderr and "--single" not in r.stderr

    # Logging out: the next command says to log in.
    assert run(net, tmp_path, "logout").stdout.strip() == f"logged out of {net.url}"
    r = run(net, tmp_path, "whoami")
    assert r.returncode == 1 and "not logged in" in r.stderr


def test_empty_lists_and_ctrl_c_while_waiting(net, tmp_path):
    net.register("newcomer@example.org")
    assert run(net, tmp_path, "login", "newcomer@example.org", "--password-stdin", stdin=PASSWORD).returncode == 0
    assert run(net, tmp_path, "status").stdout.startswith("no jobs yet")
    assert run(net, tmp_path, "workers").stdout.startswith("you have no workers")
    (tmp_path / "long.py").write_text("import time\ntime.sleep(600)\n")
    env = {**os.environ, "RUNSURGE_CLIENT_CONFIG": str(tmp_path / "client.json")}
    p = subprocess.Popen([sys.executable, "-m", "runsurge_client", "--master", net.url, "submit",
                          str(tmp_path / "long.py"), "--single", "--wait"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    job_id = p.stdout.readline().strip()  # printed before the waiting starts
    deadline = time.monotonic() + 30
    while "running" not in run(net, tmp_path, "status", job_id).stdout.splitlines()[0]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130 and "Traceback" not in err
    assert (f"job {job_id} keeps running. Resume with `runsurge wait {job_id[:8]}`, stop it with "
            f"`runsurge cancel {job_id[:8]}`") in err
    assert run(net, tmp_path, "cancel", job_id).returncode == 0
