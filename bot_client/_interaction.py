"""What the relay needs from a discord.py ``Interaction``, and how long its token still works.

Discord lets a bot answer an interaction for 15 minutes after its creation, a time the
interaction id carries. These helpers do that arithmetic, so the bot decides nothing about the
15 minutes on its own. Interactions are duck-typed: discord.py is not imported here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Protocol, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from bot_client._snowflake import as_datetime, snowflake_time, token_expiry

DEFAULT_MARGIN_S = 60.0  # the service's RELAY_INTERACTION_MARGIN_SECONDS default
DEFAULT_WARN_BEFORE_S = 120.0  # with the margin: warn from 12 minutes in


class _HasId(Protocol):
    @property
    def id(self) -> int: ...


class InteractionLike(Protocol):
    """The part of ``discord.Interaction`` the relay reads."""

    @property
    def id(self) -> int: ...
    @property
    def application_id(self) -> int: ...
    @property
    def token(self) -> str: ...
    @property
    def user(self) -> _HasId: ...
    @property
    def guild_id(self) -> int | None: ...
    @property
    def channel_id(self) -> int | None: ...


def _id_text(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Snowflake = Annotated[str, BeforeValidator(_id_text)]


class InteractionRef(BaseModel):
    """An interaction the service may answer with a follow-up while its token is valid.

    The token is a secret: it is left out of ``repr`` and never logged.
    """

    model_config = ConfigDict(frozen=True)

    application_id: Snowflake
    interaction_id: Snowflake
    token: str = Field(repr=False)

    @classmethod
    def from_interaction(cls, interaction: InteractionLike) -> Self:
        return cls(
            application_id=str(interaction.application_id),
            interaction_id=str(interaction.id),
            token=interaction.token,
        )

    @property
    def created_at(self) -> datetime:
        return as_datetime(snowflake_time(self.interaction_id))

    @property
    def expires_at(self) -> datetime:
        """When Discord stops taking this token: creation time plus 15 minutes."""
        return as_datetime(token_expiry(self.interaction_id))

    def seconds_left(self, *, now: float | None = None) -> float:
        """Seconds until the token expires (negative once it has)."""
        return token_expiry(self.interaction_id) - (time.time() if now is None else now)

    def is_usable(self, margin: float = DEFAULT_MARGIN_S, *, now: float | None = None) -> bool:
        """True while more than ``margin`` seconds of the token's life remain."""
        return self.seconds_left(now=now) > margin


class Requester(BaseModel):
    """Who asked, and where: the user is mentioned with the result and may retrieve it."""

    model_config = ConfigDict(frozen=True)

    user_id: Snowflake | None = None
    guild_id: Snowflake | None = None
    channel_id: Snowflake | None = None

    @classmethod
    def from_interaction(cls, interaction: InteractionLike) -> Self:
        return cls(
            user_id=str(interaction.user.id),
            guild_id=_optional_id(interaction.guild_id),
            channel_id=_optional_id(interaction.channel_id),
        )


def _optional_id(value: int | None) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class TokenWarning:
    """Where an interaction's token stands, and what to tell the user while it still works."""

    seconds_left: float
    usable: bool  # the service may still answer with a follow-up
    warn: bool  # usable, but not for long: tell the user now, while you still can
    notice: str  # a ready-made text for that message


def token_warning(
    interaction: InteractionLike | InteractionRef,
    *,
    workflow_id: str | None = None,
    margin: float = DEFAULT_MARGIN_S,
    warn_before: float = DEFAULT_WARN_BEFORE_S,
    now: float | None = None,
) -> TokenWarning:
    """Should a long command warn its user that the answer will not come as a reply?

    ``warn`` turns true ``warn_before`` seconds before the token becomes unusable (15 minutes
    minus ``margin`` after the command), and stays true while a follow-up still works.
    """
    interaction_id = (
        interaction.interaction_id
        if isinstance(interaction, InteractionRef)
        else str(interaction.id)
    )
    left = token_expiry(interaction_id) - (time.time() if now is None else now)
    usable = left > margin
    notice = (
        "This is taking longer than Discord lets me reply here. "
        "The results will be posted in this channel when they are ready."
    )
    if workflow_id is not None:
        notice += f" You can also fetch them with `/retrieve_results workflow_id:{workflow_id}`."
    return TokenWarning(
        seconds_left=left,
        usable=usable,
        warn=usable and left <= margin + warn_before,
        notice=notice,
    )
