"""The ``result-relay`` command: serve, worker, keys, secrets, purge, demo, openapi."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from service import __version__
from service.auth import hash_key, new_api_key
from service.config import Settings, load_settings, settings_problems
from service.crypto import CipherError, generate_key
from service.keyfile import cipher_from_settings
from service.logs import configure_logging
from service.metrics import Metrics
from service.retention import purge_once
from service.startup import (
    StartupError,
    check_port_free,
    explain_store_failure,
    require_an_api_key,
    require_existing_database,
)
from service.store import Store, make_store

T = TypeVar("T")
TENANT_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")

EPILOG = """\
Settings come from RELAY_* environment variables (see README.md), for example
RELAY_DATABASE_URL (default sqlite:///./data/relay.db), RELAY_API_KEYS (tenant:key,...) and
RELAY_BOT_TOKENS (tenant:token,...: checked with Discord at every start).
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
        help="run the HTTP API, the dashboard and the delivery worker",
        description="Run the HTTP API and the operator dashboard (/ui/) on HOST:PORT, with the "
        "delivery worker and retention in the same process, until SIGINT or SIGTERM.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8080, help="port to bind (default 8080)")
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

    _add_secrets(commands)

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
        "what could not be delivered. Needs no Discord account and leaves nothing behind, "
        "unless --keep. The service's log lines go to a file it names.",
    )
    demo.add_argument(
        "--keep",
        action="store_true",
        help="leave the emulator and the service running until Ctrl-C, and print an API key "
        "with the curl and /retrieve_results lines to try",
    )
    demo.set_defaults(run=_demo, throwaway_key=True)

    openapi = commands.add_parser(
        "openapi",
        help="print the HTTP API description (OpenAPI, YAML)",
        description="Print the OpenAPI description the app serves at /openapi.json, as YAML "
        "(this is how openapi.yaml is made: result-relay openapi > openapi.yaml).",
    )
    openapi.set_defaults(run=_openapi, throwaway_key=True)
    return parser


SECRETS_EPILOG = """\
What is encrypted: the webhook and interaction tokens of results, the tokens of registered
destinations, and the tenants' bot tokens (AES-GCM). Token hashes, used to find dead webhooks,
stay as they are.

To rotate the key:
  1. export RELAY_SECRET_KEY_PREVIOUS=$RELAY_SECRET_KEY
     export RELAY_SECRET_KEY=$(result-relay secrets generate)
  2. restart every process with both set (the old key stays readable)
  3. result-relay secrets rotate
  4. once it printed its count, drop RELAY_SECRET_KEY_PREVIOUS and restart

In development (RELAY_ENVIRONMENT=development) without RELAY_SECRET_KEY the service keeps its
key in secret.key beside the SQLite database (./data by default); production refuses to start
without RELAY_SECRET_KEY.
"""


def _add_secrets(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    secrets = commands.add_parser(
        "secrets",
        help="make a secret key; re-encrypt stored tokens under it",
        description="Webhook, interaction and bot tokens are stored encrypted under "
        "RELAY_SECRET_KEY (32 random bytes, base64url).",
        epilog=SECRETS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = secrets.add_subparsers(dest="secrets_command", required=True, metavar="ACTION")
    generate = actions.add_parser(
        "generate",
        help="print a new secret key (only the key, one line)",
        description="Print a new secret key, 32 random bytes as base64url, on one line and "
        "nothing else, so that\n  export RELAY_SECRET_KEY=$(result-relay secrets generate)\n"
        "works. Nothing is stored and no setting is read.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    generate.set_defaults(run_without_settings=_secrets_generate)
    rotate = actions.add_parser(
        "rotate",
        help="re-encrypt every stored token under RELAY_SECRET_KEY",
        description="Re-encrypt every stored token under RELAY_SECRET_KEY, opening those "
        "sealed under the old key with RELAY_SECRET_KEY_PREVIOUS. Works in batches, each its "
        "own transaction, while the service keeps running; running it again changes nothing. "
        "Prints how many tokens it changed.",
        epilog=SECRETS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rotate.set_defaults(run=_secrets_rotate)


def _tenant(value: str) -> str:
    if not TENANT_PATTERN.fullmatch(value):
        raise argparse.ArgumentTypeError("a tenant is 1-64 of A-Z a-z 0-9 _ . -")
    return value


def _port(value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(
            f"a port is a number from 1 to 65535 (or 0 for any free port), not {value!r}"
        )
    return int(value)


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
    plain: Callable[[argparse.Namespace], int] | None = getattr(args, "run_without_settings", None)
    if plain is not None:
        return plain(args)
    overrides: dict[str, object] = {}
    if getattr(args, "throwaway_key", False) and not os.environ.get("RELAY_SECRET_KEY"):
        overrides["secret_key"] = generate_key()  # stores nothing that outlives the command
    try:
        settings = load_settings(**overrides)
    except ValidationError as exc:
        # One line per problem, naming the variable and the rule, never the value.
        for line in settings_problems(exc):
            print(f"result-relay: {line}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    run: Callable[[argparse.Namespace, Settings], int] = args.run
    try:
        return run(args, settings)
    except StartupError as exc:
        print(f"result-relay: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"result-relay: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if settings.log_level.upper() == "DEBUG":
            raise
        # The text of an unexpected error may quote a secret: its type, and how to see more.
        print(
            f"result-relay: unexpected {type(exc).__name__}; set RELAY_LOG_LEVEL=DEBUG to see "
            "the traceback",
            file=sys.stderr,
        )
        return 1


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from service.app import create_app
    from service.memory import return_large_buffers

    return_large_buffers()
    check_port_free(args.host, args.port)

    async def preflight(store: Store) -> None:
        if settings.environment == "production":
            await require_an_api_key(store, len(settings.api_keys))

    _with_store(settings, preflight, existing=False)
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

    _with_store(settings, _nothing, existing=False)  # a database it cannot use: one line, now

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


async def _nothing(store: Store) -> None:
    return None


def _with_store(
    settings: Settings, action: Callable[[Store], Awaitable[T]], *, existing: bool = True
) -> T:
    """Open the store, run ``action``, close it. ``existing``: the database must be there
    already (``keys`` and ``purge`` never create one). A store that cannot be opened is a
    :class:`StartupError` naming the cause and the setting."""
    if existing:
        require_existing_database(settings.database_url)

    async def run() -> T:
        store = make_store(settings.database_url, cipher=cipher_from_settings(settings))
        try:
            await store.open()
        except Exception as exc:
            raise explain_store_failure(exc, settings.database_url) from exc
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


def _secrets_generate(args: argparse.Namespace) -> int:
    print(generate_key())
    return 0


def _secrets_rotate(args: argparse.Namespace, settings: Settings) -> int:
    try:
        changed = _with_store(settings, lambda store: store.reseal_tokens(every_key=True))
    except CipherError as exc:
        print(
            f"result-relay: {exc.message}; the tokens before it are done: "
            "make that key RELAY_SECRET_KEY_PREVIOUS and run again",
            file=sys.stderr,
        )
        return 1
    print(f"re-encrypted {changed} stored token(s) under RELAY_SECRET_KEY")
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

    # The demo's own output tells the story; the service's log lines go to a file it names.
    log_path = Path(tempfile.gettempdir()) / "result-relay-demo.log"
    configure_logging(settings.log_level, settings.log_format, to=log_path)
    return run_demo(sys.stdout, keep=args.keep, log_path=log_path)


def _openapi(args: argparse.Namespace, settings: Settings) -> int:
    from service.app import create_app, openapi_yaml

    print(openapi_yaml(create_app(settings, background=False)), end="")
    return 0


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
