"""`runsurge-master`: HTTP (uvicorn) and gRPC (grpc.aio) in ONE asyncio process, plus the scheduler."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import signal
import sys
from importlib.metadata import version
from pathlib import Path

import grpc
import uvicorn
from sqlalchemy.exc import IntegrityError

from runsurge_master import accounts, store_gc
from runsurge_master.api import create_app
from runsurge_master.auth import TokenService, hash_password, load_or_create_key
from runsurge_master.config import MasterConfig, is_wildcard, load_config
from runsurge_master.db import Database
from runsurge_master.grpc_service import MasterServicer, make_check
from runsurge_master.logs import setup_logging
from runsurge_master.models import User
from runsurge_master.scheduler import Scheduler
from runsurge_master.services import Services
from runsurge_master.store import ObjectStore
from runsurge_master.tls import MasterTLS
from runsurge_pki.ca import fingerprint
from runsurge_proto import master_pb2_grpc
from runsurge_proto.interceptor import AioAuthInterceptor
from runsurge_proto.wire import CHANNEL_OPTIONS, raw_chunk_handlers

log = logging.getLogger("runsurge.master")


def build(cfg: MasterConfig) -> Services:
    cfg.home.mkdir(parents=True, exist_ok=True)
    db = Database(cfg.db_url)
    db.upgrade()
    tokens = TokenService(load_or_create_key(cfg.home / "jwt_ed25519.pem"))
    tls = MasterTLS(cfg, db)
    return Services(cfg=cfg, db=db, tokens=tokens, store=ObjectStore(cfg.store_dir),
                    scheduler=Scheduler(db, cfg, tokens, tls), tls=tls)


async def start_grpc(sv: Services, port: int, enrollment: bool) -> grpc.aio.Server:
    """The main port (mutual TLS) or the enrolment port (TLS; NodeRegister only)."""
    server = grpc.aio.server(interceptors=[AioAuthInterceptor(make_check(sv.tokens, sv.tls, enrollment))],
                             options=CHANNEL_OPTIONS)
    servicer = MasterServicer(sv.db, sv.cfg, sv.tokens, sv.store, sv.scheduler, sv.tls)
    master_pb2_grpc.add_MasterServiceServicer_to_server(servicer, server)
    # The data streams yield DataChunk wire bytes (wire.file_chunk_messages): sent as they are.
    server.add_registered_method_handlers("runsurge.v1.MasterService",
                                          raw_chunk_handlers(servicer, "StreamData", "StreamPythonFile"))
    addr = f"{sv.cfg.grpc_host}:{port}"
    if server.add_secure_port(addr, sv.tls.server_credentials(require_client_cert=not enrollment)) == 0:
        raise SystemExit(f"cannot listen for gRPC on {addr}")
    await server.start()
    return server


async def serve(cfg: MasterConfig) -> None:
    sv = build(cfg)
    if left := sv.store.remove_leftovers():  # uploads a kill interrupted: never landed, never referenced
        log.info("removed %d leftovers of interrupted writes from the object store", left)
    grpc_addr = f"{cfg.grpc_host}:{cfg.grpc_port}"
    servers = [await start_grpc(sv, cfg.grpc_port, enrollment=False),
               await start_grpc(sv, cfg.enroll_port, enrollment=True)]
    http = uvicorn.Server(uvicorn.Config(create_app(sv), host=cfg.http_host, port=cfg.http_port,
                                         log_config=None, access_log=False, lifespan="off"))
    http.install_signal_handlers = lambda: None  # we own the signals below
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sched = asyncio.create_task(sv.scheduler.run())
    gc = asyncio.create_task(store_gc.run(sv.db, sv.store, cfg.gc_interval_s, cfg.gc_grace_s))
    web = asyncio.create_task(http.serve())
    log.info("master ready http=%s:%d grpc=%s enroll=%d db=%s", cfg.http_host, cfg.http_port, grpc_addr,
             cfg.enroll_port, cfg.db_url.split("@")[-1])
    shown = "<this machine's address>" if is_wildcard(cfg.http_host) else cfg.http_host
    log.info("workers join with: runsurge-worker --master-url http://%s:%d --ca-fingerprint %s",
             shown, cfg.http_port, fingerprint(sv.tls.ca_pem))
    await asyncio.wait([asyncio.create_task(stop.wait()), web], return_when=asyncio.FIRST_COMPLETED)
    log.info("master stopping")
    http.should_exit = True
    sched.cancel()
    gc.cancel()
    await asyncio.gather(*(s.stop(grace=2) for s in servers))
    await sv.scheduler.close()
    await asyncio.gather(web, return_exceptions=True)
    if not web.cancelled() and web.exception() is None and not http.started:
        raise SystemExit(f"cannot listen for HTTP on {cfg.http_host}:{cfg.http_port}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="runsurge-master", description="RunSurge master")
    p.add_argument("--version", action="version", version=f"%(prog)s {version('runsurge-master')}")
    p.add_argument("--config", type=Path, help="TOML file with a [master] table")
    p.add_argument("--home", type=Path, help="data directory (RUNSURGE_HOME)")
    p.add_argument("--http-port", type=int)
    p.add_argument("--grpc-port", type=int)
    sub = p.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the master (default)")
    sub.add_parser("db-upgrade", help="apply database migrations and exit")
    cu = sub.add_parser("create-user", help="create an account (password from RUNSURGE_PASSWORD or a prompt)")
    cu.add_argument("email")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.config, home=args.home, http_port=args.http_port, grpc_port=args.grpc_port)
    except (ValueError, OSError) as e:
        sys.exit(f"runsurge-master: bad configuration: {e}")
    setup_logging(cfg.log_level)
    if args.command == "db-upgrade":
        Database(cfg.db_url).upgrade()
        print("database is up to date")
    elif args.command == "create-user":
        password = os.environ.get("RUNSURGE_PASSWORD") or getpass.getpass("password: ")
        try:
            email = accounts.normalize_email(args.email)
            accounts.check_password(password, email)
        except accounts.AccountError as e:
            sys.exit(f"runsurge-master: {e}")
        db = Database(cfg.db_url)
        db.upgrade()
        try:
            with db.session() as s:
                s.add(User(email=email, password_hash=hash_password(password)))
        except IntegrityError:
            print(f"{args.email} already exists")
            return
        print(f"created {args.email}")
    else:
        asyncio.run(serve(cfg))


if __name__ == "__main__":
    main()
