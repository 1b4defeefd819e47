"""Signing against the Standard Webhooks reference vector, and the settings that feed it."""

from __future__ import annotations

import pydantic
import pytest

from tests.webhooks.conftest import verify
from veo_gateway.settings import Settings
from veo_gateway.webhooks.signing import parse_secrets, sign, signed_headers

# The example of the Standard Webhooks specification and its reference libraries' tests.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_reference_vector() -> None:
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_rotation_signs_with_every_secret() -> None:
    secrets = parse_secrets(f"{VECTOR_SECRET}  raw-old-secret")
    assert secrets == [VECTOR_SECRET, "raw-old-secret"]
    headers = signed_headers(secrets, "msg_1", 1614265330, b"{}")
    first, second = headers["webhook-signature"].split(" ")
    assert first == sign(VECTOR_SECRET, "msg_1", 1614265330, b"{}")
    assert second == sign("raw-old-secret", "msg_1", 1614265330, b"{}")
    assert verify("raw-old-secret", headers, b"{}", tolerance=10**10) == {}


def test_a_malformed_whsec_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="base64"):
        parse_secrets("whsec_not*base64")


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"webhook_urls": "https://example.com/hook"}, "needs VEO_GATEWAY_WEBHOOK_SECRET"),
        ({"webhook_urls": "example.com/hook", "webhook_secret": "s"}, "http:// or https://"),
        ({"webhook_secret": "whsec_%%"}, "base64"),
    ],
)
def test_webhook_settings_are_checked_at_start(values: dict[str, str], words: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=words):
        Settings(**values)  # type: ignore[arg-type]
