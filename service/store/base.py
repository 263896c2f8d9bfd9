"""The ``Store`` interface: every read and write the service makes, named for its intent.

The API accepts and reads results through it; the delivery worker claims lanes, records attempts
and settles results through it. Implementations translate their driver's errors into
:class:`service.errors.StoreError` and never let a token reach a log or an exception.

Tokens are stored sealed (:mod:`service.crypto`): the row mapping below seals them on the way in
and opens them on the way out, for every backend, with the cipher each store is given.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from service.crypto import KEY_ID_LENGTH, PREFIX, CipherError, TokenCipher
from service.domain import (
    AcceptOutcome,
    ApiKey,
    Attempt,
    AttemptCount,
    AttemptOutcome,
    BotConfig,
    DeliveredMessage,
    Destination,
    InFlight,
    Interaction,
    NewResult,
    NewRun,
    Page,
    Progress,
    Requester,
    ResultFilter,
    ResultRecord,
    Route,
    RunFilter,
    RunPage,
    RunRecord,
    RunStart,
    RunStatus,
    RunStep,
    Status,
    TenantOverview,
)
from service.errors import Conflict, InvalidRequest
from service.jsonpieces import storable_json

log = logging.getLogger(__name__)

_REQUESTER_COLUMNS = ("requester_user_id", "requester_guild_id", "requester_channel_id")
_DESTINATION_COLUMNS = ("destination_name", "webhook_id", "webhook_token", "thread_id", "lane")

RESEAL_BATCH = 500


@dataclass(frozen=True, slots=True)
class SealedColumn:
    """A column that holds tokens sealed by :class:`TokenCipher`; its ``name`` is the
    associated data, so a sealed value opens only in the column it was written to."""

    table: str
    keys: tuple[str, ...]  # the row's primary key
    column: str

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}"


RESULT_WEBHOOK_TOKEN = SealedColumn("results", ("id",), "webhook_token")
RESULT_INTERACTION_TOKEN = SealedColumn("results", ("id",), "interaction_token")
DESTINATION_WEBHOOK_TOKEN = SealedColumn("destinations", ("tenant", "name"), "webhook_token")
RUN_WEBHOOK_TOKEN = SealedColumn("runs", ("id",), "webhook_token")
RUN_INTERACTION_TOKEN = SealedColumn("runs", ("id",), "interaction_token")
BOT_TOKEN = SealedColumn("bots", ("tenant",), "token")
SEALED_COLUMNS = (
    RESULT_WEBHOOK_TOKEN,
    RESULT_INTERACTION_TOKEN,
    DESTINATION_WEBHOOK_TOKEN,
    RUN_WEBHOOK_TOKEN,
    RUN_INTERACTION_TOKEN,
    BOT_TOKEN,
)
# The statuses of a run whose conversation is over (retention may remove them).
SETTLED_RUN_STATUSES = ("finished", "failed", "abandoned")


def sealed_key_ids_sql(column: SealedColumn) -> str:
    """The ids of the keys that sealed the values of ``column`` (``v1:<key id>:...``): the
    same SQL on both backends."""
    start, length = len(PREFIX) + 1, KEY_ID_LENGTH
    return (
        f"SELECT DISTINCT substr({column.column}, {start}, {length}) FROM {column.table} "
        f"WHERE {column.column} LIKE '{PREFIX}%'"
    )


def check_key_ids(cipher: TokenCipher, found: set[str]) -> None:
    """Refuse to start on tokens no configured key opens: every delivery of them would fail.
    Found at start, it is one clear line for the operator instead of a worker failing each
    lane again and again."""
    unknown = sorted(found - cipher.key_ids)
    if unknown:
        raise CipherError(
            f"stored tokens were sealed under key id {', '.join(unknown)}, which neither "
            "RELAY_SECRET_KEY nor RELAY_SECRET_KEY_PREVIOUS is: set the key they were sealed "
            "with as RELAY_SECRET_KEY_PREVIOUS (or as RELAY_SECRET_KEY)"
        )


class Row(Protocol):
    """A database row addressed by column name (sqlite3.Row, asyncpg.Record, dict)."""

    def __getitem__(self, key: str, /) -> Any: ...


R = TypeVar("R", bound=Row)


class Store(ABC):
    """Durable state of the service. Every method commits before it returns."""

    # -- life cycle ---------------------------------------------------------------------------
    @abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema up to date (migrations run here)."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def ping(self) -> None:
        """Raise :class:`StoreError` unless the database answers."""

    @abstractmethod
    async def reseal_tokens(
        self, *, every_key: bool = False, batch_size: int = RESEAL_BATCH
    ) -> int:
        """Seal under the current key the stored tokens of :data:`SEALED_COLUMNS` that are not:
        clear ones always (``open`` does this after the migrations, as SQL cannot), and with
        ``every_key`` those sealed under a previous key too (``result-relay secrets rotate``).

        In batches of ``batch_size``, each one transaction; a value changed meanwhile by someone
        else (another replica doing the same) is left to them. Idempotent; returns how many
        values it changed. Raises :class:`CipherError` for a value no configured key opens."""

    @abstractmethod
    async def probe_write(self) -> None:
        """Commit a tiny write (one row, rewritten); raise :class:`StoreError` when the database
        cannot take writes (a full disk, a read-only database) though it may still answer."""

    # -- results ------------------------------------------------------------------------------
    @abstractmethod
    async def accept(self, new: NewResult, *, now: float) -> AcceptOutcome:
        """Commit a new result, or return the existing one for the same body; in the same
        transaction, take what it leaves out from the run of the same workflow id
        (:func:`with_its_run`) and finish that run.

        Raises :class:`Conflict` when the workflow id exists with another body, and
        :class:`NoDestination` when the result has nowhere to go. A result whose webhook is dead
        for its token is accepted already orphaned.
        """

    @abstractmethod
    async def get_result(self, tenant: str, workflow_id: str) -> ResultRecord | None: ...

    @abstractmethod
    async def list_results(
        self, tenant: str, filters: ResultFilter, *, limit: int, cursor: str | None
    ) -> Page:
        """Newest first; ``cursor`` continues after the last item of the previous page."""

    @abstractmethod
    async def list_attempts(self, tenant: str, workflow_id: str) -> list[Attempt] | None:
        """Every attempt in order, or ``None`` when the result does not exist."""

    @abstractmethod
    async def delete_result(self, tenant: str, workflow_id: str) -> bool: ...

    @abstractmethod
    async def purge(self, *, before: float) -> int:
        """Remove delivered and orphaned results created before ``before``, never pending ones,
        and the settled runs (finished, failed, abandoned) created before then with them."""

    @abstractmethod
    async def overview(
        self, tenant: str, *, since: float, slot_seconds: float, now: float
    ) -> TenantOverview:
        """The tenant's results counted by status with the oldest pending one's creation time,
        its attempts from ``since`` to ``now`` counted by slot and outcome, and the fleet's
        live replicas and pause."""

    # -- destinations -------------------------------------------------------------------------
    @abstractmethod
    async def put_destination(self, tenant: str, destination: Destination, *, now: float) -> bool:
        """Create or replace a named destination; True when it is new."""

    @abstractmethod
    async def get_destination(self, tenant: str, name: str) -> Destination | None: ...

    @abstractmethod
    async def list_destinations(self, tenant: str) -> list[Destination]: ...

    @abstractmethod
    async def delete_destination(self, tenant: str, name: str) -> bool: ...

    # -- the tenants' bots ---------------------------------------------------------------------
    @abstractmethod
    async def put_bot(self, config: BotConfig, *, now: float) -> None:
        """Create or replace the bot of ``config.tenant`` (one per tenant), its token sealed."""

    @abstractmethod
    async def get_bot(self, tenant: str) -> BotConfig | None:
        """The tenant's bot, whether set through the API or by ``RELAY_BOT_TOKENS`` (which
        start-up writes here, see ``service.bots``)."""

    @abstractmethod
    async def list_bots(self) -> list[BotConfig]:
        """Every tenant's bot, by tenant."""

    @abstractmethod
    async def delete_bot(self, tenant: str) -> bool:
        """Forget the tenant's bot; False when it had none."""

    # -- API keys -----------------------------------------------------------------------------
    @abstractmethod
    async def add_api_key(self, key: ApiKey, *, key_hash: str) -> None: ...

    @abstractmethod
    async def list_api_keys(self) -> list[ApiKey]: ...

    @abstractmethod
    async def revoke_api_key(self, key_id: str, *, now: float) -> bool: ...

    @abstractmethod
    async def tenant_for_key(self, key_hash: str) -> str | None:
        """The tenant of an unrevoked key with this hash."""

    # -- delivery -----------------------------------------------------------------------------
    @abstractmethod
    async def claim_lane(self, owner: str, *, now: float, lease_seconds: float) -> str | None:
        """Lease one lane that has due work and no other live lease; None if none.

        A lease is live while it has not run out and its owner heartbeats (see
        :meth:`heartbeat`): a replica that stopped heartbeating frees its lanes at once, without
        waiting for their leases. A lane ``owner`` holds itself is never handed back to it.
        """

    @abstractmethod
    async def renew_lease(self, owner: str, lane: str, *, now: float, lease_seconds: float) -> bool:
        """Extend the lease; False when ``owner`` has lost it (the worker must stop the lane)."""

    @abstractmethod
    async def release_lane(self, owner: str, lane: str) -> None: ...

    @abstractmethod
    async def due_results(self, lane: str, *, now: float, limit: int) -> list[ResultRecord]:
        """Pending results of a lane whose next attempt is due, oldest first."""

    @abstractmethod
    async def next_due_at(self, *, now: float) -> float | None:
        """When a claim may next find work: the earliest due time over every lane, counting a
        lane under a live lease (see :meth:`claim_lane`) as due when the lease runs out. For the
        worker's sleep."""

    @abstractmethod
    async def mark_in_flight(
        self, tenant: str, workflow_id: str, *, part: int, route: Route, now: float
    ) -> None:
        """Before a part is sent: record that it is on its way (``ResultRecord.in_flight``), so
        that after a crash whoever takes the lane over knows it may have arrived. Every write
        recording what became of it clears the mark. A result no longer pending is left as it
        is; raises :class:`ResultGone` when there is no such result."""

    @abstractmethod
    async def record_attempt(self, tenant: str, workflow_id: str, attempt: Attempt) -> None:
        """Raises :class:`ResultGone` when there is no such result."""

    @abstractmethod
    async def record_delivery(
        self,
        tenant: str,
        workflow_id: str,
        attempt: Attempt,
        message: DeliveredMessage,
        *,
        finished: bool,
        now: float,
    ) -> None:
        """In one commit: the attempt, the delivered part, and (``finished``) the status.

        Raises :class:`ResultGone` when there is no such result."""

    @abstractmethod
    async def mark_delivered(self, tenant: str, workflow_id: str, *, now: float) -> None:
        """Every part is out (used when a re-render found nothing left to send)."""

    @abstractmethod
    async def schedule_retry(
        self, tenant: str, workflow_id: str, *, at: float, error: str, now: float
    ) -> None: ...

    @abstractmethod
    async def orphan(self, tenant: str, workflow_id: str, *, reason: str, now: float) -> None: ...

    @abstractmethod
    async def redeliver(
        self, tenant: str, workflow_id: str, *, destination: Destination | None, now: float
    ) -> ResultRecord | None:
        """Queue a result again from its first part, optionally to another destination.

        Returns ``None`` when there is no such result; raises :class:`Conflict` when the target
        webhook is known to be dead for the target token.
        """

    @abstractmethod
    async def kill_webhook(self, webhook_id: str, token: str, *, reason: str, now: float) -> int:
        """Record that Discord refused this webhook with this token (deleted, unauthorized) and
        orphan every pending result sent there, in any thread and for any tenant, except those a
        bot route may still take (``HAS_BOT_FALLBACK_SQL``); returns how many were orphaned.

        Dead is per (webhook id, token), not per webhook id: a made-up token for a known id
        must not orphan the results of whoever holds the real one.
        """

    @abstractmethod
    async def revive_webhook(self, webhook_id: str, token: str) -> bool:
        """Forget that this webhook and token are dead (an operator says they work again);
        True when they were."""

    @abstractmethod
    async def dead_reason(self, webhook_id: str, token: str) -> str | None:
        """Why this webhook is dead for this token, or ``None`` while it is not."""

    @abstractmethod
    async def learn_webhook_channel(self, webhook_id: str, channel_id: str, *, now: float) -> None:
        """Remember the channel Discord says this webhook posts in (a webhook can be moved: the
        latest word wins). Where an unanswered part is looked for."""

    @abstractmethod
    async def webhook_channel(self, webhook_id: str) -> str | None:
        """The channel this webhook was last seen posting in, or ``None`` while unknown."""

    @abstractmethod
    async def count_pending(self) -> tuple[int, float | None]:
        """How many results are pending, and the creation time of the oldest."""

    # -- runs ---------------------------------------------------------------------------------
    @abstractmethod
    async def start_run(self, new: NewRun, *, now: float) -> RunStart:
        """Commit a new run, due at once for the run engine, or return the existing one for the
        same body. Raises :class:`Conflict` when the workflow id exists with another body."""

    @abstractmethod
    async def get_run(self, tenant: str, workflow_id: str) -> RunRecord | None: ...

    @abstractmethod
    async def list_runs(
        self, tenant: str, filters: RunFilter, *, limit: int, cursor: str | None
    ) -> RunPage:
        """Newest first; ``cursor`` continues after the last item of the previous page."""

    @abstractmethod
    async def record_progress(
        self, tenant: str, workflow_id: str, progress: Progress, *, now: float
    ) -> RunRecord | None:
        """Keep ``progress`` as the run's latest (latest wins) and make the run due when its
        progress message may next be edited. ``None`` when there is no such run; raises
        :class:`Conflict` (``run_closed``) when the run is no longer live."""

    @abstractmethod
    async def finish_run(
        self, tenant: str, workflow_id: str, *, error: tuple[str, str] | None, now: float
    ) -> bool:
        """The run's result arrived: status ``finished`` (``failed`` with an ``error`` of
        stage and message), due at once so its progress message shows it. An abandoned run
        finishes too. False when there is no such run or it had finished already."""

    @abstractmethod
    async def claim_due_run(
        self, owner: str, *, now: float, lease_seconds: float
    ) -> RunRecord | None:
        """Lease one run that is due and not leased by a live owner (as :meth:`claim_lane`
        decides), or None."""

    @abstractmethod
    async def save_run_step(self, owner: str, step: RunStep, *, now: float) -> bool:
        """Write what the engine did and release the lease, in one commit; False when
        ``owner`` no longer held it. A run whose progress or status changed since the claim
        is due again at once, and its status is left as the change made it."""

    @abstractmethod
    async def next_run_due_at(self, *, now: float) -> float | None:
        """The earliest due time over every run, a run under a live lease counting as due when
        the lease runs out. For the worker's sleep."""

    # -- the fleet: several replicas on one database -------------------------------------------
    @abstractmethod
    async def subscribe(self, on_work: Callable[[], None]) -> None:
        """Call ``on_work()`` (on the event loop, never awaited) whenever any replica accepted a
        new pending result or redelivered one, after that commit.

        A wake-up, not a queue: calls may be merged, and one may come with no new work (after a
        lost connection is restored, for instance). Polling stays the backstop.
        """

    @abstractmethod
    async def heartbeat(self, owner: str, *, now: float, ttl: float) -> int:
        """Record that replica ``owner`` is alive until ``now + ttl``, forget replicas whose
        time ran out, and return how many are alive, ``owner`` included (so at least 1)."""

    @abstractmethod
    async def forget_replica(self, owner: str) -> None:
        """``owner`` stops cleanly: stop counting it at once."""

    @abstractmethod
    async def pause_all(self, *, until: float) -> None:
        """Pause every replica's requests to Discord until ``until`` (a global 429, a Cloudflare
        block). Pauses only extend: the latest ``until`` wins."""

    @abstractmethod
    async def paused_until(self) -> float:
        """Until when the fleet is paused; ``0.0`` when it never was (compare with now)."""

    @abstractmethod
    async def database_time(self) -> float | None:
        """The database server's clock (Unix seconds), for replicas to agree on lease times
        whatever their own clocks say; ``None`` when the database shares this process's clock."""


# -- helpers shared by the implementations --------------------------------------------------


class WorkListeners:
    """The ``on_work`` callbacks given to :meth:`Store.subscribe`; one failing does not stop the
    others or the store."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[], None]] = []

    def add(self, on_work: Callable[[], None]) -> None:
        self._callbacks.append(on_work)

    def __bool__(self) -> bool:
        return bool(self._callbacks)

    def fire(self) -> None:
        for on_work in self._callbacks:
            try:
                on_work()
            except Exception:
                log.exception("a new-work callback failed")


def bot_fallback_sql(
    tenant: str = "results.tenant",
    channel: str = "results.channel_id",
    requester_channel: str = "results.requester_channel_id",
    requester_user: str = "results.requester_user_id",
) -> str:
    """SQL true for a result a bot route may still take when its webhook is dead (its tenant
    has a bot, and it names a channel or a requester): kill_webhook leaves it queued, accept
    queues it, and the worker sends it on (or orphans it itself when no route is left). Over a
    results row's columns, or (arguments) over the values of a row about to be inserted; both
    backends' spelling."""
    return (
        f"(EXISTS (SELECT 1 FROM bots WHERE bots.tenant = {tenant}) AND ({channel} IS NOT NULL "
        f"OR {requester_channel} IS NOT NULL OR {requester_user} IS NOT NULL))"
    )


HAS_BOT_FALLBACK_SQL = bot_fallback_sql()


def token_hash(token: str) -> str:
    """How a webhook token is compared in SQL (``results.webhook_token_hash``, dead webhooks):
    the hex SHA-256, so that the dead list never holds a token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_same_body(existing_body_hash: str, new: NewResult) -> None:
    """An accept that found its workflow id taken: the same body is the same result (a retry
    of the submission), another body is the caller's mistake."""
    if existing_body_hash != new.body_hash:
        raise Conflict(
            f"workflow_id {new.workflow_id!r} was already submitted with another body",
            code="workflow_id_conflict",
        )


class NoDestination(Exception):
    """A result with nowhere to go: no webhook, interaction or channel, given or from its run."""


def with_its_run(new: NewResult, run: RunRecord | None) -> NewResult:
    """The result as it will be kept: what it leaves out it takes from the run of the same
    workflow id (destination, requester, URL, depth, and the interaction before the hand-off
    only). Raises :class:`NoDestination` when it has nowhere to go even so.

    After the hand-off the notice told the user the result comes in the channel: not through the
    token, even while it lives and even when the bot sends it again.
    """
    if run is not None:
        destination = new.destination or run.destination
        interaction = new.interaction
        if run.status is RunStatus.RUNNING:
            interaction = interaction or run.interaction
        elif destination is not None:
            interaction = None
        new = replace(
            new,
            destination=destination,
            interaction=interaction,
            requester=new.requester or run.requester,
            url=new.url or run.url,
            depth=new.depth or run.depth,
        )
    if new.destination is None and new.interaction is None and new.channel_id is None:
        raise NoDestination
    return new


# -- the row mapping: tokens are sealed here on the way in and opened here on the way out, for
# -- every backend; nothing else in a store sees a stored token.


def _seal(cipher: TokenCipher, column: SealedColumn, token: str | None) -> str | None:
    return cipher.encrypt(token, column=column.name) if token is not None else None


def _open(cipher: TokenCipher, column: SealedColumn, text: str | None) -> str | None:
    return cipher.decrypt(text, column=column.name) if text is not None else None


def resealed(
    cipher: TokenCipher, column: SealedColumn, rows: Iterable[Row]
) -> list[tuple[Any, ...]]:
    """For :meth:`Store.reseal_tokens`: ``(new value, *primary key, old value)`` per row of
    ``(*primary key, value)``, the new value sealed under the current key."""
    changes = []
    for row in rows:
        keys = tuple(row[name] for name in column.keys)
        old = row[column.column]
        changes.append((cipher.reseal(old, column=column.name), *keys, old))
    return changes


def reseal_predicate(cipher: TokenCipher, *, every_key: bool) -> str:
    """The prefix a value that needs no resealing starts with."""
    return cipher.current_prefix if every_key else "v1:"


def destination_token(cipher: TokenCipher, destination: Destination) -> str:
    """``destinations.webhook_token`` as stored."""
    sealed = _seal(cipher, DESTINATION_WEBHOOK_TOKEN, destination.webhook_token)
    assert sealed is not None
    return sealed


def redelivery_target(
    existing: dict[str, Any], destination: Destination | None, cipher: TokenCipher
) -> dict[str, Any]:
    """The destination columns redeliver writes: ``destination``'s, or (``None``) the result's
    own, with the token hash recomputed from the token either way."""
    target = {name: existing[name] for name in _DESTINATION_COLUMNS}
    token = _open(cipher, RESULT_WEBHOOK_TOKEN, target["webhook_token"])
    if destination is not None:
        token = destination.webhook_token
        target.update(
            destination_name=destination.name,
            webhook_id=destination.webhook_id,
            webhook_token=_seal(cipher, RESULT_WEBHOOK_TOKEN, token),
            thread_id=destination.thread_id,
            lane=destination.lane,
        )
    target["webhook_token_hash"] = token_hash(token) if token is not None else None
    return target


def check_destination_alive(dead_reason: str | None) -> None:
    """Redeliver refuses a webhook known dead for its token: the result would only be
    orphaned again at once."""
    if dead_reason is not None:
        raise Conflict(
            "the destination webhook was deleted or its token refused; "
            "redeliver to another destination",
            code="destination_dead",
        )


def api_key_from_row(row: Row) -> ApiKey:
    return ApiKey(
        key_id=row["key_id"],
        tenant=row["tenant"],
        label=row["label"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


def bot_params(config: BotConfig, cipher: TokenCipher, *, now: float) -> dict[str, Any]:
    """A ``bots`` row as ``put_bot`` writes it, the token sealed."""
    return {
        "tenant": config.tenant,
        "bot_id": config.bot_id,
        "username": config.username,
        "token": _seal(cipher, BOT_TOKEN, config.token),
        "dm_fallback": config.dm_fallback,
        "source": config.source,
        "now": now,
    }


def bot_from_row(row: Row, cipher: TokenCipher) -> BotConfig:
    return BotConfig(
        tenant=row["tenant"],
        bot_id=row["bot_id"],
        username=row["username"],
        token=cipher.decrypt(row["token"], column=BOT_TOKEN.name),
        dm_fallback=bool(row["dm_fallback"]),
        source=row["source"],
    )


def destination_from_row(row: Row, cipher: TokenCipher) -> Destination:
    """A ``destinations`` row (named; ``results`` rows go through :func:`record_from_row`)."""
    return Destination(
        webhook_id=row["webhook_id"],
        webhook_token=cipher.decrypt(row["webhook_token"], column=DESTINATION_WEBHOOK_TOKEN.name),
        thread_id=row["thread_id"],
        name=row["name"],
    )


def page_of(rows: Sequence[R], limit: int) -> tuple[Sequence[R], str | None]:
    """A listing's page from its rows, read one past ``limit``: the rows to show, and the
    cursor of the next page (``None`` at the end)."""
    last = rows[limit - 1] if len(rows) > limit else None
    return rows[:limit], encode_cursor(last["created_at"], last["id"]) if last is not None else None


def listing_filters(
    tenant: str, filters: ResultFilter | RunFilter, cursor: str | None
) -> list[tuple[str, tuple[Any, ...]]]:
    """What a listing of results or runs is narrowed to, as (column test, its values): the
    same rules on both backends, each of which spells the tests in its own SQL."""
    wanted: list[tuple[str, tuple[Any, ...]]] = [("tenant", (tenant,))]
    status = filters.status.value if filters.status is not None else None
    for name, value in (
        ("status", status),
        ("url", filters.url),
        ("requester_id", filters.requester_id),
        ("since", filters.since),
        ("until", filters.until),
        ("text", like_pattern(filters.text) if filters.text is not None else None),
    ):
        if value is not None:
            wanted.append((name, (value,)))
    if cursor is not None:
        wanted.append(("cursor", decode_cursor(cursor)))
    return wanted


# The escape character of ``LIKE ... ESCAPE``: each backend's test names it too.
LIKE_ESCAPE = "\\"
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_LIKE_SPECIAL = str.maketrans({c: LIKE_ESCAPE + c for c in ("%", "_", LIKE_ESCAPE)})


def like_pattern(text: str) -> str:
    """The ``LIKE`` pattern matching ``text`` anywhere in a value whose ASCII letters were
    lowered: its wildcards and escape character stand for themselves.

    Only ASCII letters fold: SQLite's ``lower`` folds nothing else, and PostgreSQL's follows the
    database's locale, so folding more would make the backends disagree. Workflow ids are ASCII;
    a URL's other letters match as written."""
    return "%" + text.translate(_ASCII_LOWER).translate(_LIKE_SPECIAL) + "%"


def encode_cursor(created_at: float, row_id: int) -> str:
    raw = json.dumps([created_at, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = json.loads(raw)
        created_at, row_id = float(created_at), int(row_id)
        if not (math.isfinite(created_at) and 0 < row_id < 2**63):
            raise ValueError("out of range")
        return created_at, row_id
    except (binascii.Error, ValueError, TypeError, OverflowError) as exc:
        raise InvalidRequest(
            "cursor is not one this service handed out", code="invalid_cursor"
        ) from exc


def _party_columns(
    cipher: TokenCipher,
    destination: Destination | None,
    interaction: Interaction | None,
    requester: Requester | None,
    *,
    webhook: SealedColumn,
    token: SealedColumn,
) -> dict[str, Any]:
    """The columns results and runs share: where to deliver, the interaction and who asked,
    tokens sealed for their own table's columns."""
    dest, inter, req = destination, interaction, requester
    return {
        "destination_name": dest.name if dest else None,
        "webhook_id": dest.webhook_id if dest else None,
        "webhook_token": _seal(cipher, webhook, dest.webhook_token if dest else None),
        "thread_id": dest.thread_id if dest else None,
        "application_id": inter.application_id if inter else None,
        "interaction_id": inter.interaction_id if inter else None,
        "interaction_token": _seal(cipher, token, inter.token if inter else None),
        "requester_user_id": req.user_id if req else None,
        "requester_guild_id": req.guild_id if req else None,
        "requester_channel_id": req.channel_id if req else None,
    }


def _destination_of(row: Row, cipher: TokenCipher, column: SealedColumn) -> Destination | None:
    if row["webhook_id"] is None:
        return None
    return Destination(
        webhook_id=row["webhook_id"],
        webhook_token=cipher.decrypt(row["webhook_token"], column=column.name),
        thread_id=row["thread_id"],
        name=row["destination_name"],
    )


def _interaction_of(row: Row, cipher: TokenCipher, column: SealedColumn) -> Interaction | None:
    if row["interaction_id"] is None:
        return None
    return Interaction(
        application_id=row["application_id"],
        interaction_id=row["interaction_id"],
        token=cipher.decrypt(row["interaction_token"], column=column.name),
    )


def _requester_of(row: Row) -> Requester | None:
    if all(row[c] is None for c in _REQUESTER_COLUMNS):
        return None
    return Requester(
        user_id=row["requester_user_id"],
        guild_id=row["requester_guild_id"],
        channel_id=row["requester_channel_id"],
    )


def record_from_row(
    row: Row, messages: Sequence[Row], cipher: TokenCipher, *, attempts_made: int = 0
) -> ResultRecord:
    """Build a record from a ``results`` row (column names as in the migrations) and the
    number of attempts in its history."""
    destination = _destination_of(row, cipher, RESULT_WEBHOOK_TOKEN)
    interaction = _interaction_of(row, cipher, RESULT_INTERACTION_TOKEN)
    in_flight = None
    if row["in_flight_part"] is not None:
        in_flight = InFlight(
            part=row["in_flight_part"],
            route=Route(row["in_flight_route"]),
            since=row["in_flight_at"],
        )
    requester = _requester_of(row)
    return ResultRecord(
        tenant=row["tenant"],
        workflow_id=row["workflow_id"],
        status=Status(row["status"]),
        results=_json(row["results"]),
        url=row["url"],
        depth=row["depth"],
        message=_json(row["message"]) if row["message"] is not None else None,
        destination=destination,
        interaction=interaction,
        requester=requester,
        lane=row["lane"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        next_attempt_at=row["next_attempt_at"],
        delivered_at=row["delivered_at"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        orphan_reason=row["orphan_reason"],
        messages=tuple(
            DeliveredMessage(
                part=m["part"],
                message_id=m["message_id"],
                route=Route(m["route"]),
                delivered_at=m["delivered_at"],
            )
            for m in messages
        ),
        body_hash=row["body_hash"],
        in_flight=in_flight,
        attempts_made=attempts_made,
        delivery_round=row["delivery_round"],
        error=(row["error_stage"], row["error_message"])
        if row["error_stage"] is not None
        else None,
        channel_id=row["channel_id"],
        # SQLite keeps booleans as 0 and 1
        dm_fallback=bool(row["dm_fallback"]) if row["dm_fallback"] is not None else None,
    )


def accepted_record(
    columns: dict[str, Any],
    new: NewResult,
    *,
    status: Status,
    orphan_reason: str | None,
    next_attempt_at: float | None,
    now: float,
    cipher: TokenCipher,
) -> ResultRecord:
    """The record of a result just inserted from ``columns`` (:func:`result_columns`), built
    without reading it back: nothing has happened to it yet. The results and message are the
    submission's own objects, not decoded again from the JSON just encoded."""
    row = {
        **columns,
        "results": new.results,
        "message": new.message,
        "status": status,
        "orphan_reason": orphan_reason,
        "next_attempt_at": next_attempt_at,
        "created_at": now,
        "updated_at": now,
        "delivered_at": None,
        "attempts": 0,
        "last_error": None,
        "in_flight_part": None,
        "in_flight_route": None,
        "in_flight_at": None,
        "delivery_round": 0,
    }
    return record_from_row(row, (), cipher)


def result_columns(new: NewResult, cipher: TokenCipher) -> dict[str, Any]:
    """The ``results`` columns a new submission fills, JSON already encoded, tokens sealed."""
    dest, inter, req = new.destination, new.interaction, new.requester
    return {
        "tenant": new.tenant,
        "workflow_id": new.workflow_id,
        "body_hash": new.body_hash,
        "results": new.results_json if new.results_json is not None else storable_json(new.results),
        "url": new.url,
        "depth": new.depth,
        "message": storable_json(new.message) if new.message is not None else None,
        **_party_columns(
            cipher, dest, inter, req, webhook=RESULT_WEBHOOK_TOKEN, token=RESULT_INTERACTION_TOKEN
        ),
        "webhook_token_hash": token_hash(dest.webhook_token) if dest else None,
        "lane": new.lane,
        "error_stage": new.error[0] if new.error else None,
        "error_message": new.error[1] if new.error else None,
        "channel_id": new.channel_id,
        "dm_fallback": new.dm_fallback,
    }


def attempt_from_row(row: Row) -> Attempt:
    return Attempt(
        at=row["at"],
        part=row["part"],
        route=Route(row["route"]),
        outcome=AttemptOutcome(row["outcome"]),
        http_status=row["http_status"],
        discord_code=row["discord_code"],
        duration_ms=row["duration_ms"],
        error=row["error"],
        counts=bool(row["counts"]),
    )


def _json(value: Any) -> Any:
    # PostgreSQL's jsonb may already hand back decoded values; SQLite hands back text.
    return json.loads(value) if isinstance(value, str | bytes) else value


# -- runs: the same row mapping -------------------------------------------------------------------


def run_conflict(workflow_id: str) -> Conflict:
    return Conflict(
        f"workflow_id {workflow_id!r} was already started as a run with another body",
        code="workflow_id_conflict",
    )


def run_closed(workflow_id: str, status: str) -> Conflict:
    return Conflict(
        f"run {workflow_id!r} is {status}: it takes no more progress", code="run_closed"
    )


def run_columns(new: NewRun, cipher: TokenCipher) -> dict[str, Any]:
    """The ``runs`` columns a new run fills, tokens sealed."""
    dest, inter, req = new.destination, new.interaction, new.requester
    return {
        "tenant": new.tenant,
        "workflow_id": new.workflow_id,
        "body_hash": new.body_hash,
        "title": new.title,
        "url": new.url,
        "depth": new.depth,
        **_party_columns(
            cipher, dest, inter, req, webhook=RUN_WEBHOOK_TOKEN, token=RUN_INTERACTION_TOKEN
        ),
        "timeout_seconds": new.timeout_seconds,
        "handoff_at": new.handoff_at,
    }


def progress_json(progress: Progress) -> str:
    fields = {
        "stage": progress.stage,
        "current": progress.current,
        "total": progress.total,
        "note": progress.note,
        "updated_at": progress.updated_at,
    }
    return storable_json(fields)


def run_from_row(row: Row, cipher: TokenCipher) -> RunRecord:
    """A ``runs`` row, with ``result_status`` (the status of the result of the same workflow
    id, or NULL) joined in."""
    destination = _destination_of(row, cipher, RUN_WEBHOOK_TOKEN)
    interaction = _interaction_of(row, cipher, RUN_INTERACTION_TOKEN)
    requester = _requester_of(row)
    progress = None
    if row["progress"] is not None:
        fields = _json(row["progress"])
        progress = Progress(
            stage=fields["stage"],
            current=fields.get("current"),
            total=fields.get("total"),
            note=fields.get("note"),
            updated_at=float(fields["updated_at"]),
        )
    route = row["progress_route"]
    result_status = row["result_status"]
    return RunRecord(
        tenant=row["tenant"],
        workflow_id=row["workflow_id"],
        status=RunStatus(row["status"]),
        title=row["title"],
        url=row["url"],
        depth=row["depth"],
        destination=destination,
        interaction=interaction,
        requester=requester,
        timeout_seconds=row["timeout_seconds"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_activity_at=row["last_activity_at"],
        handoff_at=row["handoff_at"],
        progress=progress,
        progress_version=row["progress_version"],
        shown_version=row["shown_version"],
        progress_route=Route(route) if route is not None else None,
        progress_message_id=row["progress_message_id"],
        next_edit_at=row["next_edit_at"],
        final_shown=bool(row["final_shown"]),
        abandon_notified=bool(row["abandon_notified"]),
        channel_dead=row["channel_dead"],
        coalesced=row["coalesced"],
        failures=row["failures"],
        due_at=row["due_at"],
        error_stage=row["error_stage"],
        error_message=row["error_message"],
        result_status=Status(result_status) if result_status is not None else None,
        body_hash=row["body_hash"],
    )


def run_step_params(step: RunStep, *, owner: str, now: float) -> dict[str, Any]:
    """The parameters of a ``save_run_step`` update, by name (each backend orders them)."""
    return {
        "tenant": step.tenant,
        "workflow_id": step.workflow_id,
        "owner": owner,
        "now": now,
        "seen_version": step.seen_version,
        "seen_status": step.seen_status.value,
        "status": step.status.value,
        "shown_version": step.shown_version,
        "progress_route": step.progress_route.value if step.progress_route else None,
        "progress_message_id": step.progress_message_id,
        "next_edit_at": step.next_edit_at,
        "final_shown": step.final_shown,
        "abandon_notified": step.abandon_notified,
        "channel_dead": step.channel_dead,
        "coalesced": step.coalesced,
        "failures": step.failures,
        "due_at": step.due_at,
    }


def overview_from_rows(
    statuses: Iterable[Row], attempts: Iterable[Row], replicas: int, paused_until: float
) -> TenantOverview:
    """Both backends' overview queries as one value: ``statuses`` rows have ``status``, ``n``
    and ``oldest`` (the oldest pending creation time), ``attempts`` rows ``slot``, ``outcome``
    and ``n``."""
    counts = dict.fromkeys(Status, 0)
    oldest: float | None = None
    for row in statuses:
        counts[Status(row["status"])] = int(row["n"])
        if row["oldest"] is not None:
            oldest = float(row["oldest"])
    return TenantOverview(
        counts=counts,
        oldest_pending_at=oldest,
        attempts=tuple(
            AttemptCount(
                slot=int(row["slot"]), outcome=AttemptOutcome(row["outcome"]), count=int(row["n"])
            )
            for row in attempts
        ),
        replicas=replicas,
        paused_until=paused_until,
    )
