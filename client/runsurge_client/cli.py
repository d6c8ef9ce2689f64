"""`runsurge`: submit Python jobs to a RunSurge master and fetch their results."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from runsurge_client.api import ApiError, Client


def _password(args: argparse.Namespace) -> str:
    return os.environ.get("RUNSURGE_PASSWORD") or getpass.getpass("password: ")


def _bar(job: dict) -> None:
    total, done = job["tasks_total"], job["tasks_done"]
    width = 30
    filled = width * done // total if total else width
    line = f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} tasks  {job['status']:<8}"
    sys.stderr.write(line)
    if job["status"] in ("done", "failed"):
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="runsurge", description=__doc__)
    p.add_argument("--master", help="master URL (default: the one you logged in to, or RUNSURGE_MASTER_URL)")
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("register", "login"):
        c = sub.add_parser(name, help=f"{name} an account (password from RUNSURGE_PASSWORD or a prompt)")
        c.add_argument("email")
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
        c.add_argument("--requirements", type=Path, help="a requirements.txt: the packages every task needs "
                       "(e.g. pandas==2.2.3; installed from wheels, never built from source)")
        if name == "submit":
            c.add_argument("--wait", action="store_true", help="wait for the job with a progress bar")
            c.add_argument("--redundancy", type=int, choices=(1, 2), help="2: run each task on workers of 2 "
                           "different contributors and compare their outputs (a quorum; billed for both runs)")
    c = sub.add_parser("status", help="list your jobs, or show one")
    c.add_argument("job", nargs="?")
    c = sub.add_parser("logs", help="a task's output")
    c.add_argument("task")
    c.add_argument("--stderr", action="store_true", help="show stderr instead of stdout")
    c = sub.add_parser("result", help="download a job's results")
    c.add_argument("job")
    c.add_argument("-o", "--out", type=Path, default=Path("."))
    c = sub.add_parser("wait", help="wait for a job to finish")
    c.add_argument("job")
    sub.add_parser("workers", help="list your workers")
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
                _print_plan(client.plan(files, **form))
                return 0
            job = client.submit(files, **form, redundancy=args.redundancy)
        else:
            raise ApiError(f"give a script (runsurge {args.command} job.py --data in.csv) or --spec job.toml")
        for line in job.get("explanation") or ():
            print(f"  {line}", file=sys.stderr)
        print(job["id"])
        if args.wait:
            return _wait(client, job["id"])
    elif args.command == "wait":
        return _wait(client, args.job)
    elif args.command == "status":
        if args.job:
            _print_job(client.job(args.job))
        else:
            for job in client.jobs():
                print(f"{job['id']}  {job['status']:<8} {job['tasks_done']}/{job['tasks_total']}  {job['name']}")
    elif args.command == "logs":
        sys.stdout.write(client.logs(args.task, "stderr" if args.stderr else "stdout"))
    elif args.command == "result":
        for path in client.download_results(args.job, args.out):
            print(path)
    elif args.command == "workers":
        for w in client.workers():
            state = "online" if w["online"] else "offline"
            print(f"{w['id']}  {state:<7} {w['host']}:{w['grpc_port']}  {w['sandbox']:<8} "
                  f"{w['running_tasks']}/{w['slots']} running  {w['tasks_done']} done")
    return 0


def _wait(client: Client, job_id: str) -> int:
    job = client.wait(job_id, progress=_bar)
    _print_job(job)
    return 0 if job["status"] == "done" else 1
