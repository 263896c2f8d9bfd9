"""`EmulatorServer`: a `DiscordEmulator` served by uvicorn on a free 127.0.0.1 port in a
background thread, for process-level tests, benchmarks and the demo.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from types import TracebackType
from typing import Self

import uvicorn

from service.testing.emulator import DiscordEmulator
from service.testing.faults import ConnectionDropped

START_TIMEOUT_S = 10.0


class _QuietDrops(logging.Filter):
    """Keeps uvicorn from logging a traceback for each deliberately dropped connection."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDropped)


_QUIET_DROPS = _QuietDrops()


def uvicorn_config(
    emulator: DiscordEmulator, *, host: str, port: int, log_level: str
) -> uvicorn.Config:
    # No access log: request lines carry webhook tokens in their paths.
    config = uvicorn.Config(
        emulator.app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    # After Config: it (re)configures uvicorn's loggers. addFilter ignores duplicates.
    logging.getLogger("uvicorn.error").addFilter(_QUIET_DROPS)
    return config


class EmulatorServer:
    """Serves `emulator` (a fresh one by default) until the context exits.

    with EmulatorServer() as server:
        webhook = server.emulator.create_webhook()
        httpx.post(f"{server.api_base}/webhooks/{webhook.id}/{webhook.token}?wait=true", ...)
    """

    def __init__(
        self,
        emulator: DiscordEmulator | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        self.emulator = emulator if emulator is not None else DiscordEmulator()
        self._host = host
        self._requested_port = port
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("EmulatorServer is not running")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def api_base(self) -> str:
        """What the service takes as RELAY_DISCORD_API_BASE."""
        return f"{self.base_url}/api/v10"

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("EmulatorServer already started")
        # Binding here (port 0: the OS picks a free one) removes any race on the port number.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._requested_port))
        self._port = sock.getsockname()[1]
        config = uvicorn_config(
            self.emulator, host=self._host, port=self._port, log_level=self._log_level
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="discord-emulator", daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                sock.close()
                raise RuntimeError("discord emulator failed to start")
            time.sleep(0.005)

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout=START_TIMEOUT_S)
        self._port = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        # Starting blocks until uvicorn listens; keep the caller's event loop free meanwhile.
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)
