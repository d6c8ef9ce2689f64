"""The HTTP API (FastAPI; OpenAPI at /docs): `create_app` assembles the routers (routes/, one per
resource; their typed dependencies in deps.py, their models in schemas.py). Handlers are plain
`def`s: FastAPI runs them in a thread pool, so blocking database and file work never stalls the
gRPC side of the event loop."""

from fastapi import APIRouter, FastAPI

from runsurge_master import api_docs, deps, http_security, metrics, web
from runsurge_master.routes import auth, billing, health, jobs, submissions, tasks, workers
from runsurge_master.routes import metrics as metrics_route
from runsurge_master.services import Services


def create_app(sv: Services) -> FastAPI:
    app = FastAPI(title="RunSurge master", version="0.1.0", max_body_size=http_security.JSON_BODY_LIMIT,
                  description="Submit Python jobs to a volunteer compute network.", docs_url=None, redoc_url=None)
    app.state.services = sv
    app.state.guards = auth.Guards.from_config(sv.cfg)
    http_security.install(app, sv.cfg, sv.tokens)
    metrics.install_hooks()
    _add(app, health.router, auth.router)
    # Uploads are cut off while streaming, past this many bytes; every other body is small JSON.
    _add(app, submissions.router, max_body_size=http_security.upload_limit(sv.cfg))
    _add(app, jobs.router, tasks.router, workers.router, billing.router, metrics_route.router, web.router,
         api_docs.router)
    api_docs.document_errors(app, deps.current_user)
    return app


def _add(app: FastAPI, *routers: APIRouter, max_body_size: int | None = None) -> None:
    """The routers' routes as the app's own (FastAPI's include_router nests them instead), so
    `app.routes` lists every route, and their body limit is the one given here (None: the app's)."""
    for r in (r for router in routers for r in router.routes):
        app.add_api_route(
            r.path, r.endpoint, methods=r.methods, status_code=r.status_code, response_model=r.response_model,
            response_class=r.response_class, responses=r.responses, tags=r.tags, summary=r.summary,
            description=r.description, include_in_schema=r.include_in_schema, name=r.name,
            max_body_size=max_body_size)
