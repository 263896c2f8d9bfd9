"""PostgreSQL migrations: applied once, in order, even by replicas starting together, and in
agreement with what the code writes and with the SQLite schema."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from service.domain import Destination, NewResult, ResultFilter, Status
from service.errors import InvalidRequest, StoreError
from service.store import make_store
from service.store.base import result_columns, token_hash
from service.store.migrations import load_migrations
from service.store.sqlite import SQLiteStore
from tests.integration.test_sqlite_migrations import (
    DEAD_LANES,
    OLD_RESULT_COLUMNS,
    OLD_RESULTS,
    OTHER_TOKEN,
    TOKEN,
    check_migrated,
    expected_dead_webhooks,
    old_result_values,
    opened_hashes,
)
from tests.postgres import migrate_through
from tests.support import CIPHER

asyncpg = pytest.importorskip("asyncpg")
pytestmark = pytest.mark.postgres

from service.store import postgres_queries  # noqa: E402  (needs asyncpg's extra installed)
from service.store.postgres import PostgresStore  # noqa: E402


async def _versions(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
    finally:
        await conn.close()


async def test_migrations_run_on_open_once(pg_empty_url: str) -> None:
    for _ in range(2):
        store = PostgresStore(pg_empty_url, cipher=CIPHER)
        await store.open()
        await store.close()
    assert await _versions(pg_empty_url) == [m.version for m in load_migrations("postgres")]


async def test_replicas_starting_together_migrate_once(pg_empty_url: str) -> None:
    stores = [PostgresStore(pg_empty_url, cipher=CIPHER, min_size=1, max_size=2) for _ in range(4)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        outcomes = await asyncio.gather(
            *(s.accept(_new(f"wf{i}"), now=1.0) for i, s in enumerate(stores))
        )
        assert all(o.created for o in outcomes)
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    assert await _versions(pg_empty_url) == [m.version for m in load_migrations("postgres")]


async def test_schema_has_every_column_the_code_writes(pg_url: str) -> None:
    written = set(result_columns(_new("w"), CIPHER)) | {
        "status", "orphan_reason", "next_attempt_at", "created_at", "updated_at",
    }  # fmt: skip
    assert written == set(postgres_queries.ACCEPT_COLUMNS) | {
        "status", "orphan_reason", "next_attempt_at", "created_at", "updated_at",
    }  # fmt: skip
    assert written <= (await _pg_schema(pg_url))["results"]


async def test_postgres_and_sqlite_schemas_have_the_same_tables_and_columns(
    pg_url: str, tmp_path: Path
) -> None:
    path = str(tmp_path / "schema.db")
    sqlite_store = SQLiteStore(path, cipher=CIPHER)
    await sqlite_store.open()
    await sqlite_store.close()
    with sqlite3.connect(path) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        sqlite_schema = {
            table: {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            for table in tables
        }
    assert await _pg_schema(pg_url) == sqlite_schema


async def test_every_named_query_prepares_against_the_schema(pg_url: str) -> None:
    queries = {
        name: value
        for name, value in vars(postgres_queries).items()
        if name.isupper() and not name.startswith("_") and isinstance(value, str)
        if name not in ("WORK_CHANNEL", "LIST_RESULTS_ORDER")
    }
    every_filter = " AND ".join(
        clause.format(i, i + 1)
        for i, clause in enumerate(postgres_queries.LIST_RESULTS_FILTERS.values(), start=1)
    )
    filters = len(postgres_queries.LIST_RESULTS_FILTERS)
    # Runs are listed with the same filters and order.
    for listing in ("LIST_RESULTS", "LIST_RUNS"):
        queries[listing] += every_filter + postgres_queries.LIST_RESULTS_ORDER.format(filters + 2)
    conn = await asyncpg.connect(pg_url)
    try:
        for name, sql in queries.items():
            try:
                await conn.prepare(sql)
            except asyncpg.PostgresError as exc:  # pragma: no cover - the failure message
                pytest.fail(f"{name} does not prepare: {exc}")
    finally:
        await conn.close()


async def test_database_urls_pick_the_postgres_store() -> None:
    for url in ("postgresql://u@h:5432/db", "postgres://u@h/db"):
        assert isinstance(make_store(url, cipher=CIPHER), PostgresStore)


async def test_an_unreachable_database_is_a_store_error_without_secrets() -> None:
    # A port nothing listens on, on this machine: refused at once, nothing leaves the host.
    store = PostgresStore(
        "postgresql://relay:s3cret-token@127.0.0.1:9/db", cipher=CIPHER, connect_timeout=2
    )
    with pytest.raises(StoreError) as caught:
        await store.open()
    assert "s3cret" not in str(caught.value)
    with pytest.raises(StoreError):
        await store.get_result("acme", "wf")


async def test_text_postgres_cannot_store_is_the_callers_error(pg_url: str) -> None:
    store = PostgresStore(pg_url, cipher=CIPHER)
    await store.open()
    try:
        # PostgreSQL text cannot hold NUL (JSON can, as an escape); UTF-8 has no lone surrogate
        for url in ("https://x/\x00tok", "https://x/\ud83dtok"):
            with pytest.raises(InvalidRequest) as caught:
                await store.accept(_new("wf", url=url), now=1.0)
            assert "tok" not in str(caught.value)
        # the pool is still good afterwards
        assert (await store.accept(_new("wf"), now=1.0)).created
        page = await store.list_results(
            "acme", ResultFilter(status=Status.PENDING), limit=5, cursor=None
        )
        assert [r.workflow_id for r in page.items] == ["wf"]
    finally:
        await store.close()


async def test_a_version_1_database_moves_its_dead_lanes_to_dead_webhooks(
    pg_empty_url: str,
) -> None:
    # given a database at version 1 with a dead lane, a dead thread and results
    await migrate_through(pg_empty_url, 1)
    conn = await asyncpg.connect(pg_empty_url)
    try:
        marks = ", ".join(f"${i}" for i in range(1, len(OLD_RESULT_COLUMNS) + 1))
        await conn.executemany(
            f"INSERT INTO results ({', '.join(OLD_RESULT_COLUMNS)}) VALUES ({marks})",
            [old_result_values(r) for r in OLD_RESULTS],
        )
        await conn.executemany(
            "INSERT INTO lanes (lane, dead_reason, dead_at) VALUES ($1, $2, $3)", DEAD_LANES
        )
    finally:
        await conn.close()
    # when the store opens it
    store = PostgresStore(pg_empty_url, cipher=CIPHER)
    await store.open()
    try:
        # then the dead tokens are listed, every token hashed, and the lanes dead no more
        conn = await asyncpg.connect(pg_empty_url)
        try:
            dead = {tuple(r) for r in await conn.fetch("SELECT * FROM dead_webhooks")}
            hashes = opened_hashes(
                await conn.fetch("SELECT webhook_token, webhook_token_hash FROM results")
            )
            functions = {
                r[0]
                for r in await conn.fetch("SELECT proname FROM pg_proc WHERE proname ~ '^relay_'")
            }
        finally:
            await conn.close()
        assert dead == expected_dead_webhooks()
        assert hashes == {
            TOKEN: token_hash(TOKEN),
            OTHER_TOKEN: token_hash(OTHER_TOKEN),
            None: None,
        }
        assert (await _pg_schema(pg_empty_url))["lanes"] == {
            "lane", "lease_owner", "lease_expires_at",
        }  # fmt: skip
        assert functions == {"relay_enter_webhook", "relay_replica_alive"}
        await check_migrated(store)
    finally:
        await store.close()


def _new(workflow_id: str, **kw: object) -> NewResult:
    hook = Destination(webhook_id="1" * 18, webhook_token="t")
    return NewResult(
        tenant="acme",
        workflow_id=workflow_id,
        body_hash="h",
        results={},
        destination=hook,
        **kw,  # type: ignore[arg-type]
    )


async def _pg_schema(url: str) -> dict[str, set[str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public'"
        )
    finally:
        await conn.close()
    schema: dict[str, set[str]] = {}
    for row in rows:
        schema.setdefault(row["table_name"], set()).add(row["column_name"])
    return schema
