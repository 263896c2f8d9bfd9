"""Persistence: the ``Store`` interface and the backends that implement it."""

from __future__ import annotations

from urllib.parse import urlsplit

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


def describe_database(database_url: str) -> str:
    """The database named for a log line or an error: the file, or host, port and database;
    never the user or password."""
    if database_url.startswith("sqlite://"):
        from service.store.sqlite import sqlite_path

        return f"SQLite at {sqlite_path(database_url)}"
    parts = urlsplit(database_url)
    try:
        port = parts.port or 5432
    except ValueError:
        port = "?"  # type: ignore[assignment]
    return f"PostgreSQL at {parts.hostname or 'localhost'}:{port}/{parts.path.lstrip('/')}"


__all__ = ["Store", "describe_database", "make_store"]
