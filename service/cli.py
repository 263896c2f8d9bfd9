"""The ``result-relay`` command: serve, keys, purge."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from pydantic import ValidationError

from service import __version__
from service.auth import hash_key, new_api_key
from service.config import Settings, load_settings
from service.logs import configure_logging
from service.metrics import Metrics
from service.retention import purge_once
from service.store import Store, make_store

T = TypeVar("T")
TENANT_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")

EPILOG = """\
Settings come from RELAY_* environment variables (see README.md), for example
RELAY_DATABASE_URL (default sqlite:///./data/relay.db) and RELAY_API_KEYS (tenant:key,...).
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="result-relay",
        description="Durable delivery of Discord bot results through channel webhooks.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"result-relay {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the HTTP API and the delivery worker",
        description="Run the HTTP API on HOST:PORT, with the delivery worker and retention in "
        "the same process, until SIGINT or SIGTERM.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to bind (default 8080)")
    serve.set_defaults(run=_serve)

    worker = commands.add_parser(
        "worker",
        help="run the delivery worker alone (no HTTP API)",
        description="Deliver pending results until SIGINT or SIGTERM, then finish the requests "
        "in flight and release the lanes. Without the API in the same process it finds new "
        "work by polling every RELAY_POLL_SECONDS.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    worker.set_defaults(run=_worker)

    keys = commands.add_parser(
        "keys",
        help="create, list and revoke stored API keys",
        description="Manage API keys kept (hashed) in the database. A key is shown only once.",
    )
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = key_commands.add_parser("create", help="create a key for a tenant and print it once")
    create.add_argument(
        "--tenant", required=True, type=_tenant, help="the tenant the key belongs to"
    )
    create.add_argument("--label", help="a note to recognise the key by")
    create.set_defaults(run=_keys_create)
    listing = key_commands.add_parser("list", help="list keys (never the secrets)")
    listing.set_defaults(run=_keys_list)
    revoke = key_commands.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id", help="the id shown by 'keys create' and 'keys list'")
    revoke.set_defaults(run=_keys_revoke)

    purge = commands.add_parser(
        "purge",
        help="remove delivered and orphaned results past retention",
        description="Remove delivered and orphaned results older than RELAY_RETENTION_DAYS "
        "(pending results are never purged).",
    )
    purge.add_argument(
        "--older-than-days",
        type=_days,
        help="override RELAY_RETENTION_DAYS for this run (0 or more)",
    )
    purge.set_defaults(run=_purge)

    demo = commands.add_parser(
        "demo",
        help="the whole loop on this machine: Discord emulator, service and a sample bot",
        description="Start the Discord emulator and the service on free local ports, hand over "
        "a few results as a bot would, and print what Discord received and how to read back "
        "what could not be delivered. Needs no Discord account and leaves nothing behind.",
    )
    demo.set_defaults(run=_demo)

    openapi = commands.add_parser(
        "openapi",
        help="print the HTTP API description (OpenAPI, YAML)",
        description="Print the OpenAPI description the app serves at /openapi.json, as YAML "
        "(this is how openapi.yaml is made: result-relay openapi > openapi.yaml).",
    )
    openapi.set_defaults(run=_openapi)
    return parser


def _tenant(value: str) -> str:
    if not TENANT_PATTERN.fullmatch(value):
        raise argparse.ArgumentTypeError("a tenant is 1-64 of A-Z a-z 0-9 _ . -")
    return value


def _days(value: str) -> float:
    try:
        days = float(value)
    except ValueError:
        days = math.nan
    if not math.isfinite(days) or days < 0:
        raise argparse.ArgumentTypeError("days must be a number, 0 or more")
    return days


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ValidationError as exc:
        print(f"result-relay: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    run: Callable[[argparse.Namespace, Settings], int] = args.run
    try:
        return run(args, settings)
    except ValueError as exc:
        print(f"result-relay: {exc}", file=sys.stderr)
        return 2


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from service.app import create_app
    from service.memory import return_large_buffers

    return_large_buffers()
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from service.services import build_services

    async def run() -> None:
        services = build_services(settings, worker=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await services.start()
        try:
            await stop.wait()
        finally:
            await services.stop()

    asyncio.run(run())
    return 0


def _with_store(settings: Settings, action: Callable[[Store], Awaitable[T]]) -> T:
    async def run() -> T:
        store = make_store(settings.database_url)
        await store.open()
        try:
            return await action(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _keys_create(args: argparse.Namespace, settings: Settings) -> int:
    key, secret = new_api_key(args.tenant, args.label, time.time())
    _with_store(settings, lambda store: store.add_api_key(key, key_hash=hash_key(secret)))
    print(f"key id: {key.key_id}\ntenant: {key.tenant}\napi key: {secret}")
    print("Keep the key now: it is stored hashed and cannot be shown again.", file=sys.stderr)
    return 0


def _keys_list(args: argparse.Namespace, settings: Settings) -> int:
    keys = _with_store(settings, lambda store: store.list_api_keys())
    print(f"{'KEY ID':<14}{'TENANT':<20}{'CREATED':<22}{'REVOKED':<22}LABEL")
    for key in keys:
        revoked = _when(key.revoked_at) if key.revoked_at else "-"
        print(
            f"{key.key_id:<14}{key.tenant:<20}{_when(key.created_at):<22}{revoked:<22}"
            f"{key.label or ''}"
        )
    return 0


def _keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    revoked = _with_store(
        settings, lambda store: store.revoke_api_key(args.key_id, now=time.time())
    )
    if not revoked:
        print(f"result-relay: no active key with id {args.key_id!r}", file=sys.stderr)
        return 1
    print(f"revoked {args.key_id}")
    return 0


def _purge(args: argparse.Namespace, settings: Settings) -> int:
    days = args.older_than_days if args.older_than_days is not None else settings.retention_days
    removed = _with_store(
        settings,
        lambda store: purge_once(store, retention_days=days, now=time.time(), metrics=Metrics()),
    )
    print(f"purged {removed} result(s) older than {days:g} days")
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from service.demo import run_demo

    logging.getLogger().setLevel(logging.WARNING)  # the demo's own output tells the story
    return run_demo(sys.stdout)


def _openapi(args: argparse.Namespace, settings: Settings) -> int:
    from service.app import create_app, openapi_yaml

    print(openapi_yaml(create_app(settings, background=False)), end="")
    return 0


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
