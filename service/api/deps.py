"""Dependency aliases for the routers: the app's services, and the authenticated caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.metrics import Metrics
from service.services import Services
from service.store import Store


# Async on purpose: FastAPI runs plain ``def`` dependencies in a thread pool, a hop per request.
async def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(_services)]

_bearer = HTTPBearer(auto_error=False, description="An API key of your tenant.")


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated request: its tenant and the app's services."""

    tenant: str
    services: Services

    @property
    def store(self) -> Store:
        return self.services.store

    @property
    def metrics(self) -> Metrics:
        return self.services.metrics

    def now(self) -> float:
        return self.services.clock()


# One dependency per request, not one per service: FastAPI's resolution costs per dependency.
async def _caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Caller:
    services: Services = request.app.state.services
    # AuthFirstMiddleware checked the key before the body was read; this is for an app without
    # it (and keeps the bearer scheme in the OpenAPI description).
    tenant: str | None = getattr(request.state, "tenant", None)
    if tenant is None:
        tenant = await services.auth.tenant_for(
            f"{credentials.scheme} {credentials.credentials}" if credentials else None
        )
        request.state.tenant = tenant
    return Caller(tenant=tenant, services=services)


CallerDep = Annotated[Caller, Depends(_caller)]
