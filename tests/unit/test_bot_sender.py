"""Reading Get Current User: only an accepted answer naming the bot says who it is."""

from __future__ import annotations

from typing import Any

import pytest

from service.discord.bot_sender import BotUser, bot_user
from service.discord.outcome import Disposition, SendOutcome


@pytest.mark.parametrize(
    ("disposition", "body", "expected"),
    [
        (
            Disposition.DELIVERED,
            {"id": "667788990011223344", "username": "relay"},
            BotUser("667788990011223344", "relay"),
        ),
        (
            Disposition.DELIVERED,
            {"id": 667788990011223344, "username": "relay"},
            BotUser("667788990011223344", "relay"),
        ),
        (Disposition.DELIVERED, {"id": "667788990011223344"}, None),
        (Disposition.DELIVERED, {"username": "relay"}, None),
        (Disposition.DELIVERED, {"id": None, "username": "relay"}, None),
        (Disposition.DELIVERED, None, None),
        (Disposition.PERMANENT, {"id": "1", "username": "relay"}, None),
        (Disposition.TRANSIENT, None, None),
    ],
    ids=["named", "numeric-id", "no-name", "no-id", "null-id", "no-body", "refused", "unanswered"],
)
def test_bot_user_reads_only_an_accepted_answer_that_names_the_bot(
    disposition: Disposition, body: Any, expected: BotUser | None
) -> None:
    outcome = SendOutcome(disposition=disposition, duration_ms=1.0, body=body)
    assert bot_user(outcome) == expected
