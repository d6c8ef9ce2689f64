"""`runsurge-worker`: serve WorkerService, register with the master, heartbeat, run tasks."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
import sys
import threading
from concurrent import futures
from importlib.metadata import version
from pathlib import Path

import grpc

from runsurge_proto import master_pb2
from runsurge_proto.interceptor import AuthInterceptor
from runsurge_proto.wire import CHANNEL_OPTIONS
from runsurge_worker import cpucap, ratelimit
from runsurge_worker.backoff import Backoff
from runsurge_worker.cache import Cache
from runsurge_worker.config import WorkerConfig, load_config
from runsurge_worker.environments import EnvironmentCache
from runsurge_worker.fetch import Fetcher
from runsurge_worker.fingerprint import fingerprint
from runsurge_worker.governor import Governor
from runsurge_worker.join import JoinError, join
from runsurge_worker.master_link import LoginError, LoginThrottledError, MasterLink, retry_after
from runsurge_worker.sandbox import get_backend
from runsurge_worker.service import WorkerServicer, add_to_server, make_check
from runsurge_worker.status import earnings, read_status, render
from runsurge_worker.tasks import TaskRunner
from runsurge_worker.tls import WorkerTLS

log = logging.getLogger("runsurge.worker")
MAX_DATA_BYTES = 64 << 30  # the largest single object a worker will fetch


def pick_port(listen: str, port: int) -> int:
    """The port to announce at registration, before the server (which needs the certificate) starts."""
    if port:
        return port
    with socket.socket() as s:
        s.bind((listen, 0))
        return s.getsockname()[1]


def run(cfg: WorkerConfig, stop: threading.Event) -> None:
    cfg.home.mkdir(parents=True, exist_ok=True)
    try:  # before anything starts: every process the worker starts is held to the cap with it
        cap = cpucap.open_cap(cfg.max_cpu_percent)
    except cpucap.CpuCapError as e:
        raise SystemExit(f"runsurge-worker: {e}") from None
    caps = {"max_cpu_percent": cfg.max_cpu_percent if cap else 0, "memory_bytes": cfg.memory, "slots": cfg.slots,
            "download_limit_bps": cfg.download_limit_bps, "upload_limit_bps": cfg.upload_limit_bps,
            "cache_max_bytes": cfg.cache_max_bytes}
    cache = Cache(cfg.home / "cache")
    left = cache.remove_leftovers()  # writes the last run's end interrupted: never served, never counted
    if left:
        log.info("removed %d leftover(s) of interrupted writes from the cache", left)
    tls = WorkerTLS(cfg.home, cfg.ca_file)
    link = MasterLink(cfg, tls)
    vm = cfg.sandbox in ("qemu", "virtualbox")
    opts = {"pool_size": cfg.pool_size, "vm_memory_mb": cfg.vm_memory_mb} if vm else {}
    sandbox = get_backend(cfg.sandbox, work_dir=cfg.home / "sandbox", image_dir=cfg.image_dir, **opts)
    try:
        sandbox.start()
    except FileNotFoundError as e:  # no guest image: the message names the setting and how to build one
        raise SystemExit(f"runsurge-worker: {e}") from None
    fetcher = Fetcher(cache, link, MAX_DATA_BYTES, ratelimit.bucket(cfg.download_limit_bps))
    runner = TaskRunner(cache, link, fetcher, sandbox, cfg.slots, cfg.memory, cfg.input_wait_s,
                        cfg.cache_max_bytes, EnvironmentCache(cfg.home / "environments", cfg.env_cache_bytes,
                                                         images=sandbox.environment_images))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32), options=CHANNEL_OPTIONS,
                         interceptors=[AuthInterceptor(make_check(link))])
    add_to_server(WorkerServicer(runner, cache, link, ratelimit.bucket(cfg.upload_limit_bps)), server)
    governor = Governor(cfg, runner, sandbox, link.kick, caps=caps)
    port = pick_port(cfg.listen, cfg.port)
    fp = fingerprint(cfg.home)
    resuming = runner.resume_checkpoints()  # what the last stop saved: the master keeps those ours

    def register() -> None:
        link.register(fp, port, cache.ids(), resuming)
        resuming.clear()  # a later registration (the master declared us offline) lets them go

    try:
        retry = Backoff(base_s=1.0, cap_s=60.0)  # full jitter: a returning master is not hit by every worker at once
        while True:
            try:
                register()
                break
            except (LoginError, grpc.RpcError) as e:
                detail = e.details() if isinstance(e, grpc.RpcError) else str(e)
                # Throttled (someone is guessing from our address): the master's wait, never give up.
                wait = retry.next(retry_after(e))
                if isinstance(e, LoginError) and not isinstance(e, LoginThrottledError) and "refused" in str(e):
                    raise SystemExit(f"runsurge-worker: {detail}") from None
                if isinstance(e, grpc.RpcError) and e.code() == grpc.StatusCode.INVALID_ARGUMENT:
                    raise SystemExit(f"runsurge-worker: the master refused the registration: {detail}") from None
                if isinstance(e, grpc.RpcError) and e.code() == grpc.StatusCode.UNAVAILABLE:
                    detail = (f"cannot reach the master's enrolment address {cfg.master_enroll} "
                              f"(RUNSURGE_MASTER_ENROLL, --master-enroll): {detail}")
                log.warning("cannot register yet (%s); retrying in %.1f s", detail, wait)
                if stop.wait(wait):
                    return
        if server.add_secure_port(f"{cfg.listen}:{port}", tls.server_credentials()) == 0:
            raise SystemExit(f"runsurge-worker: cannot listen on {cfg.listen}:{port}")
        server.start()

        def status() -> master_pb2.NodeHeartbeatRequest:
            return master_pb2.NodeHeartbeatRequest(worker_id=link.worker_id, running_tasks=runner.running_count(),
                                                   memory_used_bytes=runner.memory_used(),
                                                   free_slots=runner.free_slots(), running_task_ids=runner.task_ids(),
                                                   suspended=governor.reason, dropped_data_ids=runner.dropped(),
                                                   environment_ids=runner.environments_held(),
                                                   task_phases=runner.phases())

        log.info("worker ready id=%s listening=%s:%d sandbox=%s slots=%d memory=%d", link.worker_id,
                 cfg.listen, port, cfg.sandbox, cfg.slots, cfg.memory)
        governor.worker_id = link.worker_id
        governor.start()
        # Resumed runs start once a heartbeat reply confirms the master still counts them as ours.
        link.heartbeat_loop(status, register, runner.cancel, stop,
                            delivered=lambda req: runner.dropped_told(list(req.dropped_data_ids)),
                            answered=lambda resp: runner.confirm_resumed(set(resp.cancel_task_ids),
                                                                         start=not resp.reregister))
        # Stopping (SIGTERM: a service stop, a reboot): take nothing new, say so, save each running VM
        # task to resume it at the next start (the master keeps it ours for its grace window), give
        # every other task back (it runs again at once, nobody's fault), and wait a bounded time for
        # the reports.
        governor.stopping()
        link.beat_once(status())
        saved, released = runner.checkpoint("the worker was stopped by its owner")
        if (saved or released) and not runner.wait_empty(cfg.stop_grace_s):
            log.warning("stopping with tasks still ending after %.0f s", cfg.stop_grace_s)
        log.info("stopped: %d task(s) checkpointed, %d task(s) released to the master", saved, released)
    finally:
        for task_id in runner.task_ids():
            runner.cancel(task_id)
        server.stop(grace=1)
        sandbox.close()
        link.close()
        if cap is not None:
            cap.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="runsurge-worker", description="RunSurge worker: contribute this machine")
    p.add_argument("--version", action="version", version=f"%(prog)s {version('runsurge-worker')}")
    p.add_argument("command", nargs="?", default="run", choices=["run", "status"],
                   help="run the worker (default), or show the running worker's state, tasks, caps and earnings")
    p.add_argument("--json", action="store_true", help="status: print the state as JSON")
    p.add_argument("--offline", action="store_true", help="status: do not ask the master for the earnings")
    p.add_argument("--config", type=Path, help="TOML file with a [worker] table")
    p.add_argument("--home", type=Path, help="worker state directory")
    p.add_argument("--master-url", help="master HTTP URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--master-grpc", help="master gRPC address host:port")
    p.add_argument("--master-enroll", help="master enrolment address host:port")
    p.add_argument("--ca-file", type=Path, help="the private CA's certificate")
    p.add_argument("--ca-fingerprint", help="sha256:... of the master's CA (the master prints it at start): "
                   "then --master-url is all the worker needs")
    p.add_argument("--email")
    p.add_argument("--password-file")
    p.add_argument("--host", help="address the master and peers reach this worker at")
    p.add_argument("--port", type=int)
    p.add_argument("--slots", type=int)
    p.add_argument("--cpus", type=int)
    p.add_argument("--memory", type=int, help="bytes offered to tasks")
    p.add_argument("--sandbox", help="qemu (default) | bwrap | virtualbox | process (development only)")
    p.add_argument("--image-dir", type=Path)
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.config, home=args.home, master_url=args.master_url, master_grpc=args.master_grpc,
                          master_enroll=args.master_enroll, ca_file=args.ca_file,
                          ca_fingerprint=args.ca_fingerprint,
                          email=args.email, password_file=args.password_file, host=args.host, port=args.port,
                          slots=args.slots, cpus=args.cpus, memory=args.memory, sandbox=args.sandbox,
                          image_dir=args.image_dir)
    except (ValueError, OSError) as e:
        sys.exit(f"runsurge-worker: bad configuration: {e}")
    if args.command == "status":
        current = read_status(cfg.home)
        earned = None if args.offline or current is None else earnings(cfg, current.get("worker_id", ""))
        print(json.dumps({**(current or {}), "earnings": earned}, indent=1) if args.json
              else render(current, earned))
        return
    if cfg.ca_fingerprint:
        try:
            join(cfg)
        except (JoinError, ValueError) as e:
            sys.exit(f"runsurge-worker: {e}")
    if not cfg.ca_file.is_file():
        sys.exit(f"runsurge-worker: the CA certificate {cfg.ca_file} is missing: pass --ca-fingerprint (the master "
                 "prints it at start), or copy the master's pki/ca.pem there, or set RUNSURGE_CA_FILE")
    logging.basicConfig(level=cfg.log_level.upper(),
                        format="%(asctime)s.%(msecs)03d %(levelname)s %(name)s %(message)s",
                        datefmt="%Y-%m-%dT%H:%M:%S")
    if not cfg.email or not cfg.password:
        sys.exit("runsurge-worker: set the contributor account (RUNSURGE_EMAIL and RUNSURGE_PASSWORD or "
                 "--password-file)")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run(cfg, stop)


if __name__ == "__main__":
    main()
