"""Discord's message limits: a message at each limit passes, one code point over names the limit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from service.discord.limits import LIMITS, embed_size, is_embed_url, text_length, violations

EMOJI = "😀"  # one code point, two UTF-16 units, four UTF-8 bytes


@dataclass(frozen=True)
class File:
    filename: str
    content: bytes


def body(**fields: Any) -> dict[str, Any]:
    return {"allowed_mentions": {"parse": []}, **fields}


def one_embed(**fields: Any) -> dict[str, Any]:
    return body(embeds=[fields])


def field(name: str = "n", value: str = "v") -> dict[str, str]:
    return {"name": name, "value": value}


def listed(*files: File) -> dict[str, Any]:
    return body(attachments=[{"id": i, "filename": f.filename} for i, f in enumerate(files)])


# An embed whose counted texts add up to exactly 6000: 256 + 4096 + 1000 + 200 + 2 * (100 + 124).
FULL_EMBED = {
    "title": "t" * 256,
    "description": "d" * 4096,
    "footer": {"text": "f" * 1000},
    "author": {"name": "a" * 200},
    "fields": [field("n" * 100, "v" * 124), field("n" * 100, "v" * 124)],
}

AT_LIMIT = {
    "content 2000": body(content="c" * 2000),
    "content 2000 emoji": body(content=EMOJI * 2000),
    "content trimmed to 2000": body(content="  \n" + "c" * 2000 + "\n\t "),
    "10 embeds": body(embeds=[{"title": "x"}] * 10),
    "title 256": one_embed(title="t" * 256),
    "description 4096": one_embed(description=EMOJI * 4096),
    "description trimmed to 4096": one_embed(description=" " * 9 + "d" * 4096 + "\n"),
    "footer 2048": one_embed(footer={"text": "f" * 2048}),
    "author 256": one_embed(author={"name": "a" * 256}),
    "25 fields": one_embed(fields=[field()] * 25),
    "field name 256": one_embed(fields=[field(name="n" * 256)]),
    "field value 1024": one_embed(fields=[field(value="v" * 1024)]),
    "6000 in one embed": body(embeds=[FULL_EMBED]),
    "6000 over two embeds": body(embeds=[{"description": "d" * 4096}, {"description": "d" * 1904}]),
    "username 80": body(content="x", username="u" * 80),
    "a user mention by id": body(
        content="<@123456789012345678>",
        allowed_mentions={"parse": [], "users": ["123456789012345678"]},
    ),
    "@everyone is only text": body(content="@everyone @here <@&123456789012345678>"),
    "embed links": one_embed(
        title="x",
        url="https://example.com/a?b=c",
        image={"url": "attachment://chart.png"},
        color=0xFFFFFF,
        timestamp="2026-11-26T14:00:00+00:00",
    ),
}


@pytest.mark.parametrize("payload", AT_LIMIT.values(), ids=AT_LIMIT.keys())
def test_messages_at_the_limits_are_sendable(payload: dict[str, Any]) -> None:
    assert violations(payload, ()) == []


def _over_total() -> dict[str, Any]:
    embed = {**FULL_EMBED, "footer": {"text": "f" * 1001}}
    return body(embeds=[embed])


OVER_LIMIT = {
    "content 2001": (body(content="c" * 2001), "content is 2001 characters (limit 2000)"),
    "content 2001 emoji": (body(content=EMOJI * 2001), "content is 2001"),
    "11 embeds": (body(embeds=[{"title": "x"}] * 11), "11 embeds (limit 10)"),
    "title 257": (one_embed(title="t" * 257), "embeds[0].title is 257"),
    "description 4097": (one_embed(description="d" * 4097), "embeds[0].description is 4097"),
    "footer 2049": (one_embed(footer={"text": "f" * 2049}), "embeds[0].footer.text is 2049"),
    "author 257": (one_embed(author={"name": "a" * 257}), "embeds[0].author.name is 257"),
    "26 fields": (one_embed(fields=[field()] * 26), "has 26 fields (limit 25)"),
    "field name 257": (
        one_embed(fields=[field(name="n" * 257)]),
        "embeds[0].fields[0].name is 257",
    ),
    "field value 1025": (
        one_embed(fields=[field(value="v" * 1025)]),
        "embeds[0].fields[0].value is 1025",
    ),
    "6001 in one embed": (_over_total(), "embeds total 6001 characters (limit 6000)"),
    "6001 over two embeds": (
        body(embeds=[{"description": "d" * 4096}, {"description": "d" * 1905}]),
        "embeds total 6001",
    ),
    "username 81": (body(content="x", username="u" * 81), "username must be 1 to 80"),
    "empty field value": (one_embed(fields=[field(value="  ")]), "value must not be empty"),
    "missing field name": (one_embed(fields=[{"value": "v"}]), "fields[0].name is required"),
    "field that is not an object": (one_embed(fields=["x"]), "fields[0] must be an object"),
    "embed that is not an object": (body(embeds=["x"]), "embeds[0] must be an object"),
    "title that is not text": (one_embed(title=5), "title must be a string"),
    "url that is not http": (one_embed(title="x", url="javascript:alert(1)"), "not an http"),
    "colour out of range": (one_embed(title="x", color=0x1000000), "color must be"),
    "timestamp not ISO 8601": (one_embed(title="x", timestamp="yesterday"), "timestamp"),
    "no allowed_mentions": ({"content": "x"}, "allowed_mentions is missing"),
    "parse everyone": (
        body(content="x", allowed_mentions={"parse": ["everyone"]}),
        "parse must be an empty list",
    ),
    "parse missing": (body(content="x", allowed_mentions={}), "parse must be an empty list"),
    "users not snowflakes": (
        body(content="x", allowed_mentions={"parse": [], "users": ["me"]}),
        "users must be a list of snowflakes",
    ),
    "nothing at all": (body(), "nothing to send"),
    "blank content": (body(content=" \n "), "nothing to send"),
    "empty embeds": (body(content="", embeds=[]), "nothing to send"),
}


@pytest.mark.parametrize(("payload", "problem"), OVER_LIMIT.values(), ids=OVER_LIMIT.keys())
def test_messages_over_a_limit_name_it(payload: dict[str, Any], problem: str) -> None:
    found = violations(payload, ())
    assert any(problem in v for v in found), found


def test_every_broken_limit_is_listed() -> None:
    payload = {"content": "c" * 2001, "embeds": [{"title": "t" * 257}] * 11}
    assert len(violations(payload, ())) == 1 + 1 + 11 + 1  # content, mentions, titles, count


@pytest.mark.parametrize(
    ("files", "file_limit", "problem"),
    [
        ([File("a.json", b"x" * 10)] * 10, 10, None),
        ([File("a.json", b"x" * 10)] * 11, 10, "11 files (limit 10)"),
        ([File("a.json", b"x" * 11)], 10, "'a.json' is 11 bytes (limit 10)"),
        ([File("", b"x")], 10, "must be 1 to 1024 characters"),
    ],
)
def test_files_count_and_size(files: list[File], file_limit: int, problem: str | None) -> None:
    found = violations(listed(*files[:10]), files, file_limit=file_limit)
    if problem is None:
        assert found == []
    else:
        assert any(problem in v for v in found), found


def test_a_file_alone_is_something_to_send() -> None:
    files = [File("results.json", b"{}")]
    assert violations(listed(*files), files) == []


def test_default_file_limit_is_ten_mebibytes() -> None:
    assert LIMITS.file_size == 10 * 1024 * 1024
    big = [File("a.bin", b"\0" * (LIMITS.file_size + 1))]
    assert any("bytes (limit 10485760)" in v for v in violations(listed(*big), big))


@pytest.mark.parametrize(
    "attachments",
    [
        [{"id": 1, "filename": "a"}],
        [{"id": 0, "filename": "a"}, {"id": 0, "filename": "a"}],
        [],
    ],
)
def test_attachments_must_list_each_file_by_index(attachments: list[dict[str, Any]]) -> None:
    files = [File("a", b"x")]
    found = violations(body(attachments=attachments), files)
    assert any("attachments must list each file" in v for v in found), found


def test_unlisted_files_are_legal() -> None:
    assert violations(body(), [File("a", b"x")]) == []


@pytest.mark.parametrize(
    ("text", "length"),
    [("", 0), ("  abc \n", 3), (EMOJI, 1), ("👨‍👩‍👧", 5), ("e\u0301", 2), ("\u200b", 1)],
)
def test_text_length_counts_code_points_after_trimming(text: str, length: int) -> None:
    assert text_length(text) == length


def test_embed_size_counts_the_texts_discord_counts() -> None:
    assert embed_size(FULL_EMBED) == 6000
    not_counted = {"url": "https://x.example", "image": {"url": "https://x.example/i.png"}}
    assert embed_size({**not_counted, "provider": {"name": "p" * 100}}) == 0
    assert embed_size({"title": "  t  ", "fields": [field(" n ", EMOJI)]}) == 3


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://discord.com/x", True),
        ("http://example.com", True),
        ("attachment://chart.png", True),
        ("ftp://example.com", False),
        ("https://", False),
        ("https://exa mple.com", False),
        ("https://example.com/" + "a" * 2048, False),
        (None, False),
    ],
)
def test_embed_urls(url: str | None, ok: bool) -> None:
    assert is_embed_url(url) is ok
