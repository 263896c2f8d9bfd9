"""The dashboard's session: a signed cookie holding the tenant and a CSRF token, never the key.

The cookie is signed with ``itsdangerous`` (an HMAC-SHA256 signature; the library is made for
exactly this, with key rotation built in: it signs with the last key and accepts any) under a
key derived with HKDF from ``RELAY_SECRET_KEY``. Deriving it means no second secret to
configure or rotate, every replica signs and checks alike, and a rotation of the secret key
keeps sessions signed under ``RELAY_SECRET_KEY_PREVIOUS`` valid; the derived key is not the
one that seals tokens, so the cookie's signature says nothing about that one.

The expiry is written into the signed payload and checked against the service's clock (the
same clock as every other time), so it cannot be stretched by the client and is testable.
Before sign in a session has no tenant: it carries the CSRF token of the sign-in form.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from itsdangerous import BadData, URLSafeSerializer

COOKIE_NAME = "relay_session"
MAX_AGE_SECONDS = 8 * 3600
SIGN_IN_SECONDS = (
    3600  # a sign-in form left open longer than this is refused (403), then shown anew
)
_INFO = b"result-relay dashboard session v1"
_SALT = "result-relay.ui.session"


@dataclass(frozen=True, slots=True)
class Session:
    tenant: str | None  # None before sign in
    csrf: str
    expires_at: float


def derive_key(secret_key: bytes) -> bytes:
    """The session-signing key for one secret key (HKDF-SHA256, its own ``info``)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret_key)


def new_session(tenant: str | None, *, now: float) -> Session:
    lifetime = MAX_AGE_SECONDS if tenant is not None else SIGN_IN_SECONDS
    return Session(tenant=tenant, csrf=secrets.token_urlsafe(32), expires_at=now + lifetime)


def csrf_matches(session: Session | None, sent: str | None) -> bool:
    """The form's token is the session's own (compared in constant time)."""
    if session is None or not sent:
        return False
    return hmac.compare_digest(session.csrf.encode(), sent.encode())


def cookie_secure(scheme: str, forwarded_proto: str | None) -> bool:
    """Whether the browser reached us over https: directly, or through the deployment's proxy
    (``X-Forwarded-Proto``). Trusting the header is safe here: it can only add the flag."""
    if scheme == "https":
        return True
    first = (forwarded_proto or "").split(",")[0].strip().lower()
    return first == "https"


class SessionSigner:
    """Signs sessions into cookie values and reads them back; ``keys`` are secret keys, the
    current one first."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one secret key is needed")
        # itsdangerous signs with the last key and accepts every key in the list.
        derived = [derive_key(key) for key in reversed(keys)]
        self._serializer = URLSafeSerializer(
            derived, salt=_SALT, signer_kwargs={"digest_method": hashlib.sha256}
        )

    def dumps(self, session: Session) -> str:
        payload = {"t": session.tenant, "c": session.csrf, "e": session.expires_at}
        text: str = self._serializer.dumps(payload)
        return text

    def loads(self, value: str | None, *, now: float) -> Session | None:
        """The session in ``value``; ``None`` when it is missing, forged, malformed or expired."""
        if not value:
            return None
        try:
            payload = self._serializer.loads(value)
        except BadData:
            return None
        if not isinstance(payload, dict):
            return None
        tenant, csrf, expires_at = payload.get("t"), payload.get("c"), payload.get("e")
        if not (tenant is None or isinstance(tenant, str)) or not isinstance(csrf, str):
            return None
        if not isinstance(expires_at, int | float) or now >= expires_at:
            return None
        return Session(tenant=tenant, csrf=csrf, expires_at=float(expires_at))
