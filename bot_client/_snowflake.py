"""Discord snowflake time math, kept here so the bot needs nothing from the service package."""

from __future__ import annotations

from datetime import UTC, datetime

DISCORD_EPOCH_MS = 1_420_070_400_000
INTERACTION_TOKEN_LIFETIME_S = 15 * 60


def snowflake_time(snowflake: str | int) -> float:
    """Unix time (seconds) at which Discord created the object with this id."""
    return ((int(snowflake) >> 22) + DISCORD_EPOCH_MS) / 1000.0


def token_expiry(interaction_id: str | int) -> float:
    """Unix time at which an interaction's token stops working: creation plus 15 minutes."""
    return snowflake_time(interaction_id) + INTERACTION_TOKEN_LIFETIME_S


def as_datetime(unix_seconds: float) -> datetime:
    return datetime.fromtimestamp(unix_seconds, UTC)
