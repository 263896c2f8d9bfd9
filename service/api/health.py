"""Liveness and readiness, without authentication."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.api.deps import ServicesDep
from service.api.schemas import Health, Readiness
from service.errors import StoreError

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="The store answers and the worker runs",
    responses={503: {"model": Readiness, "description": "Not ready; `checks` says what failed"}},
)
async def readyz(services: ServicesDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        await services.store.ping()
        checks["store"] = "ok"
    except StoreError:
        checks["store"] = "unreachable"
    if services.worker is not None and services.worker_expected:
        checks["worker"] = "ok" if services.worker.alive else "stopped"
    ready = all(v == "ok" for v in checks.values())
    body = Readiness(status="ready" if ready else "not_ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
