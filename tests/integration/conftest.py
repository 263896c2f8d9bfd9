"""The store contract runs against every backend through the ``store`` fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from service.store import Store
from service.store.sqlite import SQLiteStore


@pytest.fixture(params=["sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    backend: Store = SQLiteStore(str(tmp_path / "contract.db"))
    await backend.open()
    yield backend
    await backend.close()
