"""The end-to-end tests' world: the simulator, its server, the shared fake clock, the collector's
environment, and a record builder. conftest.py builds it (fixture `world`); tests import from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from collector.auth import build_token_provider
from collector.bootstrap import Services
from collector.management_api import ManagementApiClient
from collector.settings import Settings
from simulator import Simulator, SimulatorServer
from tests.clock import FakeClock
from tests.constants import CLIENT_ID as CLIENT
from tests.constants import CLIENT_SECRET as SECRET
from tests.constants import TENANT

__all__ = ["CLIENT", "SECRET", "START", "TENANT", "World", "record"]

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
