"""Ingest benchmark: durable ``POST /v1/results`` against ``GET /healthz`` on one server.

    python bench/ingest.py [--seconds 10] [--concurrency 32] [--database-url sqlite:///...]

Starts one ``result-relay serve`` on a free 127.0.0.1 port with a temporary SQLite database (or,
for a ``postgresql://`` URL, a database created on that server and dropped after), then, against
that one server, measures two phases, each after a short warm-up:

* ``GET /healthz``: the cost of the HTTP stack alone (uvicorn, FastAPI, middleware, access log);
* ``POST /v1/results`` with ~1 KB results and unique workflow ids: validation, hashing, one
  durable group commit (WAL, ``synchronous=FULL``) per batch, and the 202 body;
* heavy clients, on a fresh server of their own: four concurrent ~24 MB submissions (retried
  after ``Retry-After`` when the service answers 503 ``overloaded``), while ``GET /healthz`` is
  asked every 10 ms on its own connection. It prints the server's peak RSS (``VmHWM``) against
  its RSS before the uploads, and the ``/healthz`` latencies meanwhile: the event loop must
  stay free while megabytes are parsed, hashed, stored and answered.

It prints each rate, latency p50/p99, the CPU the server and the client used, and the ratio
POST/healthz: how much of the HTTP stack's throughput survives a durable accept. The delivery
worker is off (``RELAY_WORKER_ENABLED=false``) and Discord points at a refusing local port:
this bench measures ingest only, and never leaves 127.0.0.1.

The load generator is the part to be honest about. The machine has 2 cores shared by server and
client, and a client that burns more CPU per request than the server caps the cheap ``/healthz``
far below what the server can do, which flatters the ratio. So by default the client is a minimal
HTTP/1.1 keep-alive client on raw asyncio streams (pre-built request bytes, uvloop when present),
in ``--processes`` processes (default 1), each with its own event loop and its share of the
``--concurrency`` connections. ``--client httpx`` runs the same load through ``httpx.AsyncClient``
for comparison. On the 2-core development VM the raw client costs 60-110 us of CPU per request
(about 20 % of a core at healthz rates), httpx 2,400-4,100 us: with httpx the client, not the
server, is the bottleneck (healthz 225/s, ratio 1.05, a meaningless figure), and a second raw
client process brought no gain, only less CPU for the server. The report prints server, client
and whole-machine CPU for each phase, so a reader can check who was the bottleneck: the server
near 100 % of a core (its event loop is one thread) means the rate is the server's; the machine
near 100 % with the server well below means something else competed for the CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common
from _common import BENCH_API_KEY, RawConnection, Server, percentile, raw_request

RESULT_BYTES = 1024
BIG_BYTES = 24 * 1024 * 1024
BIG_UPLOADS = 4
HEALTHZ_EVERY = 0.01  # seconds between /healthz probes during the big uploads
START_MARGIN = 0.2  # seconds between "everyone is connected" and the first request


@dataclass(frozen=True)
class Phase:
    name: str
    method: str
    path: str
    expected_status: int
    posts: bool


HEALTHZ = Phase("GET /healthz", "GET", "/healthz", 200, posts=False)
POST = Phase("POST /v1/results", "POST", "/v1/results", 202, posts=True)


@dataclass(frozen=True)
class ClientJob:
    """What one client process runs: ``connections`` workers until ``end`` (monotonic)."""

    client: str
    host: str
    port: int
    phase: Phase
    connections: int
    tag: str
    warmup: float
    seconds: float


@dataclass
class PhaseResult:
    phase: Phase
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    server_cpu: float
    client_cpu: float
    machine_busy: float  # fraction of all cores busy during the window

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def _results_payload() -> dict[str, Any]:
    # ~1 KB of results JSON, shaped like a real analysis rather than one long string.
    claims = [
        {"text": f"claim number {i} " + "lorem ipsum " * 4, "score": i / 10} for i in range(9)
    ]
    payload: dict[str, Any] = {"summary": "", "deception_score": 0.12, "claims": claims}
    payload["summary"] = "s" * (RESULT_BYTES - len(json.dumps(payload)))
    return payload


def _body_parts() -> tuple[bytes, bytes]:
    """The POST body split around its workflow id, so each request costs one concatenation."""
    body = json.dumps(
        {
            "workflow_id": "\0",
            "results": _results_payload(),
            "destination": {
                "webhook_url": "https://discord.com/api/webhooks/112233445566778899/" + "B" * 68
            },
        }
    ).encode()
    before, after = body.split(b"\\u0000")
    return before, after


# -- client processes ------------------------------------------------------------------------


def _client_main(job: ClientJob, ready: Any, go: Any, start_at: Any, out: Any) -> None:
    with contextlib.suppress(ImportError):
        import uvloop  # the server runs on uvloop too; the cheaper the client, the better

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    out.put(asyncio.run(_client(job, ready, go, start_at)))


async def _client(job: ClientJob, ready: Any, go: Any, start_at: Any) -> dict[str, Any]:
    send = await (_raw_sender(job) if job.client == "raw" else _httpx_sender(job))
    ready.put(os.getpid())
    await asyncio.get_running_loop().run_in_executor(None, go.wait)
    begin = start_at.value + job.warmup
    end = begin + job.seconds
    latencies: list[float] = []
    errors = 0
    cpu: dict[str, float] = {}

    async def worker(index: int) -> None:
        nonlocal errors
        await asyncio.sleep(max(0.0, start_at.value - time.monotonic()))
        sequence = 0
        while True:
            sequence += 1
            t0 = time.monotonic()
            status = await send(index, f"{job.tag}-{index}-{sequence}")
            t1 = time.monotonic()
            if t1 > end:
                return
            if t0 >= begin:  # only requests wholly inside the window count
                if status == job.phase.expected_status:
                    latencies.append(t1 - t0)
                else:
                    errors += 1

    async def cpu_meter() -> None:
        await asyncio.sleep(max(0.0, begin - time.monotonic()))
        cpu["begin"] = time.process_time()
        await asyncio.sleep(max(0.0, end - time.monotonic()))
        cpu["end"] = time.process_time()

    await asyncio.gather(cpu_meter(), *(worker(i) for i in range(job.connections)))
    await send.close()  # type: ignore[attr-defined]
    return {"latencies": latencies, "errors": errors, "cpu": cpu["end"] - cpu["begin"]}


async def _raw_sender(job: ClientJob) -> Any:
    host = f"{job.host}:{job.port}"
    headers = {"Authorization": f"Bearer {BENCH_API_KEY}"}
    connections = [await RawConnection.open(job.host, job.port) for _ in range(job.connections)]
    if job.phase.posts:
        before, after = _body_parts()
        post_headers = {**headers, "Content-Type": "application/json"}

        async def send(index: int, workflow_id: str) -> int:
            body = before + workflow_id.encode() + after
            raw = raw_request("POST", job.phase.path, host, post_headers, body)
            return (await connections[index].request(raw))[0]
    else:
        request = raw_request(job.phase.method, job.phase.path, host, headers)

        async def send(index: int, workflow_id: str) -> int:
            return (await connections[index].request(request))[0]

    async def close() -> None:
        for connection in connections:
            await connection.close()

    send.close = close  # type: ignore[attr-defined]
    return send


async def _httpx_sender(job: ClientJob) -> Any:
    import httpx

    client = httpx.AsyncClient(
        base_url=f"http://{job.host}:{job.port}",
        headers={"Authorization": f"Bearer {BENCH_API_KEY}"},
        limits=httpx.Limits(
            max_connections=job.connections, max_keepalive_connections=job.connections
        ),
        timeout=30.0,
    )
    before, after = _body_parts()

    async def send(index: int, workflow_id: str) -> int:
        if job.phase.posts:
            body = before + workflow_id.encode() + after
            response = await client.post(
                job.phase.path, content=body, headers={"Content-Type": "application/json"}
            )
        else:
            response = await client.get(job.phase.path)
        return response.status_code

    send.close = client.aclose  # type: ignore[attr-defined]
    return send


# -- heavy clients: four concurrent 24 MB submissions ---------------------------------------


def _big_body(workflow_id: str) -> bytes:
    """~24 MB shaped like a long analysis: half a transcript, half many small records (the
    records cost far more memory once parsed than their JSON does)."""
    segment = {"start": 12.5, "end": 17.25, "speaker": "SPEAKER_01", "text": "lorem ipsum " * 6}
    one = len(json.dumps(segment)) + 2
    segments = [segment] * (BIG_BYTES // 2 // one)
    body = {
        "workflow_id": workflow_id,
        "results": {"summary": "big", "transcript": "", "segments": segments},
        "destination": {
            "webhook_url": "https://discord.com/api/webhooks/112233445566778899/" + "B" * 68
        },
    }
    body["results"]["transcript"] = "t" * (BIG_BYTES - len(json.dumps(body)))  # type: ignore[index]
    return json.dumps(body).encode()


def _upload_main(host: str, port: int, tag: str, out: Any) -> None:
    out.put(asyncio.run(_uploads(host, port, tag)))


async def _uploads(host: str, port: int, tag: str) -> dict[str, Any]:
    """POST the big bodies at once; each retries after Retry-After on 503 ``overloaded``."""
    hostport = f"{host}:{port}"
    headers = {"Authorization": f"Bearer {BENCH_API_KEY}", "Content-Type": "application/json"}

    async def upload(index: int) -> tuple[int, int, float]:
        raw = raw_request("POST", "/v1/results", hostport, headers, _big_body(f"{tag}-{index}"))
        refusals = 0
        start = time.monotonic()
        while True:
            connection = await RawConnection.open(host, port)
            try:
                status, _, retry_after = await _request_reading_retry_after(connection, raw)
            finally:
                await connection.close()
            if status != 503:
                return status, refusals, time.monotonic() - start
            refusals += 1
            await asyncio.sleep(retry_after)

    outcomes = await asyncio.gather(*(upload(i) for i in range(BIG_UPLOADS)))
    return {
        "statuses": [o[0] for o in outcomes],
        "refusals": sum(o[1] for o in outcomes),
        "seconds": max(o[2] for o in outcomes),
    }


async def _request_reading_retry_after(
    connection: RawConnection, raw: bytes
) -> tuple[int, bytes, float]:
    # A refusal may come (and the connection close) before the whole body is written.
    connection.writer.write(raw)
    head = await connection.reader.readuntil(b"\r\n\r\n")
    status, length, retry_after = int(head[9:12]), 0, 1.0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
        elif name.lower() == b"retry-after":
            retry_after = float(value)
    body = await connection.reader.readexactly(length) if length else b""
    return status, body, retry_after


def _rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


@dataclass
class BigResult:
    rss_before_mb: float
    peak_rss_mb: float
    statuses: list[int]
    refusals: int
    seconds: float
    healthz: list[float]


def run_big(args: argparse.Namespace) -> BigResult:
    env = {"RELAY_WORKER_ENABLED": "false"}
    # A database of its own (a PostgreSQL URL names the server, not the database to fill).
    with (
        _common.fresh_database(args.database_url) as database_url,
        _common.running_server(database_url, env) as server,
    ):
        pid = server.process.pid
        probe = socket.create_connection((server.host, server.port))
        probe.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request = raw_request("GET", "/healthz", f"{server.host}:{server.port}", {})
        reader = probe.makefile("rb")

        def healthz() -> float:
            t0 = time.monotonic()
            probe.sendall(request)
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            reader.read(length)
            return time.monotonic() - t0

        for _ in range(50):  # warm the route and the connection
            healthz()
        rss_before = _rss_kib(pid, "VmRSS")
        context = mp.get_context("spawn")
        out = context.Queue()
        uploader = context.Process(
            target=_upload_main,
            args=(server.host, server.port, f"big-{uuid.uuid4().hex[:8]}", out),
            daemon=True,
        )
        uploader.start()
        latencies: list[float] = []
        while uploader.is_alive() and out.empty():
            latencies.append(healthz())
            time.sleep(HEALTHZ_EVERY)
        report = out.get(timeout=600)
        uploader.join(10)
        peak = _rss_kib(pid, "VmHWM")
        probe.close()
    return BigResult(
        rss_before_mb=rss_before / 1024,
        peak_rss_mb=peak / 1024,
        statuses=report["statuses"],
        refusals=report["refusals"],
        seconds=report["seconds"],
        healthz=sorted(latencies),
    )


def _print_big(big: BigResult) -> None:
    print(
        f"{BIG_UPLOADS} concurrent {BIG_BYTES / 2**20:.0f} MiB submissions: statuses "
        f"{sorted(big.statuses)}, {big.refusals} refusal(s) retried, all answered in "
        f"{big.seconds:.1f} s"
    )
    print(
        f"peak RSS {big.peak_rss_mb:.0f} MB (before the uploads {big.rss_before_mb:.0f} MB; "
        f"target < 400 MB)"
    )
    p50, p99 = (percentile(big.healthz, q) * 1000 for q in (50, 99))
    print(
        f"/healthz meanwhile: {len(big.healthz)} probes, p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"max {big.healthz[-1] * 1000:.1f} ms (target p99 < 100 ms)"
    )


# -- orchestration ---------------------------------------------------------------------------


def run_phase(server: Server, phase: Phase, args: argparse.Namespace) -> PhaseResult:
    context = mp.get_context("spawn")  # a clean interpreter per client: no inherited loop/threads
    ready, out, go = context.Queue(), context.Queue(), context.Event()
    start_at = context.Value("d", 0.0)
    shares = [args.concurrency // args.processes] * args.processes
    for i in range(args.concurrency % args.processes):
        shares[i] += 1
    run_tag = uuid.uuid4().hex[:8]
    processes = [
        context.Process(
            target=_client_main,
            args=(
                ClientJob(
                    client=args.client,
                    host=server.host,
                    port=server.port,
                    phase=phase,
                    connections=share,
                    tag=f"bench-{run_tag}-{i}",
                    warmup=args.warmup,
                    seconds=args.seconds,
                ),
                ready,
                go,
                start_at,
                out,
            ),
            daemon=True,
        )
        for i, share in enumerate(shares)
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=30)
    start_at.value = time.monotonic() + START_MARGIN
    go.set()

    # Server and machine CPU over the same window the clients count requests in.
    begin = start_at.value + args.warmup
    time.sleep(max(0.0, begin - time.monotonic()))
    server_cpu_0, (busy_0, total_0) = server.cpu_seconds(), _common.machine_cpu()
    time.sleep(max(0.0, begin + args.seconds - time.monotonic()))
    server_cpu_1, (busy_1, total_1) = server.cpu_seconds(), _common.machine_cpu()

    reports = [out.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(10)
    latencies = sorted(lat for report in reports for lat in report["latencies"])
    return PhaseResult(
        phase=phase,
        requests=len(latencies),
        errors=sum(report["errors"] for report in reports),
        seconds=args.seconds,
        latencies=latencies,
        server_cpu=server_cpu_1 - server_cpu_0,
        client_cpu=sum(report["cpu"] for report in reports),
        machine_busy=(busy_1 - busy_0) / max(1.0, total_1 - total_0),
    )


def _print(results: list[PhaseResult], args: argparse.Namespace) -> None:
    print(
        f"result-relay ingest bench: {args.seconds:g} s per phase after {args.warmup:g} s warm-up, "
        f"{args.concurrency} keep-alive connections, {args.processes} client process(es), "
        f"client={args.client}, {os.cpu_count()} CPUs"
    )
    header = (
        f"{'':18}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'server CPU':>12}{'client CPU':>12}{'client us/req':>15}{'machine busy':>14}"
    )
    print(header)
    for r in results:
        seconds = r.seconds
        print(
            f"{r.phase.name:18}{r.rate:>9.0f}"
            f"{percentile(r.latencies, 50) * 1000:>9.2f}{percentile(r.latencies, 99) * 1000:>9.2f}"
            f"{r.errors:>8}{r.server_cpu / seconds:>11.0%} {r.client_cpu / seconds:>11.0%} "
            f"{r.client_cpu / max(1, r.requests) * 1e6:>14.0f}{r.machine_busy:>13.0%}"
        )
    by_name = {r.phase.name: r for r in results}
    ratio = by_name[POST.name].rate / by_name[HEALTHZ.name].rate
    print(f"ratio POST/healthz: {ratio:.2f}")
    if args.json:
        print(
            json.dumps(
                {
                    "ratio": round(ratio, 3),
                    **{
                        r.phase.name: {
                            "rate": round(r.rate, 1),
                            "p50_ms": round(percentile(r.latencies, 50) * 1000, 3),
                            "p99_ms": round(percentile(r.latencies, 99) * 1000, 3),
                            "errors": r.errors,
                            "server_cpu": round(r.server_cpu / r.seconds, 3),
                            "client_cpu": round(r.client_cpu / r.seconds, 3),
                        }
                        for r in results
                    },
                }
            )
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument("--concurrency", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--processes", type=int, default=1, help="client processes")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw")
    parser.add_argument(
        "--database-url",
        help="default: a temporary SQLite database; with postgresql://, a database created "
        "on that server for each part and dropped after",
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument(
        "--skip-big", action="store_true", help="leave out the four concurrent 24 MB uploads"
    )
    parser.add_argument("--big-only", action="store_true", help="only the 24 MB uploads")
    args = parser.parse_args(argv)
    if not 1 <= args.processes <= args.concurrency:
        parser.error("--processes must be between 1 and --concurrency")

    # Ingest alone: the delivery worker is off (Discord is unreachable here anyway, and futile
    # retries would bill their CPU to the POST phase). A delivery bench measures the worker.
    results: list[PhaseResult] = []
    if not args.big_only:
        with (
            _common.fresh_database(args.database_url) as database_url,
            _common.running_server(database_url, {"RELAY_WORKER_ENABLED": "false"}) as server,
        ):
            results = [run_phase(server, phase, args) for phase in (HEALTHZ, POST)]
    if results:
        _print(results, args)
    big = None if args.skip_big else run_big(args)
    if big is not None:
        _print_big(big)
    if any(r.errors for r in results):
        print("some requests failed: see the errors column", file=sys.stderr)
        return 1
    if big is not None and any(status != 202 for status in big.statuses):
        print("a big submission was not accepted", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
