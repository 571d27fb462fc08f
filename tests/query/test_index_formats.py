"""Index format 1 tables (written by versions up to 2026-12-03), and format 2 days written before
the ids table (up to 2026-12-04: id entries in the keys table), stay readable next to format 2 as
written now: every filter, paging, lookups by Id and compaction's reading of a day give the same
answers, also on days that hold several of them (an upgrade day, or a day rewritten by `reindex`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from azure.data.tables import UpdateMode

from collector import keys
from collector.bootstrap import Services
from collector.cold.hot import HotIdView
from collector.index import IndexItem, day_locations
from collector.models import ContentRef, View
from collector.query.service import QueryService
from devtools import legacy_index
from tests.clock import FakeClock
from tests.query.data import (
    FILTERS,
    NOW,
    TENANT,
    WIDE,
    WIDE_END,
    WIDE_START,
    all_pages,
    blob_body,
    build_rows,
    key_of,
    make_services,
    oracle,
)


@dataclass
class Written:
    services: Services
    items: list[IndexItem]


def write(azurite, layout: str) -> Written:
    """The query dataset in format 1 ("old"), in format 2 with the ids in the keys table ("keys"),
    or all three ("mixed"): the blobs in turn in format 1, format 2 with the ids in the keys table
    and format 2 as written now, and every fifth also in format 1."""
    name = "f" + uuid.uuid4().hex[:10]
    services = make_services({"M365_TENANT_ID": TENANT, "AUDIT_STORAGE_CONNECTION_STRING": azurite.connection_string,
                              "AUDIT_TABLE_PREFIX": name, "AUDIT_ARCHIVE_CONTAINER": name, "AUDIT_QUEUE_NAME": name})
    services.ensure_storage()
    rows = build_rows()
    every: list[IndexItem] = []
    for number, n in enumerate(range(0, len(rows), 25)):
        chunk = rows[n:n + 25]
        ref = ContentRef("Audit.General", f"blob-{n:04d}", "", chunk[0].when, chunk[0].when)
        archived = services.archive.put(ref, blob_body(chunk), len(chunk))
        items = [IndexItem(row.entry, row.when, archived.name, position) for position, row in enumerate(chunk)]
        every += items
        old = layout == "old" or (layout == "mixed" and (number % 3 == 0 or number % 5 == 0))
        in_keys = layout == "keys" or (layout == "mixed" and number % 3 == 1)
        new = layout == "new" or (layout == "mixed" and number % 3 == 2)
        prefix = services.settings.table_prefix
        for wanted, plan in ((old, legacy_index.plan_batches), (in_keys, legacy_index.plan_batches_ids_in_keys)):
            if wanted:
                for table, batch in plan(items, prefix, TENANT):
                    services.tables.create(table)
                    services.tables.get(table).submit_transaction([("upsert", e, {"mode": UpdateMode.REPLACE}) for e in batch])
        if new:
            services.index.write(items)
    return Written(services, every)


@pytest.fixture(scope="module", params=["old", "keys", "mixed"])
def written(request, azurite) -> Iterator[Written]:
    yield write(azurite, request.param)


@pytest.mark.parametrize("params, predicate", FILTERS, ids=[str(p) for p, _ in FILTERS])
def test_every_filter_matches_the_oracle(written, params, predicate):
    service = QueryService(written.services.index, clock=FakeClock(NOW))
    entries, _ = all_pages(service, {**WIDE, **params, "top": "1000"})
    assert [key_of(e) for e in entries] == oracle(build_rows(), WIDE_START, WIDE_END, predicate)


def test_small_pages_reach_every_record_once(written):
    service = QueryService(written.services.index, clock=FakeClock(NOW))
    entries, sizes = all_pages(service, {**WIDE, "top": "7"})
    assert [key_of(e) for e in entries] == oracle(build_rows(), WIDE_START, WIDE_END, lambda e: True)
    assert max(sizes) == 7


def test_every_record_is_found_by_id_where_it_is_archived(written):
    index, archive = written.services.index, written.services.archive
    own = {item.entry.id for item in written.items if item.entry.organizationId == TENANT}
    for item in written.items[::7]:
        found = index.locate(item.entry.id)
        assert found is not None, item.entry.id
        record = archive.record(*found, item.entry.id)
        assert record["Id"] == item.entry.id
        # an Id two organizations share: the deployment's own organization's record comes first
        organization = TENANT if item.entry.id in own else item.entry.organizationId
        assert record["OrganizationId"] == organization


def test_every_record_is_located_in_its_day_whatever_table_holds_its_id(written):
    index = written.services.index
    for item in written.items[::3]:
        order = keys.order_key(item.when, item.entry.id, item.entry.organizationId, TENANT)
        assert index.location(keys.day_of(item.when), order[10:]) == (item.blob, item.position), item.entry.id


def test_every_day_is_listed_for_lookups_and_compaction(written):
    days = {keys.day_of(item.when) for item in written.items}
    assert written.services.index.tables(View.ID, refresh=True) == days
    assert set(HotIdView(written.services.tables, written.services.settings.table_prefix).days()) == days


def test_compaction_reads_every_record_of_a_day_once_with_its_place(written):
    services = written.services
    expected: dict[str, dict[str, tuple[str, int]]] = {}
    for item in written.items:
        order = keys.order_key(item.when, item.entry.id, item.entry.organizationId, TENANT)
        expected.setdefault(keys.day_of(item.when), {})[order[10:]] = (item.blob, item.position)
    for day, records in expected.items():
        read = list(day_locations(services.tables, services.settings.table_prefix, day))
        assert len(read) == len({key for key, _, _ in read}) == len(records)
        assert {key: (blob, position) for key, blob, position in read} == records
