"""Tokens at rest: the cipher seals, opens, rotates, and refuses without echoing anything."""

from __future__ import annotations

import base64

import pytest

from service.crypto import (
    CipherError,
    SecretKeyError,
    TokenCipher,
    decode_key,
    generate_key,
    key_id,
)

TOKEN = "fake-token-" + "x" * 57
OLD, NEW = decode_key(generate_key()), decode_key(generate_key())
COLUMN = "results.webhook_token"
CURRENT = TokenCipher(NEW)


def test_generated_keys_are_43_base64url_characters_of_32_random_bytes() -> None:
    keys = {generate_key() for _ in range(50)}
    assert len(keys) == 50
    for key in keys:
        assert len(key) == 43 and "=" not in key
        assert len(decode_key(key)) == 32
        assert len(decode_key(key + "=")) == 32  # padding is optional


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("", "base64url"),
        ("abc!def", "base64url"),
        (base64.b64encode(bytes(range(200, 232))).decode(), "base64url"),  # + and / are not
        (base64.urlsafe_b64encode(b"k" * 31).decode(), "32 bytes"),
        (base64.urlsafe_b64encode(b"k" * 33).decode(), "32 bytes"),
        ("A", "32 bytes"),
    ],
)
def test_malformed_keys_are_refused_without_echoing_them(text: str, rule: str) -> None:
    with pytest.raises(SecretKeyError, match=rule) as refused:
        decode_key(text)
    assert not text or text not in str(refused.value)


def test_a_sealed_token_is_versioned_names_its_key_and_opens_to_the_token() -> None:
    cipher = TokenCipher(NEW)
    sealed = cipher.encrypt(TOKEN, column=COLUMN)
    assert sealed.startswith(f"v1:{key_id(NEW)}:")
    assert TOKEN not in sealed
    assert cipher.decrypt(sealed, column=COLUMN) == TOKEN
    # a random nonce per encryption: the same token never seals to the same text twice
    assert cipher.encrypt(TOKEN, column=COLUMN) != sealed


@pytest.mark.parametrize(
    ("name", "sealer", "opener", "text_of", "column", "reason"),
    [
        ("other column", CURRENT, CURRENT, None, "destinations.webhook_token", "damaged"),
        ("unknown key", TokenCipher(OLD), CURRENT, None, COLUMN, "neither"),
        ("clear text", None, CURRENT, lambda s: TOKEN, COLUMN, "not sealed"),
        ("flipped byte", CURRENT, CURRENT, lambda s: s[:-3] + "AAA", COLUMN, "damaged"),
        ("cut short", CURRENT, CURRENT, lambda s: s[:-30], COLUMN, "damaged"),
        ("bad base64", CURRENT, CURRENT, lambda s: s + "!!!", COLUMN, "damaged"),
    ],
)
def test_text_no_key_opens_is_a_cipher_error_naming_neither_text_nor_token(
    name: str,
    sealer: TokenCipher | None,
    opener: TokenCipher,
    text_of: object,
    column: str,
    reason: str,
) -> None:
    sealed = sealer.encrypt(TOKEN, column=COLUMN) if sealer else ""
    text = text_of(sealed) if callable(text_of) else sealed
    with pytest.raises(CipherError, match=reason) as refused:
        opener.decrypt(text, column=column)
    message = str(refused.value)
    assert TOKEN not in message and (not sealed or sealed.split(":")[-1] not in message)
    assert refused.value.__cause__ is None


def test_the_previous_key_stays_readable_and_reseal_moves_to_the_current_one() -> None:
    # Given a token sealed under the old key, and a cipher whose current key is the new one
    old_sealed = TokenCipher(OLD).encrypt(TOKEN, column=COLUMN)
    rotated = TokenCipher(NEW, [OLD])
    # Then the old text still opens, and a reseal puts it under the new key
    assert rotated.decrypt(old_sealed, column=COLUMN) == TOKEN
    resealed = rotated.reseal(old_sealed, column=COLUMN)
    assert resealed.startswith(rotated.current_prefix)
    assert TokenCipher(NEW).decrypt(resealed, column=COLUMN) == TOKEN
    # and a clear token is sealed by a reseal
    assert rotated.decrypt(rotated.reseal(TOKEN, column=COLUMN), column=COLUMN) == TOKEN
    assert rotated.is_sealed(resealed) and not rotated.is_sealed(TOKEN)
