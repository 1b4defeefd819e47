"""Bad input gets the documented envelope, with the spec's words, and never a 500."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway
from tests.support.media import b64, make_image

FAST = "veo-3.1-fast-generate-preview"


def error_of(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == response.status_code
    error: dict[str, Any] = body["error"]
    return error


def test_spec_errors_through_http(gateway: Gateway) -> None:
    img = b64(make_image())
    response = gateway.create(
        {"model": FAST, "prompt": "p", "images": [img, img], "metadata": {"durationSeconds": 6}}
    )
    assert response.status_code == 400
    error = error_of(response)
    assert error["message"] == "Your use case is currently not supported."
    assert error["status"] == "INVALID_ARGUMENT" and error["param"] == "metadata.durationSeconds"

    response = gateway.create(
        {
            "model": FAST,
            "prompt": "p",
            "metadata": {
                "referenceImages": [
                    {"image": {"bytesBase64Encoded": img}, "referenceType": "asset"}
                ]
            },
        }
    )
    assert error_of(response)["message"] == "`referenceImages` isn't supported by this model."


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"", "application/json"),
        (b"\xff\xfe", "application/json"),
        (b"[1,2]", "application/json"),
        (b"null", "application/json"),
        (b'"text"', "text/plain"),
    ],
)
def test_malformed_bodies_get_400(gateway: Gateway, raw: bytes, content_type: str) -> None:
    response = gateway.client.post(
        "/v1/videos", content=raw, headers={**gateway.headers(), "Content-Type": content_type}
    )
    assert response.status_code == 400
    assert error_of(response)["status"] == "INVALID_ARGUMENT"


def test_invalid_base64_and_image_type(gateway: Gateway) -> None:
    response = gateway.create({"model": FAST, "prompt": "p", "images": ["not base64!!"]})
    error = error_of(response)
    assert error["message"].startswith("invalid base64") and error["param"] == "images[0]"
    response = gateway.create(
        {"model": FAST, "prompt": "p", "images": [b64(b"GIF89a" + b"\x00" * 50)]}
    )
    assert response.status_code == 400 and error_of(response)["param"] == "images[0]"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x.png",
        "http://localhost:9/x.png",
        "http://[::1]:9/x.png",
        "http://2130706433:9/x.png",
        "http://[::ffff:127.0.0.1]:9/x.png",
    ],
)
def test_loopback_image_urls_are_refused(gateway: Gateway, url: str) -> None:
    response = gateway.create({"model": FAST, "prompt": "p", "images": [url]})
    error = error_of(response)
    assert response.status_code == 400
    assert error["message"].startswith("failed to download image") and error["param"] == "images[0]"


def test_reference_image_url_refused_names_its_field(gateway: Gateway) -> None:
    response = gateway.create(
        {
            "model": "veo-3.1-generate-preview",
            "prompt": "p",
            "metadata": {
                "referenceImages": [
                    {
                        "image": {"bytesBase64Encoded": "http://127.0.0.1:9/a.png"},
                        "referenceType": "asset",
                    }
                ]
            },
        }
    )
    error = error_of(response)
    assert error["param"] == "metadata.referenceImages[0].image.bytesBase64Encoded"


def test_body_over_the_cap_gets_413(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(max_body_bytes=1024)
    response = gateway.create({"model": FAST, "prompt": "x" * 5000})
    assert response.status_code == 413
    assert error_of(response)["status"] == "INVALID_ARGUMENT"

    def chunks() -> Iterator[bytes]:
        yield b'{"model": "veo-3.1-fast-generate-preview", "prompt": "'
        for _ in range(10):
            yield b"x" * 500
        yield b'"}'

    response = gateway.client.post(
        "/v1/videos",
        content=chunks(),
        headers={**gateway.headers(), "Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_unknown_route_and_method(gateway: Gateway) -> None:
    assert error_of(gateway.client.get("/v1/nothing", headers=gateway.headers()))["code"] == 404
    response = gateway.client.put("/v1/videos", headers=gateway.headers())
    assert response.status_code == 405 and error_of(response)["code"] == 405


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        # Every method of every route at the path, the status fast path's GET included.
        ("PUT", "/v1/videos", "GET, POST"),
        ("PATCH", "/v1/videos/video_x", "GET, DELETE"),
        ("POST", "/v1/videos/video_x/content", "GET, HEAD"),
        ("PUT", "/admin/keys/key_x", "GET, PATCH, DELETE"),
        ("DELETE", "/healthz", "GET"),
    ],
)
def test_405_says_what_is_allowed(gateway: Gateway, method: str, path: str, allow: str) -> None:
    response = gateway.client.request(method, path, headers=gateway.headers())
    assert response.status_code == 405 and response.headers["allow"] == allow
    assert allow in error_of(response)["message"]


def test_request_heads_over_the_cap_get_431(make_gateway: Callable[..., Gateway]) -> None:
    gateway = make_gateway(max_header_bytes=4096)
    ok = gateway.client.get("/v1/models", headers={**gateway.headers(), "X-Pad": "a" * 3000})
    assert ok.status_code == 200
    for extra in ({"X-Pad": "a" * 5000}, {f"X-Pad-{i}": "a" * 100 for i in range(60)}):
        # Status polls (answered before the routing) are covered too.
        for path in ("/v1/models", "/v1/videos/video_x"):
            response = gateway.client.get(path, headers={**gateway.headers(), **extra})
            error = error_of(response)
            assert response.status_code == 431 and error["status"] == "INVALID_ARGUMENT"
    long_url = gateway.client.get("/v1/videos?after=" + "x" * 5000, headers=gateway.headers())
    assert long_url.status_code == 431
