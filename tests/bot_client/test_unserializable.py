"""A result JSON cannot carry faithfully is refused with a typed error before anything is sent
and before anything is spooled: the spool only ever holds bodies the service will accept."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

import httpx
import pytest

from bot_client import (
    Message,
    RelayClient,
    RelayError,
    ResultSubmission,
    Spool,
    UnserializableResult,
)
from bot_client._spool import FORMAT_VERSION, KIND
from tests.bot_client.conftest import FAST_RETRY
from tests.support import FAKE_TOKEN, webhook_url

RECORD: dict[str, Any] = {
    "workflow_id": "wf_1",
    "status": "pending",
    "created_at": "2026-09-21T00:00:00Z",
    "updated_at": "2026-09-21T00:00:00Z",
    "retrieval_info": {"command": "/retrieve_results workflow_id:wf_1", "reason": None},
    "results": {},
}


def nested(levels: int) -> dict[str, Any]:
    """A dict ``levels`` containers deep: {"a": {"a": ... {}}}."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


class Recorder:
    """A relay that accepts everything, or is down; either way it records what reached it."""

    def __init__(self, *, down: bool = False) -> None:
        self.down = down
        self.seen: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if self.down:
            raise httpx.ConnectError("refused")
        return httpx.Response(202, json=RECORD)


def client(recorder: Recorder, spool_dir: Path) -> RelayClient:
    return RelayClient(
        "http://relay",
        api_key="k" * 20,
        transport=recorder.transport,
        retries=FAST_RETRY,
        spool_dir=spool_dir,
    )


SECRET = "TOPSECRET-VALUE"

NAN, INF = float("nan"), float("inf")


def case(name: str, results: dict[Any, Any], field: str, code: str) -> Any:
    return pytest.param(results, field, code, id=name)


CASES = [
    case("nan", {"scores": [0.1, 0.2, NAN]}, "results.scores[2]", "invalid_number"),
    case("infinity", {"score": INF}, "results.score", "invalid_number"),
    case("-infinity", {"score": -INF}, "results.score", "invalid_number"),
    case("int-over-64-bits", {"big": 2**63}, "results.big", "invalid_number"),
    case("lone-surrogate", {"text": SECRET + "\ud800"}, "results.text", "invalid_text"),
    case("low-surrogate", {"ok": {"x": ["\udfff"]}}, "results.ok.x[0]", "invalid_text"),
    case("surrogate-in-a-key", {"k\ud800": 1}, "results", "invalid_text"),
    case("depth-65", nested(65), "results" + ".a" * 64, "too_deep"),
    case("set", {"tags": {SECRET, "b"}}, "results.tags", "invalid_type"),
    case("frozenset", {"frozen": frozenset({1})}, "results.frozen", "invalid_type"),
    case("bytes", {"blob": SECRET.encode()}, "results.blob", "invalid_type"),
    case("datetime", {"at": datetime(2026, 1, 1, tzinfo=UTC)}, "results.at", "invalid_type"),
    case("decimal", {"price": Decimal("1.10")}, "results.price", "invalid_type"),
    case("object", {"obj": object()}, "results.obj", "invalid_type"),
    case("int-key", {"by_id": {1: SECRET}}, "results.by_id", "invalid_key"),
    case("top-level-int-key", {1: SECRET}, "results", "invalid_key"),
    case("quoted-key", {"my field": [{"x": NAN}]}, 'results["my field"][0].x', "invalid_number"),
]


@pytest.mark.parametrize(("results", "field", "code"), CASES)
@pytest.mark.parametrize("down", [False, True], ids=["service-up", "service-down"])
async def test_an_unserializable_result_raises_and_sends_and_spools_nothing(
    results: dict[Any, Any], field: str, code: str, down: bool, tmp_path: Path
) -> None:
    # given a relay (up, or down so that the result would be spooled)
    recorder = Recorder(down=down)
    spool_dir = tmp_path / "spool"
    async with client(recorder, spool_dir) as relay:
        # when a result JSON cannot carry is handed over
        with pytest.raises(UnserializableResult) as caught:
            await relay.submit_result(
                workflow_id="wf_1", results=results, destination=webhook_url()
            )
    # then the typed error names the field, not the value
    error = caught.value
    assert isinstance(error, RelayError)
    assert (error.field, error.code, error.status_code) == (field, code, None)
    assert str(error).startswith(field + " ")
    assert SECRET not in str(error) and FAKE_TOKEN not in str(error)
    # and nothing was sent, nothing spooled
    assert recorder.seen == []
    assert not spool_dir.exists()


async def test_depth_64_is_still_accepted(tmp_path: Path) -> None:
    recorder = Recorder()
    async with client(recorder, tmp_path / "spool") as relay:
        outcome = await relay.submit_result(
            workflow_id="wf_1", results=nested(64), destination=webhook_url()
        )
    assert outcome.status == "accepted"
    assert json.loads(recorder.seen[0].content)["results"] == nested(64)


async def test_faithful_json_goes_as_it_is(tmp_path: Path) -> None:
    results = {
        "text": "émoji 🎉 中文 \u0000 end",
        "ints": [0, -1, 2**63 - 1, -(2**63), 1_300_000_000_000_000_000],
        "floats": [0.1, -0.0, 1e308],
        "tuple": (1, "two"),
        "nested": {"a": [None, True, False, {"b": []}]},
    }
    recorder = Recorder()
    async with client(recorder, tmp_path / "spool") as relay:
        await relay.submit_result(workflow_id="wf_1", results=results, destination=webhook_url())
    sent = json.loads(recorder.seen[0].content)["results"]
    assert sent == {**results, "tuple": [1, "two"]}


async def test_results_may_be_any_mapping_at_the_top(tmp_path: Path) -> None:
    recorder = Recorder()
    async with client(recorder, tmp_path / "spool") as relay:
        await relay.submit_result(
            workflow_id="wf_1", results=MappingProxyType({"a": 1}), destination=webhook_url()
        )
    assert json.loads(recorder.seen[0].content)["results"] == {"a": 1}


async def test_other_fields_are_checked_too(tmp_path: Path) -> None:
    recorder = Recorder()
    async with client(recorder, tmp_path / "spool") as relay:
        with pytest.raises(UnserializableResult) as caught:
            await relay.submit_result(
                workflow_id="wf_1",
                results={},
                message={"content": "done \ud83d", "embeds": []},
                destination=webhook_url(),
            )
        assert (caught.value.field, caught.value.code) == ("message.content", "invalid_text")
        with pytest.raises(UnserializableResult) as caught:
            await relay.submit_result(
                workflow_id="wf_1",
                results={},
                message={"embeds": [{"title": "t", "fields": [{"value": float("nan")}]}]},
                destination=webhook_url(),
            )
        assert caught.value.field == "message.embeds[0].fields[0].value"
        with pytest.raises(UnserializableResult) as caught:
            await relay.submit_result(
                workflow_id="wf_\ud800", results={}, destination=webhook_url()
            )
        assert caught.value.field == "workflow_id"
    assert recorder.seen == []


async def test_submit_with_a_ready_submission_checks_it_as_well(tmp_path: Path) -> None:
    recorder = Recorder(down=True)
    submission = ResultSubmission(
        workflow_id="wf_1",
        results={"tags": {"a", "b"}},
        message=Message(content="ok"),
    )
    with pytest.raises(UnserializableResult):
        submission.to_body()
    async with client(recorder, tmp_path / "spool") as relay:
        with pytest.raises(UnserializableResult):
            await relay.submit(submission)
        with pytest.raises(UnserializableResult):
            await relay.hand_off(
                _Interaction(), workflow_id="wf_2", results={"x": float("nan")}, destination="d"
            )
    assert recorder.seen == [] and not (tmp_path / "spool").exists()


class _User:
    id = 334455667788990011


class _Interaction:
    id = 1300000000000000000
    application_id = 445566778899001122
    token = "aW50ZXJhY3Rpb24" + "y" * 80
    user = _User()
    guild_id = None
    channel_id = None


async def test_a_cycle_is_too_deep_not_a_crash(tmp_path: Path) -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    async with client(Recorder(), tmp_path / "spool") as relay:
        with pytest.raises(UnserializableResult) as caught:
            await relay.submit_result(workflow_id="wf_1", results=loop, destination="d")
    assert caught.value.code == "too_deep"


async def test_a_spooled_body_json_cannot_carry_is_rejected_on_flush_not_sent(
    tmp_path: Path,
) -> None:
    # given a spool holding a body with NaN (Python's json writes it; an older client did)
    # before a good one
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    bad = {"workflow_id": "wf_nan", "results": {"score": float("nan")}, "destination": {}}
    envelope = {"version": FORMAT_VERSION, "kind": KIND, "spooled_at": 0, "body": bad}
    (spool_dir / "wf_nan.0000.json").write_text(json.dumps(envelope))
    good = Spool(spool_dir).write({"workflow_id": "wf_ok", "results": {}})
    good.touch()  # newer than the bad one
    # when flushed
    recorder = Recorder()
    async with client(recorder, spool_dir) as relay:
        report = await relay.flush_spool()
    # then the bad one is set aside with the field that is wrong, and the good one is sent
    assert (report.accepted, report.rejected, report.remaining) == (1, 1, 0)
    assert [json.loads(r.content)["workflow_id"] for r in recorder.seen] == ["wf_ok"]
    [rejected] = (spool_dir / "rejected").iterdir()
    rejection = json.loads(rejected.read_text())["rejection"]
    assert (rejection["code"], rejection["field"]) == ("invalid_number", "results.score")


async def test_a_spool_file_nested_beyond_the_parser_is_corrupt_not_a_crash(
    tmp_path: Path,
) -> None:
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    (spool_dir / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    async with client(Recorder(), spool_dir) as relay:
        report = await relay.flush_spool()
    assert (report.corrupt, report.remaining) == (1, 0)
