"""The JSON objects the emulator answers with: Discord's message, webhook, user and DM channel
objects.

Shaped after the spec's `MessageResponse` (a test validates them against it), so a client that
parses Discord's answers parses the emulator's too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from service.testing.models import (
    EmulatedBot,
    EmulatedChannel,
    EmulatedUser,
    EmulatedWebhook,
    ReceivedAttachment,
)
from service.testing.state import StoredMessage

CDN = "https://cdn.discordapp.com"
MEDIA = "https://media.discordapp.net"


def iso_time(unix_seconds: float) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).isoformat(timespec="microseconds")


def _attachment_json(channel_id: str, attachment: ReceivedAttachment) -> dict[str, Any]:
    path = f"attachments/{channel_id}/{attachment.id}/{attachment.filename}"
    data: dict[str, Any] = {
        "id": attachment.id,
        "filename": attachment.filename,
        "size": attachment.size,
        "url": f"{CDN}/{path}",
        "proxy_url": f"{MEDIA}/{path}",
    }
    if attachment.content_type:
        data["content_type"] = attachment.content_type
    if attachment.description:
        data["description"] = attachment.description
    return data


def _embed_json(embed: dict[str, Any]) -> dict[str, Any]:
    # Discord drops nulls and marks embeds sent by webhooks as "rich".
    out = {k: v for k, v in embed.items() if v is not None}
    out.setdefault("type", "rich")
    if isinstance(out.get("fields"), list):
        out["fields"] = [
            {"inline": False, **{k: v for k, v in f.items() if v is not None}}
            for f in out["fields"]
            if isinstance(f, dict)
        ]
    return out


def message_json(stored: StoredMessage) -> dict[str, Any]:
    message = stored.message
    author: dict[str, Any] = {
        "id": stored.author_id,
        "username": message.username or stored.author_name,
        "avatar": None,
        "discriminator": "0000",
        "public_flags": 0,
        "flags": 0,
        "bot": True,
        "global_name": None,
        "primary_guild": None,
    }
    data: dict[str, Any] = {
        "type": stored.type,
        "content": message.content or "",
        "mentions": [],
        "mention_roles": [],
        "attachments": [_attachment_json(message.channel_id, a) for a in message.attachments],
        "embeds": [_embed_json(e) for e in message.embeds],
        "timestamp": iso_time(message.received_at),
        "edited_timestamp": iso_time(message.edited_at) if message.edited_at else None,
        "flags": message.flags,
        "components": message.components,
        "id": message.id,
        "channel_id": message.channel_id,
        "author": author,
        "pinned": False,
        "mention_everyone": False,
        "tts": bool(message.payload.get("tts")),
    }
    if message.bot_id is None:
        data["webhook_id"] = stored.author_id
    if message.nonce is not None:
        data["nonce"] = message.nonce
    if stored.application_id:
        data["application_id"] = stored.application_id
    if message.thread_id:
        data["position"] = 0
    return data


def webhook_json(webhook: EmulatedWebhook) -> dict[str, Any]:
    """GET /webhooks/{id}/{token}: the webhook object as Discord returns it with a token."""
    return {
        "application_id": None,
        "avatar": None,
        "channel_id": webhook.channel_id,
        "guild_id": webhook.guild_id,
        "id": webhook.id,
        "name": webhook.name,
        "type": 1,
        "token": webhook.token,
    }


def _user_json(user_id: str, username: str, *, bot: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": user_id,
        "username": username,
        "avatar": None,
        "discriminator": "0",
        "public_flags": 0,
        "flags": 0,
        "global_name": None,
        "primary_guild": None,
    }
    if bot:
        data["bot"] = True
    return data


def bot_user_json(bot: EmulatedBot) -> dict[str, Any]:
    """GET /users/@me with a bot token: the bot's own user object."""
    return {
        **_user_json(bot.id, bot.username, bot=True),
        "verified": True,
        "mfa_enabled": False,
        "locale": "en-US",
        "email": None,
    }


def dm_channel_json(channel: EmulatedChannel, recipient: EmulatedUser) -> dict[str, Any]:
    """POST /users/@me/channels: a DM channel (type 1) with its one recipient."""
    return {
        "id": channel.id,
        "type": 1,
        "last_message_id": None,
        "flags": 0,
        "recipients": [_user_json(recipient.id, f"user{recipient.id[-6:]}", bot=False)],
    }
