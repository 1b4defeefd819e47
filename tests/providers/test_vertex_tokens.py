"""Vertex tokens from a service-account file: fetched, cached, refreshed before expiry.

google-auth signs a JWT with the file's key and posts it to the file's `token_uri`; here that is
a stand-in for Google's OAuth endpoint on loopback, the one part of Google that cannot run here.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.servers import serve_app
from veo_gateway.errors import UpstreamError
from veo_gateway.providers.vertex import GoogleAuthTokens


def oauth_server(lifetimes: list[int]) -> tuple[Starlette, list[str]]:
    grants: list[str] = []

    async def token(request: Request) -> JSONResponse:
        form = parse_qs((await request.body()).decode())
        grants.append(form["assertion"][0])
        lifetime = lifetimes[min(len(grants) - 1, len(lifetimes) - 1)]
        return JSONResponse(
            {"access_token": f"token-{len(grants)}", "expires_in": lifetime, "token_type": "Bearer"}
        )

    return Starlette(routes=[Route("/token", token, methods=["POST"])]), grants


EMAIL = "veo@p.iam.gserviceaccount.com"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def service_account_file(tmp_path: Path, token_uri: str) -> Path:
    key = KEY
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = tmp_path / "sa.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "p",
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": EMAIL,
                "client_id": "1",
                "token_uri": token_uri,
            }
        )
    )
    return path


async def test_tokens_are_cached_then_refreshed_before_expiry(tmp_path: Path) -> None:
    # First token lives an hour (cached); the second only a minute (inside the 5-minute margin,
    # so the next call refreshes it).
    app, grants = oauth_server([3600, 60, 3600])
    with serve_app(app) as url:
        tokens = GoogleAuthTokens(service_account_file(tmp_path, f"{url}/token"))
        assert await tokens.token() == "token-1"
        assert await tokens.token() == "token-1"
        assert len(grants) == 1
        tokens._credentials.expiry = tokens._credentials.expiry.replace(year=2000)
        assert await tokens.token() == "token-2"
        assert await tokens.token() == "token-3"  # token-2 expires within the margin
        assert len(grants) == 3
        for grant in grants:
            check_grant(grant)


def _segment(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_grant(grant: str) -> None:
    """The assertion is an RS256 JWT signed by the service account's key, for Vertex's scope,
    issued by its e-mail, living an hour from now, addressed to Google's OAuth endpoint (the
    audience Google's docs name, whatever URI the grant is posted to)."""
    head, body, signature = grant.split(".")
    header, claims = json.loads(_segment(head)), json.loads(_segment(body))
    assert header == {"alg": "RS256", "typ": "JWT", "kid": "k1"}
    KEY.public_key().verify(
        _segment(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    assert claims["iss"] == EMAIL
    assert claims["aud"] == "https://oauth2.googleapis.com/token"
    assert claims["scope"] == "https://www.googleapis.com/auth/cloud-platform"
    assert abs(claims["iat"] - time.time()) < 300
    assert claims["exp"] - claims["iat"] == 3600


async def test_a_broken_credential_becomes_a_401(tmp_path: Path) -> None:
    path = tmp_path / "sa.json"
    path.write_text("{}")
    with pytest.raises(UpstreamError) as info:
        await GoogleAuthTokens(path).token()
    assert info.value.code == 401 and not info.value.retryable
