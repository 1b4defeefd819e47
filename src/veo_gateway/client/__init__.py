"""A small typed client of the gateway's video API, blocking (`Client`) and asyncio (`AsyncClient`).

    with Client("http://127.0.0.1:8000", api_key="vgw_...") as client:
        video = client.create("a cat chasing a butterfly", duration=4)
        video = client.wait(video.id, on_progress=lambda v: print(v.status, v.progress))
        if video.status == "completed":
            client.download(video.id, "cat.mp4")

`base_url` and `api_key` default to VEO_GATEWAY_BASE_URL (else http://127.0.0.1:8000) and
VEO_GATEWAY_API_KEY. Errors the gateway sends raise `ApiError` with its own message.
"""

from veo_gateway.client.aio import AsyncClient
from veo_gateway.client.common import (
    API_KEY_ENV,
    BASE_URL_ENV,
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    ApiError,
    ClientError,
    Video,
)
from veo_gateway.client.sync import Client

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "ApiError",
    "AsyncClient",
    "Client",
    "ClientError",
    "Video",
]
