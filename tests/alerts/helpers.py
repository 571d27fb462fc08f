"""Shared steps of the alert tests: collect everything the simulator holds, read the alerts back."""

from __future__ import annotations

import urllib.parse
from typing import Any

from collector.api import Api
from collector.bootstrap import Services
from collector.drain import drain


def collect(services: Services) -> dict[str, int]:
    services.listing.run()
    return dict(drain(services.queue, services.processor, workers=4, retry_delay=0).outcomes)


def alerts(services: Services, **params: str) -> list[dict[str, Any]]:
    """Every alert GET /api/alerts returns, following @odata.nextLink."""
    api = Api(services, stream=False)
    found: list[dict[str, Any]] = []
    query: dict[str, str] = {"top": "50", **params}
    while True:
        response = api.handle("GET", "alerts", query, base_url="http://test/api")
        assert response.status == 200, response.read()
        body = response.json()
        found.extend(body["value"])
        link = body.get("@odata.nextLink")
        if not link:
            return found
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(link).query))
