"""Hostile scripts stay inside their VM: the host and other tasks are unaffected, the run fails
or reports clearly. Each probe script records what it managed to do in `report.json`."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import uuid

import pytest

pytestmark = pytest.mark.vm


def _report(task_dir):
    return json.loads((task_dir / "report.json").read_text())


PROBE_HELPERS = '''
import json, os, socket
report = {}
def attempt(name, fn):
    try:
        report[name] = "OK: " + repr(fn())[:200]
    except Exception as exc:
        report[name] = "denied: " + type(exc).__name__
def save():
    json.dump(report, open("report.json", "w"), indent=1)
'''


def test_cannot_read_host_files(backend, run_task, tmp_path):
    secret = "host-secret-" + uuid.uuid4().hex
    hidden = secret[::-1]  # the script must not carry the secret itself
    host_file = tmp_path / "secret.txt"
    host_file.write_text(secret)
    sibling = backend.task_root / ("other-" + uuid.uuid4().hex)
    sibling.mkdir()
    (sibling / "secret.txt").write_text(secret)
    try:
        result, task_dir = run_task(PROBE_HELPERS + f'''
attempt("host_abs", lambda: open({str(host_file)!r}).read())
attempt("sibling", lambda: open("../{sibling.name}/secret.txt").read())
attempt("share_parent", lambda: os.listdir("/mnt/runsurge/.."))
attempt("root_ssh", lambda: os.listdir("/root/.ssh"))
attempt("run_state", lambda: os.listdir("/run/runsurge"))
found = []
for top in ("/mnt", "/tmp", "/home", "/srv", "/media"):
    for d, _, files in os.walk(top):
        for f in files:
            try:
                if {hidden!r}[::-1] in open(os.path.join(d, f), errors="ignore").read(4096):
                    found.append(os.path.join(d, f))
            except OSError:
                pass
report["found"] = found
save()
''')
        assert result.exit_code == 0, (task_dir / "error.err").read_text()
        report = _report(task_dir)
        for key in ("host_abs", "sibling", "root_ssh", "run_state"):
            assert report[key].startswith("denied"), report
        # /mnt/runsurge/.. is the guest's own /mnt: only the mount point itself is in it
        assert report["share_parent"] == "OK: ['runsurge']"
        assert report["found"] == []
        assert secret not in (task_dir / "log.out").read_text()
    finally:
        shutil.rmtree(sibling)


def test_cannot_connect_anywhere(run_task):
    # A listener on the host's loopback: in user-mode networking 10.0.2.2 would lead to it.
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    server.settimeout(0.2)
    accepted = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                accepted.append(server.accept())
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        result, task_dir = run_task(PROBE_HELPERS + f'''
def connect(addr):
    s = socket.create_connection(addr, timeout=3)
    s.close()
    return "connected"
attempt("host_listener", lambda: connect(("10.0.2.2", {port})))
attempt("host_ssh", lambda: connect(("10.0.2.2", 22)))
attempt("smb_forwarder", lambda: connect(("10.0.2.100", 445)))
attempt("slirp_dns", lambda: connect(("10.0.2.3", 53)))
attempt("outside", lambda: connect(("192.0.2.1", 80)))  # TEST-NET-1: no route in the guest
attempt("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("10.0.2.2", {port})))
attempt("raw", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
save()
''')
    finally:
        stop.set()
        thread.join()
        server.close()
    assert result.exit_code == 0, (task_dir / "error.err").read_text()
    report = _report(task_dir)
    assert all(v.startswith("denied") for v in report.values()), report
    assert accepted == []


def test_cannot_write_outside_its_folder(backend, run_task):
    before = set(os.listdir(backend.task_root))
    result, task_dir = run_task(PROBE_HELPERS + '''
for path in ("/etc/evil", "/usr/lib/python3/dist-packages/evil.py", "/root/evil", "/mnt/evil",
             "/mnt/runsurge/../evil", "/run/runsurge/exit", "/sys/fs/cgroup/runsurge-task/memory.max"):
    attempt(path, lambda p=path: open(p, "w").write("x"))
attempt("chmod_share_root", lambda: os.chmod("/mnt/runsurge", 0o777))
attempt("mount", lambda: os.system("mount -t tmpfs none /mnt 2>/dev/null") or "ran")
attempt("inside", lambda: open("mine.txt", "w").write("ok"))
save()
''')
    assert result.exit_code == 0, (task_dir / "error.err").read_text()
    report = _report(task_dir)
    inside = report.pop("inside")
    assert inside.startswith("OK"), report
    report.pop("chmod_share_root")  # cifs presents modes only; the host folder is unchanged
    assert report.pop("mount") != "OK: 'ran'"
    assert all(v.startswith("denied") for v in report.values()), report
    assert (task_dir / "mine.txt").read_text() == "ok"
    # Nothing new beside its own folder (the pool refilling in the background adds `.slot-<vm>` folders).
    new = {n for n in set(os.listdir(backend.task_root)) - before if not n.startswith(".slot-")}
    assert new == {task_dir.name}


def test_fork_bomb_is_contained_and_other_tasks_run(run_task):
    host_pids = len(os.listdir("/proc"))
    results = {}

    def bomb():
        results["bomb"] = run_task((
            "import os\n"
            "while True:\n"
            "    try:\n"
            "        os.fork()\n"
            "    except OSError:\n"
            "        pass\n"), timeout_s=20, cpus=1)

    thread = threading.Thread(target=bomb)
    thread.start()
    normal, normal_dir = run_task("print(sum(range(1000)))\n")
    thread.join()
    assert normal.exit_code == 0 and (normal_dir / "log.out").read_text() == "499500\n"
    bomb_result, _ = results["bomb"]
    assert bomb_result.failure == "timeout after 20s" and not bomb_result.infrastructure_error
    assert len(os.listdir("/proc")) < host_pids + 50  # the bomb's processes never reach the host


def test_filling_the_guest_disk_fails_the_task_only(backend, run_task):
    free_before = shutil.disk_usage(backend.work_dir).free
    result, task_dir = run_task((
        "chunk = b'x' * (8 << 20)\n"
        "with open('/tmp/fill', 'wb') as f:\n"
        "    while True:\n"
        "        f.write(chunk)\n"), timeout_s=600)
    assert result.exit_code == 1 and result.failure is None
    assert "No space left on device" in (task_dir / "error.err").read_text()
    # the guest disk is a bounded overlay, deleted with the VM
    assert shutil.disk_usage(backend.work_dir).free > free_before - (256 << 20)


def test_filling_the_share_hits_the_output_cap(run_task):
    result, task_dir = run_task((
        "chunk = b'x' * (1 << 20)\n"
        "with open('big.bin', 'wb') as f:\n"
        "    while True:\n"
        "        f.write(chunk)\n"
        "        f.flush()\n"), output_bytes=20 << 20, timeout_s=300)
    assert result.failure == "output larger than 20971520 bytes"
    assert result.exit_code is None
    # detected within a sample or two: the guest's cache holds little unsent data
    assert (task_dir / "big.bin").stat().st_size < (20 + 64) << 20


def test_memory_bomb_is_killed_at_its_limit(run_task):
    result, _ = run_task((
        "blocks = []\n"
        "while True:\n"
        "    blocks.append(bytearray(b'x') * (16 << 20))\n"), memory_bytes=256 << 20)
    assert result.failure == "memory limit exceeded (256 MiB)"
    assert result.exit_code is None and not result.infrastructure_error
    # The cgroup caps the task's own memory; VmHWM also counts ~5 MiB of the interpreter's
    # shared, file-backed pages (python3 and its libraries, in the guest's page cache).
    assert result.mem_peak_bytes <= (256 + 8) << 20


def test_a_task_is_metered_and_stopped_as_a_whole_and_sees_nothing_of_the_host(run_task):
    """A child that outlives the script (setsid) holding 160 MiB counts in the peak (the task's
    cgroup is metered, not the main PID), and is killed before the outputs are read (it would go on
    appending to them). The share's size is a fixed one, not the host's; the cifs client's /proc files
    (server, shares, sessions) show nothing."""
    host = shutil.disk_usage("/")
    result, task_dir = run_task(PROBE_HELPERS + '''
import subprocess, sys, time
child = """
import os, time
hog = bytearray(160 << 20)
for i in range(0, len(hog), 4096):
    hog[i] = 1
open("ready", "w").close()
while True:
    with open("child.txt", "a") as f:
        f.write("x" * 1000)
    time.sleep(0.01)
"""
subprocess.Popen([sys.executable, "-c", child], start_new_session=True)
while not os.path.exists("ready"):
    time.sleep(0.05)
time.sleep(0.5)
st = os.statvfs(".")
report["share_total"] = st.f_blocks * st.f_frsize
attempt("debugdata", lambda: open("/proc/fs/cifs/DebugData").read())
attempt("cifs_dir", lambda: os.listdir("/proc/fs/cifs"))
save()
''', memory_bytes=512 << 20)
    assert result.exit_code == 0, result
    assert result.mem_peak_bytes >= 160 << 20, result.mem_peak_bytes
    report = _report(task_dir)
    assert report["share_total"] != host.total and report["share_total"] == 1 << 40
    assert not report["debugdata"].startswith("OK") and report["cifs_dir"] in ("OK: []", ) or \
        report["cifs_dir"].startswith("denied"), report
    size = (task_dir / "child.txt").stat().st_size
    assert size > 0 and (task_dir / "child.txt").stat().st_size == size  # nobody writes it any more
