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
    resume: Window | None = None,
) -> Plan:
    """Windows covering [start, now): start = cursor − overlap, or now − initial_lookback on the first run.

    `resume` is a window an earlier run listed in part (TypeState.page_start/page_end): it comes
    first, as it was, and the windows after it start at its end, so a run picks up where the last
    one stopped instead of listing the overlap and the same first pages again. A resumed window
    that reaches past the 7-day edge is dropped (its paging token would be refused anyway).
    """
    now = now.replace(microsecond=0)
    floor = now - RETENTION + RETENTION_SAFETY
    if resume is not None and resume.start >= floor and resume.end <= now:
        rest = plan_windows(resume.end, now, overlap=timedelta(0), initial_lookback=initial_lookback)
        return Plan([resume, *rest.windows])
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
