"""Tokens at rest: the database holds no webhook, interaction or bot token in clear, on either
backend, whatever an earlier version stored in clear is sealed when the store opens, and a
rotation moves every token to the new key, while Discord keeps getting the right token."""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.config import Settings, load_settings
from service.crypto import CipherError, TokenCipher, decode_key, generate_key
from service.delivery.worker import Worker
from service.domain import BotConfig, Destination, Interaction, NewResult
from service.store import Store
from service.testing import DiscordEmulator, EmulatedInteraction, EmulatedWebhook
from tests.conftest import Clock
from tests.postgres import fresh_postgres_database
from tests.support import ACME, API_KEYS, BOT_ID, BOT_TOKEN, CIPHER, SECRET_KEY, submission

from .test_delivery import fetch, submit, to

PG_DUMP = "/usr/bin/pg_dump"


@dataclass
class Backend:
    """One database: the settings that reach it, every byte it holds, and raw SQL (``?``)."""

    settings: Settings
    dump: Callable[[], bytes]
    execute: Callable[[str, tuple[Any, ...]], Awaitable[None]]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path / "relay.db"

        def files() -> bytes:
            # the database, its WAL and shared-memory index: everything SQLite keeps on disk
            return b"".join(p.read_bytes() for p in sorted(tmp_path.glob("relay.db*")))

        async def sqlite_execute(sql: str, args: tuple[Any, ...]) -> None:
            with contextlib.closing(sqlite3.connect(path)) as conn, conn:
                conn.execute(sql, args)

        yield Backend(_settings(f"sqlite:///{path}"), files, sqlite_execute)
        return
    if not os.path.exists(PG_DUMP):
        pytest.skip(f"{PG_DUMP} is not installed: the PostgreSQL dump cannot be searched")
    import asyncpg

    async with fresh_postgres_database() as url:

        def pg_dump() -> bytes:
            return subprocess.run(
                [PG_DUMP, "--no-owner", "--dbname", url], capture_output=True, check=True
            ).stdout

        async def pg_execute(sql: str, args: tuple[Any, ...]) -> None:
            numbered = iter(range(1, len(args) + 1))
            conn = await asyncpg.connect(url)
            try:
                await conn.execute(re.sub(r"\?", lambda _: f"${next(numbered)}", sql), *args)
            finally:
                await conn.close()

        yield Backend(_settings(url), pg_dump, pg_execute)


def _settings(database_url: str, **overrides: Any) -> Settings:
    return load_settings(
        database_url=database_url,
        api_keys=API_KEYS,
        secret_key=overrides.pop("secret_key", SECRET_KEY),
        **overrides,
    )


@contextlib.asynccontextmanager
async def running(
    settings: Settings, clock: Clock, emulator: DiscordEmulator
) -> AsyncIterator[tuple[httpx.AsyncClient, Worker]]:
    """The app on ``settings`` with its lifespan (the store opens here); Discord is the
    emulator and the worker runs only when the test drains it."""
    app = create_app(
        settings,
        clock=clock,
        background=False,
        discord_transport=httpx.ASGITransport(app=emulator.app),
    )
    async with app.router.lifespan_context(app):
        worker = app.state.services.worker
        assert worker is not None
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://relay") as client:
            yield client, worker


async def register(client: httpx.AsyncClient, name: str, hook: EmulatedWebhook) -> None:
    put = await client.put(f"/v1/destinations/{name}", json={"webhook_url": hook.url}, headers=ACME)
    assert put.status_code == 201, put.text


def _interaction(interaction: EmulatedInteraction) -> dict[str, str]:
    return {
        "application_id": interaction.application_id,
        "interaction_id": interaction.interaction_id,
        "token": interaction.token,
    }


def assert_holds_no_token(raw: bytes, *tokens: str) -> None:
    for token in tokens:
        # the whole token, and a run of it long enough to matter, in any stored form
        for piece in (token, token[:24], token[-24:]):
            assert piece.encode() not in raw, "a token is stored in clear"


def assert_delivered_once(
    emulator: DiscordEmulator,
    hooks: list[EmulatedWebhook],
    interaction: EmulatedInteraction,
) -> None:
    # The emulator answers a wrong token with 401 and keeps nothing: a message kept under a
    # webhook or an interaction is one sent to the URL with its token.
    for hook in hooks:
        assert len(emulator.messages(hook.id)) == 1
    assert len(emulator.followups(interaction.interaction_id)) == 1
    assert emulator.counters.requests_after_404 == 0


async def test_no_token_is_stored_in_clear_and_discord_still_gets_the_right_one(
    backend: Backend, clock: Clock, emulator: DiscordEmulator
) -> None:
    # Given a channel webhook, a registered destination and a fresh interaction (in real
    # time: PostgreSQL's clock is the fleet's, and would find a test clock's interaction stale)
    clock.now = time.time()
    direct, named = emulator.create_webhook(), emulator.create_webhook()
    interaction = emulator.create_interaction(age_seconds=60)
    bot = emulator.create_bot()
    tokens = (direct.token, named.token, interaction.token, bot.token)
    async with running(backend.settings, clock, emulator) as (client, worker):
        put = await client.put(
            "/v1/destinations/ops", json={"webhook_url": named.url}, headers=ACME
        )
        assert put.status_code == 201, put.text
        # and the tenant's bot
        put = await client.put("/v1/bot", json={"token": bot.token}, headers=ACME)
        assert put.status_code == 200, put.text
        # When a result goes to each of them
        await submit(client, to(direct, "wf_direct"))
        await submit(client, submission("wf_named", destination={"name": "ops"}))
        await submit(
            client,
            submission("wf_interaction", destination=None, interaction=_interaction(interaction)),
        )
        # Then, accepted and pending, the database holds none of the tokens
        assert_holds_no_token(backend.dump(), *tokens)
        # And when the worker delivers, each reached Discord with its own token
        await worker.drain()
        assert_delivered_once(emulator, [direct, named], interaction)
        for workflow_id in ("wf_direct", "wf_named", "wf_interaction"):
            assert (await fetch(client, workflow_id))["status"] == "delivered"
        # And delivered, the database still holds none of them
        assert_holds_no_token(backend.dump(), *tokens)


async def test_tokens_an_earlier_version_stored_in_clear_are_sealed_on_open(
    backend: Backend, clock: Clock, emulator: DiscordEmulator
) -> None:
    # Given a database at the current schema whose rows hold their tokens in clear, as the
    # version before encryption wrote them
    clock.now = time.time()
    direct, named = emulator.create_webhook(), emulator.create_webhook()
    interaction = emulator.create_interaction(age_seconds=60)
    bot = emulator.create_bot()
    tokens = (direct.token, named.token, interaction.token, bot.token)
    async with running(backend.settings, clock, emulator) as (client, _):
        put = await client.put(
            "/v1/destinations/ops", json={"webhook_url": named.url}, headers=ACME
        )
        assert put.status_code == 201, put.text
        put = await client.put("/v1/bot", json={"token": bot.token}, headers=ACME)
        assert put.status_code == 200, put.text
        await submit(client, to(direct, "wf_direct"))
        await submit(client, submission("wf_named", destination={"name": "ops"}))
        await submit(
            client,
            submission("wf_interaction", destination=None, interaction=_interaction(interaction)),
        )
    for workflow_id, token in (("wf_direct", direct.token), ("wf_named", named.token)):
        await backend.execute(
            "UPDATE results SET webhook_token = ? WHERE workflow_id = ?", (token, workflow_id)
        )
    await backend.execute(
        "UPDATE results SET interaction_token = ? WHERE workflow_id = ?",
        (interaction.token, "wf_interaction"),
    )
    await backend.execute("UPDATE destinations SET webhook_token = ?", (named.token,))
    await backend.execute("UPDATE bots SET token = ?", (bot.token,))
    assert direct.token.encode() in backend.dump()  # the premise: they are there in clear
    assert bot.token.encode() in backend.dump()

    # When the new version opens it
    async with running(backend.settings, clock, emulator) as (client, worker):
        # Then not a byte of any token is left in clear
        assert_holds_no_token(backend.dump(), *tokens)
        # And the bot's token opens again (its bot reads back)
        assert (await client.get("/v1/bot", headers=ACME)).json()["id"] == bot.id
        # And every result is delivered with its own token, the registered one included
        await worker.drain()
        assert_delivered_once(emulator, [direct, named], interaction)
        await submit(client, submission("wf_named_again", destination={"name": "ops"}))
        await worker.drain()
        assert len(emulator.messages(named.id)) == 2


async def test_rotation_seals_every_token_under_the_new_key_in_batches_once(
    store: Store,
) -> None:
    # Given tokens sealed under the suite's key, in results, interactions and destinations
    hook = Destination(webhook_id="112233445566778899", webhook_token="hook-" + "h" * 63)
    for n in range(5):
        await store.accept(_new(f"wf{n}", hook), now=1.0)
    named = Destination(webhook_id=hook.webhook_id, webhook_token=hook.webhook_token, name="ops")
    await store.put_destination("acme", named, now=1.0)
    # and a bot token
    await store.put_bot(BotConfig("acme", BOT_ID, "relay-bot", BOT_TOKEN), now=1.0)
    # and a restart with a new key, the old one kept as the previous (the store's cipher is
    # swapped in place: the same open store stands for the restarted process)
    new_key = decode_key(generate_key())
    store._cipher = TokenCipher(new_key, [decode_key(SECRET_KEY)])  # type: ignore[attr-defined]

    # When the rotation runs in batches of two, then runs again
    changed = await store.reseal_tokens(every_key=True, batch_size=2)
    again = await store.reseal_tokens(every_key=True, batch_size=2)

    # Then it changed each stored token once (5 webhook + 5 interaction + 1 destination + 1
    # bot) and nothing the second time
    assert (changed, again) == (12, 0)
    # And every token opens with the new key alone
    store._cipher = TokenCipher(new_key)  # type: ignore[attr-defined]
    record = await store.get_result("acme", "wf3")
    assert record is not None and record.destination is not None
    assert record.destination.webhook_token == hook.webhook_token
    assert record.interaction is not None and record.interaction.token == ITOKEN
    destination = await store.get_destination("acme", "ops")
    assert destination is not None and destination.webhook_token == hook.webhook_token
    bot = await store.get_bot("acme")
    assert bot is not None and bot.token == BOT_TOKEN
    # And no longer with the old one
    store._cipher = CIPHER  # type: ignore[attr-defined]
    with pytest.raises(CipherError, match="neither RELAY_SECRET_KEY"):
        await store.get_result("acme", "wf3")


ITOKEN = "itok-" + "i" * 40


def _new(workflow_id: str, hook: Destination) -> NewResult:
    return NewResult(
        tenant="acme",
        workflow_id=workflow_id,
        body_hash=workflow_id,
        results={},
        destination=hook,
        interaction=Interaction(
            application_id="445566778899001122",
            interaction_id="1300000000000000000",
            token=ITOKEN,
        ),
    )


async def test_a_store_whose_tokens_no_configured_key_opens_refuses_to_open(
    store: Store, tmp_path: Path
) -> None:
    # Given tokens sealed under the suite's key
    hook = Destination(webhook_id="112233445566778899", webhook_token="hook-" + "h" * 63)
    await store.accept(_new("wf1", hook), now=1.0)
    other = TokenCipher(decode_key(generate_key()))
    # When the store is opened again with another key only, then it refuses at once, naming
    # the setting that fixes it (and never a key)
    again = _reopened(store, other)
    with pytest.raises(CipherError, match="RELAY_SECRET_KEY_PREVIOUS") as refused:
        await again.open()
    assert SECRET_KEY not in str(refused.value)
    # And with the old key kept as the previous one, it opens and reads them
    both = _reopened(store, TokenCipher(decode_key(generate_key()), [decode_key(SECRET_KEY)]))
    await both.open()
    try:
        record = await both.get_result("acme", "wf1")
        assert record is not None and record.destination == hook
    finally:
        await both.close()


def _reopened(store: Store, cipher: TokenCipher) -> Store:
    """Another store on the same database as ``store``, with ``cipher``."""
    from service.store.postgres import PostgresStore
    from service.store.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        return SQLiteStore(store._db._path, cipher=cipher)  # type: ignore[attr-defined]
    assert isinstance(store, PostgresStore)
    return PostgresStore(store._dsn, cipher=cipher)  # type: ignore[attr-defined]


async def test_a_runs_tokens_are_sealed_at_rest_and_still_reach_discord(
    backend: Backend, clock: Clock, emulator: DiscordEmulator
) -> None:
    # Given a run with an interaction and a channel webhook (in real time, as above)
    clock.now = time.time()
    hook = emulator.create_webhook()
    interaction = emulator.create_interaction(age_seconds=60)
    async with running(backend.settings, clock, emulator) as (client, worker):
        body = {
            "workflow_id": "run_sealed",
            "interaction": _interaction(interaction),
            "destination": {"webhook_url": hook.url},
        }
        started = await client.post("/v1/runs", json=body, headers=ACME)
        assert started.status_code == 201, started.text
        put = await client.put(
            "/v1/runs/run_sealed/progress", json={"stage": "analyse"}, headers=ACME
        )
        assert put.status_code == 202
        # When the engine edits the deferred response with the run's token
        await worker.drain()
        # Then Discord got it, and the database holds neither token in clear
        assert len(emulator.edits(interaction.original_message_id)) == 1
        assert_holds_no_token(backend.dump(), hook.token, interaction.token)
        assert hook.token not in started.text and interaction.token not in started.text
