"""Dependency aliases for the routers: the app's services, the clock and the caller's tenant."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.auth import Authenticator
from service.config import Settings
from service.delivery.worker import Worker
from service.discord.sender import Sender
from service.metrics import Metrics
from service.store import Store


@dataclass(slots=True)
class Services:
    """Everything a request may need, built once by ``create_app``."""

    settings: Settings
    store: Store
    auth: Authenticator
    metrics: Metrics
    clock: Callable[[], float]
    sender: Sender
    worker: Worker | None = None
    worker_expected: bool = False  # readiness requires it only when serve runs it

    def notify(self) -> None:
        """Tell the in-process worker that new work is due."""
        if self.worker is not None:
            self.worker.notify()


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(_services)]


def _store(services: ServicesDep) -> Store:
    return services.store


def _metrics(services: ServicesDep) -> Metrics:
    return services.metrics


def _now(services: ServicesDep) -> float:
    return services.clock()


_bearer = HTTPBearer(auto_error=False, description="An API key of your tenant.")


async def _tenant(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> str:
    tenant = await services.auth.tenant_for(
        f"{credentials.scheme} {credentials.credentials}" if credentials else None
    )
    request.state.tenant = tenant
    return tenant


StoreDep = Annotated[Store, Depends(_store)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
NowDep = Annotated[float, Depends(_now)]
TenantDep = Annotated[str, Depends(_tenant)]
