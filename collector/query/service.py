"""Query plans run over the index views: JSON pages and exports, newest first, with stateless cursors.

The only part of the query that reads storage, always through `AuditIndex.scan`.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal, Protocol

from .. import keys
from ..models import AuditEntry, View
from ..timeutil import SystemClock
from .matcher import matcher
from .params import Params, QueryPlan, parse_request

if TYPE_CHECKING:
    from ..index import Hit
    from ..timeutil import Clock

PREFETCH_DAYS = 8  # day tables read ahead in parallel when a scan is sparse
INDEX_EPOCH = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2286, 1, 1, tzinfo=UTC))  # what order keys can express
Truncation = Literal["limit", "time"]


class ViewIndex(Protocol):
    """What a query reads: `AuditIndex`'s view scans and its list of months."""

    def scan(self, view: View, start: datetime, end: datetime, *, value: str | None = None,
             after: str | None = None, page_size: int = 1000) -> Iterator[Hit]: ...

    def months(self) -> list[str]: ...


def day_windows(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """[start, end) cut at UTC midnights, newest first: one window per index day table."""
    windows: list[tuple[datetime, datetime]] = []
    high = end.astimezone(UTC)
    start = start.astimezone(UTC)
    while high > start:
        midnight = (high - timedelta(microseconds=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        low = max(start, midnight)
        windows.append((low, high))
        high = low
    return windows


@dataclass(frozen=True)
class Page:
    """One JSON page: the entries, and the order key to resume after (None on the last page)."""

    entries: list[AuditEntry]
    next_key: str | None
    scanned: int


class Export:
    """Every matching entry of a plan across pages, up to `limit` rows or `seconds` of scanning.

    Iterate it once; afterwards `truncated` says whether it stopped early ("limit" or "time") and
    `next_key` is where a follow-up request (cursor) continues.
    """

    def __init__(self, service: QueryService, plan: QueryPlan, limit: int, seconds: float | None) -> None:
        self.service, self.plan, self.limit, self.seconds = service, plan, limit, seconds
        self.rows = 0
        self.scanned = 0
        self.truncated: Truncation | None = None
        self.next_key: str | None = None

    def __iter__(self) -> Iterator[AuditEntry]:
        service, plan = self.service, self.plan
        match = matcher(plan)
        deadline = None if self.seconds is None else service.timer() + self.seconds
        last_emitted: str | None = None
        lookahead_deadline: float | None = None
        lookahead_scanned = 0
        for hit in service.hits(plan, page_size=1000):
            self.scanned += 1
            if lookahead_deadline is not None:
                lookahead_scanned += 1
            if match(hit.entry):
                if self.rows >= self.limit:
                    self._stop("limit", last_emitted)
                    return
                self.rows += 1
                last_emitted = hit.key
                yield hit.entry
                if self.rows >= self.limit and lookahead_deadline is None:
                    # One more match would mean truncation; bound that search like a JSON page.
                    lookahead_deadline = service.timer() + service.scan_budget_seconds
            if lookahead_deadline is not None and (lookahead_scanned >= service.scan_budget_rows
                                                   or service.timer() > lookahead_deadline):
                self._stop("limit", hit.key)
                return
            if deadline is not None and service.timer() > deadline:
                self._stop("time", hit.key)
                return

    def _stop(self, reason: Truncation, key: str | None) -> None:
        self.truncated = reason
        self.next_key = key


class QueryService:
    """Runs query plans over the index views, newest first, with stateless cursors.

    A JSON page stops scanning after `scan_budget_rows` rows or `scan_budget_seconds`, whichever
    comes first, and then returns what it found (possibly nothing) with a next key at the last
    scanned row: selective filters over long ranges stay responsive, and paging still reaches
    every result.
    """

    def __init__(
        self,
        index: ViewIndex,
        *,
        max_range_days: int = 31,
        max_export_rows: int = 1_000_000,
        clock: Clock | None = None,
        scan_budget_rows: int = 50_000,
        scan_budget_seconds: float = 2.0,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.index = index
        self.max_range_days = max_range_days
        self.max_export_rows = max_export_rows
        self.clock = clock or SystemClock()
        self.scan_budget_rows = scan_budget_rows
        self.scan_budget_seconds = scan_budget_seconds
        self.timer = timer

    def parse(self, params: Params) -> QueryPlan:
        return parse_request(params, now=self.clock.now(), max_range_days=self.max_range_days)

    def hits(self, plan: QueryPlan, *, page_size: int = 1000) -> Generator[Hit, None, None]:
        """Rows of the driving view in [start, end) after the plan's cursor, newest first (unfiltered).

        The range is read one UTC day at a time (the index has a table per day). A value whose days
        come back short is sparse, so the next days are fetched ahead in parallel (1, 2, 4 … up to
        PREFETCH_DAYS at a time): a rare user over a month costs a few round trips, not thirty.
        """
        bounds = self._bounds(plan)
        if bounds is None:
            return
        start, end = bounds
        if plan.after is not None:
            end = min(end, keys.from_inv(int(plan.after[:10])) + timedelta(seconds=1))
        windows = day_windows(start, end)
        if not windows:
            return
        values: tuple[str | None, ...] = plan.users or plan.operations or (None,)
        pool = ThreadPoolExecutor(max_workers=PREFETCH_DAYS, thread_name_prefix="query-prefetch")
        chains = [self._chain(pool, plan, value, windows, page_size) for value in values]
        merged = chains[0] if len(chains) == 1 else heapq.merge(*chains, key=lambda hit: hit.key)
        last = None
        try:
            for hit in merged:
                if hit.key != last:  # the same record cannot come twice, but be sure
                    last = hit.key
                    yield hit
        finally:
            for chain in chains:
                chain.close()
            pool.shutdown(wait=False, cancel_futures=True)

    def _chain(self, pool: ThreadPoolExecutor, plan: QueryPlan, value: str | None,
               windows: list[tuple[datetime, datetime]], page_size: int) -> Generator[Hit, None, None]:
        def first_page(lo: datetime, hi: datetime) -> tuple[list[Hit], Iterator[Hit] | None]:
            rows = self.index.scan(plan.view, lo, hi, value=value, after=plan.after, page_size=page_size)
            head = list(itertools.islice(rows, page_size))
            return head, (rows if len(head) == page_size else None)

        pending: deque[Future[tuple[list[Hit], Iterator[Hit] | None]]] = deque()
        upcoming = iter(windows)
        ahead = 1
        try:
            while True:
                while len(pending) < ahead:
                    window = next(upcoming, None)
                    if window is None:
                        break
                    pending.append(pool.submit(first_page, *window))
                if not pending:
                    return
                head, rest = pending.popleft().result()
                yield from head
                if rest is not None:
                    yield from rest  # a dense day: read the rest of it lazily
                else:
                    ahead = min(PREFETCH_DAYS, ahead * 2)  # a short day: look further ahead
        finally:
            for future in pending:
                future.cancel()

    def _bounds(self, plan: QueryPlan) -> tuple[datetime, datetime] | None:
        """The plan's range within what the index can hold (order keys have ten digits: 1970 to
        2286), narrowed to the months that have tables when it spans many months (a user query over
        ten years should not probe 120 missing tables)."""
        start, end = max(plan.start, INDEX_EPOCH[0]), min(plan.end, INDEX_EPOCH[1])
        if end - start > timedelta(days=93):
            months = self.index.months()
            if not months:
                return None
            start = max(start, keys.month_bounds(months[-1])[0])
            end = min(end, keys.month_bounds(months[0])[1])
        return (start, end) if start < end else None

    def page(self, plan: QueryPlan) -> Page:
        """Up to `plan.top` matching entries; `next_key` is None only when nothing more can match."""
        match = matcher(plan)
        page_size = 1000 if plan.residual else min(1000, plan.top + 1)
        deadline = self.timer() + self.scan_budget_seconds
        entries: list[AuditEntry] = []
        last_emitted: str | None = None
        scanned = 0
        hits = self.hits(plan, page_size=page_size)
        try:
            for hit in hits:
                scanned += 1
                if match(hit.entry):
                    if len(entries) == plan.top:  # one more match exists: there is a next page
                        return Page(entries, last_emitted, scanned)
                    entries.append(hit.entry)
                    last_emitted = hit.key
                if scanned >= self.scan_budget_rows or self.timer() > deadline:
                    return Page(entries, hit.key, scanned)
        finally:
            hits.close()
        return Page(entries, None, scanned)

    def export(self, plan: QueryPlan, *, seconds: float | None = None) -> Export:
        return Export(self, plan, self.max_export_rows, seconds)
