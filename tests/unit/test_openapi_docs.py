"""The API's schema documents itself: every property of every model has a description and an
example, every route declares the errors it can give (401 behind a login, 404 for an id in its path,
413 for uploads, 429 where rate limited, and every status its handler raises), and `mode` is an enum."""

import inspect
import re

import pytest
from fastapi.routing import APIRoute

from runsurge_master import submission
from runsurge_master.api import create_app
from runsurge_master.api_docs import _api_routes
from runsurge_master.config import load_config
from runsurge_master.main import build

RAISED = re.compile(r"HTTPException\(\s*(\d{3})")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return create_app(build(load_config(home=tmp_path_factory.mktemp("m"))))


def _props(schema: dict):
    yield from schema.get("properties", {}).items()


def test_every_property_has_a_description_and_an_example(app):
    schemas = app.openapi()["components"]["schemas"]
    lacking = []
    for model, schema in schemas.items():
        if model in ("HTTPValidationError", "ValidationError") or model.startswith("Body_"):
            continue  # FastAPI's own error model; form bodies are checked below
        for name, prop in _props(schema):
            if not prop.get("description"):
                lacking.append(f"{model}.{name}: no description")
            if "examples" not in prop and "example" not in prop and "$ref" not in prop \
                    and not _is_models(prop):
                lacking.append(f"{model}.{name}: no example")
    assert lacking == [], "\n".join(lacking)


def _is_models(prop: dict) -> bool:
    """A list of (or optional) models: its models carry the examples."""
    items = prop.get("items", {})
    return "$ref" in items or any("$ref" in p or "$ref" in p.get("items", {}) for p in prop.get("anyOf", []))


def test_every_form_field_has_a_description_and_mode_is_an_enum(app):
    schemas = app.openapi()["components"]["schemas"]
    forms = [s for n, s in schemas.items() if n.startswith("Body_")]
    assert forms
    for form in forms:
        for name, prop in _props(form):
            assert prop.get("description"), name
        mode = form["properties"].get("mode")
        if mode is not None:
            assert mode["enum"] == list(submission.MODES)


def test_every_route_declares_the_errors_it_can_give(app):
    paths = app.openapi()["paths"]
    problems = []
    for route in _api_routes(app.routes):
        if not route.path.startswith("/api/"):
            continue
        for method in route.methods:
            declared = set(paths[route.path][method.lower()]["responses"])
            needed = {m for m in RAISED.findall(inspect.getsource(route.endpoint))}
            if re.search(r"\{(job|task|worker)_id\}", route.path):
                needed.add("404")
            if "user" in inspect.signature(route.endpoint).parameters:
                needed.add("401")
            if route.path in ("/api/jobs", "/api/plan") and method == "POST":
                needed.add("413")
            if missing := needed - declared:
                problems.append(f"{method} {route.path}: {sorted(missing)} not declared")
            for code in declared - {"200", "201", "204", "422"}:
                if not paths[route.path][method.lower()]["responses"][code].get("description"):
                    problems.append(f"{method} {route.path}: {code} has no description")
    assert problems == [], "\n".join(problems)


def test_the_walk_sees_the_included_routers(app):
    assert "/api/earnings" in {r.path for r in _api_routes(app.routes) if isinstance(r, APIRoute)}


def test_the_planned_mode_is_an_enum_too(app):
    mode = app.openapi()["components"]["schemas"]["PlanOut"]["properties"]["mode"]
    assert mode["enum"] == list(submission.MODES)
