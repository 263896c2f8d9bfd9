"""Rendering results into Discord messages: every part within every limit, nothing lost."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.discord.limits import LIMITS, embed_size, violations
from service.discord.render import Part, render_result
from service.discord.report import chunk_bytes, results_json
from service.discord.split import ELLIPSIS, clamp, fence_state, safe_cut, split_content

USER = "123456789012345678"
WF = "wf:1696291234"
STEM = "wf_1696291234"
URL = "https://youtube.com/watch?v=abc"
SHORT = {"summary": "Nothing deceptive found.", "deception_score": 0.12, "flagged": False}


def render(results: dict[str, Any], message: dict[str, Any] | None = None, **kw: Any) -> list[Part]:
    args: dict[str, Any] = {"workflow_id": WF, "url": URL, "depth": "standard"}
    args.update(kw)
    return render_result(results=results, message=message, **args)


def assert_sendable(parts: list[Part], file_limit: int = LIMITS.file_size) -> None:
    assert parts
    for part in parts:
        assert violations(part.payload, part.files, file_limit=file_limit) == []
        listed = [(a["id"], a["filename"]) for a in part.payload.get("attachments", [])]
        assert listed == [(i, f.filename) for i, f in enumerate(part.files)]


def files_named(parts: list[Part]) -> dict[str, bytes]:
    return {f.filename: f.content for part in parts for f in part.files}


def fence_lines(text: str) -> int:
    return sum(1 for line in text.split("\n") if line.strip().startswith("```"))


def without_fences_and_space(text: str) -> str:
    kept = [line for line in text.split("\n") if not line.strip().startswith("```")]
    return "".join("".join(kept).split())


# -- default rendering -----------------------------------------------------------------------------


def test_short_result_is_one_part_with_one_embed_and_no_file() -> None:
    parts = render(SHORT)
    assert_sendable(parts)
    assert len(parts) == 1
    (embed,) = parts[0].payload["embeds"]
    assert parts[0].files == ()
    assert embed["title"] == "Analysis complete"
    assert embed["url"] == URL
    assert embed["description"] == SHORT["summary"]
    assert embed["footer"]["text"] == f"workflow {WF}"
    shown = {f["name"]: f["value"] for f in embed["fields"]}
    assert shown == {"Depth": "standard", "Deception score": "0.12", "Flagged": "no"}
    assert parts[0].payload["allowed_mentions"] == {"parse": []}
    assert "content" not in parts[0].payload


@pytest.mark.parametrize(
    ("results", "title"),
    [
        ({"title": "Fact check: moon landing"}, "Fact check: moon landing"),
        ({"title": "t" * 257}, "Analysis complete"),
        ({"title": ["not", "text"]}, "Analysis complete"),
        ({}, "Analysis complete"),
    ],
)
def test_summary_title(results: dict[str, Any], title: str) -> None:
    assert render(results)[0].payload["embeds"][0]["title"] == title


@pytest.mark.parametrize("url", [None, "", "javascript:alert(1)", "ftp://x.example/a", "no url"])
def test_summary_embed_links_only_http_urls(url: str | None) -> None:
    parts = render(SHORT, url=url)
    assert_sendable(parts)
    assert "url" not in parts[0].payload["embeds"][0]


@pytest.mark.parametrize(
    "results",
    [
        {"summary": "s" * 5000},  # cut
        {"summary": "short", "details": {"a": [1, 2]}},  # nested
        {f"k{i}": i for i in range(9)},  # more headline values than shown
        {"quote": "q" * 101},  # too long for a field
        {"summary": "short", "description": "another text of the summary family " * 5},
    ],
    ids=["cut", "nested", "too many keys", "long string", "second summary"],
)
def test_result_that_does_not_fit_attaches_full_json(results: dict[str, Any]) -> None:
    parts = render(results)
    assert_sendable(parts)
    assert len(parts) == 1
    assert json.loads(files_named(parts)[f"results-{STEM}.json"]) == results


def test_cut_summary_ends_with_an_ellipsis() -> None:
    embed = render({"summary": "word " * 2000})[0].payload["embeds"][0]
    assert embed["description"].endswith("word" + ELLIPSIS)  # no space before the ellipsis
    assert len(embed["description"]) <= LIMITS.description
    embed = render({"summary": "w" * 5000})[0].payload["embeds"][0]
    assert embed["description"] == "w" * (LIMITS.description - 1) + ELLIPSIS


def test_eight_scalars_fit_without_attachment() -> None:
    results = {f"value_{i}": i * 1.5 for i in range(8)}
    parts = render(results)
    assert parts[0].files == ()
    assert len(parts[0].payload["embeds"][0]["fields"]) == 9  # depth and the eight


def test_long_text_attaches_a_markdown_report() -> None:
    results = {
        "title": "Transcript check",
        "transcript": "First paragraph. " * 100 + "\n\nSecond paragraph.",
        "claims": [{"claim": "x", "verdict": "false"}],
        "scores": {"deception": 0.3, "notes": "n" * 1500},
    }
    parts = render(results)
    assert_sendable(parts)
    files = files_named(parts)
    assert json.loads(files[f"results-{STEM}.json"]) == results
    report = files[f"report-{STEM}.md"].decode()
    assert report.startswith("# Transcript check\n")
    assert "## Transcript\n\nFirst paragraph." in report
    assert "## Claims\n\n```json\n[" in report
    assert "### Notes\n\n" + "n" * 1500 in report
    assert [f.content_type for f in parts[0].files] == [
        "application/json",
        "text/markdown; charset=utf-8",
    ]


def test_results_text_is_never_mangled() -> None:
    results = {"summary": "@everyone look <@&123456789012345678> @here"}
    parts = render(results)
    assert parts[0].payload["embeds"][0]["description"] == results["summary"]
    assert parts[0].payload["allowed_mentions"] == {"parse": []}


def test_payload_text_is_utf8_encodable() -> None:
    results = {"summary": "pair \ud83d\ude00 lone \ud83d end", "raw": ["\udfff"]}
    parts = render(results)
    assert parts[0].payload["embeds"][0]["description"] == "pair 😀 lone \ufffd end"
    # Lone surrogates survive in the JSON file as escapes (a pair reads back as its emoji).
    assert json.loads(files_named(parts)[f"results-{STEM}.json"])["raw"] == ["\udfff"]


def test_filenames_are_sanitized() -> None:
    parts = render({"x": {"y": 1}}, workflow_id="a:b/../c d")
    assert [f.filename for f in parts[0].files] == ["results-a_b_.._c_d.json"]


# -- mentions --------------------------------------------------------------------------------------

MESSAGES = {
    "no message": None,
    "content": {"content": "Done!"},
    "long content": {"content": ("para " * 300 + "\n\n") * 5},
    "embeds only": {"embeds": [{"title": "t", "description": "d" * 4000}] * 3},
    "content starting with a fence": {"content": "```py\nx = 1\n```"},
}


@pytest.mark.parametrize("message", MESSAGES.values(), ids=MESSAGES.keys())
def test_only_the_first_part_mentions_the_requester(message: dict[str, Any] | None) -> None:
    parts = render({"summary": "s" * 5000, "text": "t" * 3000}, message, mention_user_id=USER)
    assert_sendable(parts)
    first, rest = parts[0].payload, parts[1:]
    assert first["allowed_mentions"] == {"parse": [], "users": [USER]}
    assert first["content"].startswith(f"<@{USER}>")
    for part in rest:
        assert part.payload["allowed_mentions"] == {"parse": []}


def test_fenced_content_keeps_its_fence_on_its_own_line_after_the_mention() -> None:
    parts = render(SHORT, {"content": "```py\nx = 1\n```"}, mention_user_id=USER)
    assert parts[0].payload["content"] == f"<@{USER}>\n```py\nx = 1\n```"


def test_an_existing_mention_is_not_doubled() -> None:
    parts = render(SHORT, {"content": f"<@{USER}> here you go"}, mention_user_id=USER)
    assert parts[0].payload["content"] == f"<@{USER}> here you go"


def test_a_requester_id_that_is_not_a_snowflake_is_not_mentioned() -> None:
    parts = render(SHORT, mention_user_id="@everyone")
    assert parts[0].payload["allowed_mentions"] == {"parse": []}
    assert "content" not in parts[0].payload


# -- content splitting -----------------------------------------------------------------------------


def test_content_splits_at_paragraphs() -> None:
    paragraphs = [f"Paragraph {i}. " + "word " * 250 for i in range(6)]
    chunks = split_content("\n\n".join(paragraphs))
    assert len(chunks) == 6
    assert [c.strip() for c in chunks] == [p.strip() for p in paragraphs]


def test_content_splits_at_lines_when_a_paragraph_is_too_long() -> None:
    lines = [f"line {i:03d} " + "x" * 80 for i in range(60)]
    chunks = split_content("\n".join(lines))
    assert len(chunks) > 1
    for chunk in chunks:
        assert len(chunk) <= 2000
        assert all(line in lines for line in chunk.split("\n"))
    assert "\n".join(chunks).split("\n") == lines


def test_content_splits_at_spaces_then_hard() -> None:
    words = ["w" * 30] * 200
    chunks = split_content(" ".join(words))
    assert all(set(c.split(" ")) == {"w" * 30} for c in chunks)
    blob = "b" * 4500
    assert split_content(blob) == [blob[:2000], blob[2000:4000], blob[4000:]]


def test_hard_cuts_keep_surrogate_pairs_and_emoji_sequences_whole() -> None:
    pair = "\ud83d\ude00"  # a surrogate pair as two code points, as UTF-16 input can leave it
    family = "👨\u200d👩\u200d👧"
    for unit in (pair, family, "e\u0301", "👍🏽"):
        text = unit * (4100 // len(unit))
        chunks = split_content(text)
        assert "".join(chunks) == text
        assert all(c.startswith(unit[0]) and len(c) <= 2000 for c in chunks)
        assert all(len(c) % len(unit) == 0 for c in chunks)


@pytest.mark.parametrize("info", ["python", "", "js title=x"])
def test_code_fences_stay_balanced_in_every_part(info: str) -> None:
    code = "\n".join(f"    value_{i} = compute({i})  # step" for i in range(200))
    text = f"Intro.\n\n```{info}\n{code}\n```\n\nOutro."
    chunks = split_content(text)
    assert len(chunks) >= 4
    for i, chunk in enumerate(chunks):
        assert len(chunk) <= 2000
        assert fence_lines(chunk) % 2 == 0, chunk
        assert fence_state(chunk) is None
        if 0 < i < len(chunks) - 1:
            assert chunk.startswith(f"```{info}\n    value_")  # reopened, indentation kept
    assert without_fences_and_space("".join(chunks)) == without_fences_and_space(text)


def test_a_part_never_ends_with_an_empty_code_block() -> None:
    text = "p" * 1990 + "\n```python\n" + "x = 1\n" * 10 + "```"
    chunks = split_content(text)
    assert chunks == ["p" * 1990, "```python\n" + "x = 1\n" * 9 + "x = 1\n```"]


def test_an_unclosed_fence_is_reopened_but_not_invented_at_the_end() -> None:
    text = "```\n" + "line\n" * 600
    chunks = split_content(text)
    assert all(c.startswith("```\n") for c in chunks)
    assert all(c.endswith("\n```") for c in chunks[:-1])
    assert not chunks[-1].endswith("```")


def test_short_content_is_one_part_as_is() -> None:
    assert split_content("  hello\n\nworld  ") == ["hello\n\nworld"]
    assert split_content("   ") == []


@pytest.mark.parametrize(
    ("text", "limit", "expected", "cut"),
    [
        ("abc", 3, "abc", False),
        ("  abc  ", 3, "abc", False),
        ("abcd", 3, "ab" + ELLIPSIS, True),
        ("ab  cd", 4, "ab" + ELLIPSIS, True),
        ("😀😀😀😀", 3, "😀😀" + ELLIPSIS, True),
    ],
)
def test_clamp(text: str, limit: int, expected: str, cut: bool) -> None:
    assert clamp(text, limit) == (expected, cut)


def test_safe_cut_moves_off_a_surrogate_pair() -> None:
    assert safe_cut("a\ud83d\ude00b", 2) == 1
    assert safe_cut("abc", 2) == 2


def test_bot_content_is_split_over_parts_with_embeds_after_it() -> None:
    content = "\n\n".join(f"Section {i}\n" + "text " * 300 for i in range(5))
    embeds = [{"title": f"E{i}", "description": "d" * 1000} for i in range(12)]
    parts = render(SHORT, {"content": content, "embeds": embeds})
    assert_sendable(parts)
    texts = [p.payload["content"] for p in parts if "content" in p.payload]
    assert without_fences_and_space("".join(texts)) == without_fences_and_space(content)
    spread = [e["title"] for p in parts for e in p.payload.get("embeds", [])]
    assert spread == [f"E{i}" for i in range(12)]
    with_embeds = [i for i, p in enumerate(parts) if "embeds" in p.payload]
    assert with_embeds[0] == len(texts) - 1  # the first group rides on the last content part
    for part in parts:
        assert len(part.payload.get("embeds", [])) <= 10
        assert sum(embed_size(e) for e in part.payload.get("embeds", [])) <= 6000
    assert all(part.files == () for part in parts)  # nothing cut, small flat result


# -- bot embeds ------------------------------------------------------------------------------------


def test_cut_embed_fields_attach_the_full_results() -> None:
    results = {"quote": "q" * 2000, "score": 1}
    embed = {
        "title": "T" * 300,
        "fields": [{"name": f"F{i}", "value": "v" * 2000} for i in range(30)],
        "footer": {"text": "f" * 3000},
    }
    parts = render(results, {"embeds": [embed]})
    assert_sendable(parts)
    (sent,) = [e for p in parts for e in p.payload.get("embeds", [])]
    assert sent["title"] == "T" * 255 + ELLIPSIS
    assert sent["fields"][0]["value"] == "v" * 1023 + ELLIPSIS
    assert embed_size(sent) <= 6000
    assert json.loads(files_named(parts)[f"results-{STEM}.json"]) == results


def test_more_than_25_fields_keep_25_and_attach_the_rest() -> None:
    embed = {"fields": [{"name": f"F{i}", "value": "v"} for i in range(30)]}
    parts = render({"score": 1}, {"embeds": [embed]})
    assert_sendable(parts)
    assert [f["name"] for f in parts[0].payload["embeds"][0]["fields"]] == [
        f"F{i}" for i in range(25)
    ]
    assert f"results-{STEM}.json" in files_named(parts)


def test_an_embed_over_6000_drops_fields_then_shortens_the_description() -> None:
    embed = {
        "title": "t" * 256,
        "description": "d" * 4096,
        "footer": {"text": "f" * 2048},
        "fields": [{"name": "n", "value": "v" * 100}],
    }
    parts = render({"score": 1}, {"embeds": [embed]})
    assert_sendable(parts)
    sent = parts[0].payload["embeds"][0]
    assert "fields" not in sent
    assert sent["description"].endswith(ELLIPSIS)
    assert embed_size(sent) == 6000


def test_embeds_keep_only_what_discord_takes() -> None:
    embed = {
        "title": "t",
        "type": "article",
        "bogus": {"x": 1},
        "color": "red",
        "timestamp": "2026-11-26T14:00:00Z",
        "url": "ftp://example.com",
        "image": {"url": "https://example.com/i.png", "width": "wide"},
        "author": {"url": "https://example.com"},  # no name: Discord requires one
        "fields": [{"name": 5, "value": True}, "junk", {"name": " ", "value": "v", "inline": 1}],
    }
    parts = render({"score": 1}, {"embeds": [embed, "not an embed", {}]})
    assert_sendable(parts)
    assert parts[0].payload["embeds"] == [
        {
            "title": "t",
            "timestamp": "2026-11-26T14:00:00Z",
            "image": {"url": "https://example.com/i.png"},
            "fields": [{"name": "5", "value": "\u200b"}, {"name": "\u200b", "value": "v"}],
        }
    ]
    assert f"results-{STEM}.json" in files_named(parts)  # the dropped embed counts as cut


def test_a_message_with_nothing_usable_falls_back_to_the_summary() -> None:
    parts = render(SHORT, {"content": "  ", "embeds": [{"color": 1}]})
    assert parts[0].payload["embeds"][0]["footer"]["text"] == f"workflow {WF}"


# -- files -----------------------------------------------------------------------------------------


def test_json_over_the_file_limit_is_chunked_one_per_part() -> None:
    results = {"items": [{"id": i, "text": "é" * 40 + "😀"} for i in range(200)]}
    limit = 4000
    parts = render(results, file_limit=limit)
    assert_sendable(parts, limit)
    chunks = [f for p in parts for f in p.files if f.filename.startswith("results-")]
    n = len(chunks)
    assert n > 3
    assert [f.filename for f in chunks] == [
        f"results-{STEM}.part{k}of{n}.json" for k in range(1, n + 1)
    ]
    assert b"".join(f.content for f in chunks) == results_json(results)
    assert json.loads(b"".join(f.content for f in chunks)) == results
    for chunk in chunks:
        chunk.content.decode("utf-8")  # every chunk is whole characters
    assert [p.payload.get("content") for p in parts[1:]] == [
        f"Full results, part {k} of {n}" for k in range(2, n + 1)
    ]
    assert all(sum(len(f.content) for f in p.files) <= limit for p in parts)


def test_a_report_over_the_file_limit_is_left_out_with_a_note() -> None:
    results = {"transcript": "word " * 2000}
    parts = render(results, file_limit=5000)
    assert_sendable(parts, 5000)
    assert not any(name.startswith("report-") for name in files_named(parts))
    assert f"/retrieve_results workflow_id:{WF}" in parts[0].payload["content"]


def test_a_report_within_the_limit_shares_a_part_when_both_fit() -> None:
    parts = render({"transcript": "word " * 300})
    assert [f.filename for f in parts[0].files] == [f"results-{STEM}.json", f"report-{STEM}.md"]


@pytest.mark.parametrize(("size", "limit"), [(10, 3), (100, 100), (101, 100), (1000, 7)])
def test_chunks_reassemble_byte_exact(size: int, limit: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"\n" * (size % 256)
    chunks = chunk_bytes(data, limit)
    assert b"".join(chunks) == data
    assert all(0 < len(c) <= limit for c in chunks)


def test_file_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="file_limit"):
        render(SHORT, file_limit=0)


# -- at most max_parts messages --------------------------------------------------------------------


def test_content_past_max_parts_goes_whole_into_an_attached_file() -> None:
    # given bot content that would take about 250 messages
    content = "\n\n".join(f"Paragraph {i}: " + "lorem ipsum " * 160 for i in range(250))
    # when it is rendered with the default limit of ten parts
    parts = render(SHORT, {"content": content}, mention_user_id=USER)
    # then there are ten parts, the text in them is the start of the content, the whole content
    # is attached, and the last part says so
    assert_sendable(parts)
    assert len(parts) == 10
    name = f"content-{STEM}.md"
    assert files_named(parts)[name].decode() == content.rstrip() + "\n"
    shown = "".join(p.payload["content"] for p in parts)
    assert f"The full text is attached as {name}." in parts[-1].payload["content"]
    assert "Paragraph 0: lorem" in shown
    assert "Paragraph 249" not in shown
    assert parts[0].payload["content"].startswith(f"<@{USER}>")


def test_content_that_fits_in_max_parts_gets_no_copy() -> None:
    content = "\n\n".join("word " * 300 for _ in range(5))  # three parts or so
    parts = render(SHORT, {"content": content})
    assert 1 < len(parts) <= 10
    assert not any(name.startswith("content-") for name in files_named(parts))


def test_embeds_past_max_parts_are_in_the_attached_file_not_in_more_parts() -> None:
    # given a message of 150 embeds (15 parts of 10)
    embeds = [{"title": f"Embed {i}", "description": "d" * 100} for i in range(150)]
    # when rendered in at most four parts
    parts = render(SHORT, {"content": "Here they are", "embeds": embeds}, max_parts=4)
    # then four parts carry forty embeds, and every embed is in the attached file
    assert_sendable(parts)
    assert len(parts) == 4
    sent = [e["title"] for p in parts for e in p.payload.get("embeds", [])]
    assert sent == [f"Embed {i}" for i in range(40)]
    text = files_named(parts)[f"content-{STEM}.md"].decode()
    assert text.count("## Embed ") == 150 and '"title": "Embed 149"' in text
    assert f"every embed are attached as content-{STEM}.md" in parts[-1].payload["content"]


def test_a_copy_too_large_to_attach_is_pointed_at_instead() -> None:
    content = "word " * 3000
    parts = render(SHORT, {"content": content}, max_parts=2, file_limit=5000)
    assert_sendable(parts, 5000)
    assert len(parts) <= 2
    assert not any(name.startswith("content-") for name in files_named(parts))
    assert f"/retrieve_results workflow_id:{WF}" in parts[-1].payload["content"]


def test_files_needing_more_parts_than_allowed_are_left_out_whole_with_a_note() -> None:
    # given results whose JSON takes five chunks of a small file limit
    results = {"items": [{"id": i, "text": "x" * 80} for i in range(100)]}
    chunked = render(results, file_limit=3000)
    assert len(chunked) == 5
    # when rendered in at most four parts
    parts = render(results, max_parts=4, file_limit=3000)
    # then it is one part without any chunk (a part of the JSON is no use), saying where it is
    assert_sendable(parts, 3000)
    assert len(parts) == 1
    assert files_named(parts) == {}
    assert f"/retrieve_results workflow_id:{WF}" in parts[0].payload["content"]


def test_max_parts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_parts"):
        render(SHORT, max_parts=0)


# -- determinism -----------------------------------------------------------------------------------


def test_the_same_inputs_render_the_same_parts() -> None:
    results = {"transcript": "t " * 5000, "nested": {"a": [1, {"b": "ç"}]}, "n": 3}
    message = {
        "content": "x\n" * 3000,
        "embeds": [{"title": "e", "fields": [{"name": "a", "value": "b"}]}] * 13,
    }
    first = render(results, message, mention_user_id=USER, file_limit=3000)
    again = render(
        json.loads(json.dumps(results)),
        json.loads(json.dumps(message)),
        mention_user_id=USER,
        file_limit=3000,
    )
    assert first == again


# -- failed runs -----------------------------------------------------------------------------------

ERROR = ("Transcribing", "The video host answered 403 Forbidden.")


def test_a_failed_run_renders_an_error_embed_mentioning_the_requester() -> None:
    parts = render({}, error=ERROR, mention_user_id=USER)
    assert_sendable(parts)
    assert len(parts) == 1
    payload = parts[0].payload
    assert payload["content"] == f"<@{USER}>"
    assert payload["allowed_mentions"] == {"parse": [], "users": [USER]}
    (embed,) = payload["embeds"]
    assert embed["title"] == "Analysis failed"
    assert embed["description"] == "The video host answered 403 Forbidden."
    assert embed["fields"][0] == {"name": "Failed at", "value": "Transcribing"}
    assert embed["footer"]["text"] == f"workflow {WF}"
    assert embed["color"] != render({})[0].payload["embeds"][0]["color"]
    assert parts[0].files == ()  # no results, nothing to attach


def test_a_failed_run_attaches_its_partial_results_as_usual() -> None:
    results = {"summary": "Half of the transcript.", "segments": [1, 2, 3]}
    parts = render(results, error=ERROR)
    assert_sendable(parts)
    (embed,) = parts[0].payload["embeds"]
    assert embed["description"] == ERROR[1]  # the error, not the results' summary
    assert json.loads(files_named(parts)[f"results-{STEM}.json"]) == results


def test_a_failed_runs_short_results_show_as_headlines() -> None:
    parts = render({"title": "Moon", "score": 0.5}, error=ERROR)
    (embed,) = parts[0].payload["embeds"]
    assert embed["title"] == "Analysis failed"
    shown = {f["name"]: f["value"] for f in embed["fields"]}
    assert shown == {
        "Failed at": "Transcribing",
        "Depth": "standard",
        "Title": "Moon",
        "Score": "0.5",
    }
    assert parts[0].files == ()


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        ("s" * 2000, "m"),
        ("stage", "word " * 2000),
        ("stage", "m" * 10000),
        ("s" * 5000, "m" * 5000),
    ],
)
def test_an_over_long_error_is_cut_to_fit_with_an_ellipsis(stage: str, message: str) -> None:
    parts = render({}, error=(stage, message))
    assert_sendable(parts)
    (embed,) = parts[0].payload["embeds"]
    assert embed["fields"][0]["value"].startswith(stage.strip()[:100])
    assert embed["description"].startswith(message.strip()[:100])
    assert embed_size(embed) <= LIMITS.embed_total
    assert ELLIPSIS in embed["fields"][0]["value"] + embed["description"]


def test_an_error_message_is_shown_as_sent_apart_from_surrounding_space() -> None:
    message = "  Line one: `code` and **bold**\n\nline two @everyone  "
    (embed,) = render({}, error=("stage", message))[0].payload["embeds"]
    assert embed["description"] == message.strip()


def test_a_failed_runs_bot_message_follows_the_error_embed() -> None:
    parts = render({}, {"content": "Partial notes."}, error=ERROR, mention_user_id=USER)
    assert_sendable(parts)
    assert [p.payload.get("content") for p in parts] == [f"<@{USER}>", "Partial notes."]
    assert parts[0].payload["embeds"][0]["title"] == "Analysis failed"
    assert parts[1].payload["allowed_mentions"] == {"parse": []}


def test_a_failed_run_keeps_its_error_embed_when_parts_run_out() -> None:
    message = {"content": ("para " * 300 + "\n\n") * 10}
    parts = render({}, message, error=ERROR, mention_user_id=USER, max_parts=2)
    assert_sendable(parts)
    assert len(parts) == 2
    assert parts[0].payload["embeds"][0]["title"] == "Analysis failed"
    assert f"content-{STEM}.md" in files_named(parts)


def test_a_failed_run_with_one_part_says_where_the_bot_message_is() -> None:
    message = {"content": "para " * 1000}
    parts = render({}, message, error=ERROR, max_parts=1)
    assert_sendable(parts)
    (part,) = parts
    assert part.payload["embeds"][0]["title"] == "Analysis failed"
    assert files_named(parts)[f"content-{STEM}.md"].startswith(b"para")
    assert f"content-{STEM}.md" in part.payload["content"]


# -- properties ------------------------------------------------------------------------------------

_SPICE = [
    "@everyone",
    "@here",
    "<@&123456789012345678>",
    "<@123456789012345678>",
    "😀",
    "👨\u200d👩\u200d👧",
    "e\u0301",
    "\ud83d",
    "\ud83d\ude00",
    "```",
    "```python\n",
    "\n\n",
    "\n",
    "  ",
    "…",
    "\u200b",
    "`",
]
_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(_SPICE),
    st.lists(st.sampled_from(_SPICE) | st.text(max_size=8), max_size=12).map("".join),
)
_long_text = st.builds(lambda unit, n: unit * n, _text.filter(bool), st.integers(50, 2500))
_any_text = st.one_of(_text, _text, _long_text)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _any_text)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)
_results = st.dictionaries(
    st.sampled_from(["title", "summary", "score"]) | _text, _json, max_size=10
)
_field = st.one_of(
    st.fixed_dictionaries(
        {"name": _any_text, "value": _any_text}, optional={"inline": st.booleans() | _scalars}
    ),
    _json,
)
_embed = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "title": _any_text | _scalars,
            "description": _any_text,
            "url": st.sampled_from(["https://e.example/x", "nope"]) | _text,
            "color": st.integers(-1, 2**25),
            "timestamp": st.sampled_from(["2026-01-01T00:00:00Z", "soon"]),
            "footer": st.fixed_dictionaries({"text": _any_text}) | _json,
            "author": st.fixed_dictionaries({"name": _any_text}) | _json,
            "image": st.fixed_dictionaries({"url": _text}),
            "fields": st.lists(_field, max_size=30) | _json,
            "bogus": _json,
        },
    ),
    _json,
)
_message = st.none() | st.fixed_dictionaries(
    {}, optional={"content": _any_text | _scalars, "embeds": st.lists(_embed, max_size=14) | _json}
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    results=_results,
    message=_message,
    mention=st.sampled_from([None, USER, "not-a-snowflake"]),
    workflow_id=st.sampled_from([WF, "a", "x" * 128]) | _text.filter(bool),
    file_limit=st.integers(300, 6000),
    url=st.none() | st.sampled_from([URL, "http://[::1"]) | _text,
    depth=st.none() | _text,
    max_parts=st.integers(1, 12),
    error=st.none() | st.tuples(_any_text, _any_text),
)
def test_any_result_and_message_render_to_sendable_parts(
    results: dict[str, Any],
    message: dict[str, Any] | None,
    mention: str | None,
    workflow_id: str,
    file_limit: int,
    url: str | None,
    depth: str | None,
    max_parts: int,
    error: tuple[str, str] | None,
) -> None:
    parts = render_result(
        workflow_id=workflow_id,
        results=results,
        url=url,
        depth=depth,
        message=message,
        mention_user_id=mention,
        file_limit=file_limit,
        max_parts=max_parts,
        error=error,
    )
    if error is not None:
        assert parts[0].payload["embeds"][0]["title"] == "Analysis failed"
    assert_sendable(parts, file_limit)
    assert len(parts) <= max_parts
    for i, part in enumerate(parts):
        mentions = part.payload["allowed_mentions"]
        assert mentions["parse"] == []
        if i == 0 and mention == USER:
            assert mentions == {"parse": [], "users": [USER]}
            assert part.payload["content"].startswith(f"<@{USER}>")
        else:
            assert mentions == {"parse": []}
        json.dumps(part.payload, ensure_ascii=False, allow_nan=False).encode("utf-8")
        for f in part.files:
            assert re.fullmatch(r"(results|report|content)-[A-Za-z0-9_.-]+\.(json|md)", f.filename)
    chunks = [f.content for p in parts for f in p.files if f.filename.startswith("results-")]
    if chunks:
        assert b"".join(chunks) == results_json(results)
    assert parts == render_result(
        workflow_id=workflow_id,
        results=results,
        url=url,
        depth=depth,
        message=message,
        mention_user_id=mention,
        file_limit=file_limit,
        max_parts=max_parts,
        error=error,
    )
