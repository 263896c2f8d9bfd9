"""/readyz tells the truth: not ready while the store cannot write, though it still reads.

The full-disk case (a real tmpfs) is in test_full_disk.py; PostgreSQL's read-only case is in
the store contract."""

from __future__ import annotations

import asyncio

import httpx

from service.api.deps import Services
from service.store.sqlite import SQLiteStore
from tests.support import ACME, submission


async def _writer_query_only(store: SQLiteStore, *, on: bool) -> None:
    """Set the writer connection read-only (or back), on the writer's own thread: a read-only
    connection cannot even begin the group commit that ``write`` runs in."""
    engine = store._db
    statement = f"PRAGMA query_only = {'ON' if on else 'OFF'}"
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(engine._writer_pool, lambda: engine._connection().execute(statement))


async def test_readiness_is_503_while_the_database_is_read_only(
    client: httpx.AsyncClient, services: Services
) -> None:
    # given a ready service holding a result
    assert (await client.post("/v1/results", json=submission(), headers=ACME)).status_code == 202
    ready = await client.get("/readyz")
    assert (ready.status_code, ready.json()["checks"]["store"]) == (200, "ok")
    store = services.store
    assert isinstance(store, SQLiteStore)
    # when the database stops taking writes (the writer's connection turns read-only, as a
    # read-only file or mount would make it; root ignores file modes, so a pragma stands in)
    await _writer_query_only(store, on=True)
    not_ready = await client.get("/readyz")
    still_read = await client.get("/v1/results/wf_1", headers=ACME)
    refused = await client.post("/v1/results", json=submission("wf_2"), headers=ACME)
    await _writer_query_only(store, on=False)
    recovered = await client.get("/readyz")
    # then readiness says so while reads still work, and is ready again once writes are
    assert not_ready.status_code == 503
    assert not_ready.json() == {"status": "not_ready", "checks": {"store": "read_only"}}
    assert still_read.status_code == 200
    assert refused.status_code == 503
    assert (recovered.status_code, recovered.json()["checks"]["store"]) == (200, "ok")
