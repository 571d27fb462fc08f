"""The cold tier end to end on Azurite: hot index and archive written as the queue function writes
them, `python -m collector compact`, then the compacted day read back through ranged blob reads."""

from __future__ import annotations

from datetime import timedelta

import pytest
from azure.core.exceptions import ResourceModifiedError

from collector import api, cli
from collector.bootstrap import Services
from collector.cold import layout
from collector.cold.compaction import Compactor
from collector.cold.hot import HotIdView
from collector.cold.reader import DayReader, load_manifest
from collector.cold.store import ColdBlobStore
from collector.settings import Settings
from tests.constants import TENANT

from .data import DAY, DAY_START, special_blob, synthetic_blobs
from .helpers import collect, hot_hits


def test_compact_writes_the_hot_day_and_reads_it_back_byte_identical(env: dict[str, str]) -> None:
    services = Services(Settings.from_env(env))
    services.ensure_storage()
    collect(services, [*synthetic_blobs(10, seed=11), special_blob(DAY_START + timedelta(hours=9))])

    assert cli.main(["compact", "--through", "2024-05-06", "--quiet"]) == 0

    store = ColdBlobStore(services.blob_service, env["AUDIT_COLD_CONTAINER"])
    reader = DayReader(store, DAY)
    expected = hot_hits(services)
    assert [(h.key, h.entry) for h in reader.scan()] == expected
    for _order, entry in expected:
        location = services.index.locate(entry.id)
        assert location is not None
        raw = api.json_bytes(services.archive.record(location[0], location[1], entry.id))
        assert reader.raw(entry.id, entry.organizationId, TENANT) == raw
    before = store.requests
    user = expected[len(expected) // 2][1].user
    assert [h.key for h in reader.scan(user=user)] == [k for k, e in expected if e.user.casefold() == user.casefold()]
    assert store.requests - before <= 4  # a user's day: the record file's footer and one row group

    # Late records for the compacted day (the hot index's Timestamp filter on Azurite) → one delta.
    collect(services, synthetic_blobs(3, hours=2, seed=12))
    assert cli.main(["compact", "--through", "2024-05-06", "--quiet"]) == 0
    fresh = DayReader(store, DAY)
    assert len(fresh.manifest.deltas) == 1
    assert [(h.key, h.entry) for h in fresh.scan()] == hot_hits(services)


def test_a_crash_before_the_manifest_commits_nothing_and_the_rerun_finishes(env: dict[str, str]) -> None:
    services = Services(Settings.from_env(env))
    services.ensure_storage()
    collect(services, synthetic_blobs(6, seed=13))
    store = ColdBlobStore(services.blob_service, env["AUDIT_COLD_CONTAINER"])
    store.ensure_container()

    class Crashing(ColdBlobStore):
        def put_manifest(self, name: str, data: bytes, etag: str | None) -> None:
            raise ResourceModifiedError("injected: the worker died before the commit")

    crashing = Crashing(services.blob_service, env["AUDIT_COLD_CONTAINER"])
    ids = HotIdView(services.tables, env["AUDIT_TABLE_PREFIX"])
    with pytest.raises(ResourceModifiedError):
        Compactor(ids, services.archive, crashing, tenant_id=TENANT).compact_day(DAY)
    assert load_manifest(store, DAY) is None
    assert store.list(layout.day_prefix(DAY))  # the uncommitted generation's files are there...
    Compactor(ids, services.archive, store, tenant_id=TENANT).compact_day(DAY)
    reader = DayReader(store, DAY)
    assert [(h.key, h.entry) for h in reader.scan()] == hot_hits(services)
    # ...and were overwritten by the rerun, which names the same generation: nothing stray.
    assert set(store.list(layout.day_prefix(DAY))) == {*reader.manifest.live_files(), layout.manifest_name(DAY)}
