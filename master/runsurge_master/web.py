"""The web dashboard under /ui/: server-rendered page shells (Jinja2 templates in templates/) whose
data the page's script (static/*.js, vanilla, no build step) reads from the JSON API.

Authentication: the pages log in through /api/auth/login and keep the JWT pair in the browser's
localStorage, then send `Authorization: Bearer` on every API call. No cookie carries authority,
so a cross-site request cannot act as the user (no CSRF surface). The price of localStorage is that
a script injected into the page could read the token, so the pages never insert data as HTML
(text nodes only), load no third-party code, have no inline scripts, and are served with a strict
Content-Security-Policy. See docs/dashboard.md.
"""

import re
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from runsurge_master.deps import ServicesDep

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
JOB_ID = re.compile(r"^[0-9a-f]{4,32}$")  # an id or a prefix of it, as the API takes


templates = Jinja2Templates(directory=str(TEMPLATES))
router = APIRouter(include_in_schema=False)


def page(request: Request, sv: ServicesDep, name: str, title: str, **context: object) -> HTMLResponse:
    resp = templates.TemplateResponse(request, name, {
        "title": title, "allow_registration": sv.cfg.allow_registration, **context})
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["Cache-Control"] = "no-store"
    return resp


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/ui/")


@router.get("/ui")
def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/")
def jobs_page(request: Request, sv: ServicesDep) -> HTMLResponse:
    return page(request, sv, "jobs.html", "Jobs", page="jobs")


@router.get("/ui/login")
def login_page(request: Request, sv: ServicesDep) -> HTMLResponse:
    return page(request, sv, "login.html", "Log in", page="login")


@router.get("/ui/jobs/{job_id}")
def job_page(request: Request, sv: ServicesDep, job_id: str) -> HTMLResponse:
    if not JOB_ID.match(job_id):  # a page, not the API's JSON error
        resp = templates.TemplateResponse(request, "notfound.html", {"what": "Job"}, status_code=404)
        resp.headers["Content-Security-Policy"] = CSP
        return resp
    return page(request, sv, "job.html", "Job", page="job", job_id=job_id)


@router.get("/ui/workers")
def workers_page(request: Request, sv: ServicesDep) -> HTMLResponse:
    return page(request, sv, "workers.html", "My workers", page="workers")


@router.get("/ui/earnings")
def earnings_page(request: Request, sv: ServicesDep) -> HTMLResponse:
    return page(request, sv, "earnings.html", "Earnings", page="earnings")


@router.get("/ui/static/{name}")
def static(name: str) -> FileResponse:
    path = STATIC / name
    if "/" in name or name.startswith(".") or path.suffix not in STATIC_TYPES or not path.is_file():
        raise HTTPException(404, "not found")
    return FileResponse(path, media_type=STATIC_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})
