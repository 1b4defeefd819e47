"""Whatever a client sends, the answer is an envelope, never a 500."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import KEY_A, gateway_settings
from tests.support.servers import serve_app
from veo_gateway.app import create_app

MODELS = ["veo-3.1-generate-preview", "veo-3.1-fast-generate-preview", "veo-2.0-generate-001", "x"]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-10, 10)
    | st.floats()  # NaN and infinities too: json.dumps writes them as NaN and Infinity
    | st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
metadata = st.fixed_dictionaries(
    {},
    optional={
        "aspectRatio": st.sampled_from(["16:9", "9:16", "1:1"]) | values,
        "durationSeconds": st.sampled_from([4, 6, 8, 5]) | values,
        "resolution": st.sampled_from(["720p", "1080p", "4k"]) | values,
        "personGeneration": st.sampled_from(["allow_adult", "allow_all"]) | values,
        "negativePrompt": values,
        "referenceImages": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "image": st.fixed_dictionaries(
                        {}, optional={"bytesBase64Encoded": values, "mimeType": values}
                    )
                    | values,
                    "referenceType": st.sampled_from(["asset", "ASSET", "style"]) | values,
                },
            ),
            max_size=4,
        )
        | values,
        "seed": values,
    },
)
bodies = (
    st.fixed_dictionaries(
        {},
        optional={
            "model": st.sampled_from(MODELS) | values,
            "prompt": st.text(max_size=30) | values,
            "images": st.lists(
                st.sampled_from(
                    [
                        "not-base64!",
                        "data:image/png;base64,AAAA",
                        "ftp://x/y",
                        "http://10.0.0.1/a.png",
                        "",
                    ]
                )
                | values,
                max_size=3,
            )
            | values,
            "metadata": metadata | values,
            "extra": values,
        },
    )
    | values
)


def not_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(not_finite(item) for item in value.values())
    if isinstance(value, list):
        return any(not_finite(item) for item in value)
    return False


def test_no_body_gives_a_500(tmp_path: Path) -> None:
    # The worker is off: bodies that happen to be valid are stored, not rendered.
    app = create_app(gateway_settings(tmp_path, worker_enabled=False))
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        headers = {"Authorization": f"Bearer {KEY_A}"}

        @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(bodies)
        def post(body: Any) -> None:
            raw = json.dumps(body)
            response = client.post("/v1/videos", content=raw, headers=headers)
            assert response.status_code in (200, 400), (body, response.text)
            if not_finite(body):
                # Not JSON: refused wherever it is (a task holding one could never be sent).
                assert response.status_code == 400, (body, response.text)
            if response.status_code == 400:
                error = response.json()["error"]
                assert error["code"] == 400 and error["message"]

        post()

        @settings(max_examples=100, deadline=None)
        @given(st.binary(max_size=64), st.text(max_size=20))
        def raw(data: bytes, path: str) -> None:
            response = client.post("/v1/videos", content=data, headers=headers)
            assert response.status_code == 400
            got = client.get("/v1/videos/" + quote(path, safe=""), headers=headers)
            assert got.status_code < 500

        raw()
