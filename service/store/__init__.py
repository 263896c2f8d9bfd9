"""Persistence: the ``Store`` interface and the backends that implement it."""

from __future__ import annotations

from service.store.base import Store


def make_store(database_url: str) -> Store:
    """The store for ``RELAY_DATABASE_URL``: ``sqlite:///path`` or ``postgresql://...``."""
    if database_url.startswith("sqlite://"):
        from service.store.sqlite import SQLiteStore, sqlite_path

        return SQLiteStore(sqlite_path(database_url))
    if database_url.startswith(("postgresql://", "postgres://")):
        from service.store.postgres import PostgresStore  # asyncpg: the "postgres" extra

        return PostgresStore(database_url)
    raise ValueError("RELAY_DATABASE_URL must start with sqlite:// or postgresql://")


__all__ = ["Store", "make_store"]
