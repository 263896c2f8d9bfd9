"""The dashboard against the app in-process: sign in, the session cookie, CSRF, tenant scoping,
security headers, and every page with real data (results delivered and orphaned through the
emulator, a run, destinations)."""

from __future__ import annotations

import re

import httpx
import pytest

from service.delivery.worker import Worker
from service.testing import DiscordEmulator
from service.testing.models import EmulatedWebhook
from service.ui.session import COOKIE_NAME, MAX_AGE_SECONDS
from tests.conftest import Clock
from tests.support import ACME, ACME_KEY, OTHER, OTHER_KEY, USER_ID, submission

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(page: httpx.Response) -> str:
    found = _CSRF.search(page.text)
    assert found, "the page has a form with a CSRF token"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, key: str = ACME_KEY, **headers: str) -> httpx.Response:
    form = await client.get("/ui/signin")
    return await client.post(
        "/ui/signin", data={"csrf": csrf_of(form), "api_key": key}, headers=headers
    )


async def submit_to(
    client: httpx.AsyncClient, hook: EmulatedWebhook, workflow_id: str, **kw: object
) -> None:
    body = submission(workflow_id, destination={"webhook_url": hook.url}, **kw)
    response = await client.post("/v1/results", json=body, headers=ACME)
    assert response.status_code == 202, response.text


async def test_signing_in_with_a_right_key_sets_a_strict_httponly_cookie_without_the_key(
    client: httpx.AsyncClient,
) -> None:
    # when acme signs in with its API key
    signed_in = await sign_in(client)
    # then it is sent to the overview with a session cookie that is HttpOnly, SameSite=Strict,
    # limited to /ui, expiring in 8 hours, not Secure over plain http, and without the key
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/ui/"
    cookie = signed_in.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/ui", f"max-age={MAX_AGE_SECONDS}"} <= flags
    assert "secure" not in flags
    assert ACME_KEY not in cookie
    overview = await client.get("/ui/")
    assert overview.status_code == 200
    assert "Tenant <strong>acme</strong>" in overview.text
    assert ACME_KEY not in overview.text


async def test_the_cookie_is_secure_when_the_proxy_says_the_browser_used_https(
    client: httpx.AsyncClient,
) -> None:
    signed_in = await sign_in(client, **{"X-Forwarded-Proto": "https"})
    flags = {part.strip().lower() for part in signed_in.headers["set-cookie"].split(";")[1:]}
    assert "secure" in flags


async def test_a_wrong_key_is_refused_and_no_session_is_made(client: httpx.AsyncClient) -> None:
    refused = await sign_in(client, key="not-a-key")
    assert refused.status_code == 401
    assert "That API key is not valid." in refused.text
    assert "not-a-key" not in refused.text
    # and the pages still ask to sign in
    page = await client.get("/ui/results")
    assert (page.status_code, page.headers["location"]) == (303, "/ui/signin")


async def test_sign_in_without_its_csrf_token_is_refused(client: httpx.AsyncClient) -> None:
    await client.get("/ui/signin")
    refused = await client.post("/ui/signin", data={"api_key": ACME_KEY})
    assert refused.status_code == 403
    assert (await client.get("/ui/")).status_code == 303


async def test_the_session_expires_after_eight_hours(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    await sign_in(client)
    clock.advance(MAX_AGE_SECONDS - 1)
    assert (await client.get("/ui/")).status_code == 200
    clock.advance(1)
    expired = await client.get("/ui/")
    assert (expired.status_code, expired.headers["location"]) == (303, "/ui/signin")


async def test_a_forged_cookie_is_no_session(client: httpx.AsyncClient) -> None:
    await sign_in(client)
    value = client.cookies[COOKIE_NAME]
    client.cookies.clear()
    client.cookies.set(COOKIE_NAME, value.replace("acme", "other", 1)[:-2] + "xx", path="/ui")
    assert (await client.get("/ui/")).status_code == 303


async def test_signing_out_ends_the_session(client: httpx.AsyncClient) -> None:
    await sign_in(client)
    page = await client.get("/ui/")
    out = await client.post("/ui/signout", data={"csrf": csrf_of(page)})
    assert (out.status_code, out.headers["location"]) == (303, "/ui/signin")
    assert COOKIE_NAME not in client.cookies
    assert (await client.get("/ui/")).status_code == 303


async def test_every_page_has_the_security_headers(client: httpx.AsyncClient) -> None:
    await sign_in(client)
    for path in ("/ui/signin", "/ui/", "/ui/results", "/ui/runs", "/ui/destinations"):
        page = await client.get(path, follow_redirects=True)
        assert page.status_code == 200, path
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "'unsafe-inline'" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["referrer-policy"] == "same-origin"
        assert page.headers["cache-control"] == "no-store"
        # no inline script or style for the CSP to refuse
        assert "<style" not in page.text and " style=" not in page.text
        assert re.search(r"<script(?![^>]*\bsrc=)", page.text) is None
    asset = await client.get("/ui/static/ui.css")
    assert asset.status_code == 200
    assert asset.headers["x-content-type-options"] == "nosniff"


@pytest.fixture
async def orphan_and_delivered(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker
) -> tuple[EmulatedWebhook, EmulatedWebhook]:
    """acme's result delivered to a live webhook, and another orphaned by a deleted one."""
    live, gone = emulator.create_webhook(), emulator.create_webhook()
    message = {
        "content": "Checked.",
        "embeds": [
            {
                "title": "Verdict",
                "color": 0x3BA55C,
                "fields": [{"name": "Score", "value": "0.12", "inline": True}],
            }
        ],
    }
    await submit_to(client, live, "wf_ok", message=message)
    emulator.delete_webhook(gone.id)
    await submit_to(client, gone, "wf_lost")
    await worker.drain()
    return live, gone


async def test_the_results_page_shows_the_orphan_among_the_delivered(
    client: httpx.AsyncClient, orphan_and_delivered: tuple[EmulatedWebhook, EmulatedWebhook]
) -> None:
    live, gone = orphan_and_delivered
    await sign_in(client)
    listing = await client.get("/ui/results")
    assert listing.status_code == 200
    assert (
        'href="/ui/results/wf_ok"' in listing.text and 'href="/ui/results/wf_lost"' in listing.text
    )
    orphans = await client.get("/ui/results", params={"status": "orphaned"})
    assert "wf_lost" in orphans.text and "wf_ok" not in orphans.text
    found = await client.get("/ui/results", params={"q": "LOST"})
    assert "wf_lost" in found.text and "wf_ok" not in found.text
    assert live.token not in listing.text and gone.token not in listing.text
    bad = await client.get("/ui/results", params={"status": "lost", "since": "yesterday"})
    assert bad.status_code == 422
    assert "status must be one of" in bad.text and "since must be a date" in bad.text


async def test_one_result_shows_why_the_messages_and_every_attempt(
    client: httpx.AsyncClient, orphan_and_delivered: tuple[EmulatedWebhook, EmulatedWebhook]
) -> None:
    live, gone = orphan_and_delivered
    await sign_in(client)
    lost = await client.get("/ui/results/wf_lost")
    assert lost.status_code == 200
    assert 'id="result-status">orphaned<' in lost.text
    assert "Why: <strong>Discord says the webhook was deleted" in lost.text
    assert "dead_webhook</span>" in lost.text  # the attempt on the timeline
    assert gone.token not in lost.text
    ok = await client.get("/ui/results/wf_ok")
    # the bot's message as Discord shows it: content, the embed with its colour and field
    assert "Checked." in ok.text and "Verdict" in ok.text
    assert 'fill="#3ba55c"' in ok.text
    assert "<dt>Score</dt><dd>0.12</dd>" in ok.text
    assert "<details>" in ok.text and "deception_score" in ok.text
    download = await client.get("/ui/results/wf_ok/results.json")
    assert download.json() == submission("wf_ok")["results"]
    assert download.headers["content-disposition"] == 'attachment; filename="results-wf_ok.json"'
    assert live.token not in ok.text


async def test_redelivering_an_orphan_to_another_destination_delivers_it(
    client: httpx.AsyncClient,
    emulator: DiscordEmulator,
    worker: Worker,
    orphan_and_delivered: tuple[EmulatedWebhook, EmulatedWebhook],
) -> None:
    # given a registered destination "spare", and the orphaned result's page
    spare = emulator.create_webhook()
    await sign_in(client)
    page = await client.get("/ui/destinations")
    added = await client.post(
        "/ui/destinations",
        data={"csrf": csrf_of(page), "name": "spare", "webhook_url": spare.url},
    )
    assert (added.status_code, added.headers["location"]) == (303, "/ui/destinations?done=added")
    page = await client.get("/ui/results/wf_lost")
    # when it is redelivered there
    sent = await client.post(
        "/ui/results/wf_lost/redeliver", data={"csrf": csrf_of(page), "name": "spare"}
    )
    assert (sent.status_code, sent.headers["location"]) == (
        303,
        "/ui/results/wf_lost?done=redelivered",
    )
    await worker.drain()
    # then Discord holds the message on the spare webhook, and the page says delivered
    [message] = emulator.messages(spare.id)
    assert message.embeds[0]["footer"]["text"].endswith("wf_lost")
    assert message.allowed_mentions is not None and message.allowed_mentions["parse"] == []
    after = await client.get("/ui/results/wf_lost?done=redelivered")
    assert 'id="result-status">delivered<' in after.text
    assert "Queued for delivery again." in after.text


async def test_a_redeliver_form_without_or_with_a_wrong_csrf_token_is_refused(
    client: httpx.AsyncClient,
    emulator: DiscordEmulator,
    worker: Worker,
    orphan_and_delivered: tuple[EmulatedWebhook, EmulatedWebhook],
) -> None:
    live, _ = orphan_and_delivered
    await sign_in(client)
    for data in ({"webhook_url": live.url}, {"webhook_url": live.url, "csrf": "forged"}):
        refused = await client.post("/ui/results/wf_lost/redeliver", data=data)
        assert refused.status_code == 403
    await worker.drain()
    record = (await client.get("/v1/results/wf_lost", headers=ACME)).json()
    assert record["status"] == "orphaned"
    assert len(emulator.messages(live.id)) == 1  # only wf_ok


async def test_a_csrf_token_of_another_session_is_refused(
    client: httpx.AsyncClient, orphan_and_delivered: tuple[EmulatedWebhook, EmulatedWebhook]
) -> None:
    await sign_in(client)
    first = csrf_of(await client.get("/ui/results/wf_lost"))
    client.cookies.clear()
    await sign_in(client)
    refused = await client.post("/ui/results/wf_lost/delete", data={"csrf": first})
    assert refused.status_code == 403
    assert (await client.get("/v1/results/wf_lost", headers=ACME)).status_code == 200


async def test_another_tenants_result_is_a_404_page(
    client: httpx.AsyncClient, orphan_and_delivered: tuple[EmulatedWebhook, EmulatedWebhook]
) -> None:
    await sign_in(client, key=OTHER_KEY)
    page = await client.get("/ui/results/wf_lost")
    assert page.status_code == 404
    assert "No result with workflow id" in page.text
    assert (await client.get("/ui/results/wf_lost/results.json")).status_code == 404
    listing = await client.get("/ui/results")
    assert "wf_lost" not in listing.text
    token = csrf_of(listing)
    for action in ("redeliver", "delete"):
        refused = await client.post(f"/ui/results/wf_lost/{action}", data={"csrf": token})
        assert refused.status_code == 404
    assert (await client.get("/v1/results/wf_lost", headers=ACME)).json()["status"] == "orphaned"
    assert (await client.get("/v1/results/wf_lost", headers=OTHER)).status_code == 404


async def test_deleting_asks_first_then_removes_the_result(
    client: httpx.AsyncClient, orphan_and_delivered: tuple[EmulatedWebhook, EmulatedWebhook]
) -> None:
    await sign_in(client)
    confirm = await client.get("/ui/results/wf_lost/delete")
    assert "Delete for good" in confirm.text
    gone = await client.post("/ui/results/wf_lost/delete", data={"csrf": csrf_of(confirm)})
    assert (gone.status_code, gone.headers["location"]) == (303, "/ui/results?done=deleted")
    assert (await client.get("/v1/results/wf_lost", headers=ACME)).status_code == 404


async def test_the_overview_counts_statuses_and_draws_the_last_hour(
    client: httpx.AsyncClient, orphan_and_delivered: tuple[EmulatedWebhook, EmulatedWebhook]
) -> None:
    await sign_in(client)
    page = await client.get("/ui/")
    assert page.status_code == 200
    found = re.findall(r'<span class="big">(\d+)</span> (\w+)</a>', page.text)
    counts = {status: count for count, status in found}
    assert counts == {"pending": "0", "delivered": "1", "orphaned": "1"}
    assert "1 messages delivered, 1 failed attempts." in page.text
    assert page.text.count('class="bar delivered"') == 1
    assert page.text.count('class="bar failed"') == 1
    assert "Replicas alive" in page.text


async def test_destinations_add_checked_with_discord_dead_revive_and_remove(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker
) -> None:
    hook = emulator.create_webhook()
    await sign_in(client)
    page = await client.get("/ui/destinations")
    # a webhook Discord does not know is not kept
    missing = hook.url.replace(hook.id, "123456789012345678")
    refused = await client.post(
        "/ui/destinations", data={"csrf": csrf_of(page), "name": "main", "webhook_url": missing}
    )
    assert refused.status_code == 422
    assert "Discord says this webhook does not exist" in refused.text
    bad = await client.post(
        "/ui/destinations", data={"csrf": csrf_of(page), "name": "main", "webhook_url": "nope"}
    )
    assert bad.status_code == 422
    # a real one is
    added = await client.post(
        "/ui/destinations", data={"csrf": csrf_of(page), "name": "main", "webhook_url": hook.url}
    )
    assert added.status_code == 303
    listing = await client.get("/ui/destinations")
    assert ">main</th>" in listing.text and "alive" in listing.text
    assert hook.token not in listing.text
    # it dies: Discord refuses it for a result
    emulator.delete_webhook(hook.id)
    await client.post(
        "/v1/results", json=submission("wf_d", destination={"name": "main"}), headers=ACME
    )
    await worker.drain()
    dead = await client.get("/ui/destinations")
    assert "dead</span>" in dead.text and "Revive" in dead.text
    overview = await client.get("/ui/")
    assert "Dead webhooks" in overview.text
    # reviving asks Discord again: still refused, it stays dead
    still = await client.post("/ui/destinations/main/revive", data={"csrf": csrf_of(dead)})
    assert still.status_code == 422
    # removed
    removed = await client.post("/ui/destinations/main/delete", data={"csrf": csrf_of(dead)})
    assert removed.status_code == 303
    assert (await client.get("/v1/destinations/main", headers=ACME)).status_code == 404


async def test_reviving_a_webhook_discord_takes_again_makes_it_alive(
    client: httpx.AsyncClient, emulator: DiscordEmulator, worker: Worker
) -> None:
    # given a destination marked dead by a refusal Discord no longer makes (the emulator's
    # fault injection stands in for a webhook fixed by its owner)
    hook = emulator.create_webhook()
    response = await client.put(
        "/v1/destinations/main", json={"webhook_url": hook.url}, headers=ACME
    )
    assert response.status_code == 201
    services = client._transport.app.state.services  # type: ignore[attr-defined]
    await services.store.kill_webhook(hook.id, hook.token, reason="dead_webhook", now=0.0)
    await sign_in(client)
    page = await client.get("/ui/destinations")
    assert "dead</span>" in page.text
    revived = await client.post("/ui/destinations/main/revive", data={"csrf": csrf_of(page)})
    assert (revived.status_code, revived.headers["location"]) == (
        303,
        "/ui/destinations?done=revived",
    )
    assert await services.store.dead_reason(hook.id, hook.token) is None


async def test_runs_list_a_run_and_its_progress_fragment(
    client: httpx.AsyncClient, emulator: DiscordEmulator
) -> None:
    hook = emulator.create_webhook()
    started = await client.post(
        "/v1/runs",
        json={
            "workflow_id": "run_1",
            "title": "Checking a video",
            "destination": {"webhook_url": hook.url},
            "requester": {"user_id": USER_ID},
        },
        headers=ACME,
    )
    assert started.status_code == 201, started.text
    progress = await client.put(
        "/v1/runs/run_1/progress",
        json={"stage": "Transcribing", "current": 3, "total": 10},
        headers=ACME,
    )
    assert progress.status_code == 202
    await sign_in(client)
    listing = await client.get("/ui/runs")
    assert 'href="/ui/runs/run_1"' in listing.text and "Transcribing 3/10" in listing.text
    page = await client.get("/ui/runs/run_1")
    assert 'data-poll="/ui/runs/run_1/progress"' in page.text
    fragment = await client.get("/ui/runs/run_1/progress")
    assert fragment.status_code == 200
    assert '<progress id="run-bar" max="10" value="3">' in fragment.text
    assert "<html" not in fragment.text
    client.cookies.clear()
    await sign_in(client, key=OTHER_KEY)
    assert (await client.get("/ui/runs/run_1")).status_code == 404
    assert (await client.get("/ui/runs/run_1/progress")).status_code == 404


async def test_a_large_results_json_is_cut_on_the_page_and_whole_in_the_download(
    client: httpx.AsyncClient, emulator: DiscordEmulator
) -> None:
    hook = emulator.create_webhook()
    results = {"transcript": "word " * 60_000}  # 300,000 characters
    await submit_to(client, hook, "wf_big", results=results)
    await sign_in(client)
    page = await client.get("/ui/results/wf_big")
    assert page.status_code == 200
    assert "Only the first 200000 characters are shown here" in page.text
    assert len(page.text) < 260_000
    download = await client.get("/ui/results/wf_big/results.json")
    assert download.json() == results
