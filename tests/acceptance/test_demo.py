"""`result-relay demo` runs the whole loop and tells it truthfully, in plain text."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.acceptance._support import cli_command, relay_env


def demo_env(tmp_path: Path) -> dict[str, str]:
    env = relay_env(f"sqlite:///{tmp_path}/unused.db")
    env["TMPDIR"] = str(tmp_path)  # the demo's folder and log file land here
    return env


def test_demo_shows_deliveries_and_the_orphan_then_exits_zero(tmp_path: Path) -> None:
    # when a newcomer runs the demo
    done = subprocess.run(
        [*cli_command(), "demo"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env=demo_env(tmp_path),
        cwd=tmp_path,
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
    # and it prints only text for people: the log lines went to the file it names
    assert not any(line.lstrip().startswith("{") for line in (out + done.stderr).splitlines())
    log_path = Path(re.search(r"log lines\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    assert '"webhook is dead for this token' in log_path.read_text()
    # and no command for a server that is gone, but the way to keep one
    assert "curl" not in out and "http://127.0.0.1" not in out.split("Both servers")[1]
    assert "result-relay demo --keep" in out
    # and it left nothing behind in the working directory
    assert list(tmp_path.glob("result-relay-demo-*")) == []
    assert not (tmp_path / "data").exists()


def test_demo_keep_leaves_a_service_that_answers_the_printed_commands(tmp_path: Path) -> None:
    # given the demo run with --keep
    process = subprocess.Popen(
        [*cli_command(), "demo", "--keep"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=demo_env(tmp_path),
        cwd=tmp_path,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        assert process.stdout is not None
        while not lines or lines[-1].strip() != "Press Ctrl-C to stop.":
            assert time.monotonic() < deadline, "".join(lines)
            line = process.stdout.readline()
            assert line, "".join(lines) + (process.stderr.read() if process.stderr else "")
            lines.append(line)
        out = "".join(lines)
        # when the printed curl line is run
        curl = next(line for line in lines if line.strip().startswith("curl -H"))
        args = shlex.split(curl)
        header, url = args[2], args[3]
        name, _, value = header.partition(": ")
        answer = httpx.get(url, headers={name: value}, timeout=10)
        # then the service is still up and answers it with the orphaned result
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "orphaned"
        assert "/retrieve_results workflow_id:wf_deleted" in out
        # and Ctrl-C stops it cleanly
        process.send_signal(signal.SIGINT)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
