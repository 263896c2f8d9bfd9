"""The real command with secrets: a key made by ``secrets generate``, a rotation, the development
key file, and settings refused one line per problem without echoing a value."""

from __future__ import annotations

import re
import stat

import pytest

from service.crypto import decode_key

from ._support import FAKE_TOKEN, Relay, auth, submission

pytestmark = pytest.mark.acceptance

SECRET = "sk-" + "Q" * 37  # the characters no error line may show


def test_bad_settings_stop_serve_with_one_line_per_problem_and_no_value(relay: Relay) -> None:
    # Given an API key list whose 3rd entry has no colon, a secret key that is not 32 bytes
    # and a size that is not a number
    env = {
        "RELAY_API_KEYS": f"a:{SECRET}1,b:{SECRET}2,{SECRET}3",
        "RELAY_SECRET_KEY": SECRET,
        "RELAY_MAX_BODY_BYTES": f"{SECRET}-bytes",
    }
    # When the server is started with them
    result = relay.cli("serve", "--port", "9", extra_env=env, check=False)
    # Then it exits 2 with one line per problem, naming the variable and the rule, entry by
    # position, and nothing of any value, pydantic's input echo or its help link
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "result-relay: RELAY_API_KEYS: entry 3 has no ':' between tenant and key",
        "result-relay: RELAY_MAX_BODY_BYTES: Input should be a valid integer, unable to parse "
        "string as an integer",
        "result-relay: RELAY_SECRET_KEY: must decode to 32 bytes (43 base64url characters)",
    ]
    assert "Q" * 8 not in result.stderr + result.stdout
    assert "pydantic" not in result.stderr and "input_value" not in result.stderr


def test_production_without_a_key_refuses_to_start_and_says_how_to_make_one(
    relay: Relay,
) -> None:
    result = relay.cli("serve", "--port", "9", extra_env={"RELAY_SECRET_KEY": ""}, check=False)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("result-relay: RELAY_SECRET_KEY: is not set")
    assert "result-relay secrets generate" in line
    assert not (relay.tmp_path / "relay.db").exists()


def test_generated_key_serves_and_rotation_reseals_each_token_once(relay: Relay) -> None:
    # Given a key from `secrets generate` (which needs no settings at all: even broken ones)
    old = relay.cli("secrets", "generate", extra_env={"RELAY_API_KEYS": "broken"}).stdout
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}\n", old) and len(decode_key(old)) == 32
    old = old.strip()
    # and a server under it holding a result (its webhook unreachable: it stays pending)
    server = relay.start({"RELAY_SECRET_KEY": old})
    with server.client(headers=auth()) as client:
        assert client.post("/v1/results", json=submission("wf-rotate")).status_code == 202
    server.stop()
    new = relay.cli("secrets", "generate").stdout.strip()
    assert new != old

    # When the tokens are rotated to the new key, twice
    rotation = {"RELAY_SECRET_KEY": new, "RELAY_SECRET_KEY_PREVIOUS": old}
    first = relay.cli("secrets", "rotate", extra_env=rotation)
    second = relay.cli("secrets", "rotate", extra_env=rotation)

    # Then the first changes the one stored token and the second nothing
    assert first.stdout.strip() == "re-encrypted 1 stored token(s) under RELAY_SECRET_KEY"
    assert second.stdout.strip() == "re-encrypted 0 stored token(s) under RELAY_SECRET_KEY"
    assert old not in first.stdout + first.stderr and new not in first.stdout + first.stderr
    # And a server with the new key alone reads the result
    server = relay.start({"RELAY_SECRET_KEY": new})
    with server.client(headers=auth()) as client:
        assert client.get("/v1/results/wf-rotate").json()["status"] == "pending"
    server.stop()
    # And a rotation that cannot open a token says which key is missing, and nothing else
    stale = relay.cli("secrets", "rotate", extra_env={"RELAY_SECRET_KEY": old}, check=False)
    assert stale.returncode == 1
    assert "neither RELAY_SECRET_KEY nor RELAY_SECRET_KEY_PREVIOUS" in stale.stderr
    assert "v1:" not in stale.stderr and old not in stale.stderr


def test_development_without_a_key_makes_a_private_key_file_once(relay: Relay) -> None:
    # Given development mode and no RELAY_SECRET_KEY
    dev = {"RELAY_ENVIRONMENT": "development", "RELAY_SECRET_KEY": ""}
    # When the server starts, stores a result, and starts again
    server = relay.start(dev)
    with server.client(headers=auth()) as client:
        assert client.post("/v1/results", json=submission("wf-dev")).status_code == 202
    server.stop()
    key_file = relay.tmp_path / "secret.key"
    key = key_file.read_text().strip()
    again = relay.start(dev)
    # Then the key file beside the database is the owner's alone and was made once, which the
    # first start logged (the path, never the key), and the second start reads the result
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "created a development secret key file" in server.stderr()
    assert "created a development secret key file" not in again.stderr()
    assert key not in server.stderr() + again.stderr()
    with again.client(headers=auth()) as client:
        assert client.get("/v1/results/wf-dev").json()["status"] == "pending"
    # And the database file holds no token
    assert FAKE_TOKEN.encode() not in (relay.tmp_path / "relay.db").read_bytes()
