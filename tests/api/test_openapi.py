"""`/openapi.json` describes every route the app serves: bodies, errors and auth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import KEY_A, Gateway, gateway_settings
from tests.support.servers import serve_app
from veo_gateway.api.openapi import served_routes
from veo_gateway.api.status import ROUTE, StatusRoute
from veo_gateway.app import create_app

# FastAPI's own pages about the document, not routes of the gateway.
DOCS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
ENVELOPE = {"$ref": "#/components/schemas/ErrorEnvelope"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app = create_app(gateway_settings(Path("unused")))
    return app.openapi()


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }


def test_every_served_route_is_in_the_document(document: dict[str, Any]) -> None:
    app = create_app(gateway_settings(Path("unused")))
    served = {
        (method, path)
        for path, methods in served_routes(app)
        if path not in DOCS
        for method in methods
    }
    # The status poll is answered before the routing: its route is described all the same.
    assert any(m.cls is StatusRoute for m in app.user_middleware)
    served.add(ROUTE)
    documented = set(operations(document))
    assert served == documented, (served - documented, documented - served)
    for needed in [("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ROUTE]:
        assert needed in documented


def test_bodies_are_described(document: dict[str, Any]) -> None:
    ops = operations(document)
    create = ops[("POST", "/v1/videos")]["requestBody"]["content"]
    assert set(create) == {
        "application/json",
        "multipart/form-data",
        "application/x-www-form-urlencoded",
    }
    assert create["application/json"]["schema"]["anyOf"] == [
        {"$ref": "#/components/schemas/SpecVideoCreate"},
        {"$ref": "#/components/schemas/OpenAIVideoCreate"},
    ]
    form = document["components"]["schemas"]["OpenAIVideoForm"]["properties"]
    assert "prompt" in form and "input_reference" in form
    spec = document["components"]["schemas"]["SpecVideoCreate"]
    assert set(spec["required"]) == {"model", "prompt"}
    for key in [("POST", "/admin/keys"), ("PATCH", "/admin/keys/{key_id}")]:
        assert "application/json" in ops[key]["requestBody"]["content"]
    for ref in _refs(document):
        name = ref.rsplit("/", 1)[-1]
        assert name in document["components"]["schemas"], ref


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


@pytest.mark.parametrize(
    ("method", "path", "codes"),
    [
        ("POST", "/v1/videos", {400, 401, 403, 409, 413, 429, 431, 503}),
        ("GET", "/v1/videos", {400, 401, 431}),
        ("GET", "/v1/videos/{task_id}", {401, 404, 431}),
        ("DELETE", "/v1/videos/{task_id}", {401, 404, 431}),
        ("GET", "/v1/videos/{task_id}/content", {400, 401, 404, 410, 416, 431}),
        ("POST", "/admin/keys", {400, 401, 403, 413, 431}),
        ("GET", "/metrics", {401, 431}),
    ],
)
def test_error_responses_are_described(
    document: dict[str, Any], method: str, path: str, codes: set[int]
) -> None:
    responses = operations(document)[(method, path)]["responses"]
    assert "422" not in responses  # the gateway answers validation errors with 400
    for code in codes:
        schema = responses[str(code)]["content"]["application/json"]["schema"]
        assert schema == ENVELOPE
    assert "MethodNotAllowed" in document["components"]["responses"]


def test_auth_is_a_bearer_scheme(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    for name in ("clientKey", "adminToken", "metricsToken"):
        assert schemes[name]["type"] == "http" and schemes[name]["scheme"] == "bearer"
    for (method, path), operation in operations(document).items():
        parameters = [p["name"].lower() for p in operation.get("parameters", [])]
        assert "authorization" not in parameters, (method, path)
        if path.startswith("/v1/"):
            assert operation["security"] == [{"clientKey": []}], (method, path)
        elif path.startswith("/admin/"):
            assert operation["security"] == [{"adminToken": []}], (method, path)
    assert operations(document)[("GET", "/metrics")]["security"] == [{}, {"metricsToken": []}]


def test_the_served_document_is_the_same(gateway: Gateway, document: dict[str, Any]) -> None:
    assert gateway.client.get("/openapi.json").json() == document


def test_the_routed_status_answers_as_the_fast_path(gateway: Gateway) -> None:
    created = gateway.create({"model": "veo-3.1-fast-generate-preview", "prompt": "p"}).json()
    fast = gateway.get(created["id"])
    # The same app without the fast path in front (on the same database) answers the path
    # through its router, with the same body.
    app = create_app(gateway.settings.model_copy(update={"worker_enabled": False}))
    app.user_middleware = [m for m in app.user_middleware if m.cls is not StatusRoute]
    with serve_app(app) as url:
        routed = httpx.get(
            f"{url}/v1/videos/{created['id']}", headers={"Authorization": f"Bearer {KEY_A}"}
        )
    assert routed.status_code == 200 and fast.status_code == 200
    for field in ("id", "object", "model", "created_at", "task_id"):
        assert routed.json()[field] == fast.json()[field]
