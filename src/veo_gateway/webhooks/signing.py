"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the signature is its
HMAC-SHA256 under the secret, base64-encoded and prefixed with its version: `v1,<base64>`.
A secret is `whsec_<base64 of the key>`, or any other string, whose UTF-8 bytes are then the key.
Several secrets (during a rotation) give several signatures, separated by spaces, in one
`webhook-signature` header; a receiver accepts the message when any one of them matches.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret: the base64 after `whsec_`, or the UTF-8 bytes of a raw string."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except binascii.Error as exc:
            raise ValueError("a whsec_ secret must be followed by base64") from exc
    return secret.encode("utf-8")


def parse_secrets(value: str) -> list[str]:
    """The secrets of a setting: one, or several separated by spaces (during a rotation)."""
    secrets = value.split()
    for secret in secrets:
        secret_key(secret)  # a malformed whsec_ secret is refused at start-up
    return secrets


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature of the message under `secret`."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(
    secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers of one delivery attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in secrets),
    }
