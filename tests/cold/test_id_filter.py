"""Month id filters (collector/cold/idfilter.py): pure membership, and on Azurite the compactor
writing, replacing and invalidating them, and the cold id lookup reading only the days they allow."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from collector.bootstrap import Services
from collector.cold import idfilter, layout
from collector.cold.store import ColdBlobStore
from collector.cold.view import ColdView
from collector.settings import Settings
from tests.constants import OTHER_ORG, TENANT

from .data import DAY, DAY_START, special_blob, synthetic_blobs
from .helpers import collect, hot_hits


def test_every_member_is_a_candidate_and_false_positives_stay_near_one_percent():
    members = [layout.key_hash(f"member-{i}") for i in range(6000)]
    strangers = [layout.key_hash(f"stranger-{i}") for i in range(6000)]
    days = [(idfilter.DayEntry("20240501", 1, 0, False), np.array(members[:1000], dtype=np.int64)),
            (idfilter.DayEntry("20240502", 2, 1, True), np.array(members[1000:], dtype=np.int64))]
    data = idfilter.build("202405", days)
    need, header = idfilter.parse_header(data[:8])
    assert header is None
    _, header = idfilter.parse_header(data[:need])
    assert header is not None and [d.day for d in header.days] == ["20240501", "20240502"]

    def candidates(key_hash: int) -> set[str]:
        offset, length = header.row(idfilter.positions(key_hash, header.blocks)[0])
        return idfilter.candidates(header, data[offset:offset + length], key_hash)

    assert all("20240501" in candidates(k) for k in members[:1000])
    assert all("20240502" in candidates(k) for k in members[1000:])
    rate = sum(len(candidates(k)) for k in strangers) / (2 * len(strangers))
    assert rate < 0.03
    offset, _ = header.row(0)
    assert idfilter.candidates(header, data[offset:offset + 10], strangers[0]) == {"20240501", "20240502"}  # short: may hold
    name = idfilter.filter_name("202405", data)
    assert idfilter.month_of_filter(name) == "202405" and idfilter.month_of_filter("2024/05/06/manifest.json") is None


def test_the_compactor_writes_the_filter_and_a_lookup_reads_only_the_days_it_allows(env: dict[str, str]) -> None:
    services = Services(Settings.from_env(env))
    services.ensure_storage()
    services.cold_store.ensure_container()
    day_before = (DAY_START - timedelta(days=1)).strftime("%Y%m%d")
    collect(services, [*synthetic_blobs(4, seed=21), special_blob(DAY_START + timedelta(hours=9)),
                       *synthetic_blobs(2, seed=22, start=DAY_START - timedelta(days=1))])
    services.compactor.run()
    store = ColdBlobStore(services.blob_service, env["AUDIT_COLD_CONTAINER"])
    filters = [n for n in store.list("2024/05/") if idfilter.month_of_filter(n)]
    assert len(filters) == 1  # May 2024 has ended: its days are covered

    view = ColdView(store, TENANT)
    days = sorted(view.days(refresh=True), reverse=True)
    assert days == [DAY, day_before]
    known = next(entry for _, entry in hot_hits(services) if entry.organizationId.lower() == TENANT.lower())
    own, other = view._probes(known.id, days, None)
    assert own == [DAY] and other == [DAY]  # the special blob holds another organization's record
    found = view.find(known.id, days)
    assert found.day == DAY and found.raw is not None and f'"{known.id}"'.lower() in found.raw.decode().lower()

    misses = [view._probes(f"no-such-record-{i}", days, None)[0] for i in range(40)]
    assert sum(len(m) for m in misses) <= 4  # ~1 % of 80 day probes; without the filter: all 80
    foreign = view.find("aaaaaaaa-0000-4000-8000-000000000002", days)
    assert foreign.day == DAY and OTHER_ORG in foreign.raw.decode()  # type: ignore[union-attr]

    # Late records for the day: the filter is replaced (a new name), never left stale.
    collect(services, synthetic_blobs(2, hours=2, seed=23))
    services.compactor.run()
    replaced = [n for n in store.list("2024/05/") if idfilter.month_of_filter(n)]
    assert len(replaced) == 1 and replaced != filters
    late = hot_hits(services)[-1][1]
    fresh = ColdView(store, TENANT)
    fresh_days = sorted(fresh.days(refresh=True), reverse=True)
    assert fresh.find(late.id, fresh_days).day is not None


def test_without_a_filter_every_day_is_read(env: dict[str, str]) -> None:
    services = Services(Settings.from_env(env))
    services.ensure_storage()
    services.cold_store.ensure_container()
    collect(services, synthetic_blobs(2, seed=31))
    services.compactor.run()
    store = ColdBlobStore(services.blob_service, env["AUDIT_COLD_CONTAINER"])
    for name in [n for n in store.list("2024/05/") if idfilter.month_of_filter(n)]:
        store.delete(name)
    view = ColdView(store, TENANT)
    assert view._probes("anything", [DAY], None) == ([DAY], [DAY])


@pytest.mark.parametrize("month, last", [("202402", "20240229"), ("202312", "20231231"), ("202304", "20230430")])
def test_month_end(month: str, last: str) -> None:
    from collector.cold.compaction import _month_end

    assert _month_end(month) == last
