"""Delivery bench: how close the worker runs to Discord's limits, how fast it delivers, and what a
crash costs.

One run, against the Discord emulator in its own process (``python -m service.testing``) and
``result-relay serve`` processes, each part on a database of its own (a temporary SQLite file, or
a freshly created PostgreSQL database on the ``--database-url`` server, dropped at the end):

(a) a burst of N results (default 500) over W webhooks (default 25), with Discord's limits: 5
    requests per 2 s per webhook and 50 per second overall. The time from the first POST to the
    last message Discord stored is set against the minimum those limits allow, the global one
    counted once at the service's own budget (RELAY_GLOBAL_RPS, 45/s) and once at Discord's own
    50/s; with the 429s by scope and the requests the emulator saw arrive before an announced
    reset ("premature"). Also the first-delivery delay: from the first POST answered 202 to the
    first message Discord stored.
(b) accept-to-delivered latency with no rate limit in the way: results posted one at a time
    (every 30 ms), each latency from just before its POST to the moment Discord stored it.
(c) crash and restart: C results (default 200) over V webhooks (default 10) with Discord's limits;
    once a third are delivered the server gets SIGKILL and a new one starts at once on the same
    database (lease left at its default). The time from the SIGKILL to the first message stored
    after the restart; once nothing is pending, the duplicates Discord holds against the
    ambiguous attempts the service recorded (attempts API and ``/metrics``).
(d) a channel-route burst: N results (default 500) over K channels (default 25) posted by the
    tenant's bot (Create Message with a nonce), with Discord's bot limits: 5 requests per 5 s per
    channel on the route, 50 per second for the bot. The time from the first POST to the last
    message stored against the minimum those limits allow (the bot's budget counted at the
    service's own rate, RELAY_GLOBAL_RPS), 429s by scope, premature requests, and duplicates
    (messages beyond one per result, and Create Message calls Discord answered from a nonce).

Only 127.0.0.1 is used; every process stops at the end, on error too.

    python bench/delivery.py [--parts a,b,c,d] [--results 500] [--webhooks 25] [--samples 200]
        [--crash-results 200] [--crash-webhooks 10] [--channels 25] [--database-url ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from _common import (
    BENCH_API_KEY,
    Server,
    free_port,
    fresh_database,
    percentile,
    running_server,
)

AUTH = {"Authorization": f"Bearer {BENCH_API_KEY}"}
PER_WEBHOOK = (5, 2.0)
GLOBAL = (50, 1.0)
UNLIMITED = [1_000_000, 1.0]
DISCORD_LIMITS = {"webhook": list(PER_WEBHOOK), "channel": UNLIMITED, "global": list(GLOBAL)}
BOT_ROUTE = (5, 5.0)  # Create Message per channel, as Discord announces it for bots
BOT_GLOBAL = (50, 1.0)
BOT_LIMITS = {
    **DISCORD_LIMITS,
    "bot_route": list(BOT_ROUTE),
    "bot_global": list(BOT_GLOBAL),
}
PARTS = ("a", "b", "c", "d")
CRASH_DEADLINE_S = 180.0  # the whole of (c) after the SIGKILL, lease expiry included


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


@dataclass
class Posted:
    """Wall times by workflow id: just before each POST, and when it was answered 202."""

    started: dict[str, float]
    answered: dict[str, float]


async def post_all(relay: str, bodies: list[dict[str, Any]], concurrency: int) -> Posted:
    """POST every body, ``concurrency`` at a time; each must be answered 202."""
    posted = Posted({}, {})
    queue = list(reversed(bodies))
    async with httpx.AsyncClient(base_url=relay, headers=AUTH, timeout=30) as client:

        async def worker() -> None:
            while queue:
                body = queue.pop()
                posted.started[body["workflow_id"]] = time.time()
                response = await client.post("/v1/results", json=body)
                if response.status_code != 202:
                    raise RuntimeError(f"POST answered {response.status_code}: {response.text}")
                posted.answered[body["workflow_id"]] = time.time()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return posted


def messages(control: httpx.Client, hooks: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """Every message Discord holds on ``hooks``: (workflow id from the footer, received_at)."""
    found: list[tuple[str, float]] = []
    for hook in hooks:
        for message in control.get(f"/_emulator/webhooks/{hook['id']}/messages").json()["messages"]:
            footer = message["embeds"][0]["footer"]["text"] if message["embeds"] else ""
            found.append((footer.removeprefix("workflow "), message["received_at"]))
    return found


def received(control: httpx.Client, hooks: list[dict[str, Any]]) -> dict[str, float]:
    """When Discord stored each workflow's first message, by workflow id."""
    seen: dict[str, float] = {}
    for workflow_id, at in messages(control, hooks):
        seen.setdefault(workflow_id, at)
    return seen


def wait_received(
    control: httpx.Client, hooks: list[dict[str, Any]], count: int, timeout: float
) -> dict[str, float]:
    """Poll until ``count`` workflows have a message; their first-message times."""
    deadline = time.monotonic() + timeout
    while len(seen := received(control, hooks)) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(seen)} of {count} delivered in {timeout:g} s")
        time.sleep(0.05)
    return seen


def body(workflow_id: str, hook: dict[str, Any]) -> dict[str, Any]:
    return {
        "workflow_id": workflow_id,
        "results": {"summary": f"Result {workflow_id}", "score": 0.5, "depth": "standard"},
        "destination": {"webhook_url": hook["url"]},
    }


def new_hooks(control: httpx.Client, count: int) -> list[dict[str, Any]]:
    return [control.post("/_emulator/webhooks", json={}).json() for _ in range(count)]


def discord_limits(control: httpx.Client) -> None:
    """Discord's webhook and global limits, fresh windows and counters."""
    control.put("/_emulator/limits", json=DISCORD_LIMITS)
    control.post("/_emulator/counters/reset")


def minimum_seconds(results: int, webhooks: int, rate: float) -> tuple[float, float, float]:
    """(minimum, per-webhook part, global part) the limits allow, the global one at ``rate``/s."""
    n, window = PER_WEBHOOK
    hook_minimum = max(math.ceil(math.ceil(results / webhooks) / n) - 1, 0) * window
    global_minimum = (results - 1) / min(rate, GLOBAL[0] / GLOBAL[1])
    return max(hook_minimum, global_minimum), hook_minimum, global_minimum


# -- (a) the burst -------------------------------------------------------------------------------


def burst(control: httpx.Client, relay: str, results: int, webhooks: int, rps: float) -> None:
    discord_limits(control)
    hooks = new_hooks(control, webhooks)
    bodies = [body(f"burst_{i}", hooks[i % webhooks]) for i in range(results)]
    posted = asyncio.run(post_all(relay, bodies, concurrency=32))
    seen = wait_received(control, hooks, results, timeout=600)
    elapsed = max(seen.values()) - min(posted.started.values())
    first_delay_ms = (min(seen.values()) - min(posted.answered.values())) * 1000
    minimum, hook_minimum, global_minimum = minimum_seconds(results, webhooks, rps)
    discord_minimum, _, discord_global = minimum_seconds(results, webhooks, GLOBAL[0] / GLOBAL[1])
    counters = control.get("/_emulator/counters").json()
    limited = counters["rate_limited"]
    n, window = PER_WEBHOOK
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
        f"    Discord's own minimum {discord_minimum:.2f} s (per webhook {hook_minimum:.1f} s, "
        f"global at {GLOBAL[0]}/s {discord_global:.2f} s); ratio {elapsed / discord_minimum:.3f} "
        f"(target at most 1.25 with zero 429s)"
    )
    print(
        f"    first-delivery delay {first_delay_ms:.1f} ms, first 202 to first message stored "
        f"(target under 50 ms)"
    )
    print(
        f"    429s: user {limited.get('user', 0)}, shared {limited.get('shared', 0)}, "
        f"global {limited.get('global', 0)}; premature requests "
        f"{counters['premature_requests']}; payload 400s {counters['payload_400s']}"
    )


# -- (b) latency ---------------------------------------------------------------------------------


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
    seen = wait_received(control, [hook], samples, timeout=60)
    values = sorted((seen[w] - t) * 1000 for w, t in started.items())
    print(f"(b) accept-to-delivered, {samples} results one at a time, no rate limit in the way")
    print(
        f"    p50 {percentile(values, 50):.1f} ms, p99 {percentile(values, 99):.1f} ms, "
        f"max {values[-1]:.1f} ms"
    )


# -- (c) crash and restart -----------------------------------------------------------------------


def sigkill(server: Server) -> float:
    """SIGKILL the server process (no shutdown of any kind); the wall time of the kill."""
    killed_at = time.time()
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)
    return killed_at


def first_message_after(
    control: httpx.Client, hooks: list[dict[str, Any]], since: float, deadline: float
) -> float:
    """The received_at of the first message Discord stored after ``since`` (wall time)."""
    while True:
        later = [at for _, at in messages(control, hooks) if at > since]
        if later:
            return min(later)
        if time.monotonic() > deadline:
            raise RuntimeError("no message was delivered after the restart")
        time.sleep(0.05)


def wait_nothing_pending(relay: httpx.Client, deadline: float) -> None:
    while relay.get("/v1/results", params={"status": "pending", "limit": 1}).json()["items"]:
        if time.monotonic() > deadline:
            raise RuntimeError("results still pending at the deadline")
        time.sleep(0.25)


def ambiguous_attempts(relay: httpx.Client, workflow_ids: list[str]) -> int:
    """Attempts recorded with outcome "ambiguous", over all the given results."""
    total = 0
    for workflow_id in workflow_ids:
        response = relay.get(f"/v1/results/{workflow_id}/attempts")
        response.raise_for_status()
        total += sum(1 for a in response.json()["items"] if str(a["outcome"]) == "ambiguous")
    return total


def metric(relay: httpx.Client, name: str) -> float | None:
    """Sum of a Prometheus metric's samples (any labels) on /metrics; None when absent."""
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in relay.get("/metrics").text.splitlines()
        if line.startswith((f"{name} ", f"{name}{{"))
    ]
    return sum(values) if values else None


def crash_and_restart(
    control: httpx.Client, database_url: str, env: dict[str, str], results: int, webhooks: int
) -> None:
    discord_limits(control)
    hooks = new_hooks(control, webhooks)
    bodies = [body(f"crash_{i}", hooks[i % webhooks]) for i in range(results)]
    with running_server(database_url, env) as first:
        asyncio.run(post_all(first.base_url, bodies, concurrency=32))
        before = len(wait_received(control, hooks, math.ceil(results / 3), timeout=60))
        killed_at = sigkill(first)
    deadline = time.monotonic() + CRASH_DEADLINE_S
    restarted_at = time.time()
    with (
        running_server(database_url, env) as second,
        httpx.Client(base_url=second.base_url, headers=AUTH, timeout=30) as relay,
    ):
        first_after = first_message_after(control, hooks, restarted_at, deadline)
        wait_nothing_pending(relay, deadline)
        done_after = time.time() - killed_at
        by_api = ambiguous_attempts(relay, [b["workflow_id"] for b in bodies])
        by_metric = metric(relay, "relay_ambiguous_attempts_total")
    held = messages(control, hooks)
    workflows = {workflow_id for workflow_id, _ in held}
    limited = control.get("/_emulator/counters").json()["rate_limited"]
    print(
        f"(c) crash and restart: {results} results over {webhooks} webhooks, Discord's limits, "
        f"SIGKILL after {before} delivered"
    )
    print(
        f"    new server at once on the same database: first delivery "
        f"{first_after - killed_at:.2f} s after the SIGKILL (target under 3 s)"
    )
    print(
        f"    nothing pending {done_after:.1f} s after the SIGKILL; {len(workflows)} of {results} "
        f"delivered; 429s: user {limited.get('user', 0)}, global {limited.get('global', 0)}"
    )
    print(
        f"    duplicates {len(held) - len(workflows)} ({len(held)} messages for {len(workflows)} "
        f"workflows; target: as many as ambiguous attempts)"
    )
    metric_text = "absent" if by_metric is None else f"{by_metric:g}"
    print(
        f"    ambiguous attempts: {by_api} in the attempts API, {metric_text} in the second "
        f"process's relay_ambiguous_attempts_total"
    )


# -- (d) the channel-route burst ----------------------------------------------------------------


def channel_messages(control: httpx.Client, channels: list[str]) -> list[tuple[str, float]]:
    """Every message Discord holds in ``channels``: (workflow id from the footer, the time
    Discord stored it)."""
    found: list[tuple[str, float]] = []
    for channel in channels:
        for message in control.get(f"/_emulator/channels/{channel}/messages").json()["messages"]:
            footer = message["embeds"][0]["footer"]["text"] if message["embeds"] else ""
            found.append((footer.removeprefix("workflow "), message["received_at"]))
    return found


def channel_minimum(results: int, channels: int, rate: float) -> tuple[float, float, float]:
    """(minimum, per-channel part, bot-global part) the bot limits allow at ``rate``/s.

    The two limits add up rather than overlap at the end: every channel's last window opens at
    the earliest after its earlier windows, and the requests left for those last windows, over
    all channels, then go at the bot's rate."""
    n, window = BOT_ROUTE
    rate = min(rate, BOT_GLOBAL[0] / BOT_GLOBAL[1])
    per_channel = math.ceil(results / channels)
    earlier = max(math.ceil(per_channel / n) - 1, 0)
    last = sum(min(len(range(c, results, channels)) - earlier * n, n) for c in range(channels))
    route_minimum = earlier * window + max(last - 1, 0) / rate
    global_minimum = (results - 1) / rate
    return max(route_minimum, global_minimum), route_minimum, global_minimum


def channel_burst(
    control: httpx.Client, relay: str, results: int, channels: int, rps: float
) -> None:
    control.put("/_emulator/limits", json=BOT_LIMITS)
    control.post("/_emulator/counters/reset")
    bot = control.post("/_emulator/bots", json={}).json()
    with httpx.Client(base_url=relay, headers=AUTH, timeout=30) as api:
        response = api.put("/v1/bot", json={"token": bot["token"]})
        if response.status_code != 200:
            raise RuntimeError(f"PUT /v1/bot answered {response.status_code}: {response.text}")
    ids = [control.post("/_emulator/channels", json={}).json()["id"] for _ in range(channels)]
    bodies = [
        {
            "workflow_id": f"channel_{i}",
            "results": {"summary": f"Result channel_{i}", "score": 0.5},
            "destination": {"channel_id": ids[i % channels]},
        }
        for i in range(results)
    ]
    control.post("/_emulator/counters/reset")
    posted = asyncio.run(post_all(relay, bodies, concurrency=32))
    deadline = time.monotonic() + 600
    while True:
        held = channel_messages(control, ids)
        workflows = {w for w, _ in held}
        if len(workflows) >= results:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(workflows)} of {results} delivered in 600 s")
        time.sleep(0.5)  # reading every message is work for the emulator: not too often
    elapsed = max(at for _, at in held) - min(posted.started.values())
    minimum, route_minimum, global_minimum = channel_minimum(results, channels, rps)
    discord_minimum, _, _ = channel_minimum(results, channels, BOT_GLOBAL[0] / BOT_GLOBAL[1])
    counters = control.get("/_emulator/counters").json()
    limited = counters["rate_limited"]
    n, window = BOT_ROUTE
    print(
        f"(d) {results} results over {channels} channels by the tenant's bot, {n} per {window:g} s "
        f"per channel, {BOT_GLOBAL[0]}/s for the bot, service budget {rps:g}/s"
    )
    print(
        f"    delivered in {elapsed:.2f} s; minimum the limits allow "
        f"{minimum:.2f} s (per channel windows then the last ones at the bot's rate "
        f"{route_minimum:.2f} s, bot global alone {global_minimum:.2f} s); "
        f"ratio {elapsed / minimum:.3f} (target at most 1.10)"
    )
    print(
        f"    Discord's own minimum (the bot at {BOT_GLOBAL[0]}/s) {discord_minimum:.2f} s; "
        f"ratio {elapsed / discord_minimum:.3f}"
    )
    print(
        f"    429s: user {limited.get('user', 0)}, shared {limited.get('shared', 0)}, "
        f"global {limited.get('global', 0)}; premature requests {counters['premature_requests']}; "
        f"duplicates {len(held) - len(workflows)} ({len(held)} messages, "
        f"{counters['nonce_deduplicated']} answered from a nonce); payload 400s "
        f"{counters['payload_400s']}"
    )


# -- the run -------------------------------------------------------------------------------------


def parse_parts(text: str) -> set[str]:
    parts = {p.strip() for p in text.split(",") if p.strip()}
    if not parts or parts - set(PARTS):
        raise argparse.ArgumentTypeError(f"parts are a comma-separated subset of {','.join(PARTS)}")
    return parts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--parts", type=parse_parts, default=set(PARTS), help="default a,b,c,d")
    parser.add_argument("--results", type=int, default=500)
    parser.add_argument("--webhooks", type=int, default=25)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--crash-results", type=int, default=200)
    parser.add_argument("--crash-webhooks", type=int, default=10)
    parser.add_argument("--channels", type=int, default=25)
    parser.add_argument(
        "--database-url",
        help="backend of every part: default a temporary SQLite file; a postgresql:// server "
        "gets a fresh database per part, dropped at the end",
    )
    args = parser.parse_args()
    rps = float(os.environ.get("RELAY_GLOBAL_RPS", "45"))
    backend = (args.database_url or "sqlite").split(":")[0]
    print(f"result-relay delivery bench ({backend}, {os.cpu_count()} CPUs)")
    with emulator_process() as emulator, httpx.Client(base_url=emulator, timeout=30) as control:
        env = {"RELAY_DISCORD_API_BASE": f"{emulator}/api/v10", "RELAY_LOG_LEVEL": "WARNING"}
        if args.parts & {"a", "b"}:
            with fresh_database(args.database_url) as url, running_server(url, env) as server:
                if "a" in args.parts:
                    burst(control, server.base_url, args.results, args.webhooks, rps)
                if "b" in args.parts:
                    latency(control, server.base_url, args.samples)
        if "c" in args.parts:
            with fresh_database(args.database_url) as url:
                crash_and_restart(control, url, env, args.crash_results, args.crash_webhooks)
        if "d" in args.parts:
            with fresh_database(args.database_url) as url, running_server(url, env) as server:
                channel_burst(control, server.base_url, args.results, args.channels, rps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
