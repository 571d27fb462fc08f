"""Helpers of the simulator's own tests: the shared clock start, a thin HTTPS client, error codes.

Test modules and conftest.py import from here (test modules never import conftest or each other).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from simulator import Simulator, SimulatorServer
from tests.clock import FakeClock
from tests.constants import CLIENT_ID as CLIENT
from tests.constants import CLIENT_SECRET as SECRET
from tests.constants import TENANT

__all__ = ["CLIENT", "NOW", "SECRET", "TENANT", "Api", "FakeClock", "error_code"]

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
