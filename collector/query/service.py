"""Query plans run over the index views: JSON pages and exports, newest first, with stateless cursors.

The only part of the query that reads storage, always through a `ViewIndex` scan (the hot index,
or both tiers through tiers.py's `TieredView`), and always
against a per-request `Budget` (budget.py): a page stops when its budget is spent, wherever it is,
and its next key is the position reached, even when nothing matched.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from .. import keys
from ..models import AuditEntry, View
from ..timeutil import SystemClock
from .budget import EXPORT_REQUESTS, PAGE_REQUESTS, PAGE_ROWS, PAGE_SECONDS, Budget, Charge, RequestsSpent, Tier
from .matcher import matcher
from .params import Params, QueryPlan, parse_request

if TYPE_CHECKING:
    from ..index import Hit
    from ..timeutil import Clock

PREFETCH_DAYS = 8  # day tables read ahead in parallel when a scan is sparse
INDEX_EPOCH = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2286, 1, 1, tzinfo=UTC))  # what order keys can express
# Why an export stopped early: its row limit, its time limit (Function App), or its storage request budget.
Truncation = Literal["limit", "time", "requests"]


class ViewIndex(Protocol):
    """What a query reads: view scans and the list of months, of `AuditIndex` (the hot index) or
    of `TieredView` (tiers.py: the hot index and the cold tier). `on_request` is called once per
    storage request, with the tier that served it."""

    def scan(self, view: View, start: datetime, end: datetime, *, value: str | None = None,
             after: str | None = None, page_size: int = 1000,
             on_request: Charge | None = None) -> Iterator[Hit]: ...

    def months(self) -> list[str]: ...


@runtime_checkable
class TierPlanner(Protocol):
    """A ViewIndex that can tell which tiers hold a range (TieredView); a plain hot index holds one."""

    def tiers(self, view: View, start: datetime, end: datetime) -> tuple[Tier, ...]: ...


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
class Mark:
    """A position in a scan with no row: everything before `key` (in order-key order) has been read.

    A chain yields one after each day window it finished, so a page whose budget runs out between
    rows still knows how far it got. `key` is a bare ten-digit inverted time, which sorts after
    every order key of that second and older ones, and before every key of the next older second.
    """

    key: str


SPENT = Mark("")  # the budget ran out: the stream ends here, at the last key it yielded


class _Spent(Exception):
    """A chain was refused its next day window by the budget."""


def window_mark(low: datetime) -> str:
    """The Mark key after a finished day window starting at `low` (see Mark)."""
    return f"{keys.INV_BASE - math.ceil(low.timestamp()) + 1:010d}"


@dataclass(frozen=True)
class Page:
    """One JSON page: the entries, and the order key to resume after (None on the last page)."""

    entries: list[AuditEntry]
    next_key: str | None
    scanned: int
    requests: int = 0
    tiers: tuple[Tier, ...] = ()  # the tiers read (budget.TIERS order)


class Export:
    """Every matching entry of a plan across pages, up to `limit` rows, `seconds` of scanning or
    EXPORT_REQUESTS storage requests.

    Iterate it once; afterwards `truncated` says whether it stopped early ("limit", "time" or
    "requests"), `next_key` is where a follow-up request (cursor) continues and `tiers` which
    tiers it read. `planned_tiers` (before iterating) are the tiers that hold the range.
    """

    def __init__(self, service: QueryService, plan: QueryPlan, limit: int, seconds: float | None) -> None:
        self.service, self.plan, self.limit, self.seconds = service, plan, limit, seconds
        self.rows = 0
        self.scanned = 0
        self.requests = 0
        self.truncated: Truncation | None = None
        self.next_key: str | None = None
        self.tiers: tuple[Tier, ...] = ()

    @property
    def planned_tiers(self) -> tuple[Tier, ...]:
        return self.service.planned_tiers(self.plan)

    def __iter__(self) -> Iterator[AuditEntry]:
        service, plan = self.service, self.plan
        match = matcher(plan)
        budget = Budget(requests=service.export_requests, seconds=self.seconds, timer=service.timer)
        last_emitted: str | None = None
        position: str | None = None
        looking_ahead = False
        stream = service.hits(plan, budget, page_size=1000)
        try:
            for item in stream:
                if item is SPENT:
                    reason: Truncation = "limit" if looking_ahead else "time" if budget.out_of_time else "requests"
                    self._stop(reason, position)
                    return
                position = item.key
                budget.progressed = True
                if not isinstance(item, Mark):
                    self.scanned += 1
                    budget.charge_row()
                    if match(item.entry):
                        if self.rows >= self.limit:
                            self._stop("limit", last_emitted)
                            return
                        self.rows += 1
                        last_emitted = item.key
                        yield item.entry
                        if self.rows >= self.limit and not looking_ahead:
                            # One more match would mean truncation; bound that search like a JSON page.
                            looking_ahead = True
                            budget.narrow(requests=service.page_requests, rows=service.scan_budget_rows,
                                          seconds=service.scan_budget_seconds)
                if budget.reading_spent:
                    self._stop("limit" if looking_ahead else "time" if budget.out_of_time else "requests", position)
                    return
        finally:
            stream.close()
            self.requests = budget.requests
            self.tiers = budget.tiers

    def _stop(self, reason: Truncation, key: str | None) -> None:
        self.truncated = reason
        self.next_key = key


class QueryService:
    """Runs query plans over the index views, newest first, with stateless cursors.

    A JSON page spends at most `page_requests` storage requests (day-table probes and pages),
    `scan_budget_rows` scanned rows and `scan_budget_seconds`, whichever runs out first, and then
    returns what it found (possibly nothing) with a next key at the position reached: selective
    filters over long ranges, and values that match nothing, stay cheap per request, and paging
    still reaches every result.
    """

    def __init__(
        self,
        index: ViewIndex,
        *,
        max_range_days: int = 0,
        max_export_rows: int = 1_000_000,
        clock: Clock | None = None,
        scan_budget_rows: int = PAGE_ROWS,
        scan_budget_seconds: float = PAGE_SECONDS,
        page_requests: int = PAGE_REQUESTS,
        export_requests: int = EXPORT_REQUESTS,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.index = index
        self.max_range_days = max_range_days
        self.max_export_rows = max_export_rows
        self.clock = clock or SystemClock()
        self.scan_budget_rows = scan_budget_rows
        self.scan_budget_seconds = scan_budget_seconds
        self.page_requests = page_requests
        self.export_requests = export_requests
        self.timer = timer

    def parse(self, params: Params) -> QueryPlan:
        return parse_request(params, now=self.clock.now(), max_range_days=self.max_range_days)

    def page_budget(self) -> Budget:
        """A fresh budget for one JSON page."""
        return Budget(requests=self.page_requests, rows=self.scan_budget_rows, seconds=self.scan_budget_seconds,
                      timer=self.timer)

    def hits(self, plan: QueryPlan, budget: Budget, *, page_size: int = 1000) -> Generator[Hit | Mark, None, None]:
        """Rows of the driving view in [start, end) after the plan's cursor, newest first (unfiltered),
        with a Mark after each finished day window and SPENT as the last item when `budget` stopped it.

        The range is read one UTC day at a time (the index has a table per day). A value whose days
        come back short is sparse, so the next days are fetched ahead in parallel (1, 2, 4 … up to
        PREFETCH_DAYS at a time): a rare user over a month costs a few round trips, not thirty.
        Every storage request is charged to `budget`; each value's first day is read whatever the
        budget says, so every page makes progress.
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
        chains = [self._chain(pool, plan, value, windows, page_size, budget) for value in values]
        merged = chains[0] if len(chains) == 1 else heapq.merge(*chains, key=lambda item: item.key)
        last = None
        try:
            for item in merged:
                if item.key != last:  # the same record cannot come twice, but be sure (marks do)
                    last = item.key
                    yield item
        except (_Spent, RequestsSpent):
            yield SPENT
        finally:
            for chain in chains:
                chain.close()
            pool.shutdown(wait=False, cancel_futures=True)

    def _chain(self, pool: ThreadPoolExecutor, plan: QueryPlan, value: str | None,
               windows: list[tuple[datetime, datetime]], page_size: int,
               budget: Budget) -> Generator[Hit | Mark, None, None]:
        def first_page(lo: datetime, hi: datetime, forced: bool) -> tuple[list[Hit], Iterator[Hit] | None] | None:
            if not forced and budget.spent:
                return None  # queued before the budget ran out: skip without asking storage
            rows = self.index.scan(plan.view, lo, hi, value=value, after=plan.after, page_size=page_size,
                                   on_request=budget.charge_request)
            head = list(itertools.islice(rows, page_size))
            return head, (rows if len(head) == page_size else None)

        pending: deque[tuple[Future[tuple[list[Hit], Iterator[Hit] | None] | None], datetime]] = deque()
        upcoming = iter(windows)
        ahead = 1
        first = True
        try:
            while True:
                while len(pending) < ahead and (first or not budget.spent):
                    window = next(upcoming, None)
                    if window is None:
                        break
                    pending.append((pool.submit(first_page, *window, first), window[0]))
                    first = False
                if not pending:
                    if next(upcoming, None) is None:
                        return
                    raise _Spent
                future, low = pending.popleft()
                result = future.result()
                if result is None:
                    raise _Spent
                head, rest = result
                yield from head
                if rest is not None:
                    yield from rest  # a dense day: read the rest of it lazily
                else:
                    ahead = min(PREFETCH_DAYS, ahead * 2)  # a short day: look further ahead
                if low > windows[-1][0]:  # more windows follow
                    yield Mark(window_mark(low))
        finally:
            for future, _low in pending:
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

    def planned_tiers(self, plan: QueryPlan) -> tuple[Tier, ...]:
        """The tiers that hold the plan's days (after its cursor): what an export of it will read."""
        bounds = self._bounds(plan)
        if bounds is None:
            return ()
        start, end = bounds
        if plan.after is not None:
            end = min(end, keys.from_inv(int(plan.after[:10])) + timedelta(seconds=1))
        if not isinstance(self.index, TierPlanner):
            return ("hot",) if start < end else ()
        return self.index.tiers(plan.view, start, end)

    def page(self, plan: QueryPlan, budget: Budget | None = None) -> Page:
        """Up to `plan.top` matching entries; `next_key` is None only when nothing more can match."""
        budget = budget or self.page_budget()
        match = matcher(plan)
        page_size = 1000 if plan.residual else min(1000, plan.top + 1)
        entries: list[AuditEntry] = []
        last_emitted: str | None = None
        position: str | None = None
        stream = self.hits(plan, budget, page_size=page_size)
        try:
            for item in stream:
                if item is SPENT:
                    return Page(entries, position, budget.rows, budget.requests, budget.tiers)
                position = item.key
                budget.progressed = True
                if not isinstance(item, Mark):
                    budget.charge_row()
                    if match(item.entry):
                        if len(entries) == plan.top:  # one more match exists: there is a next page
                            return Page(entries, last_emitted, budget.rows, budget.requests, budget.tiers)
                        entries.append(item.entry)
                        last_emitted = item.key
                # Rows already read are used even when the requests are spent (a day's postings
                # resolved by the read-ahead); the stream ends with SPENT when it needs another.
                if budget.reading_spent:
                    return Page(entries, position, budget.rows, budget.requests, budget.tiers)
        finally:
            stream.close()
        return Page(entries, None, budget.rows, budget.requests, budget.tiers)

    def export(self, plan: QueryPlan, *, seconds: float | None = None) -> Export:
        return Export(self, plan, self.max_export_rows, seconds)
