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
    namespace.clear()
    namespace.update(__name__="__main__", __doc__=None, __package__=None, __spec__=None,
                     __file__=path, __cached__=None, __builtins__=_sys.modules["builtins"],
                     __loader__=_sys.modules["_frozen_importlib_external"].SourceFileLoader(
                         "__main__", path))
    _sys.argv[:] = [script]
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


def _main() -> None:
    go_fd, ready_fd = int(sys.argv[1]), int(sys.argv[2])
    if os.read(go_fd, 1) != b"m":  # the agent mounts the share meanwhile
        sys.exit(0)
    _warm_up()
    os.write(ready_fd, b"r")
    os.close(ready_fd)
    chunks = []
    while chunk := os.read(go_fd, 65536):
        chunks.append(chunk)
    os.close(go_fd)
    if not chunks:  # the agent went away: there is no task
        sys.exit(0)
    script, stdout, stderr, env = b"".join(chunks).decode().split("\0")
    os.chdir(MOUNT)
    path = os.path.abspath(script)
    _run(script, path, _open_task_files(stdout, stderr, path), env)


_main()
