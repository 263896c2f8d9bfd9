"""A Discord webhook API emulator: a real ASGI app, strict enough that a client passing against it
passes against Discord. Reach it through `httpx.ASGITransport(app=emulator.app)` in unit tests,
or over a socket with `EmulatorServer` (or `python -m service.testing --port N`).

Discord routes (under `/api/v10`, `/api/v9`, `/api/v8`; the unversioned `/api/...` is served with
v6-era millisecond `retry_after` and counted in `unversioned_requests`):

    POST   /webhooks/{id}/{token}[?wait=true][&thread_id=]     execute / interaction follow-up
    GET    /webhooks/{id}/{token}                               webhook object
    PATCH  /webhooks/{id}/{token}                               rename ({"name"})
    DELETE /webhooks/{id}/{token}                               delete the webhook
    GET    /webhooks/{id}/{token}/messages/{message_id|@original}[?thread_id=]
    PATCH  /webhooks/{id}/{token}/messages/{message_id|@original}[?thread_id=]
    DELETE /webhooks/{id}/{token}/messages/{message_id|@original}[?thread_id=]

Control routes under `/_emulator` (JSON in and out; errors are `{"error": ...}`, 400 or 404):

    GET    /health                          {"ok", "schema_validation"}
    POST   /webhooks                        {channel_id?, guild_id?, forum?, name?}
                                            -> 201 webhook, with token and url
    DELETE /webhooks/{webhook_id}           -> 204; Discord answers 404 / 10015 from now on
    POST   /webhooks/{webhook_id}/threads   -> 201 {"thread_id"}
    GET    /webhooks/{webhook_id}/messages  ?thread_id=&include_deleted=true
                                            -> {"messages": [...]}
    POST   /interactions                    {application_id?, age_seconds?, channel_id?}
                                            -> 201 interaction, with token and expires_at
    GET    /interactions/{id}/followups     -> {"messages": [...]}
    GET    /interactions/{id}/original      -> the original response (a message)
    GET    /messages/{message_id}/edits     -> {"edits": [{message_id, payload, received_at}]}
    GET    /limits                          -> {"webhook": [n, s], "channel": [..], "global": [..]}
    PUT    /limits                          same shape, any subset; every window restarts
    GET    /faults                          -> {"faults": [...]}, the pending ones
    POST   /faults                          {kind, webhook_id?, count?, seconds?} -> 201
                                            (kind "30046" waits for a message edit)
    DELETE /faults                          -> 204, clears the pending faults
    GET    /counters                        -> EmulatorCounters as JSON
    POST   /counters/reset                  -> 204

Messages in JSON carry attachment bytes as base64 in `attachments[].data`.

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
    EmulatedInteraction,
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
    "ConnectionDropped",
    "DiscordEmulator",
    "EmulatedInteraction",
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
