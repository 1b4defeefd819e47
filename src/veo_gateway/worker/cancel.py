"""Cancelling a task's operation at Google when its task is cancelled (a DELETE).

Only Gemini Omni's interactions can be stopped (`POST .../cancel`); Veo's operations cannot, and
are simply no longer polled. A cancel that fails is logged and never fails the DELETE: the task
is cancelled here either way, and Google's video, if it is made, is not charged.
"""

from __future__ import annotations

import asyncio
import logging

from veo_gateway.errors import UpstreamError
from veo_gateway.providers.base import cancel_upstream
from veo_gateway.providers.pool import CredentialPool

log = logging.getLogger("veo_gateway.worker")

CANCEL_TIMEOUT = 10.0  # seconds a DELETE waits for Google to take the cancel


async def cancel_at_google(
    pool: CredentialPool, credential_id: str | None, operation_name: str
) -> bool:
    """Ask Google to stop `operation_name` with the credential that started it; True when
    Google took the cancel, False when it cannot be cancelled or the call failed (logged)."""
    credential = pool.get(credential_id)
    if credential is None:
        return False
    try:
        async with asyncio.timeout(CANCEL_TIMEOUT):
            cancelled = await cancel_upstream(credential.provider, operation_name)
    except (UpstreamError, TimeoutError) as exc:
        log.warning("cancel of %s at %s failed (%s)", operation_name, credential.id, exc)
        return False
    if cancelled:
        log.info("cancelled %s at %s", operation_name, credential.id)
    return cancelled
