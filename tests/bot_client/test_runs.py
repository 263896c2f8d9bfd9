"""The bot's side of a run, against a scripted relay (httpx.MockTransport): the run API calls,
and ``relay.run(...)``: its start, its coalesced progress that never raises nor blocks, its
finish, and the failure it reports when the block fails."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from bot_client import (
    AuthenticationError,
    ConflictError,
    RelayUnavailable,
    Run,
    RunFailure,
    UnserializableResult,
)
from bot_client._run import MAX_MESSAGE, describe
from tests.bot_client.conftest import FAST_RETRY
from tests.bot_client.fake_relay import KEY, NOW, WF, FakeRelay, always, error, run_json
from tests.support import (
    APPLICATION_ID,
    FAKE_TOKEN,
    INTERACTION_ID,
    INTERACTION_TOKEN,
    USER_ID,
    webhook_url,
)


def interaction() -> SimpleNamespace:
    return SimpleNamespace(
        id=int(INTERACTION_ID),
        application_id=int(APPLICATION_ID),
        token=INTERACTION_TOKEN,
        user=SimpleNamespace(id=int(USER_ID)),
        guild_id=None,
        channel_id=42,
    )


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never held")


# -- the run API ------------------------------------------------------------------------------


async def test_run_start_sends_the_interaction_requester_and_destination(fake: FakeRelay) -> None:
    # given a client with a channel webhook as its default destination
    # when a run starts for a discord.py interaction and finishes
    async with (
        fake.client(default_destination=webhook_url()) as relay,
        relay.run(
            interaction(), workflow_id=WF, title="Analysis", url="https://x.test/v", depth="deep"
        ) as run,
    ):
        assert run.started
        await run.finish({"score": 1})
    # then the relay got the run with everything it needs to talk to the user
    [start] = fake.sent("POST", "runs")
    assert start == {
        "workflow_id": WF,
        "interaction": {
            "application_id": APPLICATION_ID,
            "interaction_id": INTERACTION_ID,
            "token": INTERACTION_TOKEN,
        },
        "destination": {"webhook_url": webhook_url()},
        "requester": {"user_id": USER_ID, "channel_id": "42"},
        "url": "https://x.test/v",
        "depth": "deep",
        "title": "Analysis",
    }
    # and the result carries the same, so it stands alone if the run never reached the relay
    [result] = fake.sent("POST", "results")
    assert result == {
        "workflow_id": WF,
        "results": {"score": 1},
        "url": "https://x.test/v",
        "depth": "deep",
        "destination": {"webhook_url": webhook_url()},
        "interaction": start["interaction"],
        "requester": start["requester"],
    }
    assert run.outcome is not None and run.outcome.status == "accepted"
    assert INTERACTION_TOKEN not in repr(run)


async def test_get_list_and_progress_parse_the_run(fake: FakeRelay) -> None:
    progress = {"stage": "frames", "current": 3, "total": 10, "note": None, "updated_at": NOW}
    pages = iter(
        [
            {"items": [run_json("wf_a")], "next_cursor": "c1"},
            {"items": [run_json("wf_b", status="failed", error={"stage": "s", "message": "m"})]},
        ]
    )

    async def listing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=next(pages))

    fake.routes[("GET", "runs")] = listing
    fake.routes[("PUT", "progress")] = always(
        lambda: httpx.Response(
            202,
            json=run_json(
                progress=progress,
                progress_message={"route": "interaction", "message_id": "9"},
                result_status="pending",
            ),
        )
    )
    async with fake.client() as relay:
        run = await relay.progress(WF, "frames", 3, 10)
        runs = [r async for r in relay.list_runs(status="failed", requester_id=USER_ID)]
    assert isinstance(run, Run)
    assert run.progress is not None and (run.progress.current, run.progress.total) == (3, 10)
    assert run.progress_message is not None and run.progress_message.route == "interaction"
    assert run.result_status == "pending"
    assert [r.workflow_id for r in runs] == ["wf_a", "wf_b"]
    assert runs[1].error == RunFailure(stage="s", message="m")
    # the progress body leaves out what was not given
    assert fake.sent("PUT", "progress") == [{"stage": "frames", "current": 3, "total": 10}]


async def test_submit_result_with_an_error_reports_a_failed_run(fake: FakeRelay) -> None:
    async with fake.client() as relay:
        await relay.submit_result(
            workflow_id=WF, error={"stage": "frames", "message": "boom"}, destination=webhook_url()
        )
        with pytest.raises(TypeError):
            await relay.submit_result(workflow_id=WF)
    [body] = fake.sent("POST", "results")
    assert body["results"] == {} and body["error"] == {"stage": "frames", "message": "boom"}


# -- progress: coalesced, never raising, never blocking ---------------------------------------


async def test_progress_while_a_request_is_in_flight_sends_only_the_latest(
    fake: FakeRelay,
) -> None:
    # given a relay that holds the first progress request until released
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(202, json=run_json())

    fake.routes[("PUT", "progress")] = slow
    async with (
        fake.client() as relay,
        relay.run(None, workflow_id=WF, destination=webhook_url()) as run,
    ):
        await run.progress("frames", 0, 20)
        await until(lambda: len(fake.sent("PUT", "progress")) == 1)
        # when twenty updates come while that one is in flight
        for step in range(1, 21):
            await run.progress("frames", step, 20)
        release.set()
        await until(lambda: run.progress_sent == 2)
        await run.finish({"frames": 20})
    # then only the first and the latest went out; the nineteen between were dropped and counted
    assert fake.sent("PUT", "progress") == [
        {"stage": "frames", "current": 0, "total": 20},
        {"stage": "frames", "current": 20, "total": 20},
    ]
    assert (run.progress_sent, run.progress_dropped, run.progress_failed) == (2, 19, 0)


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(lambda: error(503, "store_unavailable"), id="503"),
        pytest.param(lambda: httpx.Response(502, text="<html>bad gateway</html>"), id="502-page"),
        pytest.param(lambda: httpx.ConnectError("refused"), id="connect-error"),
        pytest.param(lambda: httpx.ReadTimeout("slow"), id="read-timeout"),
    ],
)
async def test_progress_never_raises_when_the_relay_fails(
    fake: FakeRelay, failure: Callable[[], httpx.Response | Exception]
) -> None:
    # given a relay whose progress route keeps failing
    fake.routes[("PUT", "progress")] = always(failure)
    async with (
        fake.client() as relay,
        relay.run(None, workflow_id=WF, destination=webhook_url()) as run,
    ):
        # when the bot reports progress
        await run.progress("frames", 1, 2)
        await until(lambda: run.progress_failed == 1)
        await run.progress("frames", 2, 2)
        await until(lambda: run.progress_failed == 2)
        outcome = await run.finish({"ok": True})
    # then nothing was raised, each update was tried with the retry policy, the result went
    assert len(fake.sent("PUT", "progress")) == 2 * FAST_RETRY.attempts
    assert outcome.status == "accepted"


async def test_progress_returns_at_once_while_the_relay_hangs(fake: FakeRelay) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    fake.routes[("PUT", "progress")] = hang
    async with (
        fake.client() as relay,
        relay.run(None, workflow_id=WF, destination=webhook_url()) as run,
    ):
        for step in range(100):
            await asyncio.wait_for(run.progress("frames", step, 100), timeout=0.05)
        # finishing does not wait for the hanging update either
        await asyncio.wait_for(run.finish({"ok": True}), timeout=1)
    assert len(fake.sent("POST", "results")) == 1


async def test_a_refused_progress_is_logged_once_and_a_closed_run_gets_no_more(
    fake: FakeRelay, caplog: pytest.LogCaptureFixture
) -> None:
    # given a relay that says the run is closed
    fake.routes[("PUT", "progress")] = always(lambda: error(409, "run_closed"))
    async with (
        fake.client() as relay,
        relay.run(None, workflow_id=WF, destination=webhook_url()) as run,
    ):
        with caplog.at_level(logging.WARNING, logger="bot_client"):
            await run.progress("a")
            await until(lambda: run.progress_failed == 1)
            await run.progress("b")
            await run.progress("c")
            await asyncio.sleep(0.01)
        await run.finish({})
    # then it was asked once, never retried, logged once, and the later updates stayed home
    assert fake.sent("PUT", "progress") == [{"stage": "a"}]
    [logged] = [r for r in caplog.records if "refused the run's progress" in r.getMessage()]
    assert logged.__dict__["error_code"] == "run_closed"
    assert KEY not in str(logged.__dict__)


async def test_an_invalid_update_is_skipped_and_later_ones_still_go(fake: FakeRelay) -> None:
    answers = iter([error(422, "invalid_progress"), httpx.Response(202, json=run_json())])
    fake.routes[("PUT", "progress")] = always(lambda: next(answers))
    async with (
        fake.client() as relay,
        relay.run(None, workflow_id=WF, destination=webhook_url()) as run,
    ):
        await run.progress("x", 5, 2)
        await until(lambda: run.progress_failed == 1)
        await run.progress("x", 2, 2)
        await until(lambda: run.progress_sent == 1)
        await run.finish({})
    assert len(fake.sent("PUT", "progress")) == 2


# -- the start ---------------------------------------------------------------------------------


async def test_an_unreachable_relay_does_not_stop_the_block_and_the_start_is_retried(
    fake: FakeRelay,
) -> None:
    # given a relay that cannot be reached when the run starts, and is back a moment later
    answers = iter([httpx.ConnectError("refused"), httpx.ConnectError("refused")])
    fake.routes[("POST", "runs")] = always(
        lambda: next(answers, httpx.Response(201, json=run_json()))
    )
    # when the block runs
    async with (
        fake.client() as relay,
        relay.run(None, workflow_id=WF, destination=webhook_url()) as run,
    ):
        assert not run.started  # one try on entry: the work does not wait for the relay
        await until(lambda: run.started)  # retried in the background
        await run.progress("frames", 1, 2)
        await until(lambda: run.progress_sent == 1)
        await run.finish({"ok": True})
    # then the run was started before its progress went, and the result followed
    assert [(m, k) for m, k, _ in fake.seen] == [
        ("POST", "runs"),
        ("POST", "runs"),
        ("POST", "runs"),
        ("PUT", "progress"),
        ("POST", "results"),
    ]


async def test_progress_waits_for_a_start_that_has_not_reached_the_relay(fake: FakeRelay) -> None:
    # given a relay that stays away for the whole start and its background retries
    up = False
    fake.routes[("POST", "runs")] = always(
        lambda: httpx.Response(201, json=run_json()) if up else error(503, "store_unavailable")
    )
    async with (
        fake.client() as relay,
        relay.run(None, workflow_id=WF, destination=webhook_url()) as run,
    ):
        await until(lambda: len(fake.sent("POST", "runs")) == 1 + FAST_RETRY.attempts)
        await asyncio.sleep(0.01)
        assert not run.started and fake.sent("PUT", "progress") == []
        # when it is back and the next progress comes
        up = True
        await run.progress("frames", 1, 2)
        await until(lambda: run.progress_sent == 1)
        await run.finish({})
    # then the start went first, then that progress
    assert [k for _, k, _ in fake.seen][-3:] == ["runs", "progress", "results"]


async def test_a_refused_start_raises_before_the_work(fake: FakeRelay) -> None:
    fake.routes[("POST", "runs")] = always(lambda: error(401, "unauthorized"))
    ran = False
    async with fake.client() as relay:
        with pytest.raises(AuthenticationError):
            async with relay.run(None, workflow_id=WF, destination=webhook_url()):
                ran = True
    assert not ran and fake.sent("POST", "results") == []


# -- the end -----------------------------------------------------------------------------------


async def test_an_exception_reports_the_failure_redacted_and_is_raised_again(
    fake: FakeRelay,
) -> None:
    # given a block that gathered partial results and then fails with secrets in its message
    secret_words = (
        f"fetch https://discord.com/api/webhooks/1/{FAKE_TOKEN} failed\n"
        f"  with token={INTERACTION_TOKEN} api key {KEY} and Bearer abc.def-ghi_123"
    )
    async with fake.client() as relay:
        with pytest.raises(RuntimeError) as caught:
            async with relay.run(interaction(), workflow_id=WF, destination=webhook_url()) as run:
                await run.progress("transcribe", 2, 5)
                run.partial({"transcript": "hello"})
                run.partial({"language": "en"})
                raise RuntimeError(secret_words)
    # then the bot's own exception came out, untouched
    assert str(caught.value) == secret_words
    # and the relay got a failed result: the last stage, a short masked line, the partials
    [body] = fake.sent("POST", "results")
    assert body["results"] == {"transcript": "hello", "language": "en"}
    assert body["error"]["stage"] == "transcribe"
    message = body["error"]["message"]
    assert message.startswith("RuntimeError: fetch https://discord.com/api/webhooks/1/***")
    assert "\n" not in message and len(message) <= MAX_MESSAGE
    for secret in (FAKE_TOKEN, INTERACTION_TOKEN, KEY, "abc.def-ghi_123"):
        assert secret not in message
    assert "Traceback" not in json.dumps(body)
    assert run.outcome is not None and run.outcome.status == "accepted"


async def test_leaving_without_a_result_reports_a_failure(fake: FakeRelay) -> None:
    async with (
        fake.client() as relay,
        relay.run(None, workflow_id=WF, destination=webhook_url()) as run,
    ):
        await run.progress("frames", 3, 10)
    [body] = fake.sent("POST", "results")
    assert body["error"] == {"stage": "frames", "message": "ended without a result"}
    assert body["results"] == {}


async def test_a_failure_before_any_progress_names_the_start(fake: FakeRelay) -> None:
    async with fake.client() as relay:
        with pytest.raises(KeyError):
            async with relay.run(None, workflow_id=WF, destination=webhook_url()):
                raise KeyError("video")
    [body] = fake.sent("POST", "results")
    assert body["error"] == {"stage": "start", "message": "KeyError: 'video'"}


async def test_a_failure_is_spooled_when_the_relay_is_down(fake: FakeRelay, tmp_path: Path) -> None:
    # given a relay that is down for the whole run
    down = always(lambda: httpx.ConnectError("refused"))
    fake.routes = {(m, k): down for m, k in [("POST", "runs"), ("POST", "results")]}
    async with fake.client(spool_dir=tmp_path / "spool") as relay:
        with pytest.raises(ZeroDivisionError):
            async with relay.run(None, workflow_id=WF, destination=webhook_url()) as run:
                await run.progress("maths")
                _ = 1 / 0
        # then the failure waits in the spool, and the bot's exception still came out
        assert run.outcome is not None and run.outcome.status == "spooled"
        assert relay.spool is not None
        [path] = relay.spool.pending()
        saved = relay.spool.load(path)
    assert saved["error"] == {"stage": "maths", "message": "ZeroDivisionError: division by zero"}


async def test_a_failure_that_cannot_be_reported_does_not_hide_the_bots_exception(
    fake: FakeRelay, caplog: pytest.LogCaptureFixture
) -> None:
    fake.routes[("POST", "results")] = always(lambda: httpx.ConnectError("refused"))
    async with fake.client() as relay:  # no spool
        with pytest.raises(ValueError):
            async with relay.run(None, workflow_id=WF, destination=webhook_url()):
                raise ValueError("bad video")
        # and a clean block whose report fails raises nothing
        async with relay.run(None, workflow_id="wf_2", destination=webhook_url()):
            pass
    assert caplog.text.count("could not be reported") == 2


async def test_finish_submits_once_and_a_refused_result_is_not_reported_again(
    fake: FakeRelay,
) -> None:
    fake.routes[("POST", "results")] = always(lambda: error(409, "workflow_id_conflict"))
    async with fake.client() as relay:
        with pytest.raises(ConflictError):
            async with relay.run(None, workflow_id=WF, destination=webhook_url()) as run:
                await run.finish({"a": 1})
    # the relay has this workflow id's result: a failure report would contradict it
    assert len(fake.sent("POST", "results")) == 1
    with pytest.raises(RuntimeError):
        await run.finish({"a": 1})


async def test_a_result_json_cannot_carry_is_reported_as_the_failure(fake: FakeRelay) -> None:
    async with fake.client() as relay:
        with pytest.raises(UnserializableResult):
            async with relay.run(None, workflow_id=WF, destination=webhook_url()) as run:
                await run.progress("score")
                await run.finish({"score": float("nan")})
    [body] = fake.sent("POST", "results")
    assert body["error"]["stage"] == "score"
    assert body["error"]["message"].startswith("UnserializableResult: results.score")


async def test_a_cancelled_block_reports_nothing(fake: FakeRelay) -> None:
    async with fake.client() as relay:

        async def command() -> None:
            async with relay.run(None, workflow_id=WF, destination=webhook_url()) as run:
                await run.progress("frames")
                await asyncio.Event().wait()

        task = asyncio.create_task(command())
        await until(lambda: len(fake.sent("POST", "runs")) == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert fake.sent("POST", "results") == []


async def test_the_relay_unavailable_error_of_a_direct_call_still_raises(fake: FakeRelay) -> None:
    fake.routes[("GET", "runs")] = always(lambda: httpx.ConnectError("refused"))
    async with fake.client() as relay:
        with pytest.raises(RelayUnavailable):
            await relay.get_run(WF)


# -- the failure line, pure ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ValueError("bad video"), "ValueError: bad video"),
        (ValueError(), "ValueError"),
        (OSError("line one\n\tline two  "), "OSError: line one line two"),
        (RuntimeError("token=abc123"), "RuntimeError: token=***"),
        (RuntimeError("Authorization: Bearer abcdefgh1"), "RuntimeError: Authorization: *** ***"),
        (RuntimeError(f"key {KEY}"), "RuntimeError: key ***"),
        (
            RuntimeError("MTIzNDU2Nzg5MDEyMzQ1Njc4.GaBcDe.abcdefghijklmnopqrstuvwxyz0"),
            "RuntimeError: ***",
        ),
        (RuntimeError("see /webhooks/123/abc"), "RuntimeError: see /webhooks/123/***"),
        # long words and identifiers are not tokens
        (
            KeyError("some_very_long_configuration_key_name"),
            "KeyError: 'some_very_long_configuration_key_name'",
        ),
        (RuntimeError("x" * 1000), "RuntimeError: " + "x" * (MAX_MESSAGE - 15) + "…"),
    ],
)
def test_describe_is_one_short_masked_line(exc: BaseException, expected: str) -> None:
    assert describe(exc, [KEY]) == expected


def test_describe_masks_a_token_cut_by_the_length_limit() -> None:
    line = describe(RuntimeError("x " * 140 + INTERACTION_TOKEN), [])
    assert INTERACTION_TOKEN[:10] not in line and len(line) <= MAX_MESSAGE


async def test_a_relay_without_runs_still_gets_the_result(fake: FakeRelay) -> None:
    # given a relay older than runs (its /v1/runs routes do not exist)
    fake.routes[("POST", "runs")] = always(lambda: error(404, "not_found"))
    async with (
        fake.client() as relay,
        relay.run(None, workflow_id=WF, destination=webhook_url()) as run,
    ):
        # when the block reports progress and finishes
        await run.progress("frames", 1, 2)
        await asyncio.sleep(0.01)
        await run.finish({"ok": True})
    # then no progress was sent, and the result was
    assert fake.sent("PUT", "progress") == []
    assert fake.sent("POST", "results")[0]["results"] == {"ok": True}


async def test_progress_survives_a_client_closed_under_the_run(
    fake: FakeRelay, caplog: pytest.LogCaptureFixture
) -> None:
    # given a run whose client was closed while the block still works (a bot shutting down)
    relay = fake.client()
    async with relay.run(None, workflow_id=WF, destination=webhook_url()) as run:
        await relay.aclose()
        # when it reports progress
        await run.progress("frames", 1, 2)
        await until(lambda: run.progress_failed == 1)
        run.partial({"frames": 1})
        await run.progress("frames", 2, 2)
        await until(lambda: run.progress_failed == 2)
        # then nothing was raised into the work; the sender logged each failure
        assert caplog.text.count("run progress sender failed") == 2
    # and the end that could not be reported was logged, not raised
    assert caplog.text.count("could not be reported") == 1
