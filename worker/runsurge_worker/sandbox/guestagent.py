"""The worker's agent INSIDE a guest: runs as root there, stdlib only (the guest's Python 3.11).

Started over SSH while the VM is being readied for the pool (`agent.GuestAgent`), as
`python3 -c <this file> <guestlauncher.py> MOUNT_PID`, so it always matches the worker's version;
the same SSH command starts the share's mount (MOUNT_PID, or "-") in the background first, so the
mount's round trips to smbd overlap Python's start. The agent readies the clone (fresh entropy,
clock, identity, sysctls), pre-starts the task's interpreter (guestlauncher) as the unprivileged
user inside the task cgroup, waits for the mount, and then until that interpreter is warm and
blocked on its go pipe; only then does the VM join the pool.
The task's start is then one message on an SSH channel that is already open: no sshd session,
shell, setpriv or interpreter start under TCG on the task's path.

Protocol: one JSON object per line on stdin, one reply per line on stdout.
  {"seed", "time", "machine_id", "boot_id", "hostname", "sysctl"}  (each optional)
              -> {"ready": PID, "phases": {STEP: SECONDS_SINCE_BOOT}}
  {"op": "go", "script", "stdout", "stderr", "memory", "pids", "quota", "time", "env"}
              -> {"pid", "cpu_us", "stat", "env_mount_s"}  (cgroup CPU and /proc/PID/stat at the start)
              env: null, or {"dev", "dir"}: the job's packages, an ext4 disc the worker inserted,
              mounted read-only at dir (unless "mount" did it already) and put on the task's
              sys.path; null unmounts a disc mounted ahead
  {"op": "mount", "dev", "dir"} -> {"env_mount_s"}  (while the VM waits in the pool: the disc of the
              environment the worker expects next, so that task's start has no mount to wait for)
  {"op": "unmount"} -> {"unmounted": bool}  (before the worker changes the disc)
  {"op": "probe", "du"} -> {"status", "stat", "exit": [STATUS, WALL_S] | null, "oom", "cpu_us", "peak", "du"}
  {"op": "kill"}  -> {"killed": true, "cpu_us", "peak"}  (every task process, then a sync of the share)
  {"op": "detach"} -> {"detached": true}  the worker is about to save the VM (a checkpoint): the task's
              writes are synced to the share and the agent stops reading its SSH channel (whose TCP
              connection does not survive the restore) and serves connections on AGENT_SOCKET instead,
              one at a time, each through a relay an SSH command starts (agent.RELAY_SOURCE)
  {"op": "attach", "time"} -> {"attached": PID, "share_s"}  first line on such a connection: the clock is set
              again, the share is reconnected (share_s: how long it took), then the task thawed
Errors reply {"error": TEXT}. User code cannot reach this process: it is root's, and the task
only ever holds its own end of the go pipe.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

CG = "/sys/fs/cgroup/runsurge-task"
MOUNT = "/mnt/runsurge"
STATE = "/run/runsurge"  # root's (0700)
BOOT_ID = "/proc/sys/kernel/random/boot_id"
CIFS_PROC = "/proc/fs/cifs"
MOUNT_ERR = f"{STATE}/mount.err"  # the mount's stderr (agent.agent_command)
AGENT_SOCKET = f"{STATE}/agent.sock"  # where a detached agent is reached again (root only: STATE is 0700)
USER_ENV = ["HOME=/home/runsurge", "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"]
# The task's identity: the unprivileged user, no new privileges, no capabilities at all.
SETPRIV = ["setpriv", "--reuid=runsurge", "--regid=runsurge", "--init-groups", "--no-new-privs",
           "--inh-caps=-all", "--bounding-set=-all"]


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _cg_value(name: str, key: str) -> int:
    for line in _read(f"{CG}/{name}").splitlines():
        k, _, v = line.partition(" ")
        if k == key:
            return int(v)
    return 0


def _cg_peak() -> int:
    """The most memory the whole task (every process of its cgroup) held at once."""
    text = _read(f"{CG}/memory.peak").strip()
    return int(text) if text.isdigit() else 0


def _freeze(frozen: bool) -> None:
    """Freeze (or thaw) every process of the task cgroup, and wait until the kernel says it is so."""
    _write(f"{CG}/cgroup.freeze", "1" if frozen else "0")
    deadline = time.monotonic() + 10
    while _cg_value("cgroup.events", "frozen") != int(frozen) and time.monotonic() < deadline:
        time.sleep(0.01)


def _share_back(timeout: float = 60.0) -> None:
    """After a restore the share's SMB connection is a new one, to a new smbd: until the cifs client
    has reconnected, calls that reach the server fail (EAGAIN, and EBADF on the handles of the old
    session). Reconnect here, not in the task: a round trip no client cache can answer (a new file
    created, written, fsync'ed, removed), until it works twice in a row. Raises when the share
    never answers: the worker then gives the task back instead of thawing it onto a dead mount."""
    deadline, ok = time.monotonic() + timeout, 0
    probe = os.path.join(MOUNT, ".rs-share-probe")
    while ok < 2:
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, b"x")
                os.fsync(fd)
            finally:
                os.close(fd)
            os.unlink(probe)
            ok += 1
        except OSError as exc:
            ok = 0
            try:
                os.unlink(probe)  # left by a try that failed after its create
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the share did not answer after the restore: {exc}") from None
            time.sleep(0.1)


def _du(top: str) -> int:
    """Bytes in the task folder as the guest sees it (its cifs cache may hold unsent data)."""
    total, stack = 0, [top]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                pass
    return total


def make_own(cfg: dict) -> None:
    """Make this clone of a shared snapshot its own: entropy, clock, identity, sysctls."""
    if "seed" in cfg:  # the snapshot's RNG state is every clone's: mix in host entropy, reseed
        with open("/dev/urandom", "wb") as f:
            f.write(bytes.fromhex(cfg["seed"]))
            f.flush()
            fcntl.ioctl(f, 0x5207)  # RNDRESEEDCRNG
    if "time" in cfg:  # and its clock stopped when the snapshot was saved
        time.clock_settime(time.CLOCK_REALTIME, cfg["time"])
    if "machine_id" in cfg:
        _write("/etc/machine-id", cfg["machine_id"] + "\n")
    if "boot_id" in cfg:
        # The kernel's boot_id was drawn once, at the snapshot's boot, and cannot be written: show
        # every reader of its only path a per-clone one instead.
        _write(f"{STATE}/boot_id", cfg["boot_id"] + "\n")
        subprocess.run(["mount", "--bind", f"{STATE}/boot_id", BOOT_ID], check=True)
    if "hostname" in cfg:
        old = socket.gethostname()
        socket.sethostname(cfg["hostname"])
        _write("/etc/hostname", cfg["hostname"] + "\n")
        _write("/etc/hosts", _read("/etc/hosts").replace(f" {old}\n", f" {cfg['hostname']}\n"))
    for key, value in cfg.get("sysctl", {}).items():
        _write("/proc/sys/" + key.replace(".", "/"), str(value))


def hide_share_details() -> None:
    """The cifs client's /proc files (DebugData names the server, its shares and sessions) are
    readable by anyone: cover them with an empty read-only folder, as container runtimes mask /proc."""
    if os.path.isdir(CIFS_PROC):
        subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=0,mode=0555", "none", CIFS_PROC], check=True)


def wait_for_mount(pid: int | None) -> None:
    if pid is None:
        return
    _, status = os.waitpid(pid, 0)
    if status:
        raise RuntimeError(f"mount failed: {_read(MOUNT_ERR).strip()[-300:]}")


MS_RDONLY, MS_NOSUID, MS_NODEV = 1, 2, 4
MNT_DETACH = 2
ENV_MEDIUM_WAIT_S = 5.0


def mount_environment(dev: str, target: str) -> None:
    """Mount the environment's disc read-only (a syscall, not /bin/mount: an exec costs ~0.1 s
    under TCG). The drive may report its new medium only after a moment: retry until it does."""
    os.makedirs(target, exist_ok=True)
    libc = ctypes.CDLL(None, use_errno=True)
    deadline = time.monotonic() + ENV_MEDIUM_WAIT_S
    while libc.mount(dev.encode(), target.encode(), b"ext4", MS_RDONLY | MS_NOSUID | MS_NODEV, None):
        err = ctypes.get_errno()
        if err not in (errno.ENOMEDIUM, errno.EAGAIN, errno.EBUSY) or time.monotonic() > deadline:
            raise OSError(err, f"mount {dev} at {target}: {os.strerror(err)}")
        time.sleep(0.005)


def unmount_environment(target: str) -> None:
    """Detach the disc's mount: nothing of the task has it open yet, and the disc is read-only."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.umount2(target.encode(), MNT_DETACH):
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


def _since_boot() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _join_task_cgroup() -> None:  # in the child, before exec: every byte it uses is charged
    _write(f"{CG}/cgroup.procs", "0")


class Agent:
    def __init__(self, launcher_source: str, mount_pid: int | None, phases: dict):
        go_r, self.go_w = os.pipe()
        ready_r, ready_w = os.pipe()
        self.err_path = f"{STATE}/launcher.err"
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [*SETPRIV, "env", "-i", *USER_ENV, "python3", "-c", launcher_source,
                 str(go_r), str(ready_w)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, cwd="/",
                pass_fds=(go_r, ready_w), preexec_fn=_join_task_cgroup)
        os.close(go_r)
        os.close(ready_w)
        try:
            # The interpreter starts (CPU in the guest) while the mount waits on smbd.
            wait_for_mount(mount_pid)
            hide_share_details()
            phases["mount"] = _since_boot()
            os.write(self.go_w, b"m")  # the share is there: the launcher may warm up on it
            with os.fdopen(ready_r, "rb") as ready:
                if ready.read(1) != b"r":
                    raise RuntimeError(f"task interpreter did not start: "
                                       f"{_read(self.err_path)[-500:]}")
        except BaseException:
            self.proc.kill()
            raise
        self.started: float | None = None
        self.exit: list | None = None
        self.env_dir: str | None = None  # where an environment's disc is mounted, if one is
        self.listener: socket.socket | None = None  # once detached (a checkpoint)
        threading.Thread(target=self._wait, daemon=True).start()
        # Run the go path once with neutral values: under TCG a clone translates code on its
        # first run, so the task's own start should not be that first run.
        self._limit(max_pids="max", memory="max", quota="max")
        time.clock_settime(time.CLOCK_REALTIME, time.time())
        self.probe()

    def _wait(self) -> None:
        code = self.proc.wait()
        end = time.monotonic()
        # the shell convention: 128 + signal for a killed process (the memory limit's SIGKILL...)
        self.exit = [128 - code if code < 0 else code, end - (self.started or end)]

    @staticmethod
    def _limit(max_pids: str, memory: str, quota: str) -> None:
        _write(f"{CG}/memory.max", memory)
        try:
            _write(f"{CG}/memory.swap.max", "0")
        except OSError:
            pass  # no swap accounting in this kernel
        _write(f"{CG}/pids.max", max_pids)
        _write(f"{CG}/cpu.max", f"{quota} 100000")

    def go(self, msg: dict) -> dict:
        self._limit(str(msg["pids"]), str(msg["memory"]),
                    "max" if msg["quota"] is None else str(msg["quota"]))
        time.clock_settime(time.CLOCK_REALTIME, msg["time"])  # clones restore a stale clock
        env = msg.get("env")
        t0 = time.monotonic()
        premounted = bool(env) and self.env_dir == env["dir"]
        if env and not premounted:
            self.mount(env)
        elif not env:
            self.unmount()
        reply = {"pid": self.proc.pid, "cpu_us": _cg_value("cpu.stat", "usage_usec"),
                 "stat": _read(f"/proc/{self.proc.pid}/stat"), "env_mount_s": time.monotonic() - t0,
                 "env_premounted": premounted}
        self.started = time.monotonic()
        # NUL-separated names, then EOF: the launcher needs no parser, names need no escaping.
        names = [msg["script"], msg["stdout"], msg["stderr"], env["dir"] if env else ""]
        os.write(self.go_w, "\0".join(names).encode())
        os.close(self.go_w)
        return reply

    def mount(self, msg: dict) -> dict:
        t0 = time.monotonic()
        if self.env_dir is not None:
            raise RuntimeError(f"an environment is mounted at {self.env_dir} already")
        mount_environment(msg["dev"], msg["dir"])
        self.env_dir = msg["dir"]
        return {"env_mount_s": time.monotonic() - t0}

    def unmount(self, msg: dict | None = None) -> dict:
        if self.env_dir is None:
            return {"unmounted": False}
        unmount_environment(self.env_dir)
        self.env_dir = None
        return {"unmounted": True}

    def probe(self, msg: dict | None = None) -> dict:
        pid = self.proc.pid
        return {"status": _read(f"/proc/{pid}/status"), "stat": _read(f"/proc/{pid}/stat"),
                "exit": self.exit, "oom": _cg_value("memory.events", "oom_kill"),
                "cpu_us": _cg_value("cpu.stat", "usage_usec"), "peak": _cg_peak(),
                # walking the share costs SMB round trips the task's own start would wait behind
                "du": _du(MOUNT) if (msg or {}).get("du", True) else 0}

    def detach(self, msg: dict | None = None) -> dict:
        # The SSH session that started the agent ends with the worker: outlive it. (Its hang-up
        # is the only signal it could send; writes to its closed pipe raise, and are not made.)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        # The task stands still from now until the worker is back (attach): what it computes while
        # the VM is saved, and later while the restored VM waits for SSH, would count for no one.
        _freeze(True)
        os.sync()  # what the task wrote so far is on the host's disk before the VM is saved
        if self.listener is None:
            if os.path.exists(AGENT_SOCKET):
                os.unlink(AGENT_SOCKET)
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(AGENT_SOCKET)
            os.chmod(AGENT_SOCKET, 0o600)
            self.listener.listen(1)
        return {"detached": True}

    def attach(self, msg: dict) -> dict:
        time.clock_settime(time.CLOCK_REALTIME, msg["time"])  # it stood still while the VM was saved
        t0 = time.monotonic()
        _share_back()
        share_s = time.monotonic() - t0
        _freeze(False)
        return {"attached": self.proc.pid, "share_s": share_s}

    def kill(self, msg: dict | None = None) -> dict:
        # Every process of the task, children that outlived the script (setsid) included, before its
        # outputs are read: none may still be writing them.
        _write(f"{CG}/cgroup.kill", "1")
        # push what the task wrote through the share: the VM is destroyed next
        os.sync()
        return {"killed": True, "cpu_us": _cg_value("cpu.stat", "usage_usec"), "peak": _cg_peak()}


def main() -> None:
    out = sys.stdout
    # Where a clone's readying goes (seconds since boot: clones restore the snapshot's boot time).
    stat = _read("/proc/self/stat").rsplit(")", 1)[1].split()
    phases = {"exec": int(stat[19]) / os.sysconf("SC_CLK_TCK"), "python": _since_boot()}
    try:
        cfg = json.loads(sys.stdin.readline())
        phases["setup_read"] = _since_boot()
        make_own(cfg)
        phases["own"] = _since_boot()
        agent = Agent(sys.argv[1], None if sys.argv[2] == "-" else int(sys.argv[2]), phases)
        phases["launcher"] = _since_boot()
    except Exception as exc:  # noqa: BLE001 - reported to the worker, which drops the VM
        out.write(json.dumps({"error": f"guest setup: {type(exc).__name__}: {exc}"}) + "\n")
        out.flush()
        return
    out.write(json.dumps({"ready": agent.proc.pid, "phases": phases}) + "\n")
    out.flush()
    if not serve(agent, sys.stdin, out):
        return  # the worker closed the channel: its VM is destroyed
    while True:  # detached: the worker comes back through the relay, after each restore
        conn, _ = agent.listener.accept()
        with conn, conn.makefile("r") as inp, conn.makefile("w") as reply_out:
            try:
                serve(agent, inp, reply_out)
            except OSError:  # the relay went away mid-reply: wait for the next one
                pass


def serve(agent: Agent, inp, out) -> bool:
    """Answer requests from `inp` until it ends (False) or the agent detaches (True)."""
    ops = {"go": agent.go, "probe": agent.probe, "kill": agent.kill, "mount": agent.mount,
           "unmount": agent.unmount, "detach": agent.detach, "attach": agent.attach}
    for line in inp:
        op = None
        try:
            msg = json.loads(line)
            op = msg["op"]
            reply = ops[op](msg)
        except Exception as exc:  # noqa: BLE001
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
        if op == "detach" and "error" not in reply:
            return True
    return False


if __name__ == "__main__":
    main()
