"""Runs bench: many concurrent runs on few webhooks, at Discord's limits.

R runs (default 200) over W channel webhooks (default 20), against the Discord emulator in its
own process with Discord's limits (5 requests per 2 s per webhook, 50 per second overall) and
one ``result-relay serve`` (a temporary SQLite file, or a fresh database on the
``--database-url`` PostgreSQL server, dropped at the end). Each run sends 2 progress updates a
second for S seconds (default 60), then its result. Printed:

- progress requests Discord received (channel posts and edits) against the most Discord's limits
  allow in that time (per webhook, globally at the service's own budget, and at one edit per
  ``RELAY_PROGRESS_INTERVAL_SECONDS`` per run), and the updates coalesced away (never shown);
- 429s by scope and premature requests (the target is zero of each);
- the share of runs whose progress message ends in the right final state (done);
- the results' accept-to-delivered p50 / p99, the results sharing the webhooks with the edits,
  and the same from the moment each result's lane was free for it: accepted, the result ahead of
  it on its webhook delivered, and room in its webhook's window (Discord's 5 requests per 2 s,
  replayed from the requests Discord received before that moment). The target is a p99 under
  1 s. The runs all finish together, so ten results meet on each webhook: the sixth cannot go
  before the window of the first five has passed, whatever the service does.

The runs have no interaction (they start in the channel): the channel is where many runs share
one webhook's limit. Only 127.0.0.1 is used; every process stops at the end, on error too.

    python bench/runs.py [--runs 200] [--webhooks 20] [--seconds 60] [--database-url ...]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import time
from datetime import datetime
from typing import Any

import httpx
from _common import BENCH_API_KEY, fresh_database, percentile, running_server
from delivery import GLOBAL, PER_WEBHOOK, discord_limits, emulator_process, new_hooks

AUTH = {"Authorization": f"Bearer {BENCH_API_KEY}"}
UPDATES_PER_SECOND = 2


async def drive(relay: str, runs: list[str], hooks: list[dict[str, Any]], seconds: float) -> None:
    """Start every run, send its progress for ``seconds``, then its result."""
    async with httpx.AsyncClient(
        base_url=relay,
        headers=AUTH,
        timeout=60,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
    ) as client:
        gate = asyncio.Semaphore(64)

        async def call(method: str, path: str, body: dict[str, Any], ok: int) -> None:
            async with gate:
                response = await client.request(method, path, json=body)
            if response.status_code != ok:
                raise RuntimeError(f"{method} {path} answered {response.status_code}")

        await asyncio.gather(
            *(
                call(
                    "POST",
                    "/v1/runs",
                    {
                        "workflow_id": run,
                        "title": f"Run {run}",
                        "destination": {"webhook_url": hooks[i % len(hooks)]["url"]},
                    },
                    201,
                )
                for i, run in enumerate(runs)
            )
        )
        total = int(seconds * UPDATES_PER_SECOND)
        started = time.monotonic()

        async def one_run(index: int, run: str) -> None:
            # Spread over the first tick, so that the updates do not all come at once.
            await asyncio.sleep(index / len(runs) / UPDATES_PER_SECOND)
            for n in range(total):
                due = started + n / UPDATES_PER_SECOND + index / len(runs) / UPDATES_PER_SECOND
                await asyncio.sleep(max(due - time.monotonic(), 0))
                body = {"stage": "analyse", "current": n + 1, "total": total}
                await call("PUT", f"/v1/runs/{run}/progress", body, 202)
            await call("POST", "/v1/results", {"workflow_id": run, "results": {"n": total}}, 202)

        await asyncio.gather(*(one_run(i, run) for i, run in enumerate(runs)))


def final_state_done(relay: httpx.Client, control: httpx.Client, run: str) -> bool:
    """The run finished and its progress message's last edit says so."""
    record = relay.get(f"/v1/runs/{run}").json()
    message = record["progress_message"]
    if record["status"] != "finished" or not message or not message["message_id"]:
        return False
    found = control.get(f"/_emulator/messages/{message['message_id']}/edits").json()["edits"]
    last = found[-1]["payload"]["embeds"][0]["description"] if found else ""
    return bool(last.startswith("Done after"))


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--webhooks", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    rps = float(os.environ.get("RELAY_GLOBAL_RPS", "45"))
    interval = float(os.environ.get("RELAY_PROGRESS_INTERVAL_SECONDS", "3"))
    backend = (args.database_url or "sqlite").split(":")[0]
    print(f"result-relay runs bench ({backend}, {os.cpu_count()} CPUs)")
    runs = [f"run_{i}" for i in range(args.runs)]
    with emulator_process() as emulator, httpx.Client(base_url=emulator, timeout=30) as control:
        env = {"RELAY_DISCORD_API_BASE": f"{emulator}/api/v10", "RELAY_LOG_LEVEL": "WARNING"}
        with (
            fresh_database(args.database_url) as url,
            running_server(url, env) as server,
            httpx.Client(base_url=server.base_url, headers=AUTH, timeout=30) as relay,
        ):
            discord_limits(control)
            hooks = new_hooks(control, args.webhooks)
            began = time.monotonic()
            asyncio.run(drive(server.base_url, runs, hooks, args.seconds))
            driven = time.monotonic() - began
            during = relay.get("/metrics").text  # what the drive cost, before the settling
            deadline = time.monotonic() + 300
            while relay.get("/v1/results", params={"status": "pending", "limit": 1}).json()[
                "items"
            ]:
                if time.monotonic() > deadline:
                    raise RuntimeError("results still pending after 300 s")
                time.sleep(0.5)
            right, latencies = 0, []
            by_lane: dict[str, list[tuple[float, float]]] = {}  # webhook -> (accepted, delivered)
            requests = {hook["id"]: webhook_requests(control, hook["id"]) for hook in hooks}
            for run in runs:
                while True:  # its final edit may still be waiting for its webhook's turn
                    if (done := final_state_done(relay, control, run)) or (
                        time.monotonic() > deadline
                    ):
                        break
                    time.sleep(0.2)
                right += done
                result = relay.get(f"/v1/results/{run}").json()
                if result["messages"]:
                    delivered = max(m["delivered_at"] for m in result["messages"])
                    latencies.append(_seconds(delivered) - _seconds(result["created_at"]))
                    by_lane.setdefault(result["destination"]["webhook_id"], []).append(
                        (_seconds(result["created_at"]), _seconds(delivered))
                    )
            elapsed = time.monotonic() - began
            shown = relay.get("/metrics").text
            counters = control.get("/_emulator/counters").json()

    sent = metric(during, "relay_progress_edits_total")
    coalesced = metric(shown, "relay_progress_coalesced_total")
    total_sent = metric(shown, "relay_progress_edits_total")
    updates = args.runs * int(args.seconds * UPDATES_PER_SECOND)
    n, window = PER_WEBHOOK
    per_webhook = args.webhooks * n / window * driven
    budget = min(rps, GLOBAL[0] / GLOBAL[1]) * driven
    per_run = args.runs / interval * driven
    most = min(per_webhook, budget, per_run)
    latencies.sort()
    after_free = sorted(lane_free_waits(by_lane, requests))
    limited = counters["rate_limited"]
    print(
        f"{args.runs} runs over {args.webhooks} webhooks, {UPDATES_PER_SECOND} updates/s each for "
        f"{args.seconds:g} s ({updates} updates), then their results; all settled after "
        f"{elapsed:.1f} s"
    )
    print(
        f"    progress posts and edits sent {sent:.0f} in {driven:.1f} s; the most the limits "
        f"allow {most:.0f} (per webhook {per_webhook:.0f}, global budget {budget:.0f}, one per "
        f"{interval:g} s per run {per_run:.0f}); ratio {sent / most:.3f}"
    )
    print(f"    updates coalesced away {coalesced:.0f} of {updates}")
    print(f"    progress posts and edits in all, final states included: {total_sent:.0f}")
    print(
        f"    429s: user {limited.get('user', 0)}, shared {limited.get('shared', 0)}, global "
        f"{limited.get('global', 0)}; premature requests {counters['premature_requests']}; "
        f"payload 400s {counters['payload_400s']}"
    )
    print(
        f"    runs whose progress message ends done: {right}/{args.runs} ({right / args.runs:.1%})"
    )
    if latencies:
        print(
            f"    results accept-to-delivered p50 {percentile(latencies, 50):.2f} s, "
            f"p99 {percentile(latencies, 99):.2f} s ({len(latencies)} delivered)"
        )
        print(
            f"    results delivered after their lane was free (accepted, the result ahead of "
            f"it delivered, room in its webhook's window) p50 {percentile(after_free, 50):.2f} s, "
            f"p99 {percentile(after_free, 99):.2f} s (target p99 < 1 s)"
        )
    return 0


def webhook_requests(control: httpx.Client, webhook_id: str) -> list[float]:
    """When Discord received each request to the webhook that it carried out: the messages
    posted and every edit of them (none was refused when the bench shows no 429)."""
    messages = control.get(f"/_emulator/webhooks/{webhook_id}/messages").json()["messages"]
    times = [m["received_at"] for m in messages]
    for message in messages:
        edits = control.get(f"/_emulator/messages/{message['id']}/edits").json()["edits"]
        times.extend(e["received_at"] for e in edits)
    return sorted(times)


def window_room_at(requests: list[float], moment: float) -> float:
    """The first time from ``moment`` on at which the webhook's fixed window (it opens with
    its first request, PER_WEBHOOK requests per its length) had room, counting the requests
    Discord received before ``moment``."""
    limit, length = PER_WEBHOOK
    opened, used = -math.inf, 0
    for received in requests:
        if received >= moment:
            break
        if received >= opened + length:
            opened, used = received, 0
        used += 1
    if moment >= opened + length or used < limit:
        return moment
    return opened + length


def lane_free_waits(
    by_lane: dict[str, list[tuple[float, float]]], requests: dict[str, list[float]]
) -> list[float]:
    """For each result, the time from the moment its lane was free for it (it was accepted, the
    result delivered before it on the same webhook was delivered, and the webhook's window had
    room) to its own delivery."""
    waits = []
    for webhook_id, deliveries in by_lane.items():
        previous = 0.0
        for accepted, delivered in sorted(deliveries, key=lambda d: d[1]):
            free = window_room_at(requests[webhook_id], max(accepted, previous))
            waits.append(delivered - free)
            previous = delivered
    return waits


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


if __name__ == "__main__":
    raise SystemExit(main())
