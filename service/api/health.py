"""Liveness and readiness, without authentication."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.api.deps import ServicesDep
from service.api.schemas import Health, Readiness
from service.errors import StoreError
from service.store import Store

# A write stuck behind a full disk or a lock must not hold the probe (and the orchestrator) up.
_WRITE_PROBE_SECONDS = 5.0

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="The store answers and takes writes, and the worker runs",
    responses={
        503: {
            "model": Readiness,
            "description": "Not ready; `checks` says what failed (`store`: `unreachable`, "
            "`read_only` when reads work but a write cannot commit, `write_timeout`)",
        }
    },
)
async def readyz(services: ServicesDep) -> JSONResponse:
    checks = {"store": await _store_check(services.store)}
    if services.worker is not None and services.worker_expected:
        checks["worker"] = "ok" if services.worker.alive else "stopped"
    ready = all(v == "ok" for v in checks.values())
    body = Readiness(status="ready" if ready else "not_ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


async def _store_check(store: Store) -> str:
    """``ok`` only when the store answers and commits a write: a database that still reads but
    cannot write (a full disk, a read-only file) would accept nothing."""
    try:
        await store.ping()
    except StoreError:
        return "unreachable"
    try:
        async with asyncio.timeout(_WRITE_PROBE_SECONDS):
            await store.probe_write()
    except StoreError:
        return "read_only"
    except TimeoutError:
        return "write_timeout"
    return "ok"
