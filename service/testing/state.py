"""What the emulated Discord knows: webhooks, channels and threads, interactions, messages.

All of it lives in memory behind one re-entrant lock, so control calls from a test thread and
requests served by uvicorn in another thread never see a half-made change. No method awaits.
"""

from __future__ import annotations

import base64
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from service.discord.snowflake import INTERACTION_TOKEN_LIFETIME_S, snowflake_time
from service.testing.models import (
    FLAG_LOADING,
    EmulatedInteraction,
    EmulatedWebhook,
    ReceivedAttachment,
    ReceivedEdit,
    ReceivedMessage,
    SnowflakeFactory,
)
from service.testing.validation import AttachmentPlan

# Discord caps edits to messages older than an hour (30046, REFERENCE.md "Editing over time")
# without saying how far. The emulator allows this many edits in any rolling hour once a message
# is an hour old, so a progress message edited every few seconds hits the cap at once.
OLD_MESSAGE_AGE_S = 3600.0
OLD_MESSAGE_EDITS_PER_HOUR = 5


def webhook_token() -> str:
    """68 characters of base64url, like the tokens Discord issues today."""
    return secrets.token_urlsafe(51)


def interaction_token(interaction_id: str) -> str:
    # Discord's interaction tokens are long base64url strings starting "aW50ZXJhY3Rpb24"
    # ("interaction" in base64); they are not meant to be parsed, only carried.
    raw = f"interaction:{interaction_id}:{secrets.token_urlsafe(96)}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


@dataclass
class StoredWebhook:
    public: EmulatedWebhook
    deleted: bool = False


@dataclass
class StoredMessage:
    """Mutable record behind a `ReceivedMessage`; `owner` is a webhook id or interaction id."""

    message: ReceivedMessage
    owner: str
    author_id: str
    author_name: str
    application_id: str | None = None
    type: int = 0
    edits: list[ReceivedEdit] = field(default_factory=list)


class EmulatorState:
    """Registry of everything the emulated Discord holds. Thread-safe."""

    def __init__(self, wall_clock: Callable[[], float]) -> None:
        self._wall_clock = wall_clock
        self._lock = threading.RLock()
        self._ids = SnowflakeFactory()
        self._webhooks: dict[str, StoredWebhook] = {}
        self._forum_channels: dict[str, bool] = {}
        self._threads: dict[str, str] = {}  # thread id -> parent channel id
        self._interactions: dict[str, EmulatedInteraction] = {}
        self._tokens: dict[tuple[str, str], str] = {}  # (application id, token) -> interaction
        self._applications: set[str] = set()
        self._messages: dict[str, StoredMessage] = {}
        self._order: dict[str, list[str]] = {}  # owner -> message ids in arrival order
        self.default_application_id = self.new_id()
        self._applications.add(self.default_application_id)

    def new_id(self, age_seconds: float = 0.0) -> str:
        return self._ids.at(self._wall_clock() - age_seconds)

    # -- webhooks, channels, threads ---------------------------------------------------------

    def create_webhook(
        self, *, channel_id: str | None, guild_id: str | None, forum: bool, name: str
    ) -> EmulatedWebhook:
        with self._lock:
            channel = channel_id or self.new_id()
            if self._forum_channels.setdefault(channel, forum) != forum:
                raise ValueError(f"channel {channel} already exists with forum={not forum}")
            hook = EmulatedWebhook(
                id=self.new_id(),
                token=webhook_token(),
                channel_id=channel,
                guild_id=guild_id or self.new_id(),
                forum=forum,
                name=name,
            )
            self._webhooks[hook.id] = StoredWebhook(hook)
            return hook

    def webhook(self, webhook_id: str) -> StoredWebhook | None:
        with self._lock:
            return self._webhooks.get(webhook_id)

    def _require_webhook(self, webhook_id: str) -> StoredWebhook:
        stored = self._webhooks.get(webhook_id)
        if stored is None:
            raise KeyError(f"unknown webhook {webhook_id}")
        return stored

    def delete_webhook(self, webhook_id: str) -> None:
        with self._lock:
            self._require_webhook(webhook_id).deleted = True

    def rename_webhook(self, webhook_id: str, name: str) -> EmulatedWebhook:
        with self._lock:
            stored = self._require_webhook(webhook_id)
            stored.public = replace(stored.public, name=name)
            return stored.public

    def create_thread(self, webhook_id: str, thread_id: str | None = None) -> str:
        with self._lock:
            channel = self._require_webhook(webhook_id).public.channel_id
            thread = thread_id or self.new_id()
            self._threads[thread] = channel
            return thread

    def thread_parent(self, thread_id: str) -> str | None:
        with self._lock:
            return self._threads.get(thread_id)

    # -- interactions ------------------------------------------------------------------------

    def create_interaction(
        self, *, application_id: str | None, age_seconds: float, channel_id: str | None
    ) -> EmulatedInteraction:
        with self._lock:
            interaction_id = self.new_id(age_seconds)
            application = application_id or self.default_application_id
            token = interaction_token(interaction_id)
            channel = channel_id or self.new_id()
            original_id = self.new_id(age_seconds)
            interaction = EmulatedInteraction(
                application_id=application,
                interaction_id=interaction_id,
                token=token,
                channel_id=channel,
                expires_at=snowflake_time(interaction_id) + INTERACTION_TOKEN_LIFETIME_S,
                original_message_id=original_id,
            )
            self._interactions[interaction_id] = interaction
            self._tokens[(application, token)] = interaction_id
            self._applications.add(application)
            # The deferred response ("thinking...") that PATCH @original later fills in.
            original = ReceivedMessage(
                id=original_id,
                webhook_id=application,
                channel_id=channel,
                thread_id=None,
                content="",
                embeds=[],
                attachments=[],
                allowed_mentions=None,
                flags=FLAG_LOADING,
                username=None,
                avatar_url=None,
                payload={},
                received_at=snowflake_time(interaction_id),
                interaction_id=interaction_id,
            )
            self._messages[original_id] = StoredMessage(
                original, f"original:{interaction_id}", application, "relay-bot", application, 20
            )
            return interaction

    def is_application(self, application_id: str) -> bool:
        with self._lock:
            return application_id in self._applications

    def interaction_for(self, application_id: str, token: str) -> EmulatedInteraction | None:
        with self._lock:
            interaction_id = self._tokens.get((application_id, token))
            return self._interactions.get(interaction_id) if interaction_id else None

    def interaction(self, interaction_id: str) -> EmulatedInteraction:
        with self._lock:
            found = self._interactions.get(interaction_id)
            if found is None:
                raise KeyError(f"unknown interaction {interaction_id}")
            return found

    # -- messages ----------------------------------------------------------------------------

    def _attachments(
        self, plans: list[AttachmentPlan], existing: list[ReceivedAttachment]
    ) -> list[ReceivedAttachment]:
        by_id = {a.id: a for a in existing}
        out: list[ReceivedAttachment] = []
        for plan in plans:
            if plan.file is not None:
                upload = plan.file
                out.append(
                    ReceivedAttachment(
                        id=self.new_id(),
                        filename=plan.filename,
                        size=len(upload.data),
                        data=upload.data,
                        content_type=upload.content_type,
                        description=plan.description,
                    )
                )
            elif plan.keep_id in by_id:
                kept = by_id[plan.keep_id]
                out.append(replace(kept, filename=plan.filename or kept.filename))
        return out

    def store_message(
        self,
        *,
        owner: str,
        author_id: str,
        author_name: str,
        channel_id: str,
        thread_id: str | None,
        payload: dict[str, Any],
        attachments: list[AttachmentPlan],
        message_id: str | None = None,
        interaction_id: str | None = None,
        application_id: str | None = None,
    ) -> StoredMessage:
        with self._lock:
            message = ReceivedMessage(
                id=message_id or self.new_id(),
                webhook_id=author_id,
                channel_id=channel_id,
                thread_id=thread_id,
                content=payload.get("content"),
                embeds=list(payload.get("embeds") or []),
                attachments=self._attachments(attachments, []),
                allowed_mentions=payload.get("allowed_mentions"),
                flags=int(payload.get("flags") or 0),
                username=payload.get("username"),
                avatar_url=payload.get("avatar_url"),
                payload=payload,
                received_at=self._wall_clock(),
                interaction_id=interaction_id,
                components=list(payload.get("components") or []),
            )
            stored = StoredMessage(message, owner, author_id, author_name, application_id)
            self._messages[message.id] = stored
            self._order.setdefault(owner, []).append(message.id)
            return stored

    def find_message(self, owners: tuple[str, ...], message_id: str) -> StoredMessage | None:
        """A live message of one of `owners` (Discord only lets a webhook touch its own)."""
        with self._lock:
            stored = self._messages.get(message_id)
            if stored is None or stored.owner not in owners or stored.message.deleted:
                return None
            return stored

    def preview_edit(self, stored: StoredMessage, payload: dict[str, Any]) -> dict[str, Any]:
        """The message's fields after applying `payload` (to check emptiness before storing)."""
        with self._lock:
            merged = {
                "content": stored.message.content,
                "embeds": stored.message.embeds,
                "components": stored.message.components,
            }
            merged.update({k: v for k, v in payload.items() if k in merged})
            return merged

    def edit_allowed(self, stored: StoredMessage) -> bool:
        """False when the message is over an hour old and already had its edits this hour."""
        with self._lock:
            now = self._wall_clock()
            created = snowflake_time(stored.message.id)
            if now - created < OLD_MESSAGE_AGE_S:
                return True
            recent = [
                e
                for e in stored.edits
                if e.received_at - created >= OLD_MESSAGE_AGE_S
                and e.received_at > now - OLD_MESSAGE_AGE_S
            ]
            return len(recent) < OLD_MESSAGE_EDITS_PER_HOUR

    def edit_message(
        self,
        stored: StoredMessage,
        payload: dict[str, Any],
        attachments: list[AttachmentPlan] | None,
    ) -> ReceivedMessage:
        with self._lock:
            old = stored.message
            changes: dict[str, Any] = {}
            for key in ("content", "allowed_mentions"):
                if key in payload:
                    changes[key] = payload[key]
            for key in ("embeds", "components"):
                if key in payload:
                    changes[key] = list(payload[key] or [])
            if "flags" in payload:
                # An edit can only toggle SUPPRESS_EMBEDS; the loading flag clears on any edit.
                changes["flags"] = int(payload["flags"] or 0)
            elif old.flags & FLAG_LOADING:
                changes["flags"] = old.flags & ~FLAG_LOADING
            if attachments is not None:
                changes["attachments"] = self._attachments(attachments, old.attachments)
            now = self._wall_clock()
            stored.message = replace(old, **changes, edits=[*old.edits, payload], edited_at=now)
            stored.edits.append(ReceivedEdit(old.id, payload, now))
            return stored.message

    def edits(self, message_id: str) -> list[ReceivedEdit]:
        with self._lock:
            stored = self._messages.get(message_id)
            if stored is None:
                raise KeyError(f"unknown message {message_id}")
            return list(stored.edits)

    def delete_message(self, stored: StoredMessage) -> None:
        with self._lock:
            stored.message = replace(stored.message, deleted=True)

    def messages(
        self, owner: str, *, thread_id: str | None = None, include_deleted: bool = False
    ) -> list[ReceivedMessage]:
        with self._lock:
            found = [self._messages[i].message for i in self._order.get(owner, [])]
        return [
            m
            for m in found
            if (include_deleted or not m.deleted)
            and (thread_id is None or m.thread_id == thread_id)
        ]

    def original(self, interaction_id: str) -> ReceivedMessage:
        with self._lock:
            return self._messages[self.interaction(interaction_id).original_message_id].message
