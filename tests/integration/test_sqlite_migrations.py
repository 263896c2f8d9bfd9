"""SQLite migrations: applied once, in order, and in agreement with what the code writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from service.domain import Destination, NewResult
from service.store.base import result_columns
from service.store.migrations import load_migrations
from service.store.sqlite import SQLiteStore, sqlite_path


async def test_migrations_run_on_open_once(tmp_path: Path) -> None:
    path = str(tmp_path / "m.db")
    for _ in range(2):
        store = SQLiteStore(path)
        await store.open()
        await store.close()
    with sqlite3.connect(path) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]
        assert versions == [m.version for m in load_migrations("sqlite")]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_schema_has_every_column_the_code_writes(tmp_path: Path) -> None:
    path = str(tmp_path / "m.db")
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    hook = Destination(webhook_id="1" * 18, webhook_token="t")
    new = NewResult(tenant="t", workflow_id="w", body_hash="h", results={}, destination=hook)
    written = set(result_columns(new)) | {
        "status", "orphan_reason", "next_attempt_at", "created_at", "updated_at",
    }  # fmt: skip
    with sqlite3.connect(path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(results)")}
    assert written <= columns


def test_database_urls_map_to_paths() -> None:
    assert sqlite_path("sqlite:///./data/relay.db") == "./data/relay.db"
    assert sqlite_path("sqlite:////var/lib/relay.db") == "/var/lib/relay.db"
    assert sqlite_path("sqlite://") == ":memory:"
