"""The operator's dashboard in a real Chromium: find an orphaned result, read why, redeliver it
elsewhere and see it arrive; a wrong key, a form without its CSRF token and another tenant's
result are refused."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

pytest.importorskip("playwright", reason="playwright is not installed (pip install -e '.[dev]')")

from playwright.sync_api import Page, expect

from service.testing.models import EmulatedWebhook
from tests.acceptance._support import API_KEY, OTHER_API_KEY, auth, wait_until

from .conftest import Stack, screenshot


@pytest.fixture(scope="module")
def hooks(stack: Stack) -> Iterator[dict[str, EmulatedWebhook]]:
    """acme's result delivered to a live webhook, another orphaned by a deleted one, and a spare
    webhook to send the orphan to instead."""
    emulator = stack.emulator
    live, gone, spare = (emulator.create_webhook() for _ in range(3))
    emulator.delete_webhook(gone.id)
    with httpx.Client(base_url=stack.base_url, headers=auth(), timeout=10) as api:
        for workflow_id, hook in (("wf_ok", live), ("wf_lost", gone), ("wf_ok_2", live)):
            body = {
                "workflow_id": workflow_id,
                "results": {"summary": f"checked {workflow_id}", "score": 0.12},
                "url": "https://youtube.com/watch?v=abc",
                "destination": {"webhook_url": hook.url},
            }
            assert api.post("/v1/results", json=body).status_code == 202

        def settled() -> bool:
            listing = api.get("/v1/results", params={"status": "pending"}).json()
            return listing["items"] == []

        wait_until(settled, 20, "the results to be delivered or orphaned")
    yield {"live": live, "gone": gone, "spare": spare}


def sign_in(page: Page, key: str = API_KEY) -> None:
    page.goto("/ui/signin")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def test_an_operator_redelivers_an_orphan_to_another_destination(
    page: Page, stack: Stack, hooks: dict[str, EmulatedWebhook]
) -> None:
    spare = hooks["spare"]
    # given the operator signed in, on the overview
    sign_in(page)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    screenshot(page, "overview")
    # and a spare destination added on the destinations page (Discord checks it)
    page.get_by_role("link", name="Destinations").click()
    page.get_by_label("Name").fill("spare")
    page.get_by_label("Webhook URL").fill(spare.url)
    page.get_by_role("button", name="Check with Discord and save").click()
    expect(page.get_by_role("status")).to_contain_text("Discord accepted the webhook")
    # when they open the results, the orphan shows among the delivered ones
    page.get_by_role("link", name="Results", exact=True).click()
    rows = page.locator("table.list tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator("tr.row-orphaned")).to_have_count(1)
    expect(page.locator("tr.row-delivered")).to_have_count(2)
    screenshot(page, "results")
    page.get_by_role("link", name="wf_lost").click()
    # then they read why it was not delivered
    expect(page.locator("#result-status")).to_have_text("orphaned")
    expect(page.locator("#why")).to_contain_text("Discord says the webhook was deleted")
    expect(page.locator(".timeline li")).to_have_count(1)
    # and redeliver it to the spare destination
    page.get_by_label("Destination").select_option("spare")
    page.get_by_role("button", name="Redeliver").click()
    expect(page.get_by_role("status")).to_contain_text("Queued for delivery again")
    wait_until(lambda: len(stack.emulator.messages(spare.id)) == 1, 20, "the redelivery")
    page.reload()
    expect(page.locator("#result-status")).to_have_text("delivered")
    screenshot(page, "result-redelivered")
    # Discord holds the message, with no mention allowed
    [message] = stack.emulator.messages(spare.id)
    assert message.embeds[0]["footer"]["text"].endswith("wf_lost")
    assert message.allowed_mentions is not None and message.allowed_mentions["parse"] == []
    # and no page showed a token
    assert spare.token not in page.content()


def test_a_wrong_key_is_refused(page: Page, stack: Stack) -> None:
    sign_in(page, key="not-the-key-0123456789")
    expect(page.get_by_role("alert")).to_have_text("That API key is not valid.")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "wrong-key")
    page.goto("/ui/results")
    expect(page).to_have_url(f"{stack.base_url}/ui/signin")


def test_a_form_without_its_csrf_token_is_refused(
    page: Page, stack: Stack, hooks: dict[str, EmulatedWebhook]
) -> None:
    sign_in(page)
    page.goto("/ui/results/wf_ok")
    before = len(stack.emulator.messages(hooks["live"].id))
    # the form loses its token (as a forged cross-site form would not have it)
    page.locator("form[action$='/redeliver'] input[name=csrf]").evaluate("e => e.remove()")
    with page.expect_response(lambda r: r.url.endswith("/redeliver")) as answer:
        page.get_by_role("button", name="Redeliver").click()
    assert answer.value.status == 403
    expect(page.get_by_role("heading", name="Refused")).to_be_visible()
    screenshot(page, "csrf-refused")
    # nothing was redelivered
    with httpx.Client(base_url=stack.base_url, headers=auth(), timeout=10) as api:
        assert api.get("/v1/results/wf_ok").json()["status"] == "delivered"
    assert len(stack.emulator.messages(hooks["live"].id)) == before


def test_another_tenants_result_is_a_404(
    page: Page, stack: Stack, hooks: dict[str, EmulatedWebhook]
) -> None:
    sign_in(page, key=OTHER_API_KEY)
    response = page.goto("/ui/results/wf_lost")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    screenshot(page, "other-tenant-404")
    page.goto("/ui/results")
    expect(page.get_by_text("No results match.")).to_be_visible()


def test_a_run_page_follows_the_runs_progress(page: Page, stack: Stack) -> None:
    # given a live run with some progress, open on its page
    hook = stack.emulator.create_webhook()
    with httpx.Client(base_url=stack.base_url, headers=auth(), timeout=10) as api:
        body = {"workflow_id": "run_live", "destination": {"webhook_url": hook.url}}
        assert api.post("/v1/runs", json=body).status_code == 201
        progress = {"stage": "Transcribing", "current": 1, "total": 4}
        assert api.put("/v1/runs/run_live/progress", json=progress).status_code == 202
        sign_in(page)
        page.goto("/ui/runs/run_live")
        expect(page.locator("#progress")).to_contain_text("1 of 4")
        # when the bot reports more progress
        progress = {"stage": "Scoring", "current": 3, "total": 4}
        assert api.put("/v1/runs/run_live/progress", json=progress).status_code == 202
        # then the page shows it without a reload (its script polls the progress fragment)
        expect(page.locator("#progress")).to_contain_text("Scoring", timeout=15_000)
        expect(page.locator("#progress")).to_contain_text("3 of 4")
        screenshot(page, "run-progress")
