"""Helpers shared by the cold-tier test modules (so that none imports another): the compactor's
small writer limits, a synthetic hot day, the check that a compacted day holds exactly the hot
records, and on Azurite what the queue function writes per blob and what the hot index answers."""

from __future__ import annotations

from datetime import timedelta

from collector import keys
from collector.bootstrap import Services
from collector.cold import layout, writer
from collector.cold.reader import DayReader
from collector.models import AuditEntry, View
from tests.constants import TENANT

from .data import DAY, DAY_START, Blob, HotDay, MemoryStore, index_items, special_blob, synthetic_blobs

SMALL = writer.Limits(buffer_bytes=64 * 1024, records_bucket_rows=40, time_bucket_rows=80, ids_bucket_rows=100)


def hot_day(records_per_hour: float = 12, hours: float = 24) -> HotDay:
    hot = HotDay()
    for blob in synthetic_blobs(records_per_hour, hours):
        hot.add(blob)
    hot.add(special_blob(DAY_START + timedelta(hours=20)))
    return hot


def assert_day_matches(store: MemoryStore, hot: HotDay, day: str = DAY) -> None:
    reader = DayReader(store, day)
    expected = hot.hot[day]
    hits = list(reader.scan())
    assert [h.key for h in hits] == sorted(r.order_key for r in expected.values())
    assert {h.key[10:]: h.entry for h in hits} == {k: r.entry for k, r in expected.items()}
    assert reader.manifest.records == len(expected)
    for record in expected.values():
        org = record.entry.organizationId
        assert reader.raw(record.entry.id, org, TENANT) == record.raw
    stray = set(store.list(layout.day_prefix(day))) - set(reader.manifest.live_files()) - {layout.manifest_name(day)}
    assert not stray


def collect(services: Services, blobs: list[Blob]) -> None:
    """What ContentProcessor does per blob: archive, then index."""
    for blob in blobs:
        items = index_items(blob)
        services.archive.put(blob.ref, blob.body, len(items))
        services.index.write(items)


def hot_hits(services: Services) -> list[tuple[str, AuditEntry]]:
    start, end = keys.day_bounds(DAY)
    return [(h.key, h.entry) for h in services.index.scan(View.TIME, start, end)]
