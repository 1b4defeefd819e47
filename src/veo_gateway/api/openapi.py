"""`/openapi.json` that tells the truth: every route, its bodies, its errors and its auth.

The routes read their bodies by hand (strict parsing with the gateway's own messages), so
FastAPI cannot see them: each route names its body and its error responses here, and the
document is finished after FastAPI builds it: FastAPI's 422 (the gateway answers
validation errors with 400) is dropped, the hand-read bodies' schemas are added, and the
responses every route shares (405, 431) are described once.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import iter_route_contexts
from fastapi.security import HTTPBearer
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.routing import compile_path

from veo_gateway.api import schemas

_ERRORS = {
    400: "The request is malformed or asks for something the model cannot do; `param` names "
    "the field.",
    401: "No API key, an unknown one, or (admin, metrics) not the token.",
    403: "The key may not do this (a model it is not allowed), or the admin API is disabled.",
    404: "No such resource for this key.",
    409: "The Idempotency-Key was used with another request, or its video was deleted.",
    410: "The video was deleted by the retention.",
    413: "The body, or a form field, is over its cap.",
    416: "The Range does not fit the file.",
    429: "A limit of the key is reached (in flight, seconds per day, budget), or the upstream's.",
    431: "The URL and headers together are over VEO_GATEWAY_MAX_HEADER_BYTES.",
    503: "The upstream could not be reached or did not answer in time (retryable).",
}
_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class _Bearer(HTTPBearer):
    """A bearer scheme in the document; hands the raw Authorization header on, unchecked,
    so the gateway's own messages say what is wrong with it."""

    async def __call__(self, request: Request) -> str | None:  # type: ignore[override]
        return request.headers.get("authorization")


client_key = _Bearer(
    scheme_name="clientKey",
    description="A client key: VEO_GATEWAY_API_KEYS, or one made with "
    "`veo-gateway keys create` or `POST /admin/keys`.",
    auto_error=False,
)
admin_token = _Bearer(
    scheme_name="adminToken",
    description="VEO_GATEWAY_ADMIN_TOKEN (client keys do not open the admin API).",
    auto_error=False,
)
metrics_token = _Bearer(
    scheme_name="metricsToken",
    description="VEO_GATEWAY_METRICS_TOKEN, when it is set (else /metrics is open).",
    auto_error=False,
)


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error responses of a route, for its `responses=`; 431 goes with every route."""
    return {
        code: {"model": schemas.ErrorEnvelope, "description": _ERRORS[code]}
        for code in sorted({*codes, 431})
    }


def ok(model: type[BaseModel], description: str, code: int = 200) -> dict[int | str, Any]:
    """A route's success response as `model`."""
    return {code: {"model": model, "description": description}}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def json_body(*models: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route that reads a JSON body of one of `models` by hand."""
    schema = _ref(models[0]) if len(models) == 1 else {"anyOf": [_ref(m) for m in models]}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def create_body() -> dict[str, Any]:
    """`openapi_extra` of `POST /v1/videos`: the spec's JSON, OpenAI's JSON, or OpenAI's form."""
    body = json_body(schemas.SpecVideoCreate, schemas.OpenAIVideoCreate)
    content = body["requestBody"]["content"]
    content["multipart/form-data"] = {
        "schema": _ref(schemas.OpenAIVideoForm),
        "encoding": {"input_reference": {"contentType": "image/png, image/jpeg, image/webp"}},
    }
    content["application/x-www-form-urlencoded"] = {"schema": _ref(schemas.OpenAIVideoForm)}
    body["requestBody"]["description"] = (
        "A JSON body is read as OpenAI's when it has `seconds`, `size` or `input_reference`. "
        "A form body that starts with `{` (what `curl -d '{...}'` sends) is read as JSON."
    )
    return body


def served_routes(app: FastAPI) -> list[tuple[str, frozenset[str]]]:
    """(path, methods) of every route the app serves, the routers' prefixes included."""
    return [
        (context.path, frozenset(context.methods))
        for context in iter_route_contexts(app.routes)
        if context.path and context.methods
    ]


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the app's routes take at `path` (for a 405's `Allow`)."""
    methods: set[str] = set()
    for route_path, route_methods in served_routes(app):
        if compile_path(route_path)[0].match(path):
            methods |= route_methods
    return sorted(methods, key=lambda m: (*_METHOD_ORDER, m).index(m))


def _body_schemas(models: list[type[BaseModel]]) -> dict[str, Any]:
    _, top = models_json_schema(
        [(model, "validation") for model in models],
        ref_template="#/components/schemas/{model}",
    )
    defs: dict[str, Any] = top.get("$defs", {})
    return defs


def _finish(document: dict[str, Any], body_models: list[type[BaseModel]]) -> dict[str, Any]:
    components = document.setdefault("components", {})
    found = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        found.pop(name, None)
    found.update(_body_schemas(body_models))
    components["responses"] = {
        "MethodNotAllowed": {
            "description": "Any route answers 405, with `Allow`, to a method it does not take.",
            "headers": {"Allow": {"schema": {"type": "string"}}},
            "content": {"application/json": {"schema": _ref(schemas.ErrorEnvelope)}},
        },
        "HeadersTooLarge": {
            "description": _ERRORS[431],
            "content": {"application/json": {"schema": _ref(schemas.ErrorEnvelope)}},
        },
    }
    for path in document.get("paths", {}).values():
        for operation in path.values():
            operation.get("responses", {}).pop("422", None)
    metrics = document.get("paths", {}).get("/metrics", {}).get("get")
    if metrics is not None:
        metrics["security"] = [{}, {"metricsToken": []}]  # open unless the token is set
    return document


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` (and `/openapi.json`) the finished document."""
    body_models: list[type[BaseModel]] = [
        schemas.SpecVideoCreate,
        schemas.OpenAIVideoCreate,
        schemas.OpenAIVideoForm,
        schemas.ErrorEnvelope,
    ]

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            from veo_gateway.api.admin import KeyCreate, KeyUpdate

            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=(
                    "Google's Veo video models behind one asynchronous HTTP API. Every error "
                    'is the envelope `{"error": {code, message, status, type, param}}`; any '
                    "route answers 405 with `Allow` to a method it does not take, and 431 to a "
                    "request head over VEO_GATEWAY_MAX_HEADER_BYTES."
                ),
                routes=app.routes,
            )
            app.openapi_schema = _finish(document, [*body_models, KeyCreate, KeyUpdate])
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]
