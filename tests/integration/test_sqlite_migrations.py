"""SQLite migrations: applied once, in order, and in agreement with what the code writes."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from service.domain import Destination, NewResult, Status
from service.store import Store
from service.store.base import result_columns, token_hash
from service.store.migrations import load_migrations
from service.store.sqlite import SQLiteStore, sqlite_path
from tests.support import CIPHER


async def test_migrations_run_on_open_once(tmp_path: Path) -> None:
    path = str(tmp_path / "m.db")
    for _ in range(2):
        store = SQLiteStore(path, cipher=CIPHER)
        await store.open()
        await store.close()
    with sqlite3.connect(path) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]
        assert versions == [m.version for m in load_migrations("sqlite")]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_schema_has_every_column_the_code_writes(tmp_path: Path) -> None:
    path = str(tmp_path / "m.db")
    store = SQLiteStore(path, cipher=CIPHER)
    await store.open()
    await store.close()
    hook = Destination(webhook_id="1" * 18, webhook_token="t")
    new = NewResult(tenant="t", workflow_id="w", body_hash="h", results={}, destination=hook)
    written = set(result_columns(new, CIPHER)) | {
        "status", "orphan_reason", "next_attempt_at", "created_at", "updated_at",
    }  # fmt: skip
    with sqlite3.connect(path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(results)")}
    assert written <= columns


def test_database_urls_map_to_paths() -> None:
    assert sqlite_path("sqlite:///./data/relay.db") == "./data/relay.db"
    assert sqlite_path("sqlite:////var/lib/relay.db") == "/var/lib/relay.db"
    assert sqlite_path("sqlite://") == ":memory:"


# -- 0003: dead webhooks per (webhook id, token), parts in flight -----------------------------
# A database as version 2 left it: the lane of WEBHOOK_ID died (its results orphaned with the
# lane's reason), and so, later and for another reason, did one of its threads, by the same
# token. One result of the dead lane was orphaned for a reason of its own before: its token is
# not known dead. Shared with test_postgres_migrations.
TOKEN = "fake-token-" + "x" * 57
OTHER_TOKEN = "other-token-" + "y" * 56
WEBHOOK_ID, OTHER_WEBHOOK_ID, THREAD_ID = "112233445566778899", "998877665544332211", "2233"
DEAD_LANES = [
    (WEBHOOK_ID, "webhook_deleted", 100.0),
    (f"{WEBHOOK_ID}:{THREAD_ID}", "webhook_unauthorized", 200.0),
]
OLD_RESULTS: list[dict[str, object]] = [
    # workflow_id, status, orphan_reason, webhook_id, webhook_token, thread_id, lane
    dict(workflow_id="killed", status="orphaned", orphan_reason="webhook_deleted",
         webhook_id=WEBHOOK_ID, webhook_token=TOKEN, thread_id=None, lane=WEBHOOK_ID),
    dict(workflow_id="killed-in-thread", status="orphaned", orphan_reason="webhook_unauthorized",
         webhook_id=WEBHOOK_ID, webhook_token=TOKEN, thread_id=THREAD_ID,
         lane=f"{WEBHOOK_ID}:{THREAD_ID}"),
    dict(workflow_id="exhausted", status="orphaned", orphan_reason="attempts_exhausted",
         webhook_id=WEBHOOK_ID, webhook_token=OTHER_TOKEN, thread_id=None, lane=WEBHOOK_ID),
    dict(workflow_id="elsewhere", status="pending", orphan_reason=None,
         webhook_id=OTHER_WEBHOOK_ID, webhook_token=TOKEN, thread_id=None,
         lane=OTHER_WEBHOOK_ID),
    dict(workflow_id="interaction", status="pending", orphan_reason=None,
         webhook_id=None, webhook_token=None, thread_id=None, lane="interaction:1"),
]  # fmt: skip
OLD_RESULT_COLUMNS = (
    "tenant", "workflow_id", "body_hash", "status", "results", "webhook_id", "webhook_token",
    "thread_id", "lane", "created_at", "updated_at", "next_attempt_at", "orphan_reason",
)  # fmt: skip


def old_result_values(result: dict[str, object]) -> tuple[object, ...]:
    """One of OLD_RESULTS as the values of OLD_RESULT_COLUMNS."""
    pending = result["status"] == "pending"
    full = {
        "tenant": "acme",
        "body_hash": "h",
        "results": "{}",
        "created_at": 1.0,
        "updated_at": 1.0,
        "next_attempt_at": 1.0 if pending else None,
        **result,
    }
    return tuple(full[name] for name in OLD_RESULT_COLUMNS)


def opened_hashes(rows: Iterable[Sequence[Any]]) -> dict[str | None, str | None]:
    """``(webhook_token, webhook_token_hash)`` rows as ``{clear token: hash}``; every stored
    token must be sealed."""
    hashes = {}
    for sealed, hashed in rows:
        assert sealed is None or CIPHER.is_sealed(sealed)
        token = CIPHER.decrypt(sealed, column="results.webhook_token") if sealed else None
        hashes[token] = hashed
    return hashes


def expected_dead_webhooks() -> set[tuple[str, str, str, float]]:
    """The dead list the migration makes of DEAD_LANES: one token, the later verdict."""
    return {(WEBHOOK_ID, token_hash(TOKEN), "webhook_unauthorized", 200.0)}


async def check_migrated(store: Store) -> None:
    """What the migrated store must say and do with OLD_RESULTS and DEAD_LANES."""
    assert await store.dead_reason(WEBHOOK_ID, TOKEN) == "webhook_unauthorized"
    assert await store.dead_reason(WEBHOOK_ID, OTHER_TOKEN) is None
    assert await store.dead_reason(OTHER_WEBHOOK_ID, TOKEN) is None
    hook = Destination(webhook_id=WEBHOOK_ID, webhook_token=TOKEN)
    new = NewResult(tenant="acme", workflow_id="late", body_hash="h", results={}, destination=hook)
    late = await store.accept(new, now=2.0)
    assert (late.record.status, late.record.orphan_reason) == (
        Status.ORPHANED,
        "webhook_unauthorized",
    )
    # the token that was never refused, and the webhook that never died, take work
    other = Destination(webhook_id=WEBHOOK_ID, webhook_token=OTHER_TOKEN)
    assert await store.redeliver("acme", "exhausted", destination=other, now=3.0) is not None
    assert await store.claim_lane("w", now=3.0, lease_seconds=30) is not None
    for result in OLD_RESULTS:
        record = await store.get_result("acme", str(result["workflow_id"]))
        assert record is not None and record.in_flight is None


async def test_a_version_2_database_moves_its_dead_lanes_to_dead_webhooks(tmp_path: Path) -> None:
    # given a database at version 2 with a dead lane, a dead thread and results
    path = str(tmp_path / "v2.db")
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        for migration in load_migrations("sqlite")[:2]:
            conn.executescript(migration.sql)
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, 0)",
                (migration.version, migration.name),
            )
        marks = ", ".join("?" for _ in OLD_RESULT_COLUMNS)
        conn.executemany(
            f"INSERT INTO results ({', '.join(OLD_RESULT_COLUMNS)}) VALUES ({marks})",
            [old_result_values(r) for r in OLD_RESULTS],
        )
        conn.executemany(
            "INSERT INTO lanes (lane, dead_reason, dead_at) VALUES (?, ?, ?)", DEAD_LANES
        )
    conn.close()
    # when the store opens it
    store = SQLiteStore(path, cipher=CIPHER)
    await store.open()
    try:
        # then the dead tokens are listed, every token hashed, and the lanes dead no more
        with sqlite3.connect(path) as conn:
            dead = set(conn.execute("SELECT * FROM dead_webhooks").fetchall())
            hashes = opened_hashes(
                conn.execute("SELECT webhook_token, webhook_token_hash FROM results")
            )
            lane_columns = {row[1] for row in conn.execute("PRAGMA table_info(lanes)")}
        conn.close()
        assert dead == expected_dead_webhooks()
        assert hashes == {
            TOKEN: token_hash(TOKEN),
            OTHER_TOKEN: token_hash(OTHER_TOKEN),
            None: None,
        }
        assert lane_columns == {"lane", "lease_owner", "lease_expires_at"}
        await check_migrated(store)
    finally:
        await store.close()
