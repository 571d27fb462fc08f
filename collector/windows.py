"""Which content-listing windows a run asks for (pure logic; docs/api-behaviour.md "Listing windows").

The API lists content by `contentCreated` (availability), in windows of at most 24 h that start no
more than 7 days ago. Each run re-lists an overlap before its checkpoint, because content becomes
listable late; the ledger makes the re-listing harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from .models import Window

MAX_WINDOW = timedelta(hours=24)
RETENTION = timedelta(days=7)
# Stay clear of the 7-day edge: the request may wait in a queue or the clocks may disagree (peers
# clamp to 167 h 55 m or 6.99 days: docs/api-behaviour.md "Listing windows").
RETENTION_SAFETY = timedelta(minutes=10)


@dataclass(frozen=True)
class Plan:
    windows: list[Window]
    # Content that became available in this interval can no longer be listed: the collector was
    # away longer than the API keeps content. Reported, never hidden.
    lost: Window | None = None


def plan_windows(
    cursor: datetime | None,
    now: datetime,
    *,
    overlap: timedelta,
    initial_lookback: timedelta,
) -> Plan:
    """Windows covering [start, now): start = cursor − overlap, or now − initial_lookback on the first run."""
    now = now.replace(microsecond=0)
    floor = now - RETENTION + RETENTION_SAFETY
    wanted = (cursor - overlap) if cursor is not None else now - min(initial_lookback, RETENTION)
    wanted = wanted.replace(microsecond=0)
    lost = None
    if cursor is not None and cursor < floor:
        lost = Window(cursor, floor)
    start = max(wanted, floor)
    windows: list[Window] = []
    while start < now:
        end = min(start + MAX_WINDOW, now)
        windows.append(Window(start, end))
        start = end
    return Plan(windows, lost)
