"""Compaction over in-memory fakes of its Protocols: a compacted day holds exactly the hot index's
records (fields and raw bytes), late records go to deltas, deltas merge, and a crash at any call
loses nothing: the rerun finishes the job."""

from __future__ import annotations

import threading
import time
from datetime import date, timedelta
from typing import Any

import pytest

from collector.cold import layout
from collector.cold.compaction import Compactor
from collector.cold.reader import DayReader, load_manifest
from collector.errors import CompactionError
from tests.clock import FakeClock
from tests.constants import TENANT

from .data import DAY, DAY_START, FaultPlan, HotDay, InjectedFault, MemoryStore, synthetic_blobs
from .helpers import SMALL, assert_day_matches, hot_day


def compactor(hot: HotDay, store: MemoryStore, clock: FakeClock, plan: FaultPlan | None = None) -> Compactor:
    ids, archive, cold = hot, hot, store
    if plan is not None:
        ids, archive, cold = plan.wrap(hot, "ids"), plan.wrap(hot, "archive"), plan.wrap(store, "store")
    return Compactor(ids, archive, cold, tenant_id=TENANT, clock=clock, limits=SMALL)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(DAY_START + timedelta(days=1, hours=3))


def test_a_compacted_day_holds_exactly_the_hot_records_and_their_raw_bytes(clock: FakeClock) -> None:
    hot, store = hot_day(), MemoryStore()
    report = compactor(hot, store, clock).run()
    assert [(d.day, d.action) for d in report.days] == [(d, "compacted") for d in hot.days() if d <= DAY]
    assert_day_matches(store, hot)
    manifest = DayReader(store, DAY).manifest
    assert manifest.files[layout.RECORDS].rows == manifest.files[layout.TIME].rows == len(hot.hot[DAY])
    assert len(manifest.files[layout.RECORDS].groups) >= 1


def test_user_and_operation_scans_match_the_hot_view_newest_first_after_a_cursor(clock: FakeClock) -> None:
    hot, store = hot_day(), MemoryStore()
    compactor(hot, store, clock).run()
    reader = DayReader(store, DAY)
    records = sorted(hot.hot[DAY].values(), key=lambda r: r.order_key)
    user = records[len(records) // 2].entry.user
    operation = records[0].entry.operation
    by_user = [r.order_key for r in records if r.entry.user.casefold() == user.casefold()]
    by_op = [r.order_key for r in records if r.entry.operation.casefold() == operation.casefold()]
    assert [h.key for h in reader.scan(user=user.upper())] == by_user
    assert [h.key for h in reader.scan(operation=operation.lower())] == by_op
    assert [h.key for h in reader.scan(user=user, after=by_user[0])] == by_user[1:]
    assert [h.key for h in reader.scan(after=records[5].order_key)] == [r.order_key for r in records[6:]]
    assert list(reader.scan(user="nobody@nowhere.example")) == []
    assert reader.raw("00000000-dead-4000-8000-000000000000") is None


def test_only_closed_days_unless_through_forces_them(clock: FakeClock) -> None:
    hot, store = hot_day(), MemoryStore()
    clock.set(DAY_START + timedelta(days=1, hours=1))  # the day ended 1 h ago: not closed yet (grace)
    assert compactor(hot, store, clock).run().days == []
    report = compactor(hot, store, clock).run(through=date(2024, 5, 6))
    assert [d.action for d in report.days if d.day == DAY] == ["compacted"]


def test_a_rerun_changes_nothing(clock: FakeClock) -> None:
    hot, store = hot_day(), MemoryStore()
    compactor(hot, store, clock).run()
    before = dict(store.blobs)
    report = compactor(hot, store, clock).run()
    assert {d.action for d in report.days} == {"unchanged"}
    assert store.blobs == before


def test_late_records_go_to_a_delta_and_deltas_merge_into_a_new_generation(clock: FakeClock) -> None:
    hot, store = hot_day(), MemoryStore()
    compactor(hot, store, clock).run()
    first = DayReader(store, DAY).manifest
    store.immutable.add(first.files[layout.IDS].name)  # under a WORM policy: never deleted
    for number in range(1, 5):
        clock.advance(timedelta(hours=1))
        hot.written_at = clock.now()
        for blob in synthetic_blobs(2, hours=3, seed=100 + number):
            hot.add(blob)
        # an id entity rewritten by a retry (new Timestamp, same record) is not a late record
        key = next(iter(hot.ids[DAY]))
        hot.ids[DAY][key] = (*hot.ids[DAY][key][:2], clock.now())
        report = compactor(hot, store, clock).run()
        action = {d.day: d.action for d in report.days}[DAY]
        assert action == ("delta" if number < 4 else "merged")
        if number < 4:
            assert_day_matches(store, hot)
    merged = DayReader(store, DAY).manifest
    assert merged.generation == 2 and merged.deltas == ()
    names = set(store.list(layout.day_prefix(DAY)))
    assert first.files[layout.RECORDS].name not in names  # superseded and deleted after the new manifest
    assert first.files[layout.IDS].name in names  # immutable: kept although no manifest lists it
    store.immutable.clear()
    store.delete(first.files[layout.IDS].name)
    assert_day_matches(store, hot)


def test_a_record_missing_from_its_archive_blob_fails_the_day_and_commits_nothing(clock: FakeClock) -> None:
    hot, store = hot_day(), MemoryStore()
    _key, (name, position, _) = next(iter(hot.ids[DAY].items()))
    hot.blobs[name] = hot.blobs[name][:position] + [{"Id": "someone-else"}] + hot.blobs[name][position + 1:]
    with pytest.raises(CompactionError):
        compactor(hot, store, clock).compact_day(DAY)
    assert load_manifest(store, DAY) is None


@pytest.mark.parametrize("phase", ["compact", "delta", "merge"])
def test_a_crash_at_any_call_loses_nothing_and_the_rerun_finishes(clock: FakeClock, phase: str) -> None:
    def prepared() -> tuple[HotDay, MemoryStore]:
        hot, store = hot_day(records_per_hour=4, hours=24), MemoryStore()
        if phase != "compact":
            compactor(hot, store, clock).compact_day(DAY)
            for number in range(1 if phase == "delta" else 4):
                hot.written_at = clock.now() + timedelta(hours=number + 1)
                for blob in synthetic_blobs(1, hours=4, seed=200 + number):
                    hot.add(blob)
                if phase == "merge" and number < 3:
                    compactor(hot, store, FakeClock(hot.written_at + timedelta(minutes=20))).compact_day(DAY)
        return hot, store

    later = FakeClock(clock.now() + timedelta(hours=6))
    counting = FaultPlan()
    hot, store = prepared()
    compactor(hot, store, later, counting).compact_day(DAY)
    assert counting.calls > 5
    for fail_at in range(1, counting.calls + 1):
        hot, store = prepared()
        with pytest.raises(InjectedFault):
            compactor(hot, store, later, FaultPlan(fail_at)).compact_day(DAY)
        store.aged = set(store.blobs)  # the crashed attempt's leftovers are now old orphans
        compactor(hot, store, later).compact_day(DAY)
        compactor(hot, store, later).compact_day(DAY)  # cleans what the first rerun committed over
        assert_day_matches(store, hot)


class SlowArchive:
    """The hot day's archive with a read that waits (as a blob download does) and counts how many
    reads are in flight at once."""

    def __init__(self, hot: HotDay, *, fail: str | None = None) -> None:
        self.hot, self.fail = hot, fail
        self.lock = threading.Lock()
        self.in_flight = self.most = 0
        self.order: list[str] = []

    def records(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            time.sleep(0.005)
            if name == self.fail:
                raise OSError(f"read of {name} failed")
            return self.hot.records(name)
        finally:
            with self.lock:
                self.in_flight -= 1
                self.order.append(name)


@pytest.mark.parametrize("read_ahead", [1, 4])
def test_archive_blobs_are_read_ahead_concurrently_and_the_day_is_the_same(clock: FakeClock, read_ahead: int) -> None:
    hot, store = hot_day(), MemoryStore()
    archive = SlowArchive(hot)
    Compactor(hot, archive, store, tenant_id=TENANT, clock=clock, limits=SMALL, read_ahead=read_ahead).compact_day(DAY)
    assert_day_matches(store, hot)
    assert sorted(archive.order) == sorted(set(archive.order))  # each blob read once
    assert archive.most == 1 if read_ahead == 1 else 1 < archive.most <= read_ahead


def test_a_failed_read_ahead_commits_nothing_and_the_rerun_finishes(clock: FakeClock) -> None:
    hot, store = hot_day(), MemoryStore()
    blobs = sorted(hot.blobs)
    failing = SlowArchive(hot, fail=blobs[len(blobs) // 2])
    with pytest.raises(OSError, match="failed"):
        Compactor(hot, failing, store, tenant_id=TENANT, clock=clock, limits=SMALL, read_ahead=4).compact_day(DAY)
    assert load_manifest(store, DAY) is None
    assert failing.in_flight == 0  # no read left running behind the error
    Compactor(hot, SlowArchive(hot), store, tenant_id=TENANT, clock=clock, limits=SMALL, read_ahead=4).compact_day(DAY)
    assert_day_matches(store, hot)


def test_read_ahead_must_be_positive() -> None:
    with pytest.raises(ValueError, match="read_ahead must be a positive number of blobs, got 0"):
        Compactor(HotDay(), HotDay(), MemoryStore(), tenant_id=TENANT, read_ahead=0)
