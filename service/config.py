"""Settings for the service, read from the environment with the ``RELAY_`` prefix.

Build them with :func:`load_settings` and pass them down; nothing reads the environment at import.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./data/relay.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RELAY_", extra="ignore", frozen=True)

    environment: Literal["development", "production"] = "production"
    database_url: str = DEFAULT_DATABASE_URL
    discord_api_base: str = "https://discord.com/api/v10"
    api_keys: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Static API keys as 'tenant:key,tenant2:key2' (key -> tenant once parsed).",
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
    lease_seconds: float = Field(default=30.0, gt=0)
    poll_seconds: float = Field(default=1.0, gt=0)
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|text)$")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_api_keys(cls, value: object) -> object:
        """Parse ``tenant:key,...`` into ``{key: tenant}``; refuse anything ambiguous."""
        if not isinstance(value, str):
            return value
        keys: dict[str, str] = {}
        for entry in filter(None, (part.strip() for part in value.split(","))):
            tenant, sep, key = entry.partition(":")
            if not sep or not tenant.strip() or len(key.strip()) < 16:
                raise ValueError(
                    "RELAY_API_KEYS entries must look like 'tenant:key', "
                    "with a key of 16 or more characters"
                )
            if key.strip() in keys:
                raise ValueError("RELAY_API_KEYS lists the same key twice")
            keys[key.strip()] = tenant.strip()
        return keys

    @model_validator(mode="after")
    def _no_placeholder_keys(self) -> Self:
        if self.environment != "development" and any("change-me" in k for k in self.api_keys):
            raise ValueError(
                "RELAY_API_KEYS holds a placeholder key ('change-me'): set real keys, or "
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


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; keyword overrides win (tests, CLI flags)."""
    return Settings(**overrides)  # type: ignore[arg-type]
