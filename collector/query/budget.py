"""What one request may spend on storage: requests (day-table probes and pages), rows and seconds.

A `Budget` is made per request and handed to whatever reads for it: the hot index's day tables
and the cold tier's blobs (collector/query/tiers.py) charge the same object, each request with its
tier, so the response can say which tiers served it. The query service stops once it is spent and
answers with what it found and a next link at the position reached, so one request never costs
thousands of storage calls and paging still reaches every result.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Literal, Protocol

# A JSON page's budget (docs/powerbi.md "The query in one paragraph"): at most this many storage
# requests, scanned rows and seconds. 100 requests cover a month of day probes for three values,
# or 100 pages of a dense day; the worst page (50 values, one day each) still makes progress.
PAGE_REQUESTS = 100
PAGE_ROWS = 50_000
PAGE_SECONDS = 2.0
# An export's request budget: 1,000,000 rows are ~1,000 full pages, plus the continuation pages
# Table storage returns at partition boundaries and the probes of sparse days.
EXPORT_REQUESTS = 5_000

Tier = Literal["hot", "cold"]
TIERS: tuple[Tier, ...] = ("hot", "cold")  # the order the X-AuditKeep-Tiers header lists them in


class Charge(Protocol):
    """The callback a reader calls once per storage request it sends (the hot index calls it
    without arguments: its requests are the hot tier's)."""

    def __call__(self, tier: Tier = "hot") -> None: ...


class RequestsSpent(Exception):
    """Raised by `Budget.charge_request` once the requests are spent: the reader stops before its
    next storage request, while the rows it already read still reach the page (control flow of the
    query service, never an error shown to a user)."""


class Budget:
    """Counters against limits; `charge_request` is safe from several threads (read-ahead)."""

    def __init__(self, *, requests: float = math.inf, rows: float = math.inf, seconds: float | None = None,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self.max_requests, self.max_rows = requests, rows
        self.timer = timer
        self.deadline = None if seconds is None else timer() + seconds
        self.requests = 0
        self.rows = 0
        # Until the reader's first row (or day mark) is used, requests are never refused: every
        # page and export moves its position, so paging always ends.
        self.progressed = False
        self.by_tier: dict[Tier, int] = {}
        self._lock = threading.Lock()

    def charge_request(self, tier: Tier = "hot") -> None:
        """One storage request made (a day-table probe or a page of one; a cold blob read); raises
        RequestsSpent instead once `requests` have been made and the reader has moved on."""
        with self._lock:
            if self.progressed and self.requests >= self.max_requests:
                raise RequestsSpent(f"{self.requests} storage requests spent")
            self.requests += 1
            self.by_tier[tier] = self.by_tier.get(tier, 0) + 1

    @property
    def tiers(self) -> tuple[Tier, ...]:
        """The tiers this request read, hot first."""
        return tuple(t for t in TIERS if self.by_tier.get(t))

    def narrow(self, *, requests: int, rows: int, seconds: float) -> None:
        """Allow at most this much more from now on (an export looking for one more match)."""
        self.max_requests = min(self.max_requests, self.requests + requests)
        self.max_rows = min(self.max_rows, self.rows + rows)
        deadline = self.timer() + seconds
        self.deadline = deadline if self.deadline is None else min(self.deadline, deadline)

    def charge_row(self) -> None:
        self.rows += 1

    @property
    def out_of_time(self) -> bool:
        return self.deadline is not None and self.timer() > self.deadline

    @property
    def reading_spent(self) -> bool:
        """Whether the rows or the time are spent: a page stops even with rows in hand. (Spent
        requests stop it only when it needs another: charge_request raises.)"""
        return self.rows >= self.max_rows or self.out_of_time

    @property
    def spent(self) -> bool:
        """Whether nothing more should be read for this request."""
        return self.requests >= self.max_requests or self.rows >= self.max_rows or self.out_of_time
