"""Property-based fuzzing of every route from the app's own `/openapi.json` (schemathesis).

Every operation of the document is called over ASGI with parameters, headers and bodies made
from its schemas, valid ones and invalid ones. No answer may be a 5xx, and every answer must be
one the document lists for the operation, of its content type and shape. The examples are
derived deterministically and bounded, so a run is the same everywhere and fits CI's time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import KEY_A, gateway_settings
from veo_gateway.app import create_app

ADMIN_TOKEN = "fuzz-admin-token-0123456789"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Per operation and generation mode: about a minute for the whole document on two cores.
EXAMPLES = 50

# The document needs no lifespan: building the app opens nothing.
_DOCUMENT = create_app(gateway_settings(Path("unused"))).openapi()
OPERATIONS = [
    (method.upper(), path)
    for path, operations in _DOCUMENT["paths"].items()
    for method in operations
]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    # The worker is off: valid creates are stored and answered, never rendered.
    data_dir = tmp_path_factory.mktemp("fuzz")
    app = create_app(gateway_settings(data_dir, worker_enabled=False, admin_token=ADMIN_TOKEN))
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    shutdown_lifespans()


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode))
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_operation_answers_what_the_document_says(
    api_schema: schemathesis.BaseSchema, method: str, path: str, mode: schemathesis.GenerationMode
) -> None:
    operation = api_schema[path][method]
    token = ADMIN_TOKEN if path.startswith("/admin") else KEY_A

    @given(operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case: schemathesis.Case) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)

    try:
        call()
    except Unsatisfiable:
        # An operation whose every input is valid (no parameter, or only free strings) has no
        # invalid case to make.
        if mode is not schemathesis.GenerationMode.NEGATIVE:
            raise
        pytest.skip("nothing in this operation can be made invalid")
