"""A storage failure inside the alert engine is not a rule's failure: it propagates, so the queue
retries the message and no alert, window row or first sighting is lost to an outage."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError

from collector.alerts.engine import AlertEngine
from collector.alerts.rules import load_rules
from collector.collect import content_items, parse_records
from collector.models import ContentRef
from simulator import stories
from tests.constants import TENANT

WHEN = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


class Stores:
    """Alerts, outbox, windows and first-seen in memory; `down` makes every write fail like Azure Storage."""

    def __init__(self, down: bool) -> None:
        self.down = down
        self.alerts: set[str] = set()

    def _check(self) -> None:
        if self.down:
            raise ServiceRequestError("connection refused")

    def insert(self, alert: Any) -> bool:
        self._check()
        new = alert.id not in self.alerts
        self.alerts.add(alert.id)
        return new

    def queued(self, alert: Any) -> bool:
        return True

    def mark_queued(self, alert: Any) -> None:
        self._check()

    def send(self, alert: Any) -> None:
        self._check()

    def add(self, start: datetime, rows: Any) -> None:
        self._check()

    def rows(self, start: datetime, windows: Any, limit: int) -> dict[str, list[Any]]:
        self._check()
        return {}

    def sightings(self, rule: str, key: str, seen: Any, history: timedelta) -> tuple[list[str], None, int]:
        self._check()
        return [seen[0][1]], None, 1  # every sighting opens (as a fresh store would the first)


def observe(stores: Stores, story: str) -> AlertEngine:
    engine = AlertEngine(load_rules(), alerts=stores, outbox=stores, windows=stores, seen=stores, tenant_id=TENANT)
    content_type = stories.STORIES[story].content_type
    body = json.dumps(stories.records(story, WHEN, TENANT)).encode()
    ref = ContentRef(content_type, "blob", "https://x", WHEN, WHEN + timedelta(days=7))
    records = parse_records(body, ref)
    engine.observe(records, content_items(records, content_type, WHEN, "blob"), ref)
    return engine


@pytest.mark.parametrize("story", ["global-admin", "password-spray"])  # an event rule, a windowed rule
def test_a_storage_outage_propagates_and_the_same_blob_then_raises_its_alert(story: str) -> None:
    with pytest.raises(ServiceRequestError):
        observe(Stores(down=True), story)
    healthy = Stores(down=False)
    engine = observe(healthy, story)
    assert engine.stats.errors == 0
    assert story != "global-admin" or healthy.alerts  # the retried message raises the alert
