"""Shared pieces of the benchmarks: run a ``result-relay serve`` process, a minimal HTTP/1.1
keep-alive client, percentiles and CPU accounting, and a fresh database for one bench.

Everything here talks to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from service.crypto import generate_key
from service.testing import free_port

# One key for the whole bench run: a part that restarts a server on its database reads it back.
BENCH_SECRET_KEY = generate_key()

BENCH_TENANT = "bench"
BENCH_API_KEY = "bench-key-0123456789abcdef"
STARTUP_TIMEOUT = 15.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cli_command() -> list[str]:
    """The ``result-relay`` console script of this interpreter's environment, else ``-m``."""
    script = Path(sys.executable).with_name("result-relay")
    return [str(script)] if script.exists() else [sys.executable, "-m", "service"]


@dataclass
class Server:
    host: str
    port: int
    process: subprocess.Popen[bytes]
    stderr_path: Path

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process, all its threads included."""
        return process_cpu_seconds(self.process.pid)


@contextlib.contextmanager
def running_server(
    database_url: str | None = None, extra_env: Mapping[str, str] | None = None
) -> Iterator[Server]:
    """Start ``result-relay serve`` on a free port (temp SQLite DB unless given); stop it after.

    Discord is a local port that refuses connections (a bound socket that never listens), so
    nothing a bench does can reach the internet even when the delivery worker runs.
    """
    with (
        tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp,
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as black_hole,
    ):
        black_hole.bind(("127.0.0.1", 0))
        env = dict(os.environ)
        env.update(
            {
                "RELAY_DATABASE_URL": database_url or f"sqlite:///{tmp}/relay.db",
                "RELAY_API_KEYS": f"{BENCH_TENANT}:{BENCH_API_KEY}",
                "RELAY_LOG_FORMAT": "json",
                "RELAY_DISCORD_API_BASE": f"http://127.0.0.1:{black_hole.getsockname()[1]}/api",
            }
        )
        env.setdefault("RELAY_SECRET_KEY", BENCH_SECRET_KEY)
        env.update(extra_env or {})
        port = free_port()
        stderr_path = Path(tmp) / "server.stderr"
        with stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                [*cli_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
            server = Server("127.0.0.1", port, process, stderr_path)
            try:
                _wait_healthy(server)
                yield server
            finally:
                _stop(process)


@contextlib.contextmanager
def fresh_database(database_url: str | None = None) -> Iterator[str]:
    """A database of its own for one bench, as a ``RELAY_DATABASE_URL``; removed after.

    None: a SQLite file in a temporary directory (it survives the processes that use it). A
    ``postgresql://`` URL: a uniquely named database created on that server (through its
    ``postgres`` database, else the one named) and dropped at the end. Any other URL is used as
    given.
    """
    if database_url is None:
        with tempfile.TemporaryDirectory(prefix="relay-bench-db-") as tmp:
            yield f"sqlite:///{tmp}/relay.db"
    elif database_url.startswith(("postgresql://", "postgres://")):
        name = f"relay_bench_{os.getpid()}_{secrets.token_hex(4)}"
        asyncio.run(_postgres_admin(database_url, f'CREATE DATABASE "{name}"'))
        try:
            yield urlsplit(database_url)._replace(path=f"/{name}").geturl()
        finally:
            drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'  # PostgreSQL 13+
            asyncio.run(_postgres_admin(database_url, drop))
    else:
        yield database_url


async def _postgres_admin(database_url: str, statement: str) -> None:
    """Run one statement outside a transaction on the server of ``database_url``."""
    import asyncpg  # the "postgres" extra

    try:
        conn = await asyncpg.connect(urlsplit(database_url)._replace(path="/postgres").geturl())
    except asyncpg.InvalidCatalogNameError:  # no "postgres" database: use the one named
        conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _wait_healthy(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"result-relay serve exited with {server.process.returncode}:\n"
                + server.stderr_path.read_text(errors="replace")
            )
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{server.base_url}/healthz", timeout=1.0).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError("result-relay serve did not become healthy in time")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def process_cpu_seconds(pid: int) -> float:
    """utime + stime from /proc (Linux), in seconds; covers every thread of the process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies over all CPUs, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return float(sum(values) - idle), float(sum(values))


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (``q`` in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


# -- a minimal HTTP/1.1 keep-alive client --------------------------------------------------------
# Far cheaper per request than httpx: the request is pre-built bytes, the response is split on the
# header terminator and read by Content-Length. Enough for the service's own JSON answers.


class RawConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> RawConnection:
        reader, writer = await asyncio.open_connection(host, port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
            elif name.lower() == b"transfer-encoding":
                raise RuntimeError("chunked responses are not supported by the bench client")
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


def raw_request(
    method: str, path: str, host: str, headers: Mapping[str, str], body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method in {"POST", "PUT", "PATCH"}:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
