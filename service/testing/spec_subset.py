"""Cut Discord's OpenAPI description down to what the emulator validates against.

The full description is 1.2 MB; the emulator needs only the body schemas of Execute Webhook,
Edit Webhook Message, Create Message and Edit Message and whatever they reference. The subset
keeps the full document's JSON pointers, so the same ``$ref`` works on either. Regenerate it
after Discord updates the description:

    python -m service.testing.spec_subset path/to/openapi.json

which rewrites ``service/testing/discord_openapi.json`` (MIT, see ``LICENSE-openapi.txt``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from service.testing.schema import (
    BOT_EDIT_SCHEMA,
    CREATE_SCHEMA,
    EDIT_PATH,
    EXECUTE_SCHEMA,
    PACKAGED_SPEC,
)

_SCHEMAS = "#/components/schemas/"
# What the emulator answers with: its tests check its answers against Discord's own shape.
_ANSWER_SCHEMAS = ("MessageResponse", "UserPIIResponse", "PrivateChannelResponse")


def subset(spec: dict[str, Any]) -> dict[str, Any]:
    """The parts of ``spec`` the emulator uses: four request bodies, the message it answers
    with, and every schema they reference, directly or not, at the same pointers."""
    schemas: dict[str, Any] = spec["components"]["schemas"]
    edit_body = spec["paths"][EDIT_PATH]["patch"]["requestBody"]
    kept: dict[str, Any] = {}
    bodies = (EXECUTE_SCHEMA, CREATE_SCHEMA, BOT_EDIT_SCHEMA)
    pending = [*(b.removeprefix(_SCHEMAS) for b in bodies), *_ANSWER_SCHEMAS, *_refs(edit_body)]
    while pending:
        name = pending.pop()
        if name not in kept:
            kept[name] = schemas[name]
            pending.extend(_refs(schemas[name]))
    return {
        "openapi": spec["openapi"],
        "info": spec["info"],
        "paths": {EDIT_PATH: {"patch": {"requestBody": edit_body}}},
        "components": {"schemas": dict(sorted(kept.items()))},
    }


def _refs(node: Any) -> list[str]:
    """Names of the component schemas that ``node`` references anywhere inside."""
    if isinstance(node, dict):
        found = [node["$ref"].removeprefix(_SCHEMAS)] if "$ref" in node else []
        return found + [name for value in node.values() for name in _refs(value)]
    if isinstance(node, list):
        return [name for value in node for name in _refs(value)]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("full", type=Path, help="Discord's full openapi.json")
    parser.add_argument("--output", type=Path, default=PACKAGED_SPEC)
    args = parser.parse_args(argv)
    cut = subset(json.loads(args.full.read_text(encoding="utf-8")))
    args.output.write_text(json.dumps(cut, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(f"wrote {len(cut['components']['schemas'])} schemas to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
