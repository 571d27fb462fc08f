"""Fixtures of the query tests: one indexed and archived dataset per session in the shared Azurite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from collector.api import Api
from collector.bootstrap import Services
from collector.index import IndexItem
from collector.models import ContentRef
from collector.query.service import QueryService
from tests.clock import FakeClock
from tests.query.data import NOW, TENANT, Row, blob_body, build_rows, make_services


@dataclass
class Dataset:
    rows: list[Row]
    env: dict[str, str]
    services: Services

    def row(self, record_id: str) -> Row:
        return next(r for r in self.rows if r.entry.id == record_id)

    def query(self, **options: Any) -> QueryService:  # QueryService's keyword options
        return QueryService(self.services.index, clock=FakeClock(NOW), **options)


@pytest.fixture(scope="session")
def dataset(azurite) -> Iterator[Dataset]:
    name = "q" + uuid.uuid4().hex[:10]
    env = {
        "M365_TENANT_ID": TENANT,
        "AUDIT_STORAGE_CONNECTION_STRING": azurite.connection_string,
        "AUDIT_TABLE_PREFIX": name,
        "AUDIT_ARCHIVE_CONTAINER": name,
        "AUDIT_QUEUE_NAME": name,
    }
    services = make_services(env)
    services.ensure_storage()
    rows = build_rows()
    items = []
    for n in range(0, len(rows), 25):
        chunk = rows[n:n + 25]
        ref = ContentRef("Audit.General", f"blob-{n:04d}", "", chunk[0].when, chunk[0].when)  # the archive needs no uri/expiry
        archived = services.archive.put(ref, blob_body(chunk), len(chunk))
        items += [IndexItem(row.entry, row.when, archived.name, position) for position, row in enumerate(chunk)]
    services.index.write(items)
    yield Dataset(rows, env, services)


@pytest.fixture
def api(dataset: Dataset) -> Api:
    return Api(dataset.services, stream=True)
