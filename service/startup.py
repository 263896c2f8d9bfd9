"""Why a command cannot start, in one line: the cause and the setting to change.

The commands (``serve``, ``worker``, ``keys``, ``purge``) check what they need before they start
anything: the database answers (and, for ``keys`` and ``purge``, already exists), the port is
free, and a production server has an API key. A failure is a :class:`StartupError` whose message
is the one line the command prints; the driver's own words never reach it (they may quote a URL
with its password).
"""

from __future__ import annotations

import errno
import socket
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

from service.crypto import CipherError
from service.store import Store, describe_database

DATABASE = "RELAY_DATABASE_URL"


class StartupError(Exception):
    """A command cannot start; ``str()`` is the one line to print."""


def require_existing_database(database_url: str) -> None:
    """``keys`` and ``purge`` work on the service's database; they never create one."""
    if not database_url.startswith("sqlite://"):
        return  # PostgreSQL is never created here: connecting to a missing one fails, explained
    from service.store.sqlite import sqlite_path

    path = sqlite_path(database_url)
    if path != ":memory:" and not Path(path).is_file():
        raise StartupError(
            f"no database at {Path(path).resolve()} ({DATABASE}): run this where the service "
            f"runs, or set {DATABASE} to its database"
        )


def explain_store_failure(exc: BaseException, database_url: str) -> StartupError:
    """The one line for a store that could not be opened, from the error's type, never its
    text."""
    where = describe_database(database_url)
    chain = _chain(exc)
    for link in chain:
        if isinstance(link, CipherError):
            return StartupError(f"{where}: {link.message}")  # names the variables, no value
    names = {type(link).__name__ for link in chain}
    user = urlsplit(database_url).username or "the default user"
    database = urlsplit(database_url).path.lstrip("/")
    if "InvalidCatalogNameError" in names:
        return StartupError(
            f"{where}: the database {database!r} does not exist; create it "
            f"(createdb {database}) or change {DATABASE}"
        )
    if "InvalidPasswordError" in names:
        return StartupError(f"{where}: wrong password for {user!r}; fix it in {DATABASE}")
    if "InvalidAuthorizationSpecificationError" in names:
        return StartupError(f"{where}: the server refused the role {user!r}; change {DATABASE}")
    if "CannotConnectNowError" in names:
        return StartupError(f"{where} is starting up or shutting down; try again shortly")
    if any(isinstance(link, socket.gaierror) for link in chain):
        return StartupError(f"cannot reach {where}: the host name is unknown; check {DATABASE}")
    if any(isinstance(link, ConnectionRefusedError) for link in chain):
        return StartupError(
            f"cannot reach {where}: connection refused (is PostgreSQL running?); check {DATABASE}"
        )
    if any(isinstance(link, TimeoutError) for link in chain):
        return StartupError(f"cannot reach {where}: no answer in time; check {DATABASE}")
    if not database_url.startswith("sqlite://"):
        if any(isinstance(link, OSError) for link in chain):
            return StartupError(f"cannot reach {where}; check {DATABASE}")
    else:
        for link in chain:
            if isinstance(link, sqlite3.DatabaseError | OSError):
                return _explain_sqlite_or_disk(link, where)
    return StartupError(f"cannot open {where} ({type(exc).__name__}); check {DATABASE}")


def _explain_sqlite_or_disk(error: BaseException, where: str) -> StartupError:
    if isinstance(error, OSError) and error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StartupError(
            f"cannot write {where}: its directory is read-only or not ours; "
            f"set {DATABASE} to a writable place"
        )
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return StartupError(f"cannot write {where}: the disk is full")
    text = str(error).lower()  # SQLite's messages are fixed words, never a value of ours
    if "readonly" in text or "read-only" in text:
        return StartupError(
            f"cannot write {where}: the file or its directory is read-only; "
            f"set {DATABASE} to a writable place"
        )
    if "unable to open" in text:
        return StartupError(
            f"cannot open {where}: its directory is missing or not writable; "
            f"set {DATABASE} to a writable place"
        )
    if "not a database" in text or "malformed" in text:
        return StartupError(
            f"{where} is not a result-relay database (or is damaged); check {DATABASE}"
        )
    return StartupError(f"cannot open {where} ({type(error).__name__}); check {DATABASE}")


def _chain(exc: BaseException) -> list[BaseException]:
    links: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in links:
        links.append(link)
        link = link.__cause__ or link.__context__
    return links


def check_port_free(host: str, port: int) -> None:
    """Bind the address as the server will, and let go: a port in use is one clear line now
    rather than a traceback once the app has started."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        raise StartupError(
            f"cannot listen on {host!r}: not an address of this machine (--host)"
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(
                    f"port {port} on {host} is in use: stop what uses it or choose another (--port)"
                ) from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise StartupError(
                    f"cannot listen on {host}: not an address of this machine (--host)"
                ) from None
            if exc.errno == errno.EACCES:
                raise StartupError(
                    f"port {port} needs privileges here: choose one above 1023 (--port)"
                ) from None
            raise


async def require_an_api_key(store: Store, static_keys: int) -> None:
    """A production server nobody can call is a mistake: say how to make the first key."""
    if static_keys or any(key.revoked_at is None for key in await store.list_api_keys()):
        return
    raise StartupError(
        "no API key: create one with `result-relay keys create --tenant NAME` (it uses the "
        "database this server just prepared), or set RELAY_API_KEYS=tenant:key"
    )
