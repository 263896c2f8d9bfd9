"""Serving an ASGI app on a real local port from a background thread, for tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from starlette.types import ASGIApp

from service.testing import AppServer


@contextmanager
def serve_in_thread(app: ASGIApp) -> Iterator[str]:
    """Run ``app`` (with its lifespan) on 127.0.0.1; yields the base URL."""
    with AppServer(app, name="relay-under-test") as server:
        yield server.base_url
