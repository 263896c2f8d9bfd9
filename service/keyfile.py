"""Where the token cipher's keys come from: ``RELAY_SECRET_KEY`` (and ``_PREVIOUS``), or, in
development without one, a key file created once beside the SQLite database.

Production never gets here without a key: :class:`service.config.Settings` refuses to load.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from service.config import Settings
from service.crypto import SecretKeyError, TokenCipher, decode_key, generate_key

log = logging.getLogger(__name__)

KEY_FILE_NAME = "secret.key"
_DEFAULT_FOLDER = Path("data")


def cipher_from_settings(settings: Settings) -> TokenCipher:
    current, previous = secret_keys(settings)
    return TokenCipher(current, previous)


def secret_keys(settings: Settings) -> tuple[bytes, list[bytes]]:
    """The current secret key and the previous ones still accepted during a rotation."""
    previous = (
        [decode_key(settings.secret_key_previous.get_secret_value())]
        if settings.secret_key_previous is not None
        else []
    )
    if settings.secret_key is not None:
        return decode_key(settings.secret_key.get_secret_value()), previous
    return development_key(dev_key_path(settings.database_url)), previous


def dev_key_path(database_url: str) -> Path:
    """``secret.key`` in the SQLite database's folder; ``./data`` for PostgreSQL or memory."""
    if database_url.startswith("sqlite://"):
        from service.store.sqlite import sqlite_path

        path = sqlite_path(database_url)
        if path != ":memory:":
            return Path(path).parent / KEY_FILE_NAME
    return _DEFAULT_FOLDER / KEY_FILE_NAME


def development_key(path: Path) -> bytes:
    """The key in ``path``, created (mode 0600) on first use and reused afterwards."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Written whole under a private name, then linked into place: a process starting at the
        # same moment finds either no file or a complete one, and the first link wins.
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(generate_key() + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        else:
            log.warning(
                "created a development secret key file (RELAY_SECRET_KEY is not set); the "
                "tokens this database stores open only with it",
                extra={"path": str(path)},
            )
        finally:
            draft.unlink()
    try:
        return decode_key(path.read_text())
    except SecretKeyError as exc:
        raise SecretKeyError(f"the development key file {path} {exc}") from None
