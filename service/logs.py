"""Structured logging: one JSON object per line, with every webhook token masked."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.discord.webhook_url import mask_webhook_tokens

# Attributes every LogRecord has; anything else was passed through ``extra=`` and is a field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "color_message",  # uvicorn's terminal copy of msg
    "asctime",  # set by the text formatter itself
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return mask_webhook_tokens(json.dumps(entry, default=str, ensure_ascii=False))


class MaskingTextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return mask_webhook_tokens(line)


def configure_logging(level: str = "INFO", fmt: str = "json", *, to: Path | None = None) -> None:
    """Send the service's and uvicorn's logs to stderr (or the file ``to``) in one format."""
    handler: logging.Handler = (
        logging.FileHandler(to, encoding="utf-8") if to else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else MaskingTextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # One line per request comes from our own middleware, with the tenant and no query string.
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every request to Discord at INFO: the worker logs the attempts that matter.
    logging.getLogger("httpx").setLevel(
        logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING
    )
