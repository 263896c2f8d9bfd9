"""A Discord webhook and bot API emulator: a real ASGI app, strict enough that a client passing
against it passes against Discord. Reach it through `httpx.ASGITransport(app=emulator.app)` in
unit tests, or over a socket with `EmulatorServer` (or `python -m service.testing --port N`).

Discord routes (under `/api/v10`, `/api/v9`, `/api/v8`; the unversioned `/api/...` is served with
v6-era millisecond `retry_after` and counted in `unversioned_requests`):

    POST   /webhooks/{id}/{token}[?wait=true][&thread_id=]     execute / interaction follow-up
    GET    /webhooks/{id}/{token}                               webhook object
    PATCH  /webhooks/{id}/{token}                               rename ({"name"})
    DELETE /webhooks/{id}/{token}                               delete the webhook
    GET    /webhooks/{id}/{token}/messages/{message_id|@original}[?thread_id=]
    PATCH  /webhooks/{id}/{token}/messages/{message_id|@original}[?thread_id=]
    DELETE /webhooks/{id}/{token}/messages/{message_id|@original}[?thread_id=]

and, with `Authorization: Bot <token>` (else 401 `{"message": "401: Unauthorized", "code": 0}`):

    GET    /users/@me                                           the bot's user object
    POST   /users/@me/channels        {recipient_id}            Create DM (existing or new)
    POST   /channels/{channel_id}/messages                      Create Message (nonce,
                                                                enforce_nonce)
    GET    /channels/{channel_id}/messages?after=&before=&limit=  newest first, 1-100
    PATCH  /channels/{channel_id}/messages/{message_id}         the bot's own messages only

Control routes under `/_emulator` (JSON in and out; errors are `{"error": ...}`, 400 or 404):

    GET    /health                          {"ok", "schema_validation"}
    POST   /webhooks                        {channel_id?, guild_id?, forum?, name?}
                                            -> 201 webhook, with token and url
    DELETE /webhooks/{webhook_id}           -> 204; Discord answers 404 / 10015 from now on
    POST   /webhooks/{webhook_id}/threads   -> 201 {"thread_id"}
    GET    /webhooks/{webhook_id}/messages  ?thread_id=&include_deleted=true
                                            -> {"messages": [...]}
    POST   /bots                            {username?} -> 201 {id, token, username}
    POST   /channels                        {guild_id?, channel_id?} -> 201 {id, guild_id, ...}
    PUT    /channels/{channel_id}/access    {bot_id, view?, send?, read_history?} -> 204
    GET    /channels/{channel_id}/messages  ?include_deleted=true -> {"messages": [...]}, all
                                            authors, oldest first
    POST   /users                           {dms_open?} -> 201 {id, dms_open}
    PUT    /users/{user_id}                 {dms_open} -> the user
    GET    /users/{user_id}/dms             -> {"messages": [...]}, bots' DMs with the user
    POST   /interactions                    {application_id?, age_seconds?, channel_id?}
                                            -> 201 interaction, with token and expires_at
    GET    /interactions/{id}/followups     -> {"messages": [...]}
    GET    /interactions/{id}/original      -> the original response (a message)
    GET    /messages/{message_id}/edits     -> {"edits": [{message_id, payload, received_at}]}
    GET    /limits                          -> {"webhook": [n, s], "channel": [..], "global": [..],
                                                "bot_route": [..], "bot_global": [..],
                                                "dm_open": [..]}
    PUT    /limits                          same shape, any subset; every window restarts
    GET    /faults                          -> {"faults": [...]}, the pending ones
    POST   /faults                          {kind, webhook_id?, channel_id?, count?, seconds?}
                                            -> 201
                                            (kind "30046" waits for a message edit)
    DELETE /faults                          -> 204, clears the pending faults
    GET    /counters                        -> EmulatorCounters as JSON
    POST   /counters/reset                  -> 204

Messages in JSON carry attachment bytes as base64 in `attachments[].data`; each records its
author (`webhook_id`, or `bot_id` for a bot's), `channel_id` (a thread's id inside a thread) and
`nonce`. Webhook, follow-up and bot messages share one history per channel.

Bot routes: every channel (a webhook's too, and its threads) is open to every bot until
`set_access` says otherwise: no view -> 403 / 50001, no send -> 403 / 50013, no read_history ->
Get Channel Messages answers `[]` (Discord's documented behaviour). A DM to a user with DMs
closed answers 403 / 50007; an unknown `recipient_id` 404 / 10013; more than `dm_open` new DMs
per period 400 / 40003. Create Message with `enforce_nonce: true` answers the bot's message with
the same nonce in that channel from the last five minutes (wall clock) instead of posting again
(`counters.nonce_deduplicated`). Buckets are per (bot, route, channel id), 5 per 5 s by default,
with one `X-RateLimit-Bucket` per route; each bot has its own global limit (50 per second).

Message edits (PATCH, `@original` included) are validated like executes, take from the same
rate-limit bucket as the webhook's (or the interaction's) executes, are recorded per message
(`edits(message_id)`) and counted (`counters.edits`). An interaction's token, and with it
`@original`, lasts 15 minutes. A message older than an hour (wall clock) takes at most 5 edits
in any rolling hour; the next answers 400 / 30046 (`state.OLD_MESSAGE_EDITS_PER_HOUR`).
"""

from service.discord.snowflake import snowflake_time
from service.testing.emulator import DiscordEmulator
from service.testing.faults import FAULT_KINDS, ConnectionDropped, Fault, FaultKind
from service.testing.models import (
    ChannelAccess,
    EmulatedBot,
    EmulatedChannel,
    EmulatedInteraction,
    EmulatedUser,
    EmulatedWebhook,
    EmulatorCounters,
    ReceivedAttachment,
    ReceivedEdit,
    ReceivedMessage,
)
from service.testing.server import AppServer, EmulatorServer, free_port

__all__ = [
    "FAULT_KINDS",
    "AppServer",
    "ChannelAccess",
    "ConnectionDropped",
    "DiscordEmulator",
    "EmulatedBot",
    "EmulatedChannel",
    "EmulatedInteraction",
    "EmulatedUser",
    "EmulatedWebhook",
    "EmulatorCounters",
    "EmulatorServer",
    "Fault",
    "FaultKind",
    "ReceivedAttachment",
    "ReceivedEdit",
    "ReceivedMessage",
    "free_port",
    "snowflake_time",
]
