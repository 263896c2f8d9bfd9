"""Delivery bench: how close the worker runs to Discord's limits, and how fast it delivers.

One run, against the Discord emulator in its own process (``python -m service.testing``) and one
``result-relay serve``:

(a) a burst of N results (default 500) over W webhooks (default 25), with Discord's limits: 5
    requests per 2 s per webhook and 50 per second overall. The time from the first POST to the
    last message Discord stored is set against the minimum those limits allow, the global one
    counted at the service's own budget (RELAY_GLOBAL_RPS, 45/s); with the 429s by scope and the
    requests the emulator saw arrive before an announced reset ("premature").
(b) accept-to-delivered latency with no rate limit in the way: results posted one at a time
    (every 30 ms), each latency from just before its POST to the moment Discord stored it.

Only 127.0.0.1 is used; both processes stop at the end.

    python bench/delivery.py [--results 500] [--webhooks 25] [--samples 200] [--database-url ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
from _common import BENCH_API_KEY, free_port, percentile, running_server

AUTH = {"Authorization": f"Bearer {BENCH_API_KEY}"}
PER_WEBHOOK = (5, 2.0)
GLOBAL = (50, 1.0)
UNLIMITED = [1_000_000, 1.0]


@contextlib.contextmanager
def emulator_process() -> Iterator[str]:
    """``python -m service.testing`` on a free port; yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "service.testing", "--port", str(port), "--log-level", "warning"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/_emulator/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the Discord emulator did not start")
            time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        process.wait(10)


async def post_all(relay: str, bodies: list[dict[str, Any]], concurrency: int) -> dict[str, float]:
    """POST every body; returns the wall time just before each POST, by workflow id."""
    started: dict[str, float] = {}
    queue = list(reversed(bodies))
    async with httpx.AsyncClient(base_url=relay, headers=AUTH, timeout=30) as client:

        async def worker() -> None:
            while queue:
                body = queue.pop()
                started[body["workflow_id"]] = time.time()
                response = await client.post("/v1/results", json=body)
                if response.status_code != 202:
                    raise RuntimeError(f"POST answered {response.status_code}: {response.text}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return started


def received(control: httpx.Client, hooks: list[dict[str, Any]]) -> dict[str, float]:
    """When Discord stored each workflow's first message, by workflow id."""
    seen: dict[str, float] = {}
    for hook in hooks:
        for message in control.get(f"/_emulator/webhooks/{hook['id']}/messages").json()["messages"]:
            footer = message["embeds"][0]["footer"]["text"] if message["embeds"] else ""
            workflow_id = footer.removeprefix("workflow ")
            seen.setdefault(workflow_id, message["received_at"])
    return seen


def body(workflow_id: str, hook: dict[str, Any]) -> dict[str, Any]:
    return {
        "workflow_id": workflow_id,
        "results": {"summary": f"Result {workflow_id}", "score": 0.5, "depth": "standard"},
        "destination": {"webhook_url": hook["url"]},
    }


def burst(control: httpx.Client, relay: str, results: int, webhooks: int, rps: float) -> None:
    control.put(
        "/_emulator/limits",
        json={"webhook": list(PER_WEBHOOK), "channel": UNLIMITED, "global": list(GLOBAL)},
    )
    control.post("/_emulator/counters/reset")
    hooks = [control.post("/_emulator/webhooks", json={}).json() for _ in range(webhooks)]
    bodies = [body(f"burst_{i}", hooks[i % webhooks]) for i in range(results)]
    started = asyncio.run(post_all(relay, bodies, concurrency=32))
    first = min(started.values())
    deadline = time.monotonic() + 600
    while len(seen := received(control, hooks)) < results:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(seen)} of {results} delivered")
        time.sleep(0.25)
    elapsed = max(seen.values()) - first
    per_hook = math.ceil(results / webhooks)
    n, window = PER_WEBHOOK
    hook_minimum = max(math.ceil(per_hook / n) - 1, 0) * window
    global_minimum = (results - 1) / min(rps, GLOBAL[0] / GLOBAL[1])
    minimum = max(hook_minimum, global_minimum)
    counters = control.get("/_emulator/counters").json()
    limited = counters["rate_limited"]
    print(
        f"(a) {results} results over {webhooks} webhooks, {n} per {window:g} s per webhook, "
        f"{GLOBAL[0]}/s global, service budget {rps:g}/s"
    )
    print(
        f"    delivered in {elapsed:.2f} s; minimum the limits allow {minimum:.2f} s "
        f"(per webhook {hook_minimum:.1f} s, global {global_minimum:.2f} s); "
        f"ratio {elapsed / minimum:.3f}"
    )
    print(
        f"    429s: user {limited.get('user', 0)}, shared {limited.get('shared', 0)}, "
        f"global {limited.get('global', 0)}; premature requests "
        f"{counters['premature_requests']}; payload 400s {counters['payload_400s']}"
    )


def latency(control: httpx.Client, relay: str, samples: int) -> None:
    control.put(
        "/_emulator/limits", json={"webhook": UNLIMITED, "channel": UNLIMITED, "global": UNLIMITED}
    )
    hook = control.post("/_emulator/webhooks", json={}).json()

    async def paced() -> dict[str, float]:
        started: dict[str, float] = {}
        async with httpx.AsyncClient(base_url=relay, headers=AUTH, timeout=30) as client:
            for i in range(samples):
                workflow_id = f"latency_{i}"
                started[workflow_id] = time.time()
                response = await client.post("/v1/results", json=body(workflow_id, hook))
                assert response.status_code == 202, response.text
                await asyncio.sleep(0.03)
        return started

    started = asyncio.run(paced())
    deadline = time.monotonic() + 60
    while len(seen := received(control, [hook])) < samples:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(seen)} of {samples} delivered")
        time.sleep(0.1)
    values = sorted((seen[w] - t) * 1000 for w, t in started.items())
    print(f"(b) accept-to-delivered, {samples} results one at a time, no rate limit in the way")
    print(
        f"    p50 {percentile(values, 50):.1f} ms, p99 {percentile(values, 99):.1f} ms, "
        f"max {values[-1]:.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--results", type=int, default=500)
    parser.add_argument("--webhooks", type=int, default=25)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--database-url", help="default: a temporary SQLite database")
    args = parser.parse_args()
    rps = float(os.environ.get("RELAY_GLOBAL_RPS", "45"))
    backend = (args.database_url or "sqlite").split(":")[0]
    print(f"result-relay delivery bench ({backend}, {os.cpu_count()} CPUs)")
    with emulator_process() as emulator, httpx.Client(base_url=emulator, timeout=30) as control:
        env = {"RELAY_DISCORD_API_BASE": f"{emulator}/api/v10", "RELAY_LOG_LEVEL": "WARNING"}
        with running_server(args.database_url, env) as server:
            burst(control, server.base_url, args.results, args.webhooks, rps)
            latency(control, server.base_url, args.samples)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
