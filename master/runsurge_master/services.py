"""The master's shared parts, built once by main.build and handed to the HTTP routers and gRPC."""

from dataclasses import dataclass

from runsurge_master.auth import TokenService
from runsurge_master.config import MasterConfig
from runsurge_master.db import Database
from runsurge_master.scheduler import Scheduler
from runsurge_master.store import ObjectStore
from runsurge_master.tls import MasterTLS


@dataclass
class Services:
    cfg: MasterConfig
    db: Database
    tokens: TokenService
    store: ObjectStore
    scheduler: Scheduler
    tls: MasterTLS
