"""The store contract runs against every backend through the ``store`` fixture (PostgreSQL
when ``RELAY_TEST_DATABASE_URL`` is set; see tests/postgres.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from service.store import Store
from service.store.sqlite import SQLiteStore
from tests.postgres import fresh_postgres_database
from tests.support import CIPHER


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh, migrated PostgreSQL database for this test (skips without the variable)."""
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture
async def pg_empty_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database with no schema at all."""
    async with fresh_postgres_database(migrated=False) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        backend: Store = SQLiteStore(str(tmp_path / "contract.db"), cipher=CIPHER)
        await backend.open()
        yield backend
        await backend.close()
        return
    from service.store.postgres import PostgresStore

    async with fresh_postgres_database() as url:
        backend = PostgresStore(url, cipher=CIPHER)
        await backend.open()
        yield backend
        await backend.close()
