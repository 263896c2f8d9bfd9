"""Why a store could not be opened, in one line: the cause from the error's type, never its text."""

from __future__ import annotations

import errno
import socket
import sqlite3

import asyncpg
import pytest

from service.crypto import CipherError
from service.errors import StoreError
from service.startup import explain_store_failure

PG = "postgresql://bob:hunter2@db.internal:5433/relay"
LITE = "sqlite:////srv/relay/relay.db"


def wrapped(cause: BaseException) -> StoreError:
    """As the stores raise it: their own error, from the driver's."""
    try:
        raise StoreError("the database could not be reached") from cause
    except StoreError as exc:
        return exc


@pytest.mark.parametrize(
    ("url", "cause", "says"),
    [
        (PG, asyncpg.InvalidPasswordError("hunter2"), "wrong password for 'bob'"),
        (PG, asyncpg.InvalidCatalogNameError("x"), "the database 'relay' does not exist"),
        (PG, asyncpg.InvalidAuthorizationSpecificationError("x"), "refused the role 'bob'"),
        (PG, asyncpg.CannotConnectNowError("x"), "is starting up or shutting down"),
        (PG, socket.gaierror(-2, "hunter2"), "the host name is unknown"),
        (PG, ConnectionRefusedError(111, "hunter2"), "connection refused"),
        (PG, TimeoutError(), "no answer in time"),
        (PG, OSError("Multiple exceptions: hunter2"), "cannot reach PostgreSQL at db.internal"),
        (LITE, sqlite3.OperationalError("attempt to write a readonly database"), "read-only"),
        (LITE, sqlite3.OperationalError("unable to open database file"), "missing or not"),
        (LITE, sqlite3.DatabaseError("file is not a database"), "not a result-relay database"),
        (LITE, OSError(errno.EROFS, "Read-only file system"), "read-only or not ours"),
        (LITE, OSError(errno.ENOSPC, "No space left"), "the disk is full"),
        (LITE, CipherError("sealed under key id 1a2b3c4d, ... RELAY_SECRET_KEY"), "1a2b3c4d"),
    ],
)
def test_each_cause_has_its_line(url: str, cause: BaseException, says: str) -> None:
    line = str(explain_store_failure(wrapped(cause), url))
    assert says in line
    assert "hunter2" not in line
    if "does not exist" not in line and "starting up" not in line:
        assert any(s in line for s in ("RELAY_DATABASE_URL", "disk is full", "RELAY_SECRET_KEY"))
    assert "\n" not in line


def test_the_database_is_named_without_credentials() -> None:
    line = str(explain_store_failure(wrapped(ConnectionRefusedError()), PG))
    assert "PostgreSQL at db.internal:5433/relay" in line
    assert "bob" not in line
