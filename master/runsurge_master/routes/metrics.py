"""Prometheus `/metrics` (the figures: metrics.py)."""

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from runsurge_master.deps import ServicesDep
from runsurge_master.metrics import MasterCollector

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def metrics(sv: ServicesDep) -> Response:
    registry = CollectorRegistry(auto_describe=False)  # per scrape: the collector reads this master's parts
    registry.register(MasterCollector(sv))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
