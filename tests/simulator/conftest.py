"""Fixtures for the simulator's own tests: a Simulator on a fake clock, served over real HTTPS."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from simulator import Simulator, SimulatorServer
from tests.clock import FakeClock

TENANT = "7f3c1e2a-4b5d-4c6e-8f90-1a2b3c4d5e6f"
CLIENT = "0a1b2c3d-4e5f-4071-8293-a4b5c6d7e8f9"
SECRET = "test-secret"
NOW = datetime(2024, 5, 14, 12, 0, 0, tzinfo=UTC)


@dataclass
class Api:
    """A thin client for the tests: real requests over TLS, trusting only the simulator's CA."""

    sim: Simulator
    server: SimulatorServer
    session: requests.Session

    @property
    def root(self) -> str:
        return f"{self.server.base_url}/api/v1.0/{TENANT}/activity/feed"

    def token(self, client_id: str = CLIENT, secret: str = SECRET, tenant: str = TENANT) -> str:
        response = self.session.post(f"{self.server.base_url}/{tenant}/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
            "scope": "https://manage.office.com/.default",
        })
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def login(self, **kwargs: Any) -> None:
        self.session.headers["Authorization"] = f"Bearer {self.token(**kwargs)}"

    def get(self, path: str, **params: Any) -> requests.Response:
        url = path if path.startswith("https://") else f"{self.root}/{path}"
        return self.session.get(url, params=params or None)

    def post(self, path: str, body: Any = None, **params: Any) -> requests.Response:
        return self.session.post(f"{self.root}/{path}", params=params or None, json=body)

    def content(self, content_type: str = "Audit.Exchange", **params: Any) -> requests.Response:
        return self.get("subscriptions/content", contentType=content_type, PublisherIdentifier=TENANT, **params)


def error_code(response: requests.Response) -> str:
    return str(response.json()["error"]["code"])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def sim(clock: FakeClock) -> Simulator:
    return Simulator(TENANT, CLIENT, SECRET, clock=clock, page_size=3, subscribed=True, throttle_limit_per_min=None, fault_seed=7)


@pytest.fixture
def server(sim: Simulator, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatorServer]:
    with SimulatorServer(sim, state_dir=tmp_path / "sim") as running:
        # msal and requests read the CA from here; the autouse fixture restores the environment.
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(running.ca_path))
        yield running
    assert sim.errors == [], sim.errors


@pytest.fixture
def api(sim: Simulator, server: SimulatorServer) -> Iterator[Api]:
    with requests.Session() as session:
        session.verify = str(server.ca_path)
        client = Api(sim, server, session)
        client.login()
        yield client
