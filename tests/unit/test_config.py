"""Settings: parsed from RELAY_* variables, refused early when they cannot work."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.config import load_settings


def test_defaults_follow_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RELAY_DATABASE_URL", "RELAY_API_KEYS", "RELAY_GLOBAL_RPS"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.database_url == "sqlite:///./data/relay.db"
    assert settings.discord_api_base == "https://discord.com/api/v10"
    assert settings.max_body_bytes == 25 * 1024 * 1024
    assert (settings.retention_days, settings.interaction_margin_seconds) == (30, 60)
    assert (settings.global_rps, settings.max_attempts) == (45, 12)
    assert settings.max_parts == 10


@pytest.mark.parametrize("value", ["0", "-1", "101", "ten"])
def test_max_parts_must_be_a_sensible_count(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("RELAY_MAX_PARTS", value)
    with pytest.raises(ValidationError, match="max_parts"):
        load_settings()


def test_api_keys_parse_to_key_tenant_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_API_KEYS", " acme:key-aaaaaaaaaaaaaaaa , beta:key-bbbbbbbbbbbbbbbb,")
    assert load_settings().api_keys == {
        "key-aaaaaaaaaaaaaaaa": "acme",
        "key-bbbbbbbbbbbbbbbb": "beta",
    }


@pytest.mark.parametrize(
    "value",
    [
        "no-colon-here-aaaaaaaaaaaa",
        "acme:short",
        ":key-aaaaaaaaaaaaaaaa",
        "a:key-aaaaaaaaaaaaaaaa,b:key-aaaaaaaaaaaaaaaa",
    ],
)
def test_unusable_api_keys_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("RELAY_API_KEYS", value)
    with pytest.raises(ValidationError):
        load_settings()


def test_placeholder_key_only_in_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_API_KEYS", "local:local-dev-key-change-me")
    with pytest.raises(ValidationError, match="placeholder"):
        load_settings()
    monkeypatch.setenv("RELAY_ENVIRONMENT", "development")
    assert load_settings().api_keys == {"local-dev-key-change-me": "local"}


def test_api_base_loses_its_trailing_slash() -> None:
    assert load_settings(discord_api_base="http://127.0.0.1:9/api/v10/").discord_api_base == (
        "http://127.0.0.1:9/api/v10"
    )
