"""Each misconfiguration stops a command with one line naming the cause and the setting to change.

Every case runs the real command and reads its stderr: one ``result-relay:`` line, no
traceback, a non-zero exit, and nothing started (no server, no worker).
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import PG_URL_VARIABLE, database_url
from tests.support import mounted_tmpfs

from ._support import cli_command, relay_env

pytestmark = pytest.mark.acceptance


def run(tmp_path: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = relay_env(f"sqlite:///{tmp_path}/data/relay.db")
    full["RELAY_LOG_FORMAT"] = "text"
    full.update(env)
    for name in [name for name, value in full.items() if value == ""]:
        del full[name]
    return subprocess.run(
        [*cli_command(), *args],
        env=full,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def the_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("result-relay")]
    assert len(errors) == 1, done.stderr
    return errors[0]


def pg_url(database: str, user: str = "postgres") -> str:
    base = os.environ.get(PG_URL_VARIABLE)
    if not base:
        pytest.skip(f"{PG_URL_VARIABLE} is not set: needs a PostgreSQL server")
    return database_url(base, database).replace("postgres@", f"{user}@", 1)


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["worker"], ["keys", "list"]])
def test_unreachable_postgresql(tmp_path: Path, command: list[str]) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"postgresql://relay@127.0.0.1:{sock.getsockname()[1]}/relay"
        line = the_line(run(tmp_path, *command, env={"RELAY_DATABASE_URL": url}))
    assert "cannot reach PostgreSQL" in line and "connection refused" in line
    assert "RELAY_DATABASE_URL" in line


def test_postgresql_database_that_does_not_exist(tmp_path: Path) -> None:
    url = pg_url("relay_no_such_database")
    line = the_line(run(tmp_path, "worker", env={"RELAY_DATABASE_URL": url}))
    assert "'relay_no_such_database' does not exist" in line and "RELAY_DATABASE_URL" in line


def test_postgresql_role_refused(tmp_path: Path) -> None:
    url = pg_url("test", user="relay_no_such_role")
    line = the_line(run(tmp_path, "purge", env={"RELAY_DATABASE_URL": url}))
    assert "refused the role 'relay_no_such_role'" in line and "RELAY_DATABASE_URL" in line


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "ro", "ro,size=1m") as mount:
        yield mount


def test_read_only_data_directory(tmp_path: Path, read_only_dir: Path) -> None:
    url = f"sqlite:///{read_only_dir}/data/relay.db"
    line = the_line(run(tmp_path, "serve", "--port", "0", env={"RELAY_DATABASE_URL": url}))
    assert f"{read_only_dir}/data/relay.db" in line and "read-only" in line
    assert "RELAY_DATABASE_URL" in line


def test_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        line = the_line(run(tmp_path, "serve", "--port", port, env={}))
    assert f"port {port} on 127.0.0.1 is in use" in line and "--port" in line


@pytest.mark.parametrize("port", ["70000", "http", "-1"])
def test_invalid_port(tmp_path: Path, port: str) -> None:
    done = run(tmp_path, "serve", f"--port={port}", env={})
    assert done.returncode == 2
    assert "--port: a port is a number from 1 to 65535" in done.stderr
    assert "Traceback" not in done.stderr


def test_production_without_any_api_key_says_how_to_make_one(tmp_path: Path) -> None:
    done = run(tmp_path, "serve", "--port", "0", env={"RELAY_API_KEYS": ""})
    line = the_line(done)
    assert "no API key" in line and "result-relay keys create --tenant NAME" in line
    # and the database it prepared is where `keys create`, run next, finds it
    created = run(tmp_path, "keys", "create", "--tenant", "acme", env={"RELAY_API_KEYS": ""})
    assert created.returncode == 0, created.stderr


@pytest.mark.parametrize("command", [["keys", "list"], ["keys", "revoke", "abc"], ["purge"]])
def test_keys_and_purge_never_create_a_database(tmp_path: Path, command: list[str]) -> None:
    line = the_line(run(tmp_path, *command, env={}))
    assert f"no database at {tmp_path}/data/relay.db" in line and "RELAY_DATABASE_URL" in line
    assert not (tmp_path / "data").exists()
