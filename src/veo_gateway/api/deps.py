"""The services a request handler may use, built in the lifespan and reached as dependencies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request, Security

from veo_gateway.api.auth import Authenticator
from veo_gateway.api.openapi import client_key
from veo_gateway.domain.catalog import Catalog
from veo_gateway.domain.pricing import PriceTable
from veo_gateway.media.fetch import SafeFetcher
from veo_gateway.media.images import ImageLimits
from veo_gateway.media.storage import Storage
from veo_gateway.providers.pool import CredentialPool
from veo_gateway.settings import Settings
from veo_gateway.store.keys import KeyStore
from veo_gateway.store.notifier import LocalNotifier, Notifier
from veo_gateway.store.tasks import TaskStore
from veo_gateway.store.usage import UsageReport
from veo_gateway.worker.scheduler import Worker


@dataclass
class Services:
    """Everything the handlers share; one per app, made in the lifespan."""

    settings: Settings
    catalog: Catalog
    tasks: TaskStore
    keys: KeyStore
    storage: Storage
    fetcher: SafeFetcher
    image_limits: ImageLimits
    auth: Authenticator
    worker: Worker | None
    upstream: str
    pool: CredentialPool
    usage: UsageReport
    prices: PriceTable = field(default_factory=PriceTable)
    notifier: Notifier = field(default_factory=LocalNotifier)


def services_of(request: Request) -> Services:
    """The app's services (set by the lifespan)."""
    services: Services = request.app.state.services
    return services


async def get_services(request: Request) -> Services:
    """The services as a dependency (async: FastAPI runs sync dependencies in a thread pool)."""
    return services_of(request)


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_owner(
    services: ServicesDep, authorization: Annotated[str | None, Security(client_key)]
) -> str:
    """The owner id of the calling key (401 when there is none, or it is unknown)."""
    return await services.auth.owner(authorization)


OwnerDep = Annotated[str, Depends(get_owner)]
