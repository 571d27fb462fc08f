"""One view over both tiers: each day of a scan is read from the hot index when it holds the day,
else from the cold tier when the day is compacted (docs/cold-tier.md "One query API over both tiers").

`TieredView` is a `ViewIndex` (service.py), so the query service stays one: it merges and filters
hits by order key whatever tier they come from, and a cursor made on a hot day resumes on a cold
one. A day in both tiers (compacted, not yet pruned from the hot index) is read from hot only, so
nothing comes twice. Every request is charged to the caller's budget with its tier.

Stale listings: both tiers' lists of days are cached for ~30 s. When the hot index yields nothing
for a day, the hot listing is re-read (at most once a second), and if the day is gone from hot
(prune-index dropped it meanwhile) the cold listing too: a day compacted and pruned since the
listings were read is answered by the cold tier, not as an empty day.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from .. import keys
from ..index import LOCATE_MAX_DAYS, Hit, Lookup
from ..models import View
from .budget import TIERS, Charge, Tier

if TYPE_CHECKING:
    from ..cold.view import ColdFind

RELIST_SECONDS = 1.0  # a listing is re-read at most this often when a day seems to be missing
VANISHED_DAYS = 10_000  # bound of the days remembered as dropped from the hot index


class HotIndex(Protocol):
    """What the tiered view reads of collector/index.py's AuditIndex."""

    def scan(self, view: View, start: datetime, end: datetime, *, value: str | None = None,
             after: str | None = None, page_size: int = 1000,
             on_request: Callable[[], None] | None = None) -> Iterator[Hit]: ...

    def tables(self, view: View, *, refresh: bool = False) -> set[str]: ...

    def months(self) -> list[str]: ...

    def lookup(self, record_id: str, *, max_days: int = LOCATE_MAX_DAYS) -> Lookup: ...


class ColdTier(Protocol):
    """What the tiered view reads of collector/cold/view.py's ColdView."""

    def days(self, *, refresh: bool = False, max_age: float = ...) -> frozenset[str]: ...

    def age(self) -> float: ...

    def scan(self, day: str, view: View, *, value: str | None = None, after: str | None = None,
             low: str | None = None, high: str | None = None,
             charge: Callable[[], None] | None = None) -> Iterator[Hit]: ...

    def find(self, record_id: str, days: list[str], charge: Callable[[], None] | None = None) -> ColdFind: ...


class TieredView:
    """Scans over the hot index and the cold tier (None: hot only), day by day (module docstring)."""

    def __init__(self, hot: HotIndex, cold: ColdTier | None, *, timer: Callable[[], float] = time.monotonic) -> None:
        self.hot = hot
        self.cold = cold
        self.timer = timer
        self._relisted: dict[View, float] = {}
        self._vanished: set[str] = set()  # days seen dropped from the hot index, the cold listing re-read since
        self._lock = threading.Lock()

    def _cold_days(self) -> frozenset[str]:
        return self.cold.days() if self.cold is not None else frozenset()

    def months(self) -> list[str]:
        """Months (yyyyMM) that either tier holds, newest first."""
        return sorted({*self.hot.months(), *(day[:6] for day in self._cold_days())}, reverse=True)

    def tiers(self, view: View, start: datetime, end: datetime) -> tuple[Tier, ...]:
        """The tiers that hold the days of [start, end) (what an export of the range will read)."""
        days = set(keys.days_newest_first(start, end)) if end > start else set()
        hot = days & self.hot.tables(view)
        cold = (days - hot) & self._cold_days()
        held = {"hot": bool(hot), "cold": bool(cold)}
        return tuple(t for t in TIERS if held[t])

    def scan(self, view: View, start: datetime, end: datetime, *, value: str | None = None,
             after: str | None = None, page_size: int = 1000, on_request: Charge | None = None) -> Iterator[Hit]:
        """Rows of `view` with start <= time < end, newest first, resumed strictly after `after`
        (AuditIndex.scan's contract), each day from the tier that holds it."""
        spans = keys.scan_days(view, start, end, value=value, after=after)
        hot_charge: Callable[[], None] | None = None
        cold_charge: Callable[[], None] | None = None
        if on_request is not None:
            charge = on_request
            hot_charge = lambda: charge("hot")  # noqa: E731 - two one-line adapters
            cold_charge = lambda: charge("cold")  # noqa: E731
        for day, lo_second, hi_second in spans:
            lo, hi = keys.from_inv(keys.INV_BASE - lo_second), keys.from_inv(keys.INV_BASE - hi_second) + timedelta(seconds=1)
            hot_days = self.hot.tables(view)
            cold_days = self._cold_days()
            cold = self.cold
            if cold is not None and day in cold_days and day not in hot_days:
                yield from self._cold(cold, day, view, value, after, lo_second, hi_second, cold_charge)
                continue
            served = False
            for hit in self.hot.scan(view, lo, hi, value=value, after=after, page_size=page_size, on_request=hot_charge):
                served = True
                yield hit
            if not served and cold is not None and self._moved_to_cold(view, day, day in hot_days):
                yield from self._cold(cold, day, view, value, after, lo_second, hi_second, cold_charge)

    @staticmethod
    def _cold(cold: ColdTier, day: str, view: View, value: str | None, after: str | None, lo_second: int,
              hi_second: int, charge: Callable[[], None] | None) -> Iterator[Hit]:
        low, high = f"{keys.INV_BASE - hi_second:010d}", f"{keys.INV_BASE - lo_second + 1:010d}"
        return cold.scan(day, view, value=value, after=after, low=low, high=high, charge=charge)

    def _moved_to_cold(self, view: View, day: str, was_hot: bool) -> bool:
        """After the hot index gave nothing for `day`: whether the day is no longer hot but
        compacted, though the cached listings said otherwise (pruned, or compacted, since they
        were read). Each listing is re-read at most once per RELIST_SECONDS; read-ahead threads
        wait for a re-listing in progress and then use its result. A day the hot listing held
        (`was_hot`) and no longer holds (the scan found its table dropped) was expired after its
        compaction, maybe since the cold listing was read, however recently: the cold listing is
        then read again, once per such day."""
        if self.cold is None:
            return False
        with self._lock:
            recent = self.timer() - self._relisted.get(view, -math.inf) < RELIST_SECONDS
            if day in self.hot.tables(view, refresh=not recent):
                return False
            if not recent:
                self._relisted[view] = self.timer()
            if day in self.cold.days():
                return True
            if was_hot and day not in self._vanished:
                if len(self._vanished) >= VANISHED_DAYS:
                    self._vanished.clear()
                self._vanished.add(day)
                return day in self.cold.days(refresh=True)
            return self.cold.age() > RELIST_SECONDS and day in self.cold.days(refresh=True)

    # ------------------------------------------------------------ by id

    def find_cold(self, record_id: str, hot: Lookup, charge: Callable[[], None] | None = None) -> TieredLookup:
        """After a hot lookup that missed: the cold days the hot one did not read, newest first, up
        to LOCATE_MAX_DAYS days over both tiers, the hot days counted first."""
        hot_days = self.hot.tables(View.ID)  # the hot lookup has just re-read it
        known = frozenset() if self.cold is None else self.cold.days(refresh=self.cold.age() > RELIST_SECONDS)
        cold_days = sorted(known - hot_days, reverse=True)
        room = max(0, LOCATE_MAX_DAYS - hot.days)
        if hot.more:
            room = 0  # the hot lookup already read its newest LOCATE_MAX_DAYS days
        searched = cold_days[:room]
        if self.cold is None or not searched:
            return TieredLookup(None, hot.days, hot.oldest_day, hot.more or bool(cold_days))
        found = self.cold.find(record_id, searched, charge)
        oldest = searched[-1] if hot.oldest_day is None or searched[-1] < hot.oldest_day else hot.oldest_day
        return TieredLookup(found.raw, hot.days + len(searched), oldest, len(cold_days) > len(searched))


@dataclass(frozen=True)
class TieredLookup:
    """The answer of a lookup by id over both tiers after the hot one missed: the raw bytes when
    the cold tier has the record, and how far the search went (both tiers' days)."""

    raw: bytes | None
    days: int
    oldest_day: str | None
    more: bool
