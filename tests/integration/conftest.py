"""End-to-end fixtures: the simulator over HTTPS (real msal/requests) and Azurite (real storage SDKs).

Only our own seams are faked: the clock (shared by the collector and the simulator) and, in one
scenario, a crash injected through our own AuditIndex class.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from simulator import Simulator, SimulatorServer
from tests.clock import FakeClock

from .world import CLIENT, SECRET, START, TENANT, World


@pytest.fixture
def world(storage_connection_string: str, unique_prefix: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[World]:
    clock = FakeClock(START)
    sim = Simulator(TENANT, CLIENT, SECRET, clock=clock.now, page_size=3, subscribed=False,
                    throttle_limit_per_min=None)
    server = SimulatorServer(sim, host="127.0.0.1", port=0, state_dir=tmp_path / "sim")
    server.start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_path))
    env = {
        "M365_TENANT_ID": TENANT, "M365_CLIENT_ID": CLIENT, "M365_CLIENT_SECRET": SECRET,
        "M365_API_URL": server.base_url, "M365_LOGIN_URL": server.base_url, "M365_ALLOW_CUSTOM_HOSTS": "true",
        "AUDIT_STORAGE_CONNECTION_STRING": storage_connection_string, "AUDIT_TABLE_PREFIX": unique_prefix,
        "AUDIT_ARCHIVE_CONTAINER": unique_prefix.lower(), "AUDIT_QUEUE_NAME": unique_prefix.lower(),
        "M365_CONTENT_TYPES": "Audit.SharePoint,Audit.Exchange", "COLLECT_OVERLAP_MINUTES": "60",
    }
    try:
        yield World(sim, server, clock, env)
    finally:
        server.stop()
        assert sim.errors == [], sim.errors  # the simulator never crashed on our requests
