"""Discord snowflakes: shape checks and the creation time they carry."""

from __future__ import annotations

import re

DISCORD_EPOCH_MS = 1420070400000
INTERACTION_TOKEN_LIFETIME_S = 15 * 60
_SNOWFLAKE = re.compile(r"[0-9]{17,20}")


def is_snowflake(value: str) -> bool:
    """True for 17-20 decimal digits below 2^64, the only shape Discord hands out."""
    return bool(_SNOWFLAKE.fullmatch(value)) and int(value) < 2**64


def snowflake_time(snowflake: str | int) -> float:
    """Unix time (seconds) at which Discord created the object with this id."""
    return ((int(snowflake) >> 22) + DISCORD_EPOCH_MS) / 1000.0


def snowflake_at(unix_seconds: float, sequence: int = 0) -> str:
    """A snowflake created at ``unix_seconds`` (for tests, the emulator and the demo)."""
    millis = int(unix_seconds * 1000) - DISCORD_EPOCH_MS
    return str((millis << 22) | (sequence & 0x3FFFFF))


def interaction_expires_at(interaction_id: str | int) -> float:
    """When the interaction's token stops working: creation time plus 15 minutes."""
    return snowflake_time(interaction_id) + INTERACTION_TOKEN_LIFETIME_S
