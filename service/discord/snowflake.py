"""Discord snowflakes: shape checks and the creation time they carry."""

from __future__ import annotations

import re

DISCORD_EPOCH_MS = 1420070400000
INTERACTION_TOKEN_LIFETIME_S = 15 * 60


def _below_2_64() -> str:
    """A regular expression for 17-20 digits below 2^64 with no leading zero, so the API schema
    can say it too. A leading zero is refused, not dropped: ``0123...`` and ``123...`` would be
    one id under two spellings, and a lane or a dead mark keyed by the text would miss it."""
    top = str(2**64 - 1)
    lower = []
    for i, digit in enumerate(top):
        first = 1 if i == 0 else 0
        if int(digit) <= first:
            continue
        below = int(digit) - 1
        smaller = str(first) if below == first else f"[{first}-{below}]"
        rest = len(top) - i - 1
        lower.append(top[:i] + smaller + (f"[0-9]{{{rest}}}" if rest else ""))
    return "|".join(["[1-9][0-9]{16,18}", *lower, top])


SNOWFLAKE_PATTERN = f"^(?:{_below_2_64()})$"
_SNOWFLAKE = re.compile(SNOWFLAKE_PATTERN)


def is_snowflake(value: str) -> bool:
    """True for 17-20 decimal digits below 2^64 without a leading zero, the only shape Discord
    hands out."""
    return _SNOWFLAKE.match(value) is not None


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
