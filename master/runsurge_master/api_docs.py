"""The API's documentation page, /docs, served offline: Swagger UI's script and styles (version 5,
which reads OpenAPI 3.1) come from the fastapi-offline package through the master itself, never from a
CDN. Also the error responses every route can give, documented from what the route depends on (a
login, a job of yours, an upload)."""

from collections.abc import Callable
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.routing import APIRoute

SWAGGER_UI = Path(fastapi_offline.__file__).parent / "static"  # only its files: the app is ours
ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon.png": "image/png"}
ERRORS = {
    400: "a job id prefix that matches several of your jobs (give more digits)",
    401: "missing, expired or invalid bearer token (log in: POST /api/auth/login)",
    404: "no such job (or task) of yours; another user's looks the same",
    413: "the upload is larger than the master accepts (max_upload_bytes)",
    429: "too many requests from your address; the Retry-After header says when to try again",
}


router = APIRouter(include_in_schema=False)


@router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{request.app.title} · API",
                               swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                               swagger_css_url="/docs/assets/swagger-ui.css",
                               swagger_favicon_url="/docs/assets/favicon.png")


@router.get("/docs/assets/{name}")
def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise HTTPException(404, "not found")
    return FileResponse(SWAGGER_UI / name, media_type=ASSETS[name], headers={"Cache-Control": "public, max-age=86400"})


def document_errors(app: FastAPI, current_user: Callable) -> None:
    """Add the error responses a route can give to its OpenAPI entry (call once every route exists)."""
    for route in _api_routes(app.routes):
        if not route.path.startswith("/api/"):
            continue
        errors = []
        if _depends_on(route.dependant, current_user):
            errors.append(401)
        if "{job_id}" in route.path:
            errors.append(400)
        if "{job_id}" in route.path or "{task_id}" in route.path:
            errors.append(404)
        if route.path in ("/api/jobs", "/api/plan") and "POST" in route.methods:
            errors.append(413)
        for code in errors:
            route.responses.setdefault(code, {"description": ERRORS[code]})


def _api_routes(routes):
    """Every APIRoute, those of included routers too (FastAPI keeps an included router as one entry)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from _api_routes(route.original_router.routes)


def _depends_on(dependant, target: Callable) -> bool:  # fastapi's Dependant
    return any(d.call is target or _depends_on(d, target) for d in dependant.dependencies)
