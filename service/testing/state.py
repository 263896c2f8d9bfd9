"""What the emulated Discord knows: webhooks, bots, users, channels, threads and DMs,
interactions, messages.

Every message, whoever posted it (a webhook, an interaction follow-up, a bot), lives in the
history of the channel it was posted to (a thread is a channel of its own), as on Discord, so
Get Channel Messages sees webhook and bot messages alike.

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
    ChannelAccess,
    EmulatedBot,
    EmulatedChannel,
    EmulatedInteraction,
    EmulatedUser,
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
# Discord only says "the past few minutes" for `enforce_nonce`; the emulator keeps five.
NONCE_WINDOW_S = 300.0


def webhook_token() -> str:
    """68 characters of base64url, like the tokens Discord issues today."""
    return secrets.token_urlsafe(51)


def bot_token(bot_id: str) -> str:
    # Bot tokens are three base64url parts: the user id, a timestamp, an HMAC.
    user = base64.urlsafe_b64encode(bot_id.encode()).decode("ascii").rstrip("=")
    return f"{user}.{secrets.token_urlsafe(4)}.{secrets.token_urlsafe(27)}"


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
    """Mutable record behind a `ReceivedMessage`; `owner` is a webhook id, interaction id or
    bot id."""

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
        self._history: dict[str, list[str]] = {}  # channel id -> message ids in arrival order
        self._channels: dict[str, EmulatedChannel] = {}
        self._bots: dict[str, EmulatedBot] = {}
        self._bot_tokens: dict[str, str] = {}  # token -> bot id
        self._users: dict[str, EmulatedUser] = {}
        self._access: dict[tuple[str, str], ChannelAccess] = {}  # (channel, bot) -> access
        self._dms: dict[tuple[str, str], str] = {}  # (bot, user) -> DM channel id
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
            known = self._channels.get(channel)
            guild = guild_id or (known.guild_id if known else None) or self.new_id()
            if known is None:
                self._channels[channel] = EmulatedChannel(channel, guild)
            hook = EmulatedWebhook(
                id=self.new_id(),
                token=webhook_token(),
                channel_id=channel,
                guild_id=guild,
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
            hook = self._require_webhook(webhook_id).public
            thread = thread_id or self.new_id()
            self._threads[thread] = hook.channel_id
            self._channels[thread] = EmulatedChannel(thread, hook.guild_id, hook.channel_id)
            return thread

    def is_forum(self, channel_id: str) -> bool:
        with self._lock:
            return self._forum_channels.get(channel_id, False)

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
            if channel not in self._channels:
                self._channels[channel] = EmulatedChannel(channel, self.new_id())
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
            self._history.setdefault(channel, []).append(original_id)
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

    # -- bots, users, channels, DMs ----------------------------------------------------------

    def create_bot(self, *, username: str) -> EmulatedBot:
        with self._lock:
            bot_id = self.new_id()
            bot = EmulatedBot(id=bot_id, token=bot_token(bot_id), username=username)
            self._bots[bot.id] = bot
            self._bot_tokens[bot.token] = bot.id
            return bot

    def bot_for_token(self, token: str) -> EmulatedBot | None:
        with self._lock:
            bot_id = self._bot_tokens.get(token)
            return self._bots.get(bot_id) if bot_id else None

    def _require_bot(self, bot_id: str) -> EmulatedBot:
        found = self._bots.get(bot_id)
        if found is None:
            raise KeyError(f"unknown bot {bot_id}")
        return found

    def create_channel(self, *, guild_id: str | None, channel_id: str | None) -> EmulatedChannel:
        with self._lock:
            if channel_id is not None and channel_id in self._channels:
                raise ValueError(f"channel {channel_id} already exists")
            channel = EmulatedChannel(channel_id or self.new_id(), guild_id or self.new_id())
            self._channels[channel.id] = channel
            return channel

    def channel(self, channel_id: str) -> EmulatedChannel | None:
        with self._lock:
            return self._channels.get(channel_id)

    def _require_channel(self, channel_id: str) -> EmulatedChannel:
        found = self._channels.get(channel_id)
        if found is None:
            raise KeyError(f"unknown channel {channel_id}")
        return found

    def set_access(self, channel_id: str, bot_id: str, access: ChannelAccess) -> None:
        with self._lock:
            self._require_channel(channel_id)
            self._require_bot(bot_id)
            self._access[(channel_id, bot_id)] = access

    def access(self, channel: EmulatedChannel, bot_id: str) -> ChannelAccess:
        """What `bot_id` may do in `channel`: a thread follows its parent's settings; a DM
        is open to its own bot only."""
        with self._lock:
            if channel.recipient_id is not None:
                own = channel.bot_id == bot_id
                return ChannelAccess(view=own, send=own, read_history=own)
            key = channel.parent_id or channel.id
            return self._access.get((key, bot_id), ChannelAccess())

    def create_user(self, *, dms_open: bool) -> EmulatedUser:
        with self._lock:
            user = EmulatedUser(self.new_id(), dms_open)
            self._users[user.id] = user
            return user

    def set_dms_open(self, user_id: str, dms_open: bool) -> EmulatedUser:
        with self._lock:
            if user_id not in self._users:
                raise KeyError(f"unknown user {user_id}")
            user = self._users[user_id] = replace(self._users[user_id], dms_open=dms_open)
            return user

    def user(self, user_id: str) -> EmulatedUser | None:
        with self._lock:
            return self._users.get(user_id)

    def existing_dm(self, bot_id: str, user_id: str) -> EmulatedChannel | None:
        with self._lock:
            channel_id = self._dms.get((bot_id, user_id))
            return self._channels[channel_id] if channel_id else None

    def open_dm(self, bot_id: str, user_id: str) -> tuple[EmulatedChannel, bool]:
        """The DM channel between the bot and the user, and whether it was made just now."""
        with self._lock:
            found = self.existing_dm(bot_id, user_id)
            if found is not None:
                return found, False
            channel = EmulatedChannel(self.new_id(), None, recipient_id=user_id, bot_id=bot_id)
            self._channels[channel.id] = channel
            self._dms[(bot_id, user_id)] = channel.id
            return channel, True

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
        bot: bool = False,
    ) -> StoredMessage:
        """Stores a message by a webhook or interaction (`author_id`), or by a bot (`bot`)."""
        with self._lock:
            nonce = payload.get("nonce")
            message = ReceivedMessage(
                id=message_id or self.new_id(),
                webhook_id=None if bot else author_id,
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
                bot_id=author_id if bot else None,
                nonce=nonce if isinstance(nonce, int | str) else None,
            )
            stored = StoredMessage(message, owner, author_id, author_name, application_id)
            self._messages[message.id] = stored
            self._order.setdefault(owner, []).append(message.id)
            self._history.setdefault(channel_id, []).append(message.id)
            return stored

    def store_bot_message(
        self,
        bot: EmulatedBot,
        channel_id: str,
        payload: dict[str, Any],
        attachments: list[AttachmentPlan],
        *,
        enforce_nonce: bool,
    ) -> tuple[StoredMessage, bool]:
        """Create Message: the new message and True, or, with `enforce_nonce`, the message this
        bot created in this channel with the same nonce within `NONCE_WINDOW_S` and False."""
        with self._lock:
            nonce = payload.get("nonce")
            if enforce_nonce and nonce is not None:
                earlier = self._by_nonce(bot.id, channel_id, str(nonce))
                if earlier is not None:
                    return earlier, False
            stored = self.store_message(
                owner=bot.id,
                author_id=bot.id,
                author_name=bot.username,
                channel_id=channel_id,
                thread_id=None,
                payload=payload,
                attachments=attachments,
                bot=True,
            )
            return stored, True

    def _by_nonce(self, bot_id: str, channel_id: str, nonce: str) -> StoredMessage | None:
        # Nonces compare as text: 42 and "42" are one nonce to the emulator.
        since = self._wall_clock() - NONCE_WINDOW_S
        for message_id in reversed(self._history.get(channel_id, [])):
            message = self._messages[message_id].message
            if (
                message.bot_id == bot_id
                and message.nonce is not None
                and str(message.nonce) == nonce
                and message.received_at >= since
            ):
                return self._messages[message_id]
        return None

    def channel_message(self, channel_id: str, message_id: str) -> StoredMessage | None:
        """A live message of the channel, whoever wrote it."""
        with self._lock:
            stored = self._messages.get(message_id)
            if stored is None or stored.message.deleted:
                return None
            if stored.message.channel_id != channel_id:
                return None
            return stored

    def history(self, channel_id: str, *, include_deleted: bool = False) -> list[StoredMessage]:
        """Every message posted to the channel, oldest first."""
        with self._lock:
            found = [self._messages[i] for i in self._history.get(channel_id, [])]
        return [s for s in found if include_deleted or not s.message.deleted]

    def dm_history(self, user_id: str) -> list[StoredMessage]:
        """Messages in every DM channel with the user, oldest first."""
        with self._lock:
            channels = [c for (_, user), c in self._dms.items() if user == user_id]
            found = [s for c in channels for s in self.history(c)]
        return sorted(found, key=lambda s: int(s.message.id))

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
