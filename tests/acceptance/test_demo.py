"""`result-relay demo` runs the whole loop and tells it truthfully."""

from __future__ import annotations

import subprocess

from tests.acceptance._support import cli_command


def test_demo_shows_deliveries_and_the_orphan_then_exits_zero() -> None:
    # when a newcomer runs the demo
    done = subprocess.run(
        [*cli_command(), "demo"], capture_output=True, text=True, timeout=90, check=False
    )
    # then it exits 0 and shows each road a result can take
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "Every result was delivered or kept." in out
    assert "[workflow wf_large]" in out and "file: results-wf_large.json" in out
    assert "wf_deleted: webhook_deleted" in out
    assert "/retrieve_results workflow_id:wf_deleted" in out
    assert "... and as interaction follow-ups:" in out
    assert "0 refused for shape, 0 too large, 0 after a 404, 0 without allowed_mentions" in out
