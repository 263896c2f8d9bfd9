"""The emulator over a real socket (uvicorn in a thread) and as a command."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from service.testing import EmulatorServer
from tests.emulator.support import USER_AGENT, body


async def test_emulator_server_serves_discord_and_control_routes_on_a_real_port() -> None:
    async with EmulatorServer() as server:
        assert server.api_base == f"{server.base_url}/api/v10"
        headers = {"User-Agent": USER_AGENT}
        async with httpx.AsyncClient(headers=headers, timeout=5.0) as http:
            # given a webhook made over the control API
            hook = (await http.post(f"{server.base_url}/_emulator/webhooks", json={})).json()
            url = f"{server.api_base}/webhooks/{hook['id']}/{hook['token']}?wait=true"
            # when a message is posted over TCP
            response = await http.post(url, json=body(content="over tcp"))
            # then it is stored and the headers came through the real server
            assert response.status_code == 200
            assert response.headers["X-RateLimit-Remaining"] == "4"
            assert server.emulator.messages(hook["id"])[0].content == "over tcp"
            # and a dropped connection reaches the client as a protocol error
            server.emulator.inject_fault("drop")
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                await http.post(url, json=body(content="lost"))
            assert len(server.emulator.messages(hook["id"])) == 1
    with pytest.raises(RuntimeError):
        _ = server.base_url


def test_command_line_help_describes_the_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service.testing", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "--port" in result.stdout
    assert "/api/v10" in result.stdout
