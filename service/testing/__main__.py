"""`python -m service.testing`: run a standalone Discord emulator, driven over `/_emulator`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import uvicorn

from service.testing.emulator import DiscordEmulator
from service.testing.ratelimit import DEFAULT_BOT_GLOBAL, DEFAULT_BOT_ROUTE, DEFAULT_DM_OPEN, Limit
from service.testing.schema import SPEC_ENV
from service.testing.server import EmulatorServer


def _limit(text: str) -> tuple[int, float]:
    count, _, per = text.partition("/")
    try:
        return int(count), float(per)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected COUNT/SECONDS, got {text!r}") from exc


def _shown(limit: Limit) -> str:
    return f"{limit[0]}/{limit[1]:g}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m service.testing",
        description=(
            "Serve the Discord webhook and bot API emulator. Point the service at "
            "http://HOST:PORT/api/v10 and drive the emulator through /_emulator/... "
            "(see the service.testing docstring)."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument("--port", type=int, default=8089, help="port (default %(default)s)")
    parser.add_argument(
        "--spec",
        default=None,
        help=f"Discord openapi.json (default: ${SPEC_ENV} or the subset shipped in the package)",
    )
    parser.add_argument("--webhook-limit", type=_limit, default=(5, 2.0), metavar="N/S")
    parser.add_argument("--channel-limit", type=_limit, default=(30, 60.0), metavar="N/S")
    parser.add_argument("--global-limit", type=_limit, default=(50, 1.0), metavar="N/S")
    parser.add_argument(
        "--bot-route-limit",
        type=_limit,
        default=DEFAULT_BOT_ROUTE,
        metavar="N/S",
        help=f"bucket of each bot route per channel (default {_shown(DEFAULT_BOT_ROUTE)})",
    )
    parser.add_argument(
        "--bot-global-limit",
        type=_limit,
        default=DEFAULT_BOT_GLOBAL,
        metavar="N/S",
        help=f"each bot's global limit (default {_shown(DEFAULT_BOT_GLOBAL)})",
    )
    parser.add_argument(
        "--dm-open-limit",
        type=_limit,
        default=DEFAULT_DM_OPEN,
        metavar="N/S",
        help=f"new DMs a bot may open, then 40003 (default {_shown(DEFAULT_DM_OPEN)})",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())
    emulator = DiscordEmulator(
        spec_path=args.spec,
        webhook_limit=args.webhook_limit,
        channel_limit=args.channel_limit,
        global_limit=args.global_limit,
        bot_route_limit=args.bot_route_limit,
        bot_global_limit=args.bot_global_limit,
        dm_open_limit=args.dm_open_limit,
    )
    # Compile the spec before serving so the first request is not the slow one.
    emulator.load_schema()
    server = EmulatorServer(emulator, host=args.host, port=args.port, log_level=args.log_level)
    print(f"discord emulator: api base http://{args.host}:{args.port}/api/v10", file=sys.stderr)
    uvicorn.Server(server.config(args.port)).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
