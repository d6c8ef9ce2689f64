"""`runsurge`: submit Python jobs to a RunSurge master and fetch their results."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from importlib.metadata import version
from pathlib import Path

from runsurge_client.api import ApiError, Client

RUNNING = "running"
OPEN = ("pending", "ready", "assigned", RUNNING)  # a task's states before it ends


def _password(args: argparse.Namespace) -> str:
    """From --password-stdin, RUNSURGE_PASSWORD or a prompt; never a traceback without a terminal."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise ApiError("--password-stdin: no password on standard input")
        return password
    if os.environ.get("RUNSURGE_PASSWORD"):
        return os.environ["RUNSURGE_PASSWORD"]
    if not sys.stdin.isatty():
        raise ApiError("no password: pipe it with --password-stdin, set RUNSURGE_PASSWORD, or run in a terminal")
    return getpass.getpass("password: ")


def _json_out(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _bar(job: dict) -> None:
    total, done = job["tasks_total"], job["tasks_done"]
    width = 30
    filled = width * done // total if total else width
    why = f"  {job['waiting'][0]}" if job.get("waiting") and job["status"] == "running" else ""
    line = f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} tasks  {job['status']:<8}{why[:90]:<92}"
    sys.stderr.write(line)
    if job["status"] in ("done", "failed", "cancelled"):
        sys.stderr.write("\n")
    sys.stderr.flush()


def _print_plan(plan: dict) -> None:
    print(f"mode: {plan['mode']}")
    for line in plan["explanation"]:
        print(f"  {line}")
    print(f"{len(plan['tasks'])} task(s):")
    for t in plan["tasks"]:
        after = f"  after {', '.join(t['depends_on'])}" if t["depends_on"] else ""
        inputs = ", ".join(f"{k}={v}" for k, v in t["inputs"].items())
        secs = f"{t['estimated_s']:7.2f} s" if t.get("estimated_s") is not None else " " * 9
        print(f"  {t['name']:<16} {t['kind']:<9} {t['script']:<24} {t['memory_bytes'] / 2**20:7.0f} MiB {secs}  "
              f"[{inputs}]{after}")


def _print_job(job: dict) -> None:
    print(f"job {job['id']}  {job['name']}  {job['status']}  {job['tasks_done']}/{job['tasks_total']} tasks done")
    if job.get("error"):
        print(f"error: {job['error']}")
    for line in job.get("waiting") or ():
        print(f"waiting: {line}")
    for t in job.get("tasks") or []:
        extra = ""
        if t["wall_s"] is not None:
            extra = f"  {t['wall_s']:.2f}s wall  {t['cpu_s']:.2f}s cpu  peak {t['mem_peak_bytes'] / 2**20:.1f} MiB"
        worker = (t["worker_id"] or "-")[:8]
        print(f"  {t['id']}  {t['name']:<20} {t['status']:<9} worker {worker}{extra}")
        for r in t.get("replicas") or ():
            verdict = f"  {r['verdict']}" if r["verdict"] else ""
            print(f"      replica {r['attempt']}  {r['status']:<9} worker {r['worker_id'][:8]}{verdict}")
        if t.get("waiting"):
            print(f"      {t['waiting']}")


def _print_why(job: dict) -> None:
    if job["status"] != "running":
        print(f"job {job['id']} is {job['status']}: nothing waits")
        return
    if not job.get("waiting"):
        print(f"job {job['id']}: every unfinished task is running")
        return
    for line in job["waiting"]:
        print(line)
    for t in job["tasks"]:
        if t.get("waiting"):
            print(f"  {t['name']:<20} {t['status']:<8} {t['waiting']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="runsurge", description=__doc__)
    p.add_argument("--version", action="version", version=f"%(prog)s {version('runsurge')}")
    p.add_argument("--master", help="master URL (default: the one you logged in to, or RUNSURGE_MASTER_URL)")
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("register", "login"):
        c = sub.add_parser(name, help=f"{name} an account (password from --password-stdin, RUNSURGE_PASSWORD "
                           "or a prompt)")
        c.add_argument("email")
        c.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    sub.add_parser("whoami", help="the account and master you are logged in to")
    sub.add_parser("logout", help="forget the saved login")
    for name in ("submit", "plan"):
        c = sub.add_parser(name, help="submit a script with data files, or a job spec" if name == "submit" else
                           "show how a submission would be split into tasks, without running it")
        c.add_argument("script", nargs="?", type=Path, help="the Python script to run")
        c.add_argument("--data", nargs="*", type=Path, default=[], help="data files (or zip archives with --group)")
        c.add_argument("--spec", type=Path, help="a job spec (TOML) describing the tasks yourself")
        c.add_argument("--chunks", type=int, help="split the data into this many chunks (default: RunSurge decides)")
        c.add_argument("--single", action="store_true", help="run the script as one task, as it is")
        c.add_argument("--group", action="store_true", help="run the script once per zip archive given in --data")
        c.add_argument("--aggregator", type=Path, help="with --group: the script that combines every output")
        c.add_argument("--memory", help="memory every task needs, e.g. 512MiB or 2GiB (default: RunSurge "
                       "estimates it, and raises it if a task is killed at the limit)")
        c.add_argument("--json", action="store_true", help="print the master's answer as JSON")
        c.add_argument("--requirements", type=Path, help="a requirements.txt: the packages every task needs "
                       "(e.g. pandas==2.2.3; installed from wheels, never built from source)")
        if name == "submit":
            c.add_argument("--wait", action="store_true", help="wait for the job with a progress bar")
            c.add_argument("--redundancy", type=int, choices=(1, 2), help="2: run each task on workers of 2 "
                           "different contributors and compare their outputs (a quorum; billed for both runs)")
    c = sub.add_parser("status", help="list your jobs, or show one (JOB: its id or a unique prefix)")
    c.add_argument("job", nargs="?")
    c.add_argument("--json", action="store_true", help="print the master's answer as JSON")
    c = sub.add_parser("why", help="why a job's tasks are not running yet (waiting reasons, with counts)")
    c.add_argument("job")
    c.add_argument("--json", action="store_true", help="print the job as JSON (tasks[].waiting, waiting)")
    c = sub.add_parser("logs", help="a task's output, or every task's of a job")
    c.add_argument("id", help="a task id, or a job id (or a unique prefix of it)")
    c.add_argument("--stderr", action="store_true", help="show stderr instead of stdout")
    c.add_argument("-f", "--follow", action="store_true",
                   help="until the job (or task) ends, print each task's output as it finishes")
    c = sub.add_parser("result", help="download a job's results")
    c.add_argument("job")
    c.add_argument("-o", "--out", type=Path, default=Path("."))
    c = sub.add_parser("wait", help="wait for a job to finish")
    c.add_argument("job")
    c = sub.add_parser("cancel", help="stop a running job (its running tasks stop; billed for what ran)")
    c.add_argument("job")
    c = sub.add_parser("delete", help="delete a finished job and its stored data (results, logs)")
    c.add_argument("job")
    c = sub.add_parser("workers", help="list your workers")
    c.add_argument("--json", action="store_true", help="print the master's answer as JSON")
    args = p.parse_args(argv)
    try:
        return _run(args)
    except ApiError as e:
        print(f"runsurge: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"runsurge: {e.strerror or e}: {e.filename or ''}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


def _requirements(args: argparse.Namespace) -> str | None:
    if args.requirements is None:
        return None
    try:
        return args.requirements.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ApiError(f"{args.requirements}: not a UTF-8 text file") from None


def _run(args: argparse.Namespace) -> int:
    client = Client.from_saved(args.master)
    if args.command == "register":
        client.register(args.email, _password(args))
        print(f"registered {args.email}; now run: runsurge login {args.email}")
    elif args.command == "login":
        client.login(args.email, _password(args))
        client.save()
        print(f"logged in to {client.url} as {args.email}")
    elif args.command == "whoami":
        print(f"{client.me()['email']} on {client.url}")
    elif args.command == "logout":
        print(f"logged out of {client.url}" if client.forget() else "you were not logged in")
    elif args.command in ("submit", "plan"):
        if args.spec:
            if args.command == "plan":
                raise ApiError("a spec already is the plan; `runsurge plan` is for scripts")
            job = client.submit_spec(args.spec, redundancy=args.redundancy, memory=args.memory,
                                     requirements=_requirements(args))
        elif args.script:
            mode = "group" if args.group else "single" if args.single else None
            if args.group and not args.aggregator:
                raise ApiError("--group needs --aggregator SCRIPT")
            files = [args.script, *([args.aggregator] if args.aggregator else []), *args.data]
            form = {"script": args.script.name, "mode": mode, "chunks": args.chunks, "memory": args.memory,
                    "requirements": _requirements(args),
                    "aggregator": args.aggregator.name if args.aggregator else None}
            if args.command == "plan":
                plan = client.plan(files, **form)
                _json_out(plan) if args.json else _print_plan(plan)
                return 0
            job = client.submit(files, **form, redundancy=args.redundancy)
        else:
            raise ApiError(f"give a script (runsurge {args.command} job.py --data in.csv) or --spec job.toml")
        if args.json and not args.wait:
            _json_out(job)
            return 0
        for line in job.get("explanation") or ():
            print(f"  {line}", file=sys.stderr)
        print(job["id"])
        if args.wait:
            return _wait(client, job["id"], as_json=args.json)
    elif args.command == "wait":
        return _wait(client, args.job)
    elif args.command == "status":
        if args.job:
            job = client.job(args.job)
            _json_out(job) if args.json else _print_job(job)
        else:
            jobs = client.jobs()
            if args.json:
                _json_out(jobs)
            elif not jobs:
                print("no jobs yet: submit one with `runsurge submit SCRIPT --data FILE`")
            for job in [] if args.json else jobs:
                print(f"{job['id']}  {job['status']:<9} {job['tasks_done']}/{job['tasks_total']}  {job['name']}")
    elif args.command == "logs":
        return _logs(client, args.id, "stderr" if args.stderr else "stdout", args.follow)
    elif args.command == "result":
        job = client.job(args.job)
        if job["status"] != "done":
            why = f": {job['error']}" if job.get("error") else f" (see `runsurge status {job['id'][:8]}`)"
            raise ApiError(f"job {job['id']} is {job['status']}, so it has no results to download{why}")
        paths = client.download_results(job["id"], args.out)
        if not paths:
            raise ApiError(f"job {job['id']} finished without results (no task left a result file)")
        for path in paths:
            print(path)
    elif args.command == "why":
        job = client.job(args.job)
        _json_out(job) if args.json else _print_why(job)
    elif args.command == "cancel":
        job = client.cancel(args.job)
        print(f"cancelled job {job['id']}: {job['tasks_done']}/{job['tasks_total']} tasks had finished")
    elif args.command == "delete":
        client.delete(args.job)
        print(f"deleted job {args.job} and its stored data")
    elif args.command == "workers":
        workers = client.workers()
        if args.json:
            _json_out(workers)
            return 0
        if not workers:
            print("you have no workers: start one with `runsurge-worker` (see the README, Contributing a worker)")
        for w in workers:
            state = "online" if w["online"] else "offline"
            print(f"{w['id']}  {state:<7} {w['host']}:{w['grpc_port']}  {w['sandbox']:<8} "
                  f"{w['running_tasks']}/{w['slots']} running  {w['tasks_done']} done")
    return 0


def _wait(client: Client, job_id: str, as_json: bool = False) -> int:
    try:
        job = client.wait(job_id, progress=None if as_json else _bar)
    except KeyboardInterrupt:
        print(f"\nstopped waiting; job {job_id} keeps running. Resume with `runsurge wait {job_id[:8]}`, "
              f"stop it with `runsurge cancel {job_id[:8]}`", file=sys.stderr)
        return 130
    _json_out(job) if as_json else _print_job(job)
    return 0 if job["status"] == "done" else 1


def _logs(client: Client, ident: str, stream: str, follow: bool) -> int:
    """A task's log, or each task's of a job, headed by its name. --follow prints a running task's
    output as it appears (the master reads it from the worker) until the task ends; for a job, each
    task's in turn as it runs or ends, until the job ends."""
    try:
        first = client.task_log(ident, stream)
    except ApiError as e:
        if e.status != 404:
            raise
        return _job_logs(client, ident, stream, follow)
    _print_log(client, ident, stream, follow, first)
    return 0


def _print_log(client: Client, task_id: str, stream: str, follow: bool, first: tuple | None = None) -> int:
    """Print a task's log; with `follow`, on as the task writes it until it ends. Returns bytes printed."""
    text, offset, running, _ = first or client.task_log(task_id, stream)
    told, printed = False, 0
    while True:
        sys.stdout.write(text)
        sys.stdout.flush()
        printed += len(text)
        if not text and not (follow and running):
            return printed
        if not text:
            time.sleep(0.5)
        try:
            text, offset, running, _ = client.task_log(task_id, stream, offset)
        except ApiError as e:
            if not follow or e.status != 503:
                raise
            if not told:  # the worker is away for now: say so once, and keep following
                print(f"runsurge: {e}", file=sys.stderr)
                told = True
            text = ""


def _job_logs(client: Client, job_id: str, stream: str, follow: bool) -> int:
    shown: set[str] = set()
    while True:
        try:
            job = client.job(job_id)
        except ApiError as e:
            raise ApiError(f"no task or job {job_id!r} of yours") if e.status == 404 else e from None
        for t in job["tasks"]:  # with --follow, a running task's output as it comes, one task at a time
            if t["id"] in shown or (follow and t["status"] in ("pending", "ready")):
                continue
            shown.add(t["id"])
            print(f"==> {t['name']} ({stream}, {t['status']}) <==", flush=True)
            if not _print_log(client, t["id"], stream, follow and t["status"] in OPEN):
                print("(empty)")
        if not follow or job["status"] != RUNNING:
            return 0 if not follow or job["status"] == "done" else 1
        time.sleep(0.5)
