"""PostgreSQL for tests: a fresh database per test, cloned from a migrated template.

PostgreSQL runs when ``RELAY_TEST_DATABASE_URL`` names a database the tests may connect to, as a
role that may create databases (``postgresql://postgres@127.0.0.1:5432/test``). A template
database named by a hash of the migrations is built once (and kept for later sessions: changed
migrations get a new name); every test gets a fresh database cloned from it, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from service.store.migrations import load_migrations

PG_URL_VARIABLE = "RELAY_TEST_DATABASE_URL"
_TEMPLATE_LOCK = 7_310_870_969_320_468_842  # sessions building the template at once take turns
_template: str | None = None  # built (or found) once per session


def pg_base_url() -> str:
    """The server's test database URL, or skip the test."""
    url = os.environ.get(PG_URL_VARIABLE)
    if not url:
        pytest.skip(f"{PG_URL_VARIABLE} is not set: PostgreSQL tests skipped")
    return url


def database_url(base: str, name: str) -> str:
    return urlunsplit(urlsplit(base)._replace(path=f"/{name}"))


def _template_name() -> str:
    from service.store import postgres_queries

    digest = hashlib.sha256(postgres_queries.CREATE_SCHEMA_MIGRATIONS.encode())
    for migration in load_migrations("postgres"):
        digest.update(f"\0{migration.version}\0{migration.name}\0{migration.sql}".encode())
    return f"relay_template_{digest.hexdigest()[:16]}"


async def _admin(base: str, statement: str) -> None:
    import asyncpg

    # A database just closed may keep a backend for a moment: retry what needs it unused.
    for delay in (0.05, 0.1, 0.2, 0.4, 0.8, 0):
        conn = await asyncpg.connect(base)
        try:
            await conn.execute(statement)
            return
        except asyncpg.ObjectInUseError:
            if not delay:
                raise
        finally:
            await conn.close()
        await asyncio.sleep(delay)


async def _template_database(base: str) -> str:
    global _template
    if _template is not None:
        return _template
    import asyncpg

    from service.store.postgres import PostgresStore
    from tests.support import CIPHER

    name = _template_name()
    conn = await asyncpg.connect(base)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _TEMPLATE_LOCK)
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            # Built under another name and renamed when complete: a crash mid-way leaves no
            # half-migrated template behind under the real name.
            building = f"{name}_build"
            await conn.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{building}" TEMPLATE template0')
            store = PostgresStore(
                database_url(base, building), cipher=CIPHER, min_size=1, max_size=1
            )
            await store.open()
            await store.close()
            await _admin(base, f'ALTER DATABASE "{building}" RENAME TO "{name}"')
    finally:
        with contextlib.suppress(Exception):
            await conn.execute("SELECT pg_advisory_unlock($1)", _TEMPLATE_LOCK)
        await conn.close()
    _template = name
    return name


async def create_database(*, migrated: bool = True) -> str:
    """The URL of a new database of its own (a clone of the migrated template, or empty)."""
    base = pg_base_url()
    template = await _template_database(base) if migrated else "template0"
    name = f"relay_test_{secrets.token_hex(6)}"
    await _admin(base, f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return database_url(base, name)


async def drop_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    await _admin(pg_base_url(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def migrate_through(url: str, version: int) -> None:
    """Bring an empty database to ``version`` as the store would have then, for migration tests
    that start from an older schema."""
    import asyncpg

    from service.store import postgres_queries as q

    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await conn.execute(q.CREATE_SCHEMA_MIGRATIONS)
            for migration in load_migrations("postgres")[:version]:
                await conn.execute(migration.sql)
                await conn.execute(q.RECORD_MIGRATION, migration.version, migration.name, 0.0)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def fresh_postgres_database(*, migrated: bool = True) -> AsyncIterator[str]:
    url = await create_database(migrated=migrated)
    try:
        yield url
    finally:
        await drop_database(url)
