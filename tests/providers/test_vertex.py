"""The Vertex adapter's reading of operations and GCS URIs."""

from __future__ import annotations

import base64

import pytest

from veo_gateway.errors import UpstreamError
from veo_gateway.providers.vertex import StaticToken, VertexProvider, parse_vertex_operation


def provider(base_url: str | None = None) -> VertexProvider:
    return VertexProvider(
        project="p",
        location="us-central1",
        tokens=StaticToken("t"),
        client=None,  # type: ignore[arg-type]  # these tests never send a request
        base_url=base_url,
    )


def test_operation_outcomes() -> None:
    assert not parse_vertex_operation({"name": "x"}).done
    inline = parse_vertex_operation(
        {
            "done": True,
            "response": {
                "videos": [
                    {
                        "bytesBase64Encoded": base64.b64encode(b"mp4!").decode(),
                        "mimeType": "video/mp4",
                    }
                ]
            },
        }
    )
    assert inline.video == b"mp4!" and inline.error is None
    gcs = parse_vertex_operation(
        {
            "done": True,
            "response": {
                "videos": [{"gcsUri": "gs://b/veo/1/sample_0.mp4", "mimeType": "video/mp4"}]
            },
        }
    )
    assert gcs.video_ref == "gs://b/veo/1/sample_0.mp4"
    blocked = parse_vertex_operation(
        {
            "done": True,
            "response": {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": ["celebrity"]},
        }
    )
    assert blocked.error and "safety" in blocked.error and "celebrity" in blocked.error
    failed = parse_vertex_operation({"done": True, "error": {"code": 3, "message": "bad"}})
    assert failed.error and "bad" in failed.error
    assert parse_vertex_operation({"done": True, "response": {}}).error


def test_urls() -> None:
    default = provider()
    assert default.gcs_url("gs://bucket/a/b c.mp4") == (
        "https://storage.googleapis.com/storage/v1/b/bucket/o/a%2Fb%20c.mp4?alt=media"
    )
    assert provider("http://127.0.0.1:5").gcs_url("gs://b/o") == (
        "http://127.0.0.1:5/storage/v1/b/b/o/o?alt=media"
    )
    with pytest.raises(UpstreamError):
        default.gcs_url("https://evil/x")


async def test_poll_refuses_a_foreign_operation_name() -> None:
    with pytest.raises(UpstreamError):
        await provider().poll("models/x/operations/1")  # a Gemini API name, not Vertex's
