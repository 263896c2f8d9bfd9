"""Shared test data: obviously fake Discord ids and tokens, request builders, and a tmpfs."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.crypto import TokenCipher, decode_key

WEBHOOK_ID = "112233445566778899"
OTHER_WEBHOOK_ID = "998877665544332211"
THREAD_ID = "223344556677889900"
USER_ID = "334455667788990011"
APPLICATION_ID = "445566778899001122"
INTERACTION_ID = "1300000000000000000"
FAKE_TOKEN = "fake-token-" + "x" * 57  # 68 characters, the shape of a real token
INTERACTION_TOKEN = "aW50ZXJhY3Rpb24" + "y" * 80
CHANNEL_ID = "556677889900112233"
BOT_ID = "667788990011223344"
# The shape of a real bot token (the bot's id in base64, a time, a signature), recognisable in
# any text it might leak into.
BOT_TOKEN = "Ym90LXRva2VuLXNlY3JldA.GhIjKl.bot-token-secret-" + "z" * 24

# A fixed RELAY_SECRET_KEY for the suite (production settings refuse to load without one).
SECRET_KEY = "dGVzdC1zZWNyZXQta2V5LW9mLTMyLWJ5dGVzLW9rISE"
CIPHER = TokenCipher(decode_key(SECRET_KEY))

ACME_KEY = "acme-key-0123456789abcdef"
OTHER_KEY = "other-key-0123456789abcdef"
API_KEYS = f"acme:{ACME_KEY},other:{OTHER_KEY}"
ACME = {"Authorization": f"Bearer {ACME_KEY}"}
OTHER = {"Authorization": f"Bearer {OTHER_KEY}"}


def webhook_url(
    webhook_id: str = WEBHOOK_ID,
    token: str = FAKE_TOKEN,
    host: str = "discord.com",
    version: str = "",
) -> str:
    return f"https://{host}/api{version}/webhooks/{webhook_id}/{token}"


def submission(workflow_id: str = "wf_1", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "workflow_id": workflow_id,
        "results": {"summary": "All clear", "deception_score": 0.12},
        "url": "https://youtube.com/watch?v=abc",
        "depth": "experimental",
        "destination": {"webhook_url": webhook_url()},
        "requester": {"user_id": USER_ID},
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


@contextlib.contextmanager
def mounted_tmpfs(mount: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted on ``mount`` with ``options`` (``size=4m``, ``ro,size=1m``), unmounted
    after; the test is skipped where mounting is not allowed (not root, no permission)."""
    mount.mkdir(exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
