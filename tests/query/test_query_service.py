"""QueryService against real index tables in Azurite: every filter, order, defaults, paging, budgets, exports."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from collector import keys
from collector.index import AuditIndex
from collector.query.params import QueryPlan
from collector.query.service import QueryService
from tests.clock import FakeClock
from tests.query.data import (
    FILTERS,
    NOW,
    OTHER_ORG,
    TENANT,
    WIDE,
    WIDE_END,
    WIDE_START,
    all_pages,
    cf,
    index_view,
    key_of,
    newest_first,
    oracle,
)


@pytest.mark.parametrize("params, predicate", FILTERS, ids=[str(p) for p, _ in FILTERS])
def test_every_filter_matches_the_oracle(dataset, params, predicate):
    service = dataset.query()
    entries, _ = all_pages(service, {**WIDE, **params, "top": "1000"})
    expected = oracle(dataset.rows, WIDE_START, WIDE_END, predicate)
    assert [key_of(e) for e in entries] == expected
    if params and predicate(dataset.rows[0].entry) is not None and expected == []:
        assert not entries  # an injection attempt returns nothing, and no error


def test_the_filters_select_something():
    # Guard against a vacuous oracle: most non-injection cases must select a proper, non-empty subset.
    from tests.query.data import build_rows

    rows = build_rows()
    selective = [p for p, predicate in FILTERS[1:-6] if 0 < len(oracle(rows, WIDE_START, WIDE_END, predicate)) < 200]
    assert len(selective) >= len(FILTERS[1:-6]) - 1


def test_records_come_back_with_their_fields(dataset):
    entries, _ = all_pages(dataset.query(), {**WIDE, "top": "1000"})
    by_id = {(r.entry.id, r.entry.organizationId): r.entry for r in dataset.rows}
    assert entries and all(index_view(by_id[(e.id, e.organizationId)]) == e for e in entries)
    twins = [e for e in entries if e.id == "twin-0000-4000-8000-000000000000"]
    assert sorted(e.organizationId for e in twins) == sorted([TENANT, OTHER_ORG])


def test_default_range_is_the_last_24_hours_newest_first(dataset):
    page = dataset.query().page(dataset.query().parse({"top": "1000"}))
    expected = oracle(dataset.rows, NOW - timedelta(hours=24), NOW, lambda e: True)
    assert [key_of(e) for e in page.entries] == expected
    assert 20 < len(expected) < 1000 and page.next_key is None
    times = [e.when for e in page.entries]
    assert times == sorted(times, reverse=True)


def test_now_is_injectable(dataset):
    later = QueryService(dataset.services.index, clock=FakeClock(NOW - timedelta(days=3)))
    page = later.page(later.parse({"top": "1000"}))
    assert [key_of(e) for e in page.entries] == oracle(dataset.rows, NOW - timedelta(days=4), NOW - timedelta(days=3),
                                                       lambda e: True)


def test_same_second_records_are_ordered_by_id_and_all_present(dataset):
    tie = NOW - timedelta(hours=3, seconds=30)
    page = dataset.query().page(dataset.query().parse({"start": tie.isoformat(), "end": (tie + timedelta(seconds=1)).isoformat()}))
    assert [e.id for e in page.entries] == [f"ffff{n:04x}-tie0-4000-8000-000000000000" for n in range(3)]


def test_paging_small_pages_has_no_gaps_or_duplicates(dataset):
    entries, sizes = all_pages(dataset.query(), {**WIDE, "top": "7"})
    got = [key_of(e) for e in entries]
    assert got == oracle(dataset.rows, WIDE_START, WIDE_END, lambda e: True)
    assert len(set(got)) == len(got)
    assert all(size == 7 for size in sizes[:-1]) and 0 < sizes[-1] <= 7


def test_a_full_last_page_has_no_next_link(dataset):
    total = len(oracle(dataset.rows, WIDE_START, WIDE_END, lambda e: e.workload == "Exchange"))
    service = dataset.query()
    page = service.page(service.parse({**WIDE, "workload": "Exchange", "top": str(total)}))
    assert len(page.entries) == total and page.next_key is None


def test_paging_across_the_month_boundary_with_several_users(dataset):
    params = {**WIDE, "user": "dave@fabrikam.com,bob@contoso.com,ALICE@contoso.com", "top": "5"}
    entries, _ = all_pages(dataset.query(), params)
    expected = oracle(dataset.rows, WIDE_START, WIDE_END,
                      lambda e: cf(e.user) in ("dave@fabrikam.com", "bob@contoso.com", "alice@contoso.com"))
    assert [key_of(e) for e in entries] == expected
    assert {e.time[:7] for e in entries} == {"2024-02", "2024-03"}


def test_row_budget_gives_short_pages_that_still_reach_everything(dataset):
    service = dataset.query(scan_budget_rows=10)
    entries, sizes = all_pages(service, {**WIDE, "q": OTHER_ORG, "top": "3"})
    assert [key_of(e) for e in entries] == oracle(dataset.rows, WIDE_START, WIDE_END, lambda e: e.organizationId == OTHER_ORG)
    assert 0 in sizes[:-1]  # an empty page that still had a next link
    assert any(0 < size < 3 for size in sizes[:-1])


def test_time_budget_gives_short_pages_that_still_reach_everything(dataset):
    ticks = iter(range(10**9))
    service = dataset.query(scan_budget_seconds=4.5, timer=lambda: float(next(ticks)))  # ~4 rows per page
    entries, sizes = all_pages(service, {**WIDE, "workload": "OneDrive", "top": "50"})
    assert [key_of(e) for e in entries] == oracle(dataset.rows, WIDE_START, WIDE_END, lambda e: e.workload == "OneDrive")
    assert max(sizes) < 5 and len(sizes) > 10


def test_user_ranges_are_not_limited_and_long_ranges_touch_only_existing_months(dataset):
    expected = oracle(dataset.rows, datetime(1900, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC),
                      lambda e: cf(e.user) == "alice@contoso.com")
    assert any(k for k in expected if keys.split_order_key(k)[0].month == 1)  # January records are included
    entries, _ = all_pages(dataset.query(), {"start": "1900-01-01", "end": "2100-01-01", "user": "alice@contoso.com",
                                             "top": "1000"})
    assert [key_of(e) for e in entries] == expected


def test_an_empty_index_returns_an_empty_last_page(dataset):
    empty = QueryService(AuditIndex(dataset.services.tables, "nothinghere", TENANT), clock=FakeClock(NOW))
    for params in ({}, {"user": "a@x.com", "start": "2000-01-01"}):
        page = empty.page(empty.parse(params))
        assert page.entries == [] and page.next_key is None


def test_a_cursor_past_the_range_ends_paging(dataset):
    service = dataset.query()
    oldest = newest_first(dataset.rows)[-1]
    plan = replace(service.parse(WIDE), after=oldest.order_key)
    assert service.page(plan) == service.page(plan) and service.page(plan).entries == []


@pytest.mark.parametrize("limit, truncated", [(5, "limit"), (10_000, None)])
def test_export_stops_at_the_row_limit(dataset, limit, truncated):
    service = dataset.query(max_export_rows=limit)
    plan: QueryPlan = service.parse({**WIDE, "format": "csv"})
    export = service.export(plan)
    got = [key_of(e) for e in export]
    expected = oracle(dataset.rows, WIDE_START, WIDE_END, lambda e: True)
    assert got == expected[:limit]
    assert export.truncated == truncated and export.rows == len(got)
    if truncated:
        assert export.next_key == expected[limit - 1]
        rest = [key_of(e) for e in service.export(replace(plan, after=export.next_key))]
        assert rest[:5] == expected[limit:limit + 5]


def test_export_exactly_at_the_limit_is_not_truncated(dataset):
    total = len(oracle(dataset.rows, WIDE_START, WIDE_END, lambda e: e.operation == "Send"))
    service = dataset.query(max_export_rows=total)
    export = service.export(service.parse({**WIDE, "operation": "Send", "format": "ndjson"}))
    assert len(list(export)) == total and export.truncated is None


def test_export_time_limit(dataset):
    ticks = iter(range(10**9))
    service = dataset.query(timer=lambda: float(next(ticks)))
    plan = service.parse({**WIDE, "format": "ndjson"})
    export = service.export(plan, seconds=100)  # one tick per scanned row
    got = [key_of(e) for e in export]
    assert export.truncated == "time" and 0 < len(got) < len(dataset.rows)
    rest = [key_of(e) for e in service.export(replace(plan, after=export.next_key), seconds=None)]
    assert got + rest == oracle(dataset.rows, WIDE_START, WIDE_END, lambda e: True)


class CountingIndex:
    """Our own wrapper of the real index that records how many day scans run at once."""

    def __init__(self, index) -> None:
        import threading

        self.index, self.lock = index, threading.Lock()
        self.active = self.peak = self.calls = 0

    def months(self):
        return self.index.months()

    def scan(self, *args, **kwargs):
        import time

        with self.lock:
            self.active += 1
            self.calls += 1
            self.peak = max(self.peak, self.active)
        try:
            time.sleep(0.02)  # a round trip
            yield from self.index.scan(*args, **kwargs)
        finally:
            with self.lock:
                self.active -= 1


def test_sparse_values_read_days_ahead_in_parallel(dataset):
    counting = CountingIndex(dataset.services.index)
    service = QueryService(counting, clock=FakeClock(NOW))
    entries, _ = all_pages(service, {**WIDE, "user": "dave@fabrikam.com", "operation": "Send", "top": "1000"})
    expected = oracle(dataset.rows, WIDE_START, WIDE_END, lambda e: cf(e.user) == "dave@fabrikam.com" and e.operation == "Send")
    assert [key_of(e) for e in entries] == expected
    assert counting.calls == 10 and counting.peak >= 4  # Feb 22-29, Mar 1, Mar 2: ten day windows, several at once


def test_dense_values_do_not_read_ahead(dataset):
    counting = CountingIndex(dataset.services.index)
    service = QueryService(counting, clock=FakeClock(NOW))
    page = service.page(service.parse({**WIDE, "top": "5"}))
    assert len(page.entries) == 5 and page.next_key is not None
    assert counting.calls == 1


class RequestCountingIndex:
    """Our own wrapper of the real index that counts the storage requests its scans make."""

    def __init__(self, index) -> None:
        import threading

        self.index, self.lock, self.requests = index, threading.Lock(), 0

    def months(self):
        return self.index.months()

    def scan(self, *args, on_request=None, **kwargs):
        def counted() -> None:
            with self.lock:
                self.requests += 1
            if on_request is not None:
                on_request()

        return self.index.scan(*args, on_request=counted, **kwargs)


UNKNOWN_USERS = ",".join(f"nobody{n}@contoso.com" for n in range(50))


def test_values_that_match_nothing_cost_a_bounded_number_of_requests_per_page(dataset):
    """50 unknown users over ten days of existing tables: 500 day probes, spread over pages of at
    most the request budget (plus the probes already in flight), every page empty but linked."""
    counting = RequestCountingIndex(dataset.services.index)
    service = QueryService(counting, clock=FakeClock(NOW), page_requests=60)
    plan = service.parse({**WIDE, "user": UNKNOWN_USERS, "top": "1000"})
    per_page = []
    for _ in range(100):
        before = counting.requests
        page = service.page(plan)
        per_page.append(counting.requests - before)
        assert page.entries == [] and page.requests <= per_page[-1]  # a probe in flight may land after the return
        if page.next_key is None:
            break
        plan = service.parse(plan.link_params(page.next_key))
    assert len(per_page) > 3 and max(per_page) <= 60 + 8  # 8: the read-ahead threads' requests in flight
    # Chains ahead of the slowest one re-read a few days on the next page: a bounded overhead.
    assert sum(per_page) < 2 * 50 * 10


def test_a_known_user_among_unknown_ones_is_found_through_budgeted_pages(dataset):
    service = QueryService(dataset.services.index, clock=FakeClock(NOW), page_requests=60)
    entries, sizes = all_pages(service, {**WIDE, "user": UNKNOWN_USERS.partition(",")[2] + ",carol@contoso.com", "top": "1000"})
    assert [key_of(e) for e in entries] == oracle(dataset.rows, WIDE_START, WIDE_END,
                                                  lambda e: cf(e.user) == "carol@contoso.com")
    assert len(sizes) > 2  # several short pages, one per budget


def test_an_export_stops_at_its_request_budget_and_continues(dataset):
    service = QueryService(dataset.services.index, clock=FakeClock(NOW), export_requests=30)
    plan = service.parse({**WIDE, "user": UNKNOWN_USERS.partition(",")[2] + ",carol@contoso.com", "format": "ndjson"})
    got: list[str] = []
    for _ in range(100):
        export = service.export(plan)
        got += [key_of(e) for e in export]
        if export.truncated is None:
            break
        assert export.truncated == "requests" and export.requests <= 50 + 8 and export.next_key
        plan = replace(plan, after=export.next_key)
    assert got == oracle(dataset.rows, WIDE_START, WIDE_END, lambda e: cf(e.user) == "carol@contoso.com")
