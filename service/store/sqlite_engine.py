"""SQLite plumbing for the store: connections, migrations, reads on a pool, group commit.

All writes go through one writer thread. Writes that arrive while a transaction is being
committed wait and are committed together in the next one (each in its own savepoint, so one
failing write does not undo the others), and each caller is answered only after the commit that
holds its write: one fsync serves many accepts. Reads run on a small pool of their own
connections, which WAL lets proceed while the writer commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from service.errors import StoreError
from service.store.base import token_hash
from service.store.migrations import load_migrations

T = TypeVar("T")
log = logging.getLogger(__name__)

_MAX_BATCH = 256
_READERS = 2
_Write = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]"]


class SQLiteEngine:
    """One database file: ``read(fn)`` and ``write(fn)`` run ``fn(connection)`` off the loop."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="relay-sqlite-writer")
        self._reader_pool = ThreadPoolExecutor(_READERS, thread_name_prefix="relay-sqlite-reader")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._pending: list[_Write] = []
        self._wake: asyncio.Event | None = None
        self._writer_task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Create the folder, migrate, and start the group-commit loop."""
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer_pool, self._migrate)
        self._wake = asyncio.Event()
        self._writer_task = asyncio.create_task(self._write_loop(), name="sqlite-group-commit")

    async def close(self) -> None:
        if self._writer_task is not None:
            await self.write(lambda conn: None)  # answered once all earlier writes committed
            self._writer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer_task
            self._writer_task = None
        self._writer_pool.shutdown(wait=True)
        self._reader_pool.shutdown(wait=True)
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    async def scrub(self) -> None:
        """Rebuild the file and empty the WAL, so that what was overwritten (tokens an earlier
        version stored in clear) is gone from the disk and not only from the tables: an update
        leaves the old bytes in freed page space and in WAL frames until they are reused."""

        def run() -> None:
            conn = self._connection()
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        try:
            await asyncio.get_running_loop().run_in_executor(self._writer_pool, run)
        except sqlite3.Error as exc:
            raise StoreError("the database could not be compacted") from exc

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._reader_pool, lambda: fn(self._connection()))
        except sqlite3.Error as exc:
            raise StoreError("the database could not be read") from exc

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in the next transaction; answered after that transaction committed."""
        if self._wake is None:
            raise StoreError("the store is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((fn, future))
        self._wake.set()
        return await future

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=10000")
            # SQLite has no SHA-256 of its own; migrations hash tokens already stored with it.
            conn.create_function("relay_sha256", 1, _sha256, deterministic=True)
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    def _migrate(self) -> None:
        conn = self._connection()
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for migration in load_migrations("sqlite"):
            if migration.version in done:
                continue
            log.info("applying migration", extra={"version": migration.version})
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _statements(migration.sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (migration.version, migration.name, time.time()),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    async def _write_loop(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending[:_MAX_BATCH], self._pending[_MAX_BATCH:]
                try:
                    outcomes = await loop.run_in_executor(self._writer_pool, self._commit, batch)
                except sqlite3.Error as exc:
                    log.error("commit failed", extra={"error": str(exc), "writes": len(batch)})
                    outcomes = [(False, StoreError("the database could not commit"))] * len(batch)
                for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)

    def _commit(self, batch: list[_Write]) -> list[tuple[bool, Any]]:
        conn = self._connection()
        outcomes: list[tuple[bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for fn, _ in batch:
                conn.execute("SAVEPOINT write")
                try:
                    outcomes.append((True, fn(conn)))
                    conn.execute("RELEASE write")
                except Exception as exc:
                    conn.execute("ROLLBACK TO write")
                    conn.execute("RELEASE write")
                    if isinstance(exc, sqlite3.Error):
                        exc = StoreError("the database refused a write")
                    outcomes.append((False, exc))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return outcomes


def _sha256(text: str | None) -> str | None:
    return token_hash(text) if text is not None else None


def _statements(sql: str) -> list[str]:
    """Split a migration into statements (the files hold no semicolons inside literals)."""
    return [s.strip() for s in sql.split(";") if s.strip() and not _only_comments(s)]


def _only_comments(statement: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in statement.splitlines())
