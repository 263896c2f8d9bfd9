"""Tokens at rest: AES-GCM under ``RELAY_SECRET_KEY``, as versioned, self-describing text.

A sealed token reads ``v1:<key id>:<base64url(nonce || ciphertext)>``. The key id (the first
8 hex digits of the key's SHA-256) tells which key opens it, so a rotation can keep the previous
key readable while everything new is sealed under the current one. The associated data is the
column the text lives in: a ciphertext copied into another column does not open there.

Nothing here logs, and no error carries a key, a token or a ciphertext.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from service.errors import RelayError

KEY_BYTES = 32
NONCE_BYTES = 12  # 96 bits: the size GCM is built for; random per encryption
VERSION = "v1"
PREFIX = f"{VERSION}:"
KEY_ID_LENGTH = 8  # hex digits of the key's SHA-256 stored beside each ciphertext


class SecretKeyError(ValueError):
    """A secret key that is not base64url of 32 bytes. The message never quotes the key."""


class CipherError(RelayError):
    """Stored text that no configured key opens (wrong key, damaged, or not sealed at all).

    The message names the reason only, never the text or a key."""

    code = "cipher_error"


def generate_key() -> str:
    """A new secret key: 32 random bytes, base64url without padding."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode().rstrip("=")


def decode_key(text: str) -> bytes:
    """The 32 bytes of a base64url key (padding optional); :class:`SecretKeyError` otherwise."""
    text = text.strip()
    if not text or any(c not in _BASE64URL for c in text.rstrip("=")):
        raise SecretKeyError("must be base64url (A-Z a-z 0-9 - _), as 'secrets generate' prints")
    try:
        raw = base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))
    except (binascii.Error, ValueError) as exc:
        raise SecretKeyError("must be base64url of 32 bytes") from exc
    if len(raw) != KEY_BYTES:
        raise SecretKeyError(f"must decode to {KEY_BYTES} bytes (43 base64url characters)")
    return raw


def key_id(key: bytes) -> str:
    """A short name for a key, stored beside each ciphertext; reveals nothing usable about it."""
    return hashlib.sha256(key).hexdigest()[:KEY_ID_LENGTH]


_BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class TokenCipher:
    """Seals tokens under the current key; opens what the current or a previous key sealed."""

    def __init__(self, current: bytes, previous: Iterable[bytes] = ()) -> None:
        self._current = AESGCM(current)
        self.key_id = key_id(current)
        self._keys = {key_id(key): AESGCM(key) for key in previous}
        self._keys[self.key_id] = self._current

    @property
    def key_ids(self) -> frozenset[str]:
        """The ids of every key this cipher opens with (the current and the previous ones)."""
        return frozenset(self._keys)

    @property
    def current_prefix(self) -> str:
        """What every text sealed under the current key starts with."""
        return f"{PREFIX}{self.key_id}:"

    def encrypt(self, token: str, *, column: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._current.encrypt(nonce, token.encode(), column.encode())
        return self.current_prefix + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def decrypt(self, text: str, *, column: str) -> str:
        version, _, rest = text.partition(":")
        kid, _, body = rest.partition(":")
        if version != VERSION or not body:
            raise CipherError(f"a stored {column} is not sealed text")
        aead = self._keys.get(kid)
        if aead is None:
            raise CipherError(
                f"a stored {column} was sealed under a key that neither RELAY_SECRET_KEY nor "
                "RELAY_SECRET_KEY_PREVIOUS is"
            )
        try:
            raw = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
            plain = aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], column.encode())
            return plain.decode()
        except (binascii.Error, ValueError, InvalidTag):
            raise CipherError(f"a stored {column} does not open: damaged or moved") from None

    def is_sealed(self, text: str) -> bool:
        """True for sealed text (under any key); a clear token never holds a colon."""
        return text.startswith(PREFIX)

    def reseal(self, text: str, *, column: str) -> str:
        """``text`` sealed under the current key: a clear token is sealed, a sealed one opened
        (with whichever key fits) and sealed again."""
        token = self.decrypt(text, column=column) if self.is_sealed(text) else text
        return self.encrypt(token, column=column)
