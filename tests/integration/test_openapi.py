"""openapi.yaml is what the app serves, and the app keeps to it under generated input."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from service.app import create_app, openapi_yaml
from service.config import load_settings
from service.testing import DiscordEmulator
from tests.servers import serve_in_thread
from tests.support import ACME, API_KEYS, SECRET_KEY

ROOT = Path(__file__).resolve().parents[2]


def test_openapi_yaml_matches_the_app(tmp_path: Path) -> None:
    app = create_app(
        load_settings(database_url=f"sqlite:///{tmp_path}/x.db", secret_key=SECRET_KEY),
        background=False,
    )
    committed = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    assert committed == app.openapi(), (
        "openapi.yaml has drifted from the app: run `result-relay openapi > openapi.yaml`"
    )
    assert yaml.safe_load(openapi_yaml(app)) == app.openapi()


@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("schemathesis") / "relay.db"
    # Discord is the emulator: a PUT of a destination asks it, never the internet.
    emulator = DiscordEmulator()
    # Generated requests come fast: Discord's limits would turn the destination check into 503s.
    unlimited = (1_000_000, 1.0)
    emulator.set_limits(webhook=unlimited, channel=unlimited, global_=unlimited)
    app = create_app(
        load_settings(database_url=f"sqlite:///{path}", api_keys=API_KEYS, secret_key=SECRET_KEY),
        discord_transport=httpx.ASGITransport(app=emulator.app),
    )
    with serve_in_thread(app) as url:
        yield url


# The schemathesis pytest plugin does not run on this pytest; driving hypothesis directly over
# each operation does the same work and keeps one test per operation.
SCHEMA = schemathesis.openapi.from_dict(yaml.safe_load((ROOT / "openapi.yaml").read_text()))
OPERATIONS = {op.label: op for op in (r.ok() for r in SCHEMA.get_all_operations())}


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_api_has_no_server_errors_or_schema_violations(label: str, live_url: str) -> None:
    operation = OPERATIONS[label]

    # Refusals that depend on stored data (an unregistered destination name, a cursor this
    # service never handed out) are schema-valid yet rightly 422: positive-data acceptance is
    # checked for the operations without such rules.
    data_dependent = label in {
        "POST /v1/results",
        "GET /v1/results",
        "POST /v1/results/{workflow_id}/redeliver",
        "PUT /v1/destinations/{name}",  # Discord does not know a generated webhook
        "PUT /v1/bot",  # nor a generated bot token
        "POST /v1/runs",
        "GET /v1/runs",
        "PUT /v1/runs/{workflow_id}/progress",  # current <= total, and the run must exist
    }
    excluded = [positive_data_acceptance] if data_dependent else []

    @given(case=operation.as_strategy())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=live_url, headers=ACME, excluded_checks=excluded)

    check()


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_documentation_pages_load_every_asset_from_the_service(
    client: httpx.AsyncClient, page: str
) -> None:
    # given the interactive documentation page
    html = (await client.get(page)).text
    # then every script, stylesheet and icon it loads is served by the service itself
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert assets, html
    for asset in assets:
        assert asset.startswith("/"), asset
        response = await client.get(asset)
        assert response.status_code == 200, asset
        assert response.content, asset
