"""Settings for the service, read from the environment with the ``RELAY_`` prefix.

Build them with :func:`load_settings` and pass them down; nothing reads the environment at import.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.crypto import SecretKeyError, decode_key
from service.discord.bot_sender import BOT_TOKEN_PATTERN

DEFAULT_DATABASE_URL = "sqlite:///./data/relay.db"
MIN_API_KEY_LENGTH = 16
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfiguredBot(BaseModel):
    """One tenant's bot as ``RELAY_BOT_TOKENS`` gives it (``tenant:token`` or
    ``tenant:token:dm``); the token never shows in a repr."""

    model_config = ConfigDict(frozen=True)

    token: SecretStr
    dm_fallback: bool = False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RELAY_", extra="ignore", frozen=True)

    environment: Literal["development", "production"] = "production"
    database_url: str = DEFAULT_DATABASE_URL
    discord_api_base: str = "https://discord.com/api/v10"
    api_keys: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Static API keys as 'tenant:key,tenant2:key2' (key -> tenant once parsed).",
    )
    bot_tokens: Annotated[dict[str, ConfiguredBot], NoDecode] = Field(
        default_factory=dict,
        description="The tenants' Discord bots as 'tenant:token,tenant2:token2:dm' ('dm': the "
        "tenant's results may fall back to a DM); checked with Discord at start.",
    )
    max_body_bytes: int = Field(default=25 * 1024 * 1024, gt=0)
    # Room for two bodies of the largest size at once, plus every small one arriving meanwhile:
    # a body parsed into Python objects costs several times its bytes, so this bound (with the
    # copies the intake avoids) is what keeps the process's memory flat under heavy clients.
    max_inflight_bytes: int = Field(
        default=64 * 1024 * 1024,
        gt=0,
        description="Request body bytes received or held at once, all requests together.",
    )
    body_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Longest a request body may take to arrive."
    )
    retention_days: float = Field(default=30, gt=0)
    purge_interval_seconds: float = Field(default=3600, gt=0)
    max_attempts: int = Field(default=12, ge=1)
    max_retry_seconds: float = Field(default=24 * 3600, gt=0)
    retry_base_seconds: float = Field(default=2.0, gt=0)
    retry_cap_seconds: float = Field(default=600.0, gt=0)
    ambiguous_retry_seconds: float = Field(
        default=15.0,
        ge=0,
        description="Least wait before a part sent without an answer is sent again.",
    )
    interaction_margin_seconds: float = Field(default=60.0, ge=0)
    global_rps: float = Field(default=45.0, gt=0)
    worker_enabled: bool = Field(default=True, description="Run the delivery worker in serve.")
    worker_lanes: int = Field(default=64, ge=1, description="Lanes one process works at once.")
    max_parts: int = Field(
        default=10,
        ge=1,
        le=100,
        description="Most Discord messages one result becomes; the rest of a long message is "
        "attached as a file. Change it only with no result pending: a result is rendered again "
        "after a restart, and its parts are counted by number.",
    )
    lease_seconds: float = Field(default=30.0, gt=0)
    progress_interval_seconds: float = Field(
        default=3.0, gt=0, description="At most one edit of a run's progress message this often."
    )
    handoff_at_seconds: float = Field(
        default=720.0,
        gt=0,
        le=900,
        description="Hand a run over to the channel this long after its interaction was created.",
    )
    run_timeout_seconds: int = Field(
        default=7200,
        ge=60,
        le=86400,
        description="A run with no progress and no result this long is abandoned (default).",
    )
    poll_seconds: float = Field(default=1.0, gt=0)
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|text)$")

    # -- secrets: tokens at rest (service/crypto.py, service/keyfile.py) -----------------------
    secret_key: SecretStr | None = Field(
        default=None,
        description="AES-GCM key for tokens at rest: 32 bytes, base64url "
        "('result-relay secrets generate'). Development without one uses a key file.",
    )
    secret_key_previous: SecretStr | None = Field(
        default=None, description="The key before the last rotation, still readable."
    )

    @field_validator("secret_key", "secret_key_previous", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("secret_key", "secret_key_previous")
    @classmethod
    def _check_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                decode_key(value.get_secret_value())
            except SecretKeyError as exc:
                raise ValueError(str(exc)) from None  # the key itself stays out of the chain
        return value

    @model_validator(mode="after")
    def _production_needs_a_key(self) -> Self:
        if self.environment != "development" and self.secret_key is None:
            raise ValueError(
                "RELAY_SECRET_KEY: is not set, and production will not store tokens without "
                "it; make one with: export RELAY_SECRET_KEY=$(result-relay secrets generate)"
            )
        return self

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_api_keys(cls, value: object) -> object:
        """Parse ``tenant:key,...`` into ``{key: tenant}``; refuse anything ambiguous.

        A refusal names the entry by position and the rule it breaks, never its characters:
        the message ends up in a terminal or a log."""
        if not isinstance(value, str):
            return value
        keys: dict[str, str] = {}
        entries = [part.strip() for part in value.split(",")]
        for position, entry in enumerate(entries, start=1):
            if not entry:
                continue
            tenant, sep, key = (part.strip() for part in entry.partition(":"))
            if not sep:
                raise ValueError(f"entry {position} has no ':' between tenant and key")
            if not tenant:
                raise ValueError(f"entry {position} has no tenant before its ':'")
            if len(key) < MIN_API_KEY_LENGTH:
                raise ValueError(
                    f"entry {position} has a key shorter than {MIN_API_KEY_LENGTH} characters"
                )
            if key in keys:
                raise ValueError(f"entry {position} repeats the key of an earlier entry")
            keys[key] = tenant
        return keys

    @field_validator("bot_tokens", mode="before")
    @classmethod
    def _parse_bot_tokens(cls, value: object) -> object:
        """Parse ``tenant:token[:dm],...`` into ``{tenant: ConfiguredBot}``. As for the API
        keys, a refusal names the entry by position and the rule, never its characters."""
        if not isinstance(value, str):
            return value
        bots: dict[str, ConfiguredBot] = {}
        for position, entry in enumerate((part.strip() for part in value.split(",")), start=1):
            if not entry:
                continue
            tenant, sep, rest = (part.strip() for part in entry.partition(":"))
            token, _, flag = (part.strip() for part in rest.partition(":"))
            if not sep:
                raise ValueError(f"entry {position} has no ':' between tenant and token")
            if not tenant:
                raise ValueError(f"entry {position} has no tenant before its ':'")
            if not re.fullmatch(BOT_TOKEN_PATTERN, token):
                raise ValueError(
                    f"entry {position} has no bot token after its ':' (50 to 200 letters, "
                    "digits, '.', '_' or '-')"
                )
            if flag not in ("", "dm"):
                raise ValueError(f"entry {position} ends in something other than ':dm'")
            if tenant in bots:
                raise ValueError(f"entry {position} gives a second bot to the same tenant")
            bots[tenant] = ConfiguredBot(token=SecretStr(token), dm_fallback=flag == "dm")
        return bots

    @model_validator(mode="after")
    def _no_placeholder_keys(self) -> Self:
        if self.environment != "development" and any("change-me" in k for k in self.api_keys):
            raise ValueError(
                "RELAY_API_KEYS: holds a placeholder key ('change-me'): set real keys, or "
                "RELAY_ENVIRONMENT=development for a local trial"
            )
        return self

    @model_validator(mode="after")
    def _one_body_fits_in_flight(self) -> Self:
        if self.max_inflight_bytes < self.max_body_bytes:
            raise ValueError(
                "RELAY_MAX_INFLIGHT_BYTES must be at least RELAY_MAX_BODY_BYTES, or a body of "
                "the largest size could never be accepted"
            )
        return self

    @field_validator("discord_api_base")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    # A value a command would only trip over later is refused here, so that it too gets its
    # one line naming the variable (and a URL's password is never quoted).
    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:// or postgresql://")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return value.upper()


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; keyword overrides win (tests, CLI flags)."""
    return Settings(**overrides)  # type: ignore[arg-type]


def settings_problems(error: ValidationError) -> list[str]:
    """One line per problem, ``RELAY_X: <rule>``, for a terminal or a log.

    Never the value (a key, a token in a URL), nor pydantic's input echo or its help-page
    footer: only the variable and the rule it breaks."""
    lines = []
    for problem in error.errors(include_url=False, include_input=False, include_context=False):
        message = str(problem["msg"]).removeprefix("Value error, ")
        fields = [str(part) for part in problem["loc"] if isinstance(part, str)]
        if fields:
            lines.append(f"RELAY_{fields[0].upper()}: {message}")
        else:
            lines.append(message)  # a rule across settings names its own variable first
    return lines
