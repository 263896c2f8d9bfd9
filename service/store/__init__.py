"""Persistence: the ``Store`` interface and the backends that implement it."""

from __future__ import annotations

from service.crypto import TokenCipher
from service.store.base import Store


def make_store(database_url: str, *, cipher: TokenCipher) -> Store:
    """The store for ``RELAY_DATABASE_URL``: ``sqlite:///path`` or ``postgresql://...``; tokens
    are sealed with ``cipher`` on the way in and opened on the way out."""
    if database_url.startswith("sqlite://"):
        from service.store.sqlite import SQLiteStore, sqlite_path

        return SQLiteStore(sqlite_path(database_url), cipher=cipher)
    if database_url.startswith(("postgresql://", "postgres://")):
        from service.store.postgres import PostgresStore  # asyncpg: the "postgres" extra

        return PostgresStore(database_url, cipher=cipher)
    raise ValueError("RELAY_DATABASE_URL must start with sqlite:// or postgresql://")


__all__ = ["Store", "make_store"]
