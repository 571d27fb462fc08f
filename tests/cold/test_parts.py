"""A large day compacted in parts (collector/cold/compaction.py, `part_records`): it answers every
query exactly as the same day in one part; a crash after any part loses nothing and the rerun
writes only the parts not yet committed; the time budget stops a run between parts; late records
and merges work on a day in parts. In-memory fakes of compaction's Protocols (tests/cold/data.py),
then one run end to end on Azurite."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from collector.cold import layout
from collector.cold.compaction import Compactor
from collector.cold.hot import HotIdView
from collector.cold.reader import DayReader, load_manifest
from collector.cold.store import ColdBlobStore
from collector.errors import ColdFormatError
from tests.clock import FakeClock
from tests.constants import OTHER_ORG, TENANT

from .data import DAY, DAY_START, FaultPlan, HotDay, InjectedFault, MemoryStore, special_blob, synthetic_blobs
from .helpers import SMALL, assert_day_matches, collect, hot_day, hot_hits

PART = 70  # records a part: the ~290-record test day in 5 parts


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(DAY_START + timedelta(days=1, hours=3))


class Seconds:
    """The compactor's monotonic seam: moves only when a test (or a store below) says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Recording(MemoryStore):
    """A MemoryStore that remembers every name written and can raise at the n-th part checkpoint,
    or advance a Seconds on each one (a part takes `per_part` seconds)."""

    def __init__(self, seconds: Seconds | None = None, per_part: float = 0.0) -> None:
        super().__init__()
        self.puts: list[str] = []
        self.crash_after_checkpoints: int | None = None
        self.checkpoints = 0
        self.seconds = seconds
        self.per_part = per_part

    def put_file(self, name: str, path: Path) -> int:
        if self.crash_after_checkpoints is not None and self.checkpoints >= self.crash_after_checkpoints:
            raise InjectedFault(f"the worker died writing {name}")
        size = super().put_file(name, path)
        self.puts.append(name)
        if _is_checkpoint(name):
            self.checkpoints += 1
            if self.seconds is not None:
                self.seconds.now += self.per_part
        return size


def _is_checkpoint(name: str) -> bool:
    stem = name.rsplit("/", 1)[-1]
    return stem.startswith("p") and stem[1:5].isdigit() and stem.endswith(".json")


def _part_of(name: str) -> int | None:
    stem = name.rsplit("/", 1)[-1]
    return int(stem[1:5]) if stem.startswith("p") and stem[1:5].isdigit() else None


def compactor(hot: HotDay, store: Any, clock: FakeClock, *, part_records: int = PART, seconds: Seconds | None = None,
              plan: FaultPlan | None = None) -> Compactor:
    ids, archive, cold = hot, hot, store
    if plan is not None:
        ids, archive, cold = plan.wrap(hot, "ids"), plan.wrap(hot, "archive"), plan.wrap(store, "store")
    return Compactor(ids, archive, cold, tenant_id=TENANT, clock=clock, limits=SMALL, part_records=part_records,
                     monotonic=seconds or Seconds())


def answers(reader: DayReader, hot: HotDay) -> dict[str, Any]:
    """What a day answers: every scan the query layer makes, by id, by organization."""
    records = sorted(hot.hot[DAY].values(), key=lambda r: r.order_key)
    keys = [r.order_key for r in records]
    out: dict[str, Any] = {"all": [(h.key, h.entry) for h in reader.scan()]}
    for user in sorted({r.entry.user for r in records}):
        out[f"user {user}"] = [h.key for h in reader.scan(user=user.upper())]
    for operation in sorted({r.entry.operation for r in records}):
        out[f"operation {operation}"] = [h.key for h in reader.scan(operation=operation.lower())]
    for cursor in (keys[0], keys[len(keys) // 3], keys[-2]):
        out[f"after {cursor}"] = [h.key for h in reader.scan(after=cursor)]
    out["window"] = [h.key for h in reader.scan(low=keys[40], high=keys[120])]
    user = records[len(records) // 2].entry.user
    out["user window"] = [h.key for h in reader.scan(user=user, after=keys[10], high=keys[-10])]
    out["raw"] = {r.entry.id + r.entry.organizationId: reader.raw(r.entry.id, r.entry.organizationId, TENANT)
                  for r in records}
    out["other orgs"] = reader.other_org_keys("aaaaaaaa-0000-4000-8000-000000000002", TENANT)
    out["known"] = sorted(reader.known([k[10:] for k in keys[::7]] + ["not-a-key"]))
    out["records"] = reader.manifest.records
    return out


def test_a_day_in_parts_answers_every_query_exactly_as_one_part(clock: FakeClock) -> None:
    hot = hot_day()
    one, parts = MemoryStore(), MemoryStore()
    compactor(hot, one, clock, part_records=10_000).compact_day(DAY)
    report = compactor(hot, parts, clock).compact_day(DAY)
    assert report.action == "compacted" and report.parts == 5 and report.parts_written == [1, 2, 3, 4, 5]

    single = DayReader(one, DAY).manifest
    manifest = DayReader(parts, DAY).manifest
    assert single.parts == () and json.loads(single.to_bytes())["format"] == layout.FORMAT  # small days unchanged
    assert json.loads(parts.get(layout.manifest_name(DAY))[0])["format"] == layout.PARTS_FORMAT  # type: ignore[index]
    assert len(manifest.segments) == 5 and all(0 < p.records <= PART for p in manifest.segments)
    assert sum(p.records for p in manifest.segments) == manifest.records == len(hot.hot[DAY])
    assert manifest.digest == single.digest
    assert answers(DayReader(parts, DAY), hot) == answers(DayReader(one, DAY), hot)
    assert answers(DayReader(parts, DAY), hot)["other orgs"] == [f"aaaaaaaa-0000-4000-8000-000000000002_{OTHER_ORG}"]
    # the plan and the checkpoints are gone once the manifest lists the parts; nothing stray
    assert_day_matches(parts, hot)
    assert set(parts.list(layout.day_prefix(DAY))) == {*manifest.live_files(), layout.manifest_name(DAY)}
    # a format-1 reader refuses a day in parts rather than serve its first part only
    assert layout.Manifest.from_bytes(manifest.to_bytes()) == manifest
    older = json.loads(manifest.to_bytes())
    older["format"] = 3
    with pytest.raises(ColdFormatError, match="format"):
        layout.Manifest.from_bytes(json.dumps(older).encode())


@pytest.mark.parametrize("committed", [0, 1, 3, 4])
def test_a_crash_after_part_k_loses_nothing_and_the_rerun_writes_only_the_parts_left(clock: FakeClock,
                                                                                    committed: int) -> None:
    hot, store = hot_day(), Recording()
    store.crash_after_checkpoints = committed
    with pytest.raises(InjectedFault):
        compactor(hot, store, clock).compact_day(DAY)
    assert load_manifest(store, DAY) is None  # nothing the queries honour yet
    checkpoints = [n for n in store.blobs if _is_checkpoint(n)]
    assert sorted(_part_of(n) for n in checkpoints) == list(range(1, committed + 1))
    before = {n: store.blobs[n] for n in store.blobs}

    store.crash_after_checkpoints = None
    store.puts.clear()
    report = compactor(hot, store, clock).compact_day(DAY)
    assert report.action == "compacted" and report.parts_written == list(range(committed + 1, 6))
    rewritten = {_part_of(n) for n in store.puts} - {None}
    assert rewritten == set(range(committed + 1, 6))  # committed parts' files were not written again
    manifest = DayReader(store, DAY).manifest
    for part in manifest.segments[:committed]:
        for info in part.files.values():
            assert store.blobs[info.name] == before[info.name]
    assert_day_matches(store, hot)


def test_a_crash_at_any_call_of_a_compaction_in_parts_loses_nothing(clock: FakeClock) -> None:
    def prepared() -> tuple[HotDay, MemoryStore]:
        hot = HotDay()
        for blob in synthetic_blobs(5, hours=24, seed=31):
            hot.add(blob)
        hot.add(special_blob(DAY_START + timedelta(hours=3)))
        return hot, MemoryStore()

    counting = FaultPlan()
    hot, store = prepared()
    compactor(hot, store, clock, part_records=40, plan=counting).compact_day(DAY)
    assert len(DayReader(store, DAY).manifest.segments) >= 3
    for fail_at in range(1, counting.calls + 1, 3):
        hot, store = prepared()
        with pytest.raises(InjectedFault):
            compactor(hot, store, clock, part_records=40, plan=FaultPlan(fail_at)).compact_day(DAY)
        compactor(hot, store, clock, part_records=40).compact_day(DAY)
        compactor(hot, store, clock, part_records=40).compact_day(DAY)  # cleans a crashed cleanup's plan files
        assert_day_matches(store, hot)


def test_the_time_budget_stops_a_run_between_parts_and_the_next_run_continues(clock: FakeClock) -> None:
    hot = hot_day()
    for blob in synthetic_blobs(2, hours=24, seed=41, start=DAY_START - timedelta(days=1)):
        hot.add(blob)  # an older, small day first: it takes no time on the fake clock
    seconds = Seconds()
    store = Recording(seconds, per_part=100.0)
    first = compactor(hot, store, clock, seconds=seconds).run(max_seconds=250)
    days = {d.day: d for d in first.days}
    assert days["20240505"].action == "compacted"
    # part 1 took 100 s; part 2 could end by 200 s; part 3 might not end by 250: stop between parts
    assert days[DAY].action == "partial" and days[DAY].parts_written == [1, 2] and days[DAY].parts_done == 2
    assert first.left[0] == DAY and not first.finished
    assert load_manifest(store, DAY) is None

    seconds.now = 1000.0  # the next timer run
    second = compactor(hot, store, clock, seconds=seconds).run(max_seconds=250)
    assert {d.day: d.parts_written for d in second.days}[DAY] == [3, 4]
    third = compactor(hot, store, clock, seconds=seconds).run(max_seconds=250)
    day = {d.day: d for d in third.days}[DAY]
    assert day.action == "compacted" and day.parts_written == [5] and third.finished
    assert_day_matches(store, hot)
    # without a budget (python -m collector compact) a run goes to the end
    assert compactor(hot, MemoryStore(), clock, seconds=seconds).run().finished


def test_late_records_of_a_day_in_parts_land_in_a_delta_and_merge_into_its_last_part(clock: FakeClock) -> None:
    hot, store = hot_day(), MemoryStore()
    compactor(hot, store, clock).compact_day(DAY)
    first = DayReader(store, DAY).manifest
    for number in range(1, 5):
        clock.advance(timedelta(hours=1))
        hot.written_at = clock.now()
        hot.add(synthetic_blobs(2, hours=3, seed=300 + number)[0])  # a few late records
        report = compactor(hot, store, clock).compact_day(DAY)
        assert report.action == ("delta" if number < 4 else "merged")
        if number < 4:
            assert len(DayReader(store, DAY).manifest.deltas) == number
            assert_day_matches(store, hot)
    merged = DayReader(store, DAY).manifest
    assert merged.generation == 2 and merged.deltas == () and len(merged.segments) == 5
    # the first four parts are kept as they were (generation 1); only the last one was rewritten
    assert merged.segments[:4] == first.segments[:4]
    assert all(layout.generation_of(i.name) == 2 for i in merged.segments[4].files.values())
    assert merged.segments[4].records == first.segments[4].records + merged.records - first.records
    assert_day_matches(store, hot)


def test_deltas_too_large_for_the_last_part_merge_into_a_part_of_their_own(clock: FakeClock) -> None:
    hot, store = hot_day(), MemoryStore()
    compactor(hot, store, clock).compact_day(DAY)
    clock.advance(timedelta(hours=1))
    hot.written_at = clock.now()
    for blob in synthetic_blobs(3, hours=24, seed=77):  # ~70 late records: over 10 % of the day
        hot.add(blob)
    report = compactor(hot, store, clock).compact_day(DAY)
    assert report.action == "merged"
    merged = DayReader(store, DAY).manifest
    assert len(merged.segments) == 6 and merged.deltas == ()
    assert_day_matches(store, hot)


def test_a_day_in_parts_on_azurite_through_the_id_view_and_blob_store(env: dict[str, str]) -> None:  # noqa: F811
    from collector.bootstrap import Services
    from collector.settings import Settings

    services = Services(Settings.from_env(env))
    services.ensure_storage()
    collect(services, [*synthetic_blobs(12, seed=21), special_blob(DAY_START + timedelta(hours=5))])
    store = ColdBlobStore(services.blob_service, env["AUDIT_COLD_CONTAINER"])
    store.ensure_container()
    ids = HotIdView(services.tables, env["AUDIT_TABLE_PREFIX"])
    clock = FakeClock(DAY_START + timedelta(days=1, hours=3))
    seconds = Seconds()

    class Timed(ColdBlobStore):
        def put_file(self, name: str, path: Path) -> int:
            if _is_checkpoint(name):
                seconds.now += 60.0
            return super().put_file(name, path)

    timed = Timed(services.blob_service, env["AUDIT_COLD_CONTAINER"])

    def run() -> Any:
        return Compactor(ids, services.archive, timed, tenant_id=TENANT, clock=clock, part_records=PART,
                         monotonic=seconds).run(max_seconds=150)

    first = run()
    assert [d.action for d in first.days if d.day == DAY] == ["partial"]
    assert store.get(layout.plan_name(DAY, 1)) is not None and load_manifest(store, DAY) is None
    for _ in range(10):
        if (report := run()).finished:
            break
    assert [d.action for d in report.days if d.day == DAY] == ["compacted"]
    reader = DayReader(store, DAY)
    assert len(reader.manifest.segments) > 2
    assert [(h.key, h.entry) for h in reader.scan()] == hot_hits(services)
    assert set(store.list(layout.day_prefix(DAY))) == {*reader.manifest.live_files(), layout.manifest_name(DAY)}


def test_parts_are_cut_along_the_blob_list_into_about_equal_parts_within_the_budget() -> None:
    assert layout.cut_parts([], 10) == []
    assert layout.cut_parts([4, 4, 4], 100) == [(0, 3)]  # a small day: one part
    assert layout.cut_parts([30, 1, 1], 10) == [(0, 1), (1, 3)]  # one blob over the budget is a part alone
    counts = [250] * 1_200  # 300,000 records of 250-record blobs, in parts of at most 100,000
    ranges = layout.cut_parts(counts, 100_000)
    sizes = [sum(counts[a:b]) for a, b in ranges]
    assert len(ranges) == 3 and sizes == [100_000] * 3
    assert [b for _, b in ranges[:-1]] == [a for a, _ in ranges[1:]] and ranges[-1][1] == len(counts)
    ranges = layout.cut_parts(counts, 110_000)  # not 110,000 + 110,000 + 80,000: three of about 100,000
    assert len(ranges) == 3 and max(sum(counts[a:b]) for a, b in ranges) - min(sum(counts[a:b]) for a, b in ranges) <= 250


def test_a_month_filter_and_a_cold_lookup_find_records_of_every_part(clock: FakeClock) -> None:
    from collector.cold.view import ColdView

    hot, store = hot_day(), MemoryStore()
    compactor(hot, store, clock).compact_day(DAY)
    assert compactor(hot, store, clock).build_filter(DAY[:6]) == 1
    view = ColdView(store, TENANT)
    view.days(refresh=True)
    manifest = DayReader(store, DAY).manifest
    for part in manifest.segments:  # one record of each part, found through the filter
        first = next(DayReader(store, DAY).file_tables([part.files[layout.RECORDS]], ["order_key", "raw"]))
        order, raw = first.column("order_key")[0].as_py(), first.column("raw")[0].as_py()
        record = hot.hot[DAY][order[10:]]
        found = view.find(record.entry.id, [DAY])
        assert found.day == DAY and found.raw == record.raw == raw.encode("utf-8")
    other = view.find("aaaaaaaa-0000-4000-8000-000000000002", [DAY])  # another organization's record
    assert other.raw is not None and b"fabrikam" in other.raw
    assert view.find("00000000-dead-4000-8000-000000000000", [DAY]).raw is None


def test_a_plan_abandoned_for_longer_than_plan_age_is_replaced_by_a_new_scan(clock: FakeClock) -> None:
    from collector.cold.compaction import PLAN_AGE

    hot, seconds = hot_day(), Seconds()
    store = Recording(seconds, per_part=100.0)
    assert compactor(hot, store, clock, seconds=seconds).run(max_seconds=150).left  # part 1 only
    first = layout.Plan.from_bytes(store.blobs[layout.plan_name(DAY, 1)][0])
    clock.advance(PLAN_AGE + timedelta(hours=1))
    hot.written_at = clock.now()
    for blob in synthetic_blobs(3, hours=24, seed=91):  # the hot day changed meanwhile
        hot.add(blob)
    report = compactor(hot, store, clock).compact_day(DAY)
    assert report.action == "compacted" and report.records == len(hot.hot[DAY]) > first.records
    assert_day_matches(store, hot)
