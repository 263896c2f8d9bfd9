"""Strict parsing of pasted webhook URLs: what is accepted, and the rule each refusal names."""

from __future__ import annotations

import re

import pytest

from service.discord.webhook_url import (
    WEBHOOK_URL_PATTERN,
    WebhookUrlError,
    mask_webhook_tokens,
    parse_webhook_url,
)
from tests.support import FAKE_TOKEN, WEBHOOK_ID, webhook_url


@pytest.mark.parametrize(
    "url",
    [
        webhook_url(),
        webhook_url(host="ptb.discord.com"),
        webhook_url(host="canary.discord.com"),
        webhook_url(host="discordapp.com"),
        webhook_url(version="/v10"),
        webhook_url(version="/v6"),
        webhook_url() + "/",
        webhook_url(webhook_id="1" * 17),
        webhook_url(webhook_id="18446744073709551615"),  # 2^64 - 1
        webhook_url(token="a" * 60),
        webhook_url(token="a" * 100),
    ],
)
def test_discord_webhook_urls_are_accepted(url: str) -> None:
    assert re.fullmatch(WEBHOOK_URL_PATTERN, url) is not None
    ref = parse_webhook_url(url)
    assert ref.webhook_id in url
    assert ref.token in url


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        (webhook_url().replace("https", "http"), "https"),
        (webhook_url(host="discord.com.evil.example"), "discord.com"),
        (webhook_url(host="evil.example"), "discord.com"),
        (webhook_url(host="discord.com:443"), "port"),
        (webhook_url(host="user:pw@discord.com"), "user information"),
        (webhook_url() + "?wait=true", "query"),
        (webhook_url() + "?", "query"),
        (webhook_url() + "#frag", "query or fragment"),
        (webhook_url().replace("/api/", "/"), "path"),
        (webhook_url(version="/v11"), "path"),
        (webhook_url() + "/messages/1", "path"),
        (webhook_url(webhook_id="1" * 16), "snowflake"),
        (webhook_url(webhook_id="1" * 21), "snowflake"),
        (webhook_url(webhook_id="18446744073709551616"), "snowflake"),  # 2^64
        (webhook_url(token="a" * 59), "token"),
        (webhook_url(token="a" * 101), "token"),
        (webhook_url(token="a" * 67 + "="), "token"),
        (webhook_url(webhook_id="0" + "1" * 17), "snowflake"),  # a leading zero
        (webhook_url(webhook_id="0" * 18), "snowflake"),
        (webhook_url()[:8] + "\t" + webhook_url()[8:], "control characters"),
        (webhook_url()[:30] + "\n" + webhook_url()[30:], "control characters"),
        (webhook_url()[:30] + "\r" + webhook_url()[30:], "control characters"),
        (webhook_url() + "\n", "control characters"),
        ("\x01" + webhook_url(), "control characters"),
        (" " + webhook_url(), "spaces"),
        (webhook_url() + "\x7f", "control characters"),
        (webhook_url() + "\u0085", "control characters"),
        ("not a url", "spaces"),
        ("notaurl", "https"),
        ("https://[::1/api", "valid URL"),
    ],
)
def test_each_broken_rule_is_named(url: str, rule: str) -> None:
    with pytest.raises(WebhookUrlError) as caught:
        parse_webhook_url(url)
    assert rule in str(caught.value)
    # the pattern published in the API description refuses it too
    assert re.fullmatch(WEBHOOK_URL_PATTERN, url) is None


def test_refusals_never_repeat_the_token() -> None:
    with pytest.raises(WebhookUrlError) as caught:
        parse_webhook_url(webhook_url(host="evil.example"))
    assert FAKE_TOKEN not in str(caught.value)


def test_outgoing_url_is_rebuilt_on_the_api_base() -> None:
    ref = parse_webhook_url(webhook_url(host="discordapp.com"))
    assert ref.url("http://127.0.0.1:9/api/v10") == (
        f"http://127.0.0.1:9/api/v10/webhooks/{WEBHOOK_ID}/{FAKE_TOKEN}"
    )
    assert FAKE_TOKEN not in repr(ref)


def test_mask_hides_tokens_in_any_text() -> None:
    text = f"POST {webhook_url()} failed; follow-up /webhooks/{WEBHOOK_ID}/tok.en-1 too"
    masked = mask_webhook_tokens(text)
    assert FAKE_TOKEN not in masked
    assert "tok.en-1" not in masked
    assert f"/webhooks/{WEBHOOK_ID}/***" in masked
