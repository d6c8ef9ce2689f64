"""The task's own interpreter INSIDE a guest, started before the task exists (stdlib only).

guestagent starts it as the unprivileged user, in the task cgroup, as `python3 -c <this file>
GO_FD READY_FD`, while the VM is readied for the pool. Once GO_FD says "m" (the share is
mounted) it warms up the path a task's start takes (TCG translates guest code afresh in every
restored VM, and per process), says "r" on READY_FD and blocks on GO_FD. At the task's start it
reads "SCRIPT\\0STDOUT\\0STDERR\\0ENV" up to EOF, enters the task folder, sends stdout/stderr to
the log files and runs SCRIPT as `python3 SCRIPT` would (with ENV, the job's packages, as if
PYTHONPATH=ENV): `__main__`, `sys.argv`, `sys.path[0]`,
`__file__`, tracebacks without this file's frames, exit status 1 on an uncaught exception. It
imports nothing a plain `python3 script.py` would not have.

The host sandboxes (warmpool.py: `process`, `bwrap`) pre-start the same file: they say "h" (no
share to warm up on) and add the task folder, its limits and its os.environ to the same message:
"SCRIPT\\0STDOUT\\0STDERR\\0ENV\\0FOLDER\\0AS,FSIZE\\0KEY=VALUE..." (limits in bytes, or empty for
none). Their interpreters start without ENV, as the guest's do (bwrap binds the tree in at ENV
beforehand); it reaches sys.path and PYTHONPATH here, the one way for every sandbox.
"""

import os
import sys

MOUNT = "/mnt/runsurge"
_SELF = "<string>"  # the file name Python gives `-c` code: our frames in a traceback


def _open_task_files(stdout: str, stderr: str, path: str) -> bytes | OSError:
    """Send stdout/stderr to the log files, read the script (or the error reading it)."""
    for fd, name in ((1, stdout), (2, stderr)):
        new = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(new, fd)
        os.close(new)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        return exc


def _warm_up() -> None:
    """Take the task's path once in this process (share I/O, compile, exec), leave nothing."""
    os.chdir(MOUNT)
    name = ".rs-warm-up"
    with open(name, "w") as f:
        f.write("import os\nx = [i * i for i in range(100)]\n")
    with open(name, "rb") as f:
        exec(compile(f.read(), os.path.abspath(name), "exec", dont_inherit=True), {})
    os.unlink(name)
    os.chdir("/")


def _run(script: str, path: str, source: bytes | OSError, env: str) -> None:
    # Clearing __main__ below also clears this file's globals: keep what is needed in locals.
    _sys, _os, own = sys, os, _SELF
    if isinstance(source, OSError):
        _sys.stderr.write(f"python3: can't open file {path!r}: [Errno {source.errno}] "
                          f"{source.strerror}\n")
        _sys.exit(2)
    namespace = _sys.modules["__main__"].__dict__
    fresh = {"__annotations__": {}} if "__annotations__" in namespace else {}  # as the interpreter made it
    namespace.clear()
    namespace.update(fresh)
    namespace.update(__name__="__main__", __doc__=None, __package__=None, __spec__=None,
                     __file__=path, __cached__=None, __builtins__=_sys.modules["builtins"],
                     __loader__=_sys.modules["_frozen_importlib_external"].SourceFileLoader(
                         "__main__", path))
    _sys.argv[:] = [script]
    _sys.orig_argv[1:] = [script]
    _sys.path[0] = _os.path.dirname(path)
    if env:  # where PYTHONPATH puts it: after the script's folder, before the standard library
        _sys.path.insert(1, env)
        _os.environ["PYTHONPATH"] = env  # and so for the interpreters the script starts
    _sys.path_importer_cache.pop("", None)
    try:
        exec(compile(source, path, "exec", dont_inherit=True), namespace)
    except SystemExit:
        raise  # the interpreter reports it exactly as for a script
    except BaseException as exc:  # noqa: BLE001 - printed like an uncaught exception
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == own:
            tb = tb.tb_next
        _sys.excepthook(type(exc), exc.with_traceback(tb), tb)  # the hook prints exc's own
        _sys.exit(1)


def _report_peak(_os=os, _error=Exception) -> None:
    """The script's memory peak, left where the worker reads it once this process has exited and
    before it reaps it: the process's name (/proc/PID/comm, "hwm<kB>"), kept by the kernel while
    it is a zombie. A script that allocates and exits between two of the worker's samples would
    escape them otherwise; an open pipe would be a file descriptor a cold `python3` does not have.
    No global or builtin name is looked up: the script's globals, which it may have filled with
    anything, are this function's globals now. (The script can rename itself too; the worker takes
    the larger of this and its own samples, so a lie counts only against the script.)"""
    try:
        f = _os.open("/proc/self/status", _os.O_RDONLY)
        status = _os.read(f, 8192)
        _os.close(f)
        at = status.find(b"VmHWM:")
        if at >= 0:
            f = _os.open("/proc/self/comm", _os.O_WRONLY)
            _os.write(f, b"hwm" + status[at + 6:status.find(b"kB", at)].strip())
            _os.close(f)
    except _error:  # the worker falls back to its own samples
        pass


def _set_limits(text: str) -> None:
    """The task's rlimits, set by the interpreter on itself before the task's code (as a
    preexec_fn would): a worker without CAP_SYS_RESOURCE cannot set them on a per-task uid."""
    if not text:
        return
    import resource

    for which, value in zip((resource.RLIMIT_AS, resource.RLIMIT_FSIZE), text.split(","), strict=True):
        resource.setrlimit(which, (int(value), int(value)))
    del sys.modules["resource"]  # a plain interpreter has not imported it


def _set_environment(entries: list[str]) -> None:
    """The task's environment, as if the interpreter had started with it (site's per-user paths
    are worked out again from the new HOME when asked)."""
    # The interpreter started with the task's locale settings: what it added to them at its start
    # (PEP 538's LC_CTYPE coercion) a cold start would have added too.
    coerced = os.environ.get("LC_CTYPE")
    os.environ.clear()
    os.environ.update(entry.split("=", 1) for entry in entries)
    if coerced is not None:
        os.environ.setdefault("LC_CTYPE", coerced)
    site = sys.modules.get("site")
    if site is not None:
        site.USER_BASE = site.USER_SITE = None


def _main() -> None:
    go_fd, ready_fd = int(sys.argv[1]), int(sys.argv[2])
    mode = os.read(go_fd, 1)  # the agent mounts the share meanwhile
    if mode == b"m":
        _warm_up()
    elif mode != b"h":
        sys.exit(0)
    os.write(ready_fd, b"r")
    os.close(ready_fd)
    chunks = []
    while chunk := os.read(go_fd, 65536):
        chunks.append(chunk)
    os.close(go_fd)
    if not chunks:  # the agent went away: there is no task
        sys.exit(0)
    script, stdout, stderr, env, *host = b"".join(chunks).decode().split("\0")
    os.chdir(host[0] if host else MOUNT)
    if host:
        _set_limits(host[1])
        _set_environment(host[2:])
    path = os.path.abspath(script)
    report = _report_peak if host else None  # a local: _run clears this module's globals
    try:
        _run(script, path, _open_task_files(stdout, stderr, path), env)
    finally:
        if report is not None:
            report()


_main()
