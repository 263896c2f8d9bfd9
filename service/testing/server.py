"""Serving an ASGI app with uvicorn on a free 127.0.0.1 port in a background thread.

`AppServer` serves any app (the relay itself, in tests and the demo); `EmulatorServer` serves a
`DiscordEmulator`, for process-level tests, benchmarks and the demo.
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
from starlette.types import ASGIApp

from service.testing.emulator import DiscordEmulator
from service.testing.faults import ConnectionDropped

START_TIMEOUT_S = 10.0


class _QuietDrops(logging.Filter):
    """Keeps uvicorn from logging a traceback for each deliberately dropped connection."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDropped)


_QUIET_DROPS = _QuietDrops()


def free_port() -> int:
    """A 127.0.0.1 port that was free a moment ago (for a process that binds it itself)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AppServer:
    """Serves `app` (with its lifespan) until the context exits.

    with AppServer(app) as server:
        httpx.get(f"{server.base_url}/healthz")
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        lifespan: str = "auto",
        name: str = "app-server",
    ) -> None:
        self.app = app
        self._host = host
        self._requested_port = port
        self._log_level = log_level
        self._lifespan = lifespan
        self._name = name
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def config(self, port: int) -> uvicorn.Config:
        """The uvicorn configuration (``python -m service.testing`` runs it in the foreground)."""
        return uvicorn.Config(
            self.app,
            host=self._host,
            port=port,
            log_level=self._log_level,
            log_config=None,
            access_log=False,  # request lines may carry webhook tokens in their paths
            lifespan=self._lifespan,  # type: ignore[arg-type]
            timeout_graceful_shutdown=2,
        )

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        # Binding here (port 0: the OS picks a free one) removes any race on the port number.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._requested_port))
        self._port = sock.getsockname()[1]
        server = uvicorn.Server(self.config(self._port))
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=self._name, daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                sock.close()
                raise RuntimeError(f"{self._name} failed to start")
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


class EmulatorServer(AppServer):
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
        super().__init__(
            self.emulator.app,
            host=host,
            port=port,
            log_level=log_level,
            lifespan="off",
            name="discord-emulator",
        )

    @property
    def api_base(self) -> str:
        """What the service takes as RELAY_DISCORD_API_BASE."""
        return f"{self.base_url}/api/v10"

    def config(self, port: int) -> uvicorn.Config:
        config = super().config(port)
        # After Config: it (re)configures uvicorn's loggers. addFilter ignores duplicates.
        logging.getLogger("uvicorn.error").addFilter(_QUIET_DROPS)
        return config
