"""End-to-end fixtures: the simulator over HTTPS (real msal/requests) and Azurite (real storage SDKs).

Only our own seams are faked: the clock (shared by the collector and the simulator) and, in one
scenario, a crash injected through our own AuditIndex class.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from collector.auth import build_token_provider
from collector.bootstrap import Services
from collector.management_api import ManagementApiClient
from collector.settings import Settings
from simulator import Simulator, SimulatorServer
from tests.clock import FakeClock

TENANT = "7f3c1e2a-4b5d-4c6e-8f90-1a2b3c4d5e6f"
CLIENT = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
SECRET = "simulated-client-secret"
START = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)


@dataclass
class World:
    sim: Simulator
    server: SimulatorServer
    clock: FakeClock
    env: dict[str, str]

    def services(self, **overrides: str) -> Services:
        settings = Settings.from_env({**self.env, **overrides})
        api = ManagementApiClient(settings, build_token_provider(settings), clock=self.clock, backoff_base=0.01)
        services = Services(settings, clock=self.clock, api=api)
        services.ensure_storage()
        return services

    def api_requests(self, operation: str | None = None) -> list[Any]:
        """Requests to the Management Activity API itself (not the identity endpoints)."""
        return [r for r in self.sim.requests if "/activity/feed/" in r.path and (operation is None or r.operation == operation)]


def record(i: int, when: datetime, **extra: Any) -> dict[str, Any]:
    base = {
        "Id": f"00000000-0000-4000-8000-{i:012d}", "CreationTime": when.strftime("%Y-%m-%dT%H:%M:%S"),
        "Operation": "FileAccessed", "OrganizationId": TENANT, "RecordType": 6, "UserType": 0, "Version": 1,
        "Workload": "SharePoint", "UserId": f"user{i % 5}@contoso.com", "ClientIP": "203.0.113.7:5123",
        "ObjectId": f"https://contoso.sharepoint.com/sites/x/doc{i}.docx", "UserAgent": "Mozilla/5.0",
    }
    base.update(extra)
    return base


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
        "M365_API_URL": server.base_url, "M365_LOGIN_URL": server.base_url,
        "AUDIT_STORAGE_CONNECTION_STRING": storage_connection_string, "AUDIT_TABLE_PREFIX": unique_prefix,
        "AUDIT_ARCHIVE_CONTAINER": unique_prefix.lower(), "AUDIT_QUEUE_NAME": unique_prefix.lower(),
        "M365_CONTENT_TYPES": "Audit.SharePoint,Audit.Exchange", "COLLECT_OVERLAP_MINUTES": "60",
    }
    try:
        yield World(sim, server, clock, env)
    finally:
        server.stop()
        assert sim.errors == [], sim.errors  # the simulator never crashed on our requests
