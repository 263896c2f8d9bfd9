"""The two distributions, each as its users install it.

``result-relay-client`` installed alone: a fresh virtual environment with ``bot_client`` and only
the distributions it declares, against a real ``result-relay serve``. ``result-relay`` built from
exactly what the Dockerfile copies: the service, and no ``bot_client``.

pip never reaches an index: wheels are built offline by this environment's setuptools and
installed with ``--no-index --no-deps``; the client's declared dependencies, read from the
installed metadata and resolved through this environment's metadata, are linked in through a
``.pth`` file. So anything the client imports beyond what it declares fails there, as on a bot's
machine.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from service.testing import EmulatorServer

from ._support import API_KEY, Relay, auth, wait_until

pytestmark = pytest.mark.acceptance

CHECKOUT = Path(__file__).resolve().parents[2]
DISTRIBUTION = "result-relay-client"
# What the service needs and a bot must not: none of it may be importable next to the client.
SERVICE_ONLY = ("service", "fastapi", "uvicorn", "jsonschema", "prometheus_client", "discord")

BOT = """
import asyncio, importlib, json, sys

absent = []
for name in sys.argv[4:]:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError:
        absent.append(name)

import bot_client
from bot_client import RelayClient

try:
    import bot_client.discord_ext
except ModuleNotFoundError as exc:
    cog = f"ModuleNotFoundError: {exc.name}"
else:
    cog = "imported"


async def main(base_url, api_key, webhook_url):
    async with RelayClient(base_url, api_key=api_key) as relay:
        outcome = await relay.submit_result(
            workflow_id="wf_alone", results={"summary": "installed alone"}, destination=webhook_url
        )
        record = await relay.get_result("wf_alone")
    print(json.dumps({
        "absent": absent,
        "cog": cog,
        "bot_client": bot_client.__file__,
        "outcome": outcome.status,
        "results": record.results,
    }))


asyncio.run(main(*sys.argv[1:4]))
"""


def pip(*args: str) -> None:
    """This environment's pip, blind to every index, find-links and config file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    subprocess.run(
        [sys.executable, "-m", "pip", *args, "--isolated", "--no-index", "--quiet"],
        env=env,
        check=True,
        timeout=120,
    )


def build_wheel(source: Path, wheel_dir: Path) -> Path:
    """The wheel ``pip install <source>`` would build (pip builds in place: give it a copy)."""
    pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(wheel_dir), str(source))
    [wheel] = wheel_dir.glob("*.whl")
    return wheel


def copy_source(paths: list[str], destination: Path) -> Path:
    """A copy of ``paths`` of the checkout, without bytecode or earlier build output."""
    junk = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for relative in paths:
        source, target = CHECKOUT / relative, destination / relative
        if source.is_dir():
            shutil.copytree(source, target, ignore=junk)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def fresh_environment(root: Path) -> tuple[Path, Path]:
    """A virtual environment without pip or system packages: its interpreter and site-packages."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(root)
    python = root / "bin" / "python"
    purelib = subprocess.run(
        [python, "-I", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return python, Path(purelib)


def runtime_closure(requirements: list[str]) -> list[importlib.metadata.Distribution]:
    """The installed distributions that ``requirements`` need at run time, transitively."""
    found: dict[str, importlib.metadata.Distribution] = {}
    asked: dict[str, set[str]] = {}
    # Each requirement travels with the extras its dependant was asked for: its marker refers to
    # those. No extra of the client itself is asked for.
    pending = [(Requirement(text), {""}) for text in requirements]
    while pending:
        requirement, dependant_extras = pending.pop()
        marker = requirement.marker
        if marker and not any(marker.evaluate({"extra": e}) for e in dependant_extras):
            continue
        name = canonicalize_name(requirement.name)
        extras = {"", *requirement.extras} - asked.setdefault(name, set())
        if not extras:
            continue
        asked[name] |= extras
        found[name] = dist = importlib.metadata.distribution(name)
        pending += [(Requirement(text), extras) for text in dist.requires or []]
    return list(found.values())


def top_level(dist: importlib.metadata.Distribution) -> set[str]:
    """What a distribution puts directly in site-packages (packages, modules, its .dist-info)."""
    names = {Path(file).parts[0] for file in dist.files or []}
    # ".." holds scripts; a shared __pycache__ holds other distributions' bytecode too.
    return {name for name in names if name not in {"..", "__pycache__"}}


def link_dependencies(dists: list[importlib.metadata.Distribution], site: Path) -> None:
    """Make exactly ``dists`` importable in the environment whose site-packages is ``site``."""
    links = site.parent / "declared-dependencies"
    links.mkdir()
    for dist in dists:
        installed = Path(str(dist.locate_file("")))
        for name in top_level(dist):
            (links / name).symlink_to(installed / name)
    (site / "declared-dependencies.pth").write_text(f"{links}\n", encoding="utf-8")


def test_the_client_installed_alone_submits_and_reads_back_from_a_real_service(
    tmp_path: Path, relay: Relay
) -> None:
    # given result-relay-client installed alone into a fresh environment, with only the
    # distributions its metadata declares
    source = copy_source(["bot_client"], tmp_path / "checkout")
    wheel = build_wheel(source / "bot_client", tmp_path / "wheels")
    python, site = fresh_environment(tmp_path / "bot-venv")
    pip("--python", str(python), "install", "--no-deps", str(wheel))
    [installed] = importlib.metadata.distributions(name=DISTRIBUTION, path=[str(site)])
    declared = installed.requires or []
    assert sorted(declared) == [
        'discord.py>=2.4; extra == "discord"',
        "httpx>=0.27",
        "pydantic>=2.7",
    ]
    assert top_level(installed) == {
        "bot_client",
        f"result_relay_client-{installed.version}.dist-info",
    }
    shipped = {str(file) for file in installed.files or []}
    assert {"bot_client/py.typed", "bot_client/README.md"} <= shipped
    assert "bot_client/examples/autointel_bot.py" in shipped
    dependencies = runtime_closure(declared)
    names = {canonicalize_name(dist.metadata["Name"]) for dist in dependencies}
    assert {"httpx", "pydantic"} <= names
    assert not names & {"fastapi", "uvicorn", "jsonschema", "prometheus-client", "discord-py"}
    link_dependencies(dependencies, site)

    # and a real service whose deliveries go to the Discord emulator
    with EmulatorServer() as discord:
        hook = discord.emulator.create_webhook()
        server = relay.start({"RELAY_DISCORD_API_BASE": discord.api_base})
        script = tmp_path / "bot.py"
        script.write_text(BOT, encoding="utf-8")

        # when a bot in that environment hands a result over and reads it back
        ran = subprocess.run(
            [python, "-I", script, server.base_url, API_KEY, hook.url, *SERVICE_ONLY],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ran.returncode == 0, ran.stderr

        # then nothing of the service was there, yet the client worked from its own install
        seen = json.loads(ran.stdout)
        assert seen["absent"] == list(SERVICE_ONLY)
        # the cog needs the [discord] extra, which was not asked for
        assert seen["cog"] == "ModuleNotFoundError: discord"
        assert Path(seen["bot_client"]).is_relative_to(site)
        assert (seen["outcome"], seen["results"]) == ("accepted", {"summary": "installed alone"})

        # and the service holds the result, and Discord received it
        with server.client(headers=auth()) as client:
            stored = client.get("/v1/results/wf_alone").json()
        assert stored["results"] == {"summary": "installed alone"}
        wait_until(lambda: discord.emulator.messages(hook.id) != [], 15, "the delivery")
        [message] = discord.emulator.messages(hook.id)
        assert message.embeds[0]["footer"]["text"] == "workflow wf_alone"


def dockerfile_sources() -> list[str]:
    """What the Dockerfile's build stage copies from the checkout (``COPY <src>... <dest>``)."""
    sources = []
    for line in (CHECKOUT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            sources += words[1:-1]
    return sources


@pytest.mark.parametrize("beside", [[], ["bot_client"]], ids=["docker-context", "checkout"])
def test_the_service_wheel_holds_the_service_only(tmp_path: Path, beside: list[str]) -> None:
    # given exactly what the Dockerfile copies into its build stage (which leaves bot_client
    # out), or that plus bot_client, as in a checkout
    sources = dockerfile_sources()
    assert "bot_client" not in sources
    source = copy_source([*sources, *beside], tmp_path / "context")
    # when the service's wheel is built from it
    wheel = build_wheel(source, tmp_path / "wheels")
    # then it holds the service, its migrations and the emulator's spec, and no bot_client
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
        entry_points = archive.read(next(n for n in names if n.endswith("/entry_points.txt")))
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == {"service"}
    assert any(name.startswith("service/store/migrations/") for name in names)
    assert "service/testing/discord_openapi.json" in names
    assert b"result-relay = service.cli:main" in entry_points
    headers = metadata.decode().split("\n\n", 1)[0].splitlines()
    assert "Name: result-relay" in headers
    requires = [h for h in headers if h.startswith("Requires-Dist:")]
    assert requires and not [r for r in requires if "discord.py" in r]  # that was the client's
