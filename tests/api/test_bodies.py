"""Every JSON body is read strictly: what JSON cannot carry is a 400 naming the field."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.api.test_errors import error_of
from tests.conftest import Gateway

FAST = "veo-3.1-fast-generate-preview"
ADMIN = "admin-token-0123456789"


def post(gateway: Gateway, raw: bytes, path: str = "/v1/videos", key: str | None = None):
    headers = {"Content-Type": "application/json", **gateway.headers()}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return gateway.client.post(path, content=raw, headers=headers)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e309", "-1e309"])
@pytest.mark.parametrize(
    ("template", "param"),
    [
        # The spec dialect, anywhere in the body.
        ('{"model": "MODEL", "prompt": "p", "metadata": {"seed": LIT}}', "metadata.seed"),
        (
            '{"model": "MODEL", "prompt": "p", "metadata": {"durationSeconds": LIT}}',
            "metadata.durationSeconds",
        ),
        ('{"model": "MODEL", "prompt": "p", "images": ["a", LIT]}', "images[1]"),
        (
            '{"model": "MODEL", "prompt": "p", "metadata": {"x": [{"y": LIT}]}}',
            "metadata.x[0].y",
        ),
        ('{"model": "MODEL", "prompt": LIT}', "prompt"),
        # OpenAI's dialect as JSON.
        ('{"prompt": "p", "seconds": LIT}', "seconds"),
        (
            '{"prompt": "p", "size": "1280x720", "input_reference": {"image_url": LIT}}',
            "input_reference.image_url",
        ),
    ],
)
def test_non_finite_numbers_are_refused_naming_the_field(
    gateway: Gateway, template: str, param: str, literal: str
) -> None:
    raw = template.replace("LIT", literal).replace("MODEL", FAST)
    response = post(gateway, raw.encode())
    error = error_of(response)
    assert response.status_code == 400 and error["param"] == param, error
    assert literal.lstrip("-") in error["message"]


def test_the_first_report_is_refused(gateway: Gateway) -> None:
    raw = b'{"model": "veo-3.1-fast-generate-preview", "prompt": "p", "metadata": {"seed": NaN}}'
    response = post(gateway, raw)
    assert response.status_code == 400 and error_of(response)["param"] == "metadata.seed"
    assert gateway.client.get("/v1/videos", headers=gateway.headers()).json()["data"] == []


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        # int() of more than 4300 digits raised ValueError: a 500.
        (
            b'{"model": "m", "prompt": "p", "metadata": {"seed": ' + b"9" * 5000 + b"}}",
            "metadata.seed",
        ),
        (
            b'{"model": "m", "prompt": "p", "metadata": {"seed": 9223372036854775808}}',
            "metadata.seed",
        ),
        # A lone surrogate cannot be encoded as UTF-8 when the task is stored or answered.
        (b'{"model": "m", "prompt": "\\ud800"}', "prompt"),
        (b'{"model": "m", "prompt": "p", "metadata": {"\\udfff": 1}}', "metadata"),
        # RecursionError in the JSON scanner: a 500.
        (b"[" * 100_000 + b"]" * 100_000, "body"),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "body"),
        (b'{"model": "m", "prompt": "p", "metadata": ' + b"[" * 40 + b"]" * 40 + b"}", None),
        # Python reads UTF-16 JSON too; a body must be UTF-8.
        ('{"model": "m", "prompt": "p"}'.encode("utf-16"), "body"),
    ],
)
def test_what_json_cannot_carry_is_refused(gateway: Gateway, raw: bytes, param: str | None) -> None:
    response = post(gateway, raw)
    error = error_of(response)
    assert response.status_code == 400, error
    if param is not None:
        assert error["param"] == param, error


def test_a_body_nested_to_the_limit_is_read(gateway: Gateway) -> None:
    deep = "[" * 28 + "]" * 28
    raw = '{"model": "MODEL", "prompt": "p", "metadata": {"x": DEEP}}'
    raw = raw.replace("MODEL", FAST).replace("DEEP", deep)
    assert post(gateway, raw.encode()).status_code == 200


def test_admin_bodies_are_strict_too(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(admin_token=ADMIN, worker_enabled=False)
    for raw, param in [
        (b'{"name": "x", "monthly_budget_usd": NaN}', "monthly_budget_usd"),
        (b'{"name": "x", "monthly_budget_usd": 1e999}', "monthly_budget_usd"),
        # SQLite's INTEGER cannot hold it: OverflowError, a 500.
        (b'{"name": "x", "max_in_flight": 99999999999999999999999}', "max_in_flight"),
    ]:
        response = post(gateway, raw, "/admin/keys", key=ADMIN)
        assert response.status_code == 400 and error_of(response)["param"] == param
