"""Fixtures for the acceptance tests: a fresh database per test, servers stopped at teardown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ._support import Relay, Server


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    """A fresh database; start servers with ``relay.start()``, run the CLI with ``relay.cli()``."""
    manager = Relay(tmp_path, f"sqlite:///{tmp_path / 'relay.db'}")
    try:
        yield manager
    finally:
        manager.stop_all()


@pytest.fixture
def server(relay: Relay) -> Server:
    """One server on a fresh database with the default settings."""
    return relay.start()
