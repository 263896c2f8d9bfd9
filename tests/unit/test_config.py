"""Settings: parsed from RELAY_* variables, refused early when they cannot work."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.config import load_settings, settings_problems
from service.crypto import generate_key
from tests.support import SECRET_KEY


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: no RELAY_* from the shell, and a secret key as production needs."""
    import os

    for name in [n for n in os.environ if n.startswith("RELAY_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("RELAY_SECRET_KEY", SECRET_KEY)


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


def test_bot_tokens_parse_per_tenant_with_their_dm_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_BOT_TOKENS", f" acme:{BOT_SECRET} , beta : {BOT_SECRET}2:dm ,")
    settings = load_settings()
    bots = {t: (b.token.get_secret_value(), b.dm_fallback) for t, b in settings.bot_tokens.items()}
    assert bots == {"acme": (BOT_SECRET, False), "beta": (BOT_SECRET + "2", True)}
    # and the settings never show a token
    assert BOT_SECRET not in repr(settings) and BOT_SECRET not in str(settings.model_dump())


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


def _problems(**env: str) -> list[str]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        try:
            load_settings()
        except ValidationError as exc:
            return settings_problems(exc)
    return []


SECRET = "sk-" + "Q" * 37  # the characters no problem line may show
BOT_SECRET = "Qm90LXNlY3JldA." + "Q" * 60  # a bot token's shape, as secret


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"RELAY_API_KEYS": f"acme:{SECRET},beta:short"},
            ["RELAY_API_KEYS: entry 2 has a key shorter than 16 characters"],
        ),
        (
            {"RELAY_API_KEYS": f"a:{SECRET}1,b:{SECRET}2,{SECRET}"},
            ["RELAY_API_KEYS: entry 3 has no ':' between tenant and key"],
        ),
        (
            {"RELAY_API_KEYS": f":{SECRET}"},
            ["RELAY_API_KEYS: entry 1 has no tenant before its ':'"],
        ),
        (
            {"RELAY_API_KEYS": f"a:{SECRET},b:{SECRET}"},
            ["RELAY_API_KEYS: entry 2 repeats the key of an earlier entry"],
        ),
        (
            {"RELAY_SECRET_KEY": SECRET},
            [
                "RELAY_SECRET_KEY: must decode to 32 bytes (43 base64url characters)",
            ],
        ),
        (
            {"RELAY_SECRET_KEY": SECRET + "+/"},
            ["RELAY_SECRET_KEY: must be base64url (A-Z a-z 0-9 - _), as 'secrets generate' prints"],
        ),
        (
            {"RELAY_SECRET_KEY_PREVIOUS": SECRET},
            ["RELAY_SECRET_KEY_PREVIOUS: must decode to 32 bytes (43 base64url characters)"],
        ),
        (
            {"RELAY_MAX_BODY_BYTES": SECRET, "RELAY_ENVIRONMENT": "staging"},
            [
                "RELAY_ENVIRONMENT: Input should be 'development' or 'production'",
                "RELAY_MAX_BODY_BYTES: Input should be a valid integer, unable to parse string "
                "as an integer",
            ],
        ),
        (
            {"RELAY_SECRET_KEY": ""},
            [
                "RELAY_SECRET_KEY: is not set, and production will not store tokens without it; "
                "make one with: export RELAY_SECRET_KEY=$(result-relay secrets generate)"
            ],
        ),
        (
            {"RELAY_DATABASE_URL": f"mysql://relay:{SECRET}@db/relay"},
            ["RELAY_DATABASE_URL: must start with sqlite:// or postgresql://"],
        ),
        (
            {"RELAY_LOG_LEVEL": SECRET},
            ["RELAY_LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"],
        ),
        (
            {"RELAY_BOT_TOKENS": f"acme:{BOT_SECRET},{BOT_SECRET}"},
            ["RELAY_BOT_TOKENS: entry 2 has no ':' between tenant and token"],
        ),
        (
            {"RELAY_BOT_TOKENS": f" :{BOT_SECRET}"},
            ["RELAY_BOT_TOKENS: entry 1 has no tenant before its ':'"],
        ),
        (
            {"RELAY_BOT_TOKENS": f"acme:{SECRET}"},
            [
                "RELAY_BOT_TOKENS: entry 1 has no bot token after its ':' (50 to 200 letters, "
                "digits, '.', '_' or '-')"
            ],
        ),
        (
            {"RELAY_BOT_TOKENS": f"acme:{BOT_SECRET}:dms"},
            ["RELAY_BOT_TOKENS: entry 1 ends in something other than ':dm'"],
        ),
        (
            {"RELAY_BOT_TOKENS": f"acme:{BOT_SECRET},acme:{BOT_SECRET}:dm"},
            ["RELAY_BOT_TOKENS: entry 2 gives a second bot to the same tenant"],
        ),
        ({"RELAY_SECRET_KEY": "", "RELAY_ENVIRONMENT": "development"}, []),
        ({"RELAY_SECRET_KEY": generate_key() + "="}, []),
    ],
    ids=[
        "short-key",
        "no-colon-in-entry-3",
        "no-tenant",
        "same-key-twice",
        "secret-key-too-short",
        "secret-key-not-base64url",
        "previous-key-too-short",
        "two-problems-two-lines",
        "production-without-a-key",
        "unknown-database",
        "unknown-log-level",
        "bot-entry-without-colon",
        "bot-entry-without-tenant",
        "bot-entry-without-token",
        "bot-entry-with-unknown-flag",
        "two-bots-for-one-tenant",
        "development-without-a-key",
        "padded-key",
    ],
)
def test_settings_problems_name_the_variable_and_rule_never_the_value(
    env: dict[str, str], expected: list[str]
) -> None:
    # Given settings that break a rule, when they are loaded
    problems = _problems(**env)
    # Then each problem is one line naming the variable and the rule, and nothing of the value
    assert problems == expected
    for line in problems:
        assert SECRET not in line and "Q" * 8 not in line
        assert "pydantic.dev" not in line and "input_value" not in line
