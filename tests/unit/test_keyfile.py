"""Where the cipher's key comes from: the settings, or in development a key file made once."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from service.config import load_settings
from service.crypto import SecretKeyError, TokenCipher, decode_key, generate_key
from service.keyfile import cipher_from_settings, dev_key_path, development_key


@pytest.mark.parametrize(
    ("database_url", "expected"),
    [
        ("sqlite:///./data/relay.db", Path("data/secret.key")),
        ("sqlite:////var/lib/relay/relay.db", Path("/var/lib/relay/secret.key")),
        ("sqlite://", Path("data/secret.key")),
        ("postgresql://relay@db:5432/relay", Path("data/secret.key")),
    ],
)
def test_the_development_key_file_lives_beside_the_sqlite_database(
    database_url: str, expected: Path
) -> None:
    assert dev_key_path(database_url) == expected


def test_a_development_key_file_is_made_once_private_and_reused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given no key file, when the key is asked for twice
    path = tmp_path / "data" / "secret.key"
    with caplog.at_level(logging.INFO):
        first = development_key(path)
        second = development_key(path)
    # Then one key was made, kept readable by its owner only, and reused
    assert first == second and len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]  # no draft left behind
    # And the log says so once, with the path and never the key
    [created] = [r for r in caplog.records if "created a development secret key" in r.message]
    assert getattr(created, "path", None) == str(path)
    assert path.read_text().strip() not in caplog.text


def test_a_damaged_key_file_is_refused_naming_the_file_not_its_content(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    path.write_text("not-a-key-but-secret-looking\n")
    with pytest.raises(SecretKeyError, match=r"secret\.key") as refused:
        development_key(path)
    assert "secret-looking" not in str(refused.value)


def test_settings_key_wins_and_the_previous_key_stays_readable(tmp_path: Path) -> None:
    old, new = generate_key(), generate_key()
    sealed = TokenCipher(decode_key(old)).encrypt("token-" + "t" * 60, column="c")
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path}/relay.db", secret_key=new, secret_key_previous=old
    )
    cipher = cipher_from_settings(settings)
    assert cipher.decrypt(sealed, column="c") == "token-" + "t" * 60
    assert cipher.encrypt("x", column="c").startswith(TokenCipher(decode_key(new)).current_prefix)
    assert not (tmp_path / "secret.key").exists()  # a configured key makes no file
