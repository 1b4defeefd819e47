"""One credential, two protocols: Veo's predictLongRunning and Gemini Omni's Interactions API.

A Gemini API key (or a Vertex AI project) serves both kinds of model, so the pool keeps one
adapter per credential and this one picks the protocol: a submission by the upstream model id
(the ids the config routes Omni's rows to), a poll or a cancel by the operation's name (an
interaction's is `.../interactions/{id}`, a Veo operation's `.../operations/{id}`). Downloads
are the same on both (a files URI, or a `gs://` object), made by the Veo adapter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

from veo_gateway.domain.request import Image, VideoRequest
from veo_gateway.providers.base import OperationStatus, Provider, cancel_upstream
from veo_gateway.providers.omni import OmniProvider


class ProtocolSwitch:
    """Veo's adapter and Omni's behind one credential."""

    def __init__(
        self, veo: Provider, omni: OmniProvider, omni_models: frozenset[str], name: str
    ) -> None:
        self.name = name
        self.veo = veo
        self.omni = omni
        self._omni_models = omni_models

    def _for(self, operation_name: str) -> Provider:
        return self.omni if self.omni.owns(operation_name) else self.veo

    async def submit(self, model: str, request: VideoRequest[Image]) -> str:
        """Start the generation with the protocol of `model`."""
        provider = self.omni if model in self._omni_models else self.veo
        return await provider.submit(model, request)

    async def poll(self, operation_name: str) -> OperationStatus:
        """Poll with the protocol that made `operation_name`."""
        return await self._for(operation_name).poll(operation_name)

    async def cancel(self, operation_name: str) -> bool:
        """Cancel upstream where the protocol can (Omni); False for Veo's operations."""
        return await cancel_upstream(self._for(operation_name), operation_name)

    def download(self, video_ref: str) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Stream a finished video (the same for both protocols)."""
        return self.veo.download(video_ref)
