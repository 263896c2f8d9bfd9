"""Helpers for the acceptance tests: run the real ``result-relay`` command as a child process.

Acceptance tests talk to the service only the way its users do: over a real TCP socket on
127.0.0.1, through the command line, and by reading its stderr. Each server gets its own SQLite
file under ``tmp_path`` so a test can stop, SIGKILL and restart it on the same database.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import pytest

from service.testing import free_port
from tests.support import SECRET_KEY

TENANT = "acme"
API_KEY = "acme-key-0123456789abcdef"  # static keys must be 16+ characters
OTHER_TENANT = "globex"
OTHER_API_KEY = "globex-key-0123456789abcdef"

STARTUP_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0

# A syntactically valid channel webhook whose token is obviously fake and easy to grep for.
WEBHOOK_ID = "112233445566778899"
FAKE_TOKEN = "T" * 68
WEBHOOK_URL = f"https://discord.com/api/webhooks/{WEBHOOK_ID}/{FAKE_TOKEN}"


def auth(key: str = API_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def submission(workflow_id: str, results: dict[str, object] | None = None) -> dict[str, object]:
    """A minimal valid POST /v1/results body."""
    return {
        "workflow_id": workflow_id,
        "results": results if results is not None else {"summary": f"result of {workflow_id}"},
        "destination": {"webhook_url": WEBHOOK_URL},
    }


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def cli_command() -> list[str]:
    """The installed ``result-relay`` console script next to this interpreter, else ``-m``."""
    script = Path(sys.executable).with_name("result-relay")
    return [str(script)] if script.exists() else [sys.executable, "-m", "service"]


_black_hole: socket.socket | None = None


def discord_black_hole() -> str:
    """A Discord API base on 127.0.0.1 that refuses every connection.

    ``serve`` runs the delivery worker, which would otherwise call the real discord.com with the
    tests' fake tokens. A bound socket that never listens answers each connect with a reset, so
    deliveries fail as retryable connection errors and results stay pending. It lives as long as
    the test process, so no other program can take the port meanwhile.
    """
    global _black_hole
    if _black_hole is None:
        _black_hole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        _black_hole.bind(("127.0.0.1", 0))
    return f"http://127.0.0.1:{_black_hole.getsockname()[1]}/api/v10"


def relay_env(database_url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any ``RELAY_*`` leaking in, plus the test's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env.update(
        {
            "RELAY_DATABASE_URL": database_url,
            "RELAY_DISCORD_API_BASE": discord_black_hole(),
            "RELAY_API_KEYS": f"{TENANT}:{API_KEY},{OTHER_TENANT}:{OTHER_API_KEY}",
            "RELAY_LOG_FORMAT": "json",
            "RELAY_SECRET_KEY": SECRET_KEY,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


@dataclass
class Server:
    """One running ``result-relay serve`` process."""

    base_url: str
    process: subprocess.Popen[bytes]
    stderr_path: Path
    _stderr_file: IO[bytes] = field(repr=False)

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10.0, **kwargs)  # type: ignore[arg-type]

    def async_client(self, **kwargs: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=10.0, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> int:
        """SIGTERM (graceful shutdown), then SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        self._close()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: no shutdown handler, no final commit, no flush. A crash."""
        self.process.kill()
        self.process.wait(STOP_TIMEOUT)
        self._close()

    def _close(self) -> None:
        self._stderr_file.close()


@dataclass
class Relay:
    """Starts servers and runs CLI commands against one database; stops every server it made."""

    tmp_path: Path
    database_url: str
    servers: list[Server] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, extra_env: Mapping[str, str] | None = None) -> Server:
        port = free_port()
        index = len(self.servers)
        stderr_path = self.tmp_path / f"server-{index}.stderr"
        stderr_file = stderr_path.open("wb")
        # stderr goes to a file, not a pipe: a chatty server can never block on a full pipe.
        process = subprocess.Popen(
            [*cli_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=relay_env(self.database_url, extra_env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr_file,
        )
        server = Server(f"http://127.0.0.1:{port}", process, stderr_path, stderr_file)
        self.servers.append(server)
        _wait_healthy(server)
        return server

    def cli(
        self, *args: str, extra_env: Mapping[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*cli_command(), *args],
            env=relay_env(self.database_url, extra_env),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"result-relay {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def spawn(
        self, *args: str, extra_env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """A long-running ``result-relay`` command (e.g. ``worker``), stopped at teardown."""
        process = subprocess.Popen(
            [*cli_command(), *args],
            env=relay_env(self.database_url, extra_env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(STOP_TIMEOUT)


def _wait_healthy(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with httpx.Client(base_url=server.base_url, timeout=1.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                server.stop()
                pytest.fail(
                    f"result-relay serve exited with {server.process.returncode} during start-up"
                    f"\nstderr:\n{server.stderr()}"
                )
            with contextlib.suppress(httpx.TransportError):
                if client.get("/healthz").status_code == 200:
                    return
            time.sleep(0.05)
    server.stop()
    pytest.fail(f"result-relay serve not healthy after {STARTUP_TIMEOUT:g} s\n{server.stderr()}")
