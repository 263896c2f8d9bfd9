"""Listing results and runs: the query of a page, and every item across pages by cursor."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Protocol, TypeVar


def list_params(
    status: str | None,
    url: str | None,
    q: str | None,
    requester_id: str | int | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
) -> dict[str, str]:
    """A listing's query parameters; a filter left out is not sent."""
    params = {
        "status": status,
        "url": url,
        "q": q,
        "requester_id": None if requester_id is None else str(requester_id),
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "limit": str(limit),
        "cursor": cursor,
    }
    return {k: v for k, v in params.items() if v is not None}


_Item = TypeVar("_Item", covariant=True)


class Page(Protocol[_Item]):
    @property
    def items(self) -> Sequence[_Item]: ...

    @property
    def next_cursor(self) -> str | None: ...


async def every(fetch: Callable[[str | None], Awaitable[Page[_Item]]]) -> AsyncIterator[_Item]:
    """Every item of a paged listing, fetching the next page (by its cursor) as the caller
    iterates."""
    cursor: str | None = None
    while True:
        page = await fetch(cursor)
        for item in page.items:
            yield item
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
