"""A scripted relay for the run tests (httpx.MockTransport): answers runs and results, records
what it was sent, and takes per-route overrides."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bot_client import RelayClient, RetryPolicy

FAST_RETRY = RetryPolicy(attempts=3, base=0.001, cap=0.01)

KEY = "k" * 20
WF = "wf_run_1"
NOW = "2026-12-03T07:00:00Z"


def run_json(workflow_id: str = WF, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "workflow_id": workflow_id,
        "status": "running",
        "title": "Analysis",
        "url": None,
        "depth": None,
        "progress": None,
        "created_at": NOW,
        "updated_at": NOW,
        "token_expires_at": None,
        "handoff_at": None,
        "progress_message": None,
        "timeout_seconds": 7200,
        "result_status": None,
        "error": None,
        "a_future_field": 1,
    }
    body.update(overrides)
    return body


RECORD: dict[str, Any] = {
    "workflow_id": WF,
    "status": "pending",
    "created_at": NOW,
    "updated_at": NOW,
    "retrieval_info": {"command": f"/retrieve_results workflow_id:{WF}", "reason": None},
    "results": {},
}

Handler = Callable[[httpx.Request], Awaitable[httpx.Response | Exception]]


class FakeRelay:
    """A relay answering runs and results; ``routes`` overrides an answer per (method, kind)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, Any]] = []
        self.routes: dict[tuple[str, str], Handler] = {}

    def sent(self, method: str, kind: str) -> list[Any]:
        return [body for m, k, body in self.seen if (m, k) == (method, kind)]

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        kind = "progress" if path.endswith("/progress") else path.split("/")[2]
        body: Any = json.loads(request.content) if request.content else None
        self.seen.append((request.method, kind, body))
        custom = self.routes.get((request.method, kind))
        if custom is not None:
            answer = await custom(request)
            if isinstance(answer, Exception):
                raise answer
            return answer
        if kind == "results":
            return httpx.Response(202, json=RECORD)
        if kind == "progress":
            return httpx.Response(202, json=run_json(progress={**body, "updated_at": NOW}))
        return httpx.Response(201, json=run_json())

    def client(self, **kwargs: Any) -> RelayClient:
        kwargs.setdefault("retries", FAST_RETRY)
        return RelayClient(
            "http://relay", api_key=KEY, transport=httpx.MockTransport(self.handle), **kwargs
        )


def always(answer: Callable[[], httpx.Response | Exception]) -> Handler:
    async def handler(request: httpx.Request) -> httpx.Response | Exception:
        return answer()

    return handler


def error(status: int, code: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": code}})
