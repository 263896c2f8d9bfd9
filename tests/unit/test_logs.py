"""Log lines are JSON with structured fields, and never carry a webhook token."""

from __future__ import annotations

import json
import logging

from service.logs import JsonFormatter, MaskingTextFormatter
from tests.support import FAKE_TOKEN, WEBHOOK_ID, webhook_url


def _record(msg: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("service.test", logging.WARNING, __file__, 1, msg, None, None)
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_extra_fields() -> None:
    line = JsonFormatter().format(_record("request", method="POST", status=202))
    entry = json.loads(line)
    assert entry["msg"] == "request"
    assert (entry["level"], entry["method"], entry["status"]) == ("warning", "POST", 202)


def test_tokens_are_masked_in_messages_and_fields() -> None:
    record = _record(f"sending to {webhook_url()}", target=webhook_url(version="/v10"))
    for formatter in (JsonFormatter(), MaskingTextFormatter("%(message)s")):
        line = formatter.format(record)
        assert FAKE_TOKEN not in line
        assert f"/webhooks/{WEBHOOK_ID}/***" in line


def test_tokens_are_masked_in_tracebacks() -> None:
    try:
        raise RuntimeError(f"failed: {webhook_url()}")
    except RuntimeError:
        import sys

        record = _record("boom")
        record.exc_info = sys.exc_info()
    assert FAKE_TOKEN not in JsonFormatter().format(record)
