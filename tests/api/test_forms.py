"""Form bodies (OpenAI's multipart, curl's default form) are read strictly, never as a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.api.test_errors import error_of
from tests.conftest import Gateway

FAST = "veo-3.1-fast-generate-preview"


def part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--b\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"


def multipart(gateway: Gateway, body: bytes, content_type: str = "multipart/form-data; boundary=b"):
    headers = {**gateway.headers(), "Content-Type": content_type}
    return gateway.client.post("/v1/videos", content=body, headers=headers)


@pytest.mark.parametrize(
    ("body", "content_type", "code", "param"),
    [
        # Each of these escaped as 500 INTERNAL.
        (part("prompt", b"p") + b"--b--\r\n", "multipart/form-data", 400, "body"),
        (b"".join(part(f"f{i}", b"v") for i in range(50)) + b"--b--\r\n", None, 400, "f20"),
        (
            b"".join(part("input_reference", b"x", f"a{i}.png") for i in range(3)) + b"--b--\r\n",
            None,
            400,
            "input_reference",
        ),
        (part("prompt", b"x" * (2 * 1024 * 1024)) + b"--b--\r\n", None, 413, "prompt"),
        # Stored as mojibake (Latin-1) before.
        (part("prompt", b"caf\xe9 \xff") + b"--b--\r\n", None, 400, "prompt"),
        (
            part("prompt", b"p")
            + b'--b\r\nContent-Disposition: form-data; name="s\xffze"\r\n\r\nx\r\n--b--\r\n',
            None,
            400,
            "body",
        ),
        # Cut short, or not multipart at all.
        (part("prompt", b"p"), None, 400, "body"),
        (b"garbage", None, 400, "body"),
        (b"--b\r\nContent-Disposition: form-data\r\n\r\nv\r\n--b--\r\n", None, 400, "body"),
    ],
)
def test_broken_multipart_is_refused_in_the_envelope(
    gateway: Gateway, body: bytes, content_type: str | None, code: int, param: str
) -> None:
    response = multipart(gateway, body, content_type or "multipart/form-data; boundary=b")
    error = error_of(response)
    assert response.status_code == code and error["param"] == param, error


def test_utf8_prompts_are_read_as_utf8(gateway: Gateway) -> None:
    body = part("prompt", "un café, 猫".encode()) + part("model", FAST.encode()) + b"--b--\r\n"
    response = multipart(gateway, body)
    assert response.status_code == 200, response.text
    assert response.json()["prompt"] == "un café, 猫"


@pytest.mark.parametrize("body", [b"prompt=caf%E9", b"prompt=%ff", b"prompt=caf\xe9"])
def test_urlencoded_bytes_that_are_not_utf8_are_refused(gateway: Gateway, body: bytes) -> None:
    headers = {**gateway.headers(), "Content-Type": "application/x-www-form-urlencoded"}
    response = gateway.client.post("/v1/videos", content=body, headers=headers)
    assert response.status_code == 400 and error_of(response)["param"] == "body"


@pytest.mark.parametrize("seconds", ["٨", "８", "²", "NaN", "Infinity", "8.0", "-8"])
def test_seconds_must_be_ascii_digits(gateway: Gateway, seconds: str) -> None:
    # "٨" was accepted as 8; "²" passed isdigit() and then int() raised (a 500).
    form = gateway.client.post(
        "/v1/videos", data={"prompt": "p", "seconds": seconds}, headers=gateway.headers()
    )
    as_json = gateway.create({"prompt": "p", "seconds": seconds})
    for response in (form, as_json):
        assert response.status_code == 400 and error_of(response)["param"] == "seconds"


@pytest.mark.parametrize("limit", ["٨", "８", "1e1"])
def test_query_numbers_must_be_ascii_digits(gateway: Gateway, limit: str) -> None:
    response = gateway.client.get("/v1/videos", params={"limit": limit}, headers=gateway.headers())
    assert response.status_code == 400 and error_of(response)["param"] == "limit"


def test_a_file_where_text_is_expected_is_named_without_a_repr(gateway: Gateway) -> None:
    body = part("prompt", b"hello", "prompt.txt") + b"--b--\r\n"
    error = error_of(multipart(gateway, body))
    assert error["param"] == "prompt" and "object at" not in error["message"]
    # What the openai SDK sends for `size=io.BytesIO(...)`: the object's str(), echoed back.
    for field in ("size", "model", "prompt", "seconds"):
        data = {"prompt": "p", field: "<_io.BytesIO object at 0x7f3a2c1b5e40>"}
        response = gateway.client.post("/v1/videos", data=data, headers=gateway.headers())
        error = error_of(response)
        assert response.status_code == 400 and error["param"] == field
        assert "0x7f3a2c1b5e40" not in error["message"]


def test_what_curl_d_sends_is_read_as_json(gateway: Gateway) -> None:
    # `curl -H 'Authorization: Bearer KEY' URL -d '{"model": ...}'`: no Content-Type of its own,
    # so curl sends its default form type, with the JSON as is.
    raw = b'{"model":"veo-3.1-fast-generate-preview","prompt":"a cat"}'
    request = httpx.Request(
        "POST",
        f"{gateway.url}/v1/videos",
        content=raw,
        headers={
            "Authorization": gateway.headers()["Authorization"],
            "User-Agent": "curl/8.5.0",
            "Accept": "*/*",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    response = gateway.client.send(request)
    assert response.status_code == 200, response.text
    video = response.json()
    assert video["object"] == "video" and video["task_id"] == video["id"]  # the spec's shape
    # And its errors are JSON's, not "unknown field '{...}'".
    request = httpx.Request(
        "POST",
        f"{gateway.url}/v1/videos",
        content=b'{"model":"veo-3.1-fast-generate-preview","prompt":"p","metadata":{"seed":NaN}}',
        headers={**gateway.headers(), "Content-Type": "application/x-www-form-urlencoded"},
    )
    error = error_of(gateway.client.send(request))
    assert error["param"] == "metadata.seed"


def test_a_real_form_is_still_a_form(gateway: Gateway) -> None:
    response = gateway.client.post(
        "/v1/videos",
        data={"prompt": "a cat", "model": FAST, "seconds": "4"},
        headers=gateway.headers(),
    )
    assert response.status_code == 200 and response.json()["seconds"] == "4"
