"""Fixtures of the alert tests: the simulator over HTTPS and Azurite, as tests/integration does,
with every audit content type collected and a page size that lists a day quickly."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from simulator import Simulator, SimulatorServer
from tests.clock import FakeClock
from tests.integration.world import CLIENT, SECRET, START, TENANT, World


@pytest.fixture
def world(storage_connection_string: str, unique_prefix: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[World]:
    clock = FakeClock(START)
    sim = Simulator(TENANT, CLIENT, SECRET, clock=clock.now, page_size=200, subscribed=True, throttle_limit_per_min=None)
    server = SimulatorServer(sim, host="127.0.0.1", port=0, state_dir=tmp_path / "sim")
    server.start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_path))
    name = unique_prefix.lower()
    env = {
        "M365_TENANT_ID": TENANT, "M365_CLIENT_ID": CLIENT, "M365_CLIENT_SECRET": SECRET,
        "M365_API_URL": server.base_url, "M365_LOGIN_URL": server.base_url, "M365_ALLOW_CUSTOM_HOSTS": "true",
        "AUDIT_STORAGE_CONNECTION_STRING": storage_connection_string, "AUDIT_TABLE_PREFIX": unique_prefix,
        "AUDIT_ARCHIVE_CONTAINER": name, "AUDIT_QUEUE_NAME": name, "AUDIT_ALERT_QUEUE": f"{name}-alerts",
        "M365_CONTENT_TYPES": "Audit.AzureActiveDirectory,Audit.Exchange,Audit.SharePoint,Audit.General",
        "COLLECT_INITIAL_LOOKBACK_HOURS": "48",
    }
    try:
        yield World(sim, server, clock, env)
    finally:
        server.stop()
        assert sim.errors == [], sim.errors


@pytest.fixture(autouse=True)
def rules_never_fail(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A rule that raises is logged and spared so ingest goes on (engine.py): in tests it is a defect."""
    yield
    failed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("alerts.rule_failed")]
    assert failed == [], failed[:5]
