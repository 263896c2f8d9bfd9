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


async def test_a_lost_create_message_answer_is_recovered_over_a_real_socket() -> None:
    headers = {"User-Agent": USER_AGENT}
    async with EmulatorServer() as server, httpx.AsyncClient(headers=headers, timeout=5.0) as http:
        control = f"{server.base_url}/_emulator"
        bot = (await http.post(f"{control}/bots", json={})).json()
        channel_id = (await http.post(f"{control}/channels", json={})).json()["id"]
        auth = {"Authorization": f"Bot {bot['token']}"}
        url = f"{server.api_base}/channels/{channel_id}/messages"
        fault = {"kind": "drop_after_store", "channel_id": channel_id}
        assert (await http.post(f"{control}/faults", json=fault)).status_code == 201
        # given a Create Message whose answer the connection lost
        sent = body(content="result", nonce="r-1", enforce_nonce=True)
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await http.post(url, json=sent, headers=auth)
        # when the bot reads the channel, then the message Discord stored is there
        [found] = (await http.get(url, headers=auth)).json()
        assert (found["nonce"], found["author"]["id"]) == ("r-1", bot["id"])
        # and sending again with the nonce answers that message instead of a second one
        again = await http.post(url, json=sent, headers=auth)
        assert again.json()["id"] == found["id"]
        assert len(server.emulator.channel_messages(channel_id)) == 1


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
