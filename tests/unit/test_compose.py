"""docker-compose.yml parses and keeps its operational promises (Docker itself is not needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_compose_builds_one_image_and_restarts_the_app() -> None:
    services = _compose()["services"]
    assert [name for name, s in services.items() if "build" in s] == ["api"]
    assert services["api"]["image"] == services["projector"]["image"] == "incident-ledger:local"
    for name in ("api", "projector"):
        assert services[name]["restart"] in ("unless-stopped", "always", "on-failure")


def test_compose_checks_api_health_with_python() -> None:
    test = _compose()["services"]["api"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    assert "/health" in test[-1]


def test_compose_app_connects_as_non_superuser_owner() -> None:
    compose = _compose()
    services = compose["services"]
    urls = {services[name]["environment"]["DATABASE_URL"] for name in ("api", "projector")}
    assert urls == {"postgresql://ledger:ledger@postgres:5432/ledger"}
    mounts = services["postgres"]["volumes"]
    assert "./docker/initdb:/docker-entrypoint-initdb.d:ro" in mounts
    init = (ROOT / "docker" / "initdb" / "10-ledger-owner.sql").read_text()
    assert "CREATE ROLE ledger LOGIN CREATEROLE" in init
    statements = [line for line in init.splitlines() if not line.startswith("--")]
    assert not any("SUPERUSER" in line.upper() for line in statements)
    assert "CREATE DATABASE ledger OWNER ledger" in init
