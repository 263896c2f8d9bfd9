"""Helpers for the emulator tests: a hand-moved clock, URLs and payload builders."""

from __future__ import annotations

import json
from typing import Any

import httpx
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from service.testing import EmulatedBot, EmulatedInteraction, EmulatedWebhook
from service.testing.schema import default_spec_path

USER_AGENT = "DiscordBot (https://github.com/example/result-relay, 0.1.0)"
SAFE_MENTIONS: dict[str, Any] = {"parse": []}
WALL_START = 1_790_000_000.0


class FakeClock:
    """A clock the test moves by assignment (`clock.now += 2`); waiting costs nothing."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def hook_path(webhook: EmulatedWebhook, *, version: str = "v10", query: str = "wait=true") -> str:
    prefix = f"/api/{version}" if version else "/api"  # "" is Discord's unversioned form
    path = f"{prefix}/webhooks/{webhook.id}/{webhook.token}"
    return f"{path}?{query}" if query else path


def message_path(webhook: EmulatedWebhook, message_id: str, query: str = "") -> str:
    path = f"/api/v10/webhooks/{webhook.id}/{webhook.token}/messages/{message_id}"
    return f"{path}?{query}" if query else path


def followup_path(interaction: EmulatedInteraction, suffix: str = "") -> str:
    return f"/api/v10/webhooks/{interaction.application_id}/{interaction.token}{suffix}"


def bot_auth(bot: EmulatedBot) -> dict[str, str]:
    """The `Authorization` header of a bot's requests."""
    return {"Authorization": f"Bot {bot.token}"}


def channel_path(channel_id: str, suffix: str = "") -> str:
    return f"/api/v10/channels/{channel_id}/messages{suffix}"


def body(**fields: Any) -> dict[str, Any]:
    """A message body with the safe `allowed_mentions` every relay message carries."""
    return {"allowed_mentions": SAFE_MENTIONS, **fields}


def multipart(payload: dict[str, Any], *files: tuple[str, bytes]) -> dict[str, Any]:
    """httpx keyword arguments for a `payload_json` + `files[n]` upload."""
    return {
        "data": {"payload_json": json.dumps(payload)},
        "files": [
            (f"files[{i}]", (name, data, "application/octet-stream"))
            for i, (name, data) in enumerate(files)
        ],
    }


def error_at(response: httpx.Response, *path: str | int) -> list[dict[str, str]]:
    """The `_errors` list at `path` of a 50035 body (KeyError if absent)."""
    node: Any = response.json()["errors"]
    for key in path:
        node = node[str(key)]
    errors: list[dict[str, str]] = node["_errors"]
    return errors


def error_codes_at(response: httpx.Response, *path: str | int) -> list[str]:
    return [e["code"] for e in error_at(response, *path)]


def spec_validator(schema: str) -> Draft202012Validator:
    """A validator for one of Discord's answer schemas in the shipped spec subset."""
    spec = json.loads(default_spec_path().read_text())
    registry: Registry[Any] = Registry().with_resource(
        "urn:spec", DRAFT202012.create_resource(spec)
    )
    return Draft202012Validator(
        {"$ref": f"urn:spec#/components/schemas/{schema}"}, registry=registry
    )
