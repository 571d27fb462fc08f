"""The page budget over an index stand-in whose requests are counted exactly: rows already read
are used when the requests run out (a day's postings resolved up front), a page stops at the next
request it would need, and a page always moves its cursor however small the budget."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from collector import keys
from collector.index import Hit
from collector.models import AuditEntry, View
from collector.query.budget import Charge
from collector.query.service import Page, QueryService
from tests.clock import FakeClock
from tests.constants import TENANT

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def entry(when: datetime, n: int, user: str) -> AuditEntry:
    return AuditEntry(id=f"00000000-0000-4000-8000-{n:012d}", time=when.strftime("%Y-%m-%dT%H:%M:%SZ"), user=user,
                      operation="FileAccessed", object="/x", result="Succeeded", clientIp="203.0.113.7", userAgent="ua",
                      workload="SharePoint", recordType=6, contentType="Audit.SharePoint", organizationId=TENANT)


class DayIndex:
    """Each day of the range holds `per_day` rows of the user. A scan of a day charges `upfront`
    requests before its first row (its postings' time blocks, resolved at once), then one request
    per `page` rows after the first page."""

    def __init__(self, per_day: int, upfront: int, page: int = 1000) -> None:
        self.per_day, self.upfront, self.page = per_day, upfront, page
        self.requests = 0

    def months(self) -> list[str]:
        return ["202611"]

    def scan(self, view: View, start: datetime, end: datetime, *, value: str | None = None,
             after: str | None = None, page_size: int = 1000, on_request: Charge | None = None) -> Iterator[Hit]:
        assert on_request is not None
        for _ in range(self.upfront):
            on_request()
            self.requests += 1
        day_end = end - timedelta(seconds=1)
        for n in range(self.per_day):
            if n and n % self.page == 0:
                on_request()
                self.requests += 1
            when = day_end - timedelta(minutes=n)
            if when < start:
                return
            number = int(start.strftime("%j")) * 10_000 + n
            hit = Hit(keys.order_key(when, entry(when, number, value or "").id, TENANT, TENANT),
                      entry(when, number, value or ""))
            if after is None or hit.key > after:
                yield hit


def page_of(index: DayIndex, requests: int, top: int, after: str | None = None) -> Page:
    service = QueryService(index, clock=FakeClock(NOW), page_requests=requests, timer=lambda: 0.0)
    params = {"user": "a@contoso.com", "start": "2026-11-01T00:00:00Z", "end": "2026-11-30T00:00:00Z", "top": str(top)}
    plan = service.parse(params)
    if after is not None:
        plan = replace(plan, after=after)
    return service.page(plan)


def test_rows_already_read_fill_the_page_when_the_requests_run_out() -> None:
    # Day 1 costs the whole budget before its first row; its 30 rows are in hand, so the page holds 20.
    page = page_of(DayIndex(per_day=30, upfront=5), requests=5, top=20)
    assert len(page.entries) == 20 and page.next_key is not None


def test_a_page_stops_at_the_next_request_it_would_need() -> None:
    # A day costs one request and holds 3 rows: with 5 requests the page holds the rows of the days
    # it could read, newest first, and no request past the budget is made (the read-ahead's are refused).
    index = DayIndex(per_day=3, upfront=1)
    page = page_of(index, requests=5, top=100)
    assert 1 <= index.requests <= 5 and page.requests <= 5
    assert page.next_key is not None and len(page.entries) % 3 == 0 and 3 <= len(page.entries) <= 3 * index.requests
    days = sorted({e.time[:10] for e in page.entries}, reverse=True)
    assert days == [f"2026-11-{29 - n:02d}" for n in range(len(days))]  # whole days, the newest first


def test_every_page_moves_its_cursor_even_when_a_day_costs_more_than_the_budget() -> None:
    index = DayIndex(per_day=3, upfront=7)  # every day costs more than the whole budget
    seen: list[str] = []
    after = None
    for _ in range(200):
        page = page_of(index, requests=2, top=100, after=after)
        seen += [e.id for e in page.entries]
        if page.next_key is None:
            break
        assert page.next_key != after  # it moved
        after = page.next_key
    assert page.next_key is None
    assert len(seen) == len(set(seen)) == 29 * 3  # every row of the 29 days, once
