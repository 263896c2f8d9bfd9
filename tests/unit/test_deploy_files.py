"""The deployment files keep the promises the README makes about them.

No container engine runs in the test suite, so these read the files: what compose would publish,
what the health checks ask, and that every file they name ships in the checkout.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_replicated_services_publish_no_ports() -> None:
    # A published port (or range) on a service with replicas races for host ports at start.
    for name, service in compose()["services"].items():
        if service.get("deploy", {}).get("replicas", 1) > 1:
            assert "ports" not in service, name


def test_one_proxy_publishes_the_api_and_waits_for_ready_replicas() -> None:
    services = compose()["services"]
    published = [name for name, service in services.items() if "ports" in service]
    assert published == ["proxy"]
    proxy = services["proxy"]
    assert proxy["depends_on"]["relay"]["condition"] == "service_healthy"
    caddyfile = next(v.split(":")[0] for v in proxy["volumes"] if v.endswith("/Caddyfile:ro"))
    text = (ROOT / caddyfile).read_text()
    assert re.search(r"dynamic a relay 8080", text)


def test_volumes_are_named() -> None:
    document = compose()
    named = set(document["volumes"])
    for name, service in document["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source in named or (ROOT / source).is_file(), (name, volume)


def test_image_checks_readiness_on_the_configured_port() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    health = dockerfile[dockerfile.index("HEALTHCHECK") :]
    assert "/readyz" in health
    assert "RELAY_PORT" in health
    assert '--port \\"$RELAY_PORT\\"' in dockerfile
    assert "USER relay" in dockerfile
    assert "chown relay:relay /data" in dockerfile
