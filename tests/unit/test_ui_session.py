"""The dashboard's session cookie: signing, expiry, key rotation, CSRF, and the Secure flag."""

from __future__ import annotations

import pytest

from service.crypto import decode_key, generate_key
from service.ui.session import (
    MAX_AGE_SECONDS,
    SIGN_IN_SECONDS,
    Session,
    SessionSigner,
    cookie_secure,
    csrf_matches,
    derive_key,
    new_session,
)

NOW = 1_790_000_000.0
KEY = decode_key(generate_key())
OLD_KEY = decode_key(generate_key())


def test_a_signed_session_reads_back_until_it_expires() -> None:
    signer = SessionSigner([KEY])
    session = new_session("acme", now=NOW)
    assert session.expires_at == NOW + MAX_AGE_SECONDS
    cookie = signer.dumps(session)
    assert signer.loads(cookie, now=NOW + MAX_AGE_SECONDS - 1) == session
    assert signer.loads(cookie, now=NOW + MAX_AGE_SECONDS) is None


def test_a_sign_in_form_session_has_no_tenant_and_a_short_life() -> None:
    session = new_session(None, now=NOW)
    assert (session.tenant, session.expires_at) == (None, NOW + SIGN_IN_SECONDS)
    assert SessionSigner([KEY]).loads(SessionSigner([KEY]).dumps(session), now=NOW) == session


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c[:-5] + ("A" if c[-5] != "A" else "B") + c[-4:],  # the signature
        lambda c: "x" + c,  # the payload
        lambda c: "",
        lambda c: "not-a-cookie",
    ],
    ids=["signature", "payload", "empty", "garbage"],
)
def test_a_changed_cookie_is_no_session(tamper: object) -> None:
    signer = SessionSigner([KEY])
    cookie = signer.dumps(new_session("acme", now=NOW))
    assert signer.loads(tamper(cookie), now=NOW) is None  # type: ignore[operator]


def test_another_secret_key_does_not_read_it_but_a_rotation_keeps_it() -> None:
    cookie = SessionSigner([OLD_KEY]).dumps(new_session("acme", now=NOW))
    assert SessionSigner([KEY]).loads(cookie, now=NOW) is None
    # RELAY_SECRET_KEY_PREVIOUS: the old key is still accepted, the new one signs
    rotated = SessionSigner([KEY, OLD_KEY])
    assert rotated.loads(cookie, now=NOW) is not None
    fresh = rotated.dumps(new_session("acme", now=NOW))
    assert SessionSigner([KEY]).loads(fresh, now=NOW) is not None


def test_the_signing_key_is_derived_not_the_secret_key_itself() -> None:
    assert derive_key(KEY) != KEY
    assert derive_key(KEY) == derive_key(KEY)
    assert len(derive_key(KEY)) == 32


@pytest.mark.parametrize(
    ("sent", "matches"),
    [("right", True), ("wrong", False), ("", False), (None, False)],
)
def test_csrf_matches_only_the_sessions_own_token(sent: str | None, matches: bool) -> None:
    session = Session(tenant="acme", csrf="right", expires_at=NOW)
    assert csrf_matches(session, sent) is matches
    assert csrf_matches(None, sent) is False


@pytest.mark.parametrize(
    ("scheme", "forwarded", "secure"),
    [
        ("https", None, True),
        ("http", None, False),
        ("http", "https", True),
        ("http", "HTTPS, http", True),
        ("http", "http", False),
        ("http", "", False),
    ],
)
def test_cookie_secure(scheme: str, forwarded: str | None, secure: bool) -> None:
    assert cookie_secure(scheme, forwarded) is secure
