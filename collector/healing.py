"""When content whose processing failed is tried again, and when it counts as lost (pure logic).

A content blob whose queue message ran out of attempts (the Functions host moves it to the poison
queue) is not given up: the ledger row says `failed`, with the number of failed rounds (`a`) and
the time the next round may start (`r`). Each listing run re-queues the failed blobs that are due
(collect.ListingService), so content heals by itself while the API still offers it
(docs/reliability.md "Failed content heals by itself"). The back-off doubles per round from
RETRY_BASE up to RETRY_CAP, and the last round before the blob's contentExpiration is pulled in
to start LAST_CHANCE before it: content that lives 7 days is tried again about 30 times. Only
content past its contentExpiration that was never archived is counted as lost (status `expired`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from .models import LedgerStatus

RETRY_BASE = timedelta(minutes=15)
RETRY_CAP = timedelta(hours=6)
# The last round starts at least this long before contentExpiration, so it can still fetch.
LAST_CHANCE = timedelta(minutes=30)
# Statuses a listing run re-queues once due. `missing` is what earlier versions wrote for a 404 or
# AF20050 on the first fetch (never retried then); those rows heal too.
RETRYABLE = frozenset({LedgerStatus.FAILED, LedgerStatus.MISSING})


def next_retry(attempts: int, now: datetime, expiration: datetime) -> datetime:
    """When round `attempts + 1` may start, `attempts` (≥ 1) rounds having failed."""
    delay: timedelta = min(RETRY_CAP, RETRY_BASE * (1 << min(max(attempts - 1, 0), 16)))
    due: datetime = now + delay
    last_chance = expiration - LAST_CHANCE
    if now < last_chance < due:
        due = last_chance  # never back off past the blob's last chance: one more round before it expires
    return due


def is_due(status: LedgerStatus | None, *, retry_at: datetime | None, queued_at: datetime | None,
           failed_at: datetime | None, now: datetime) -> bool:
    """Whether a listing run should queue the blob again.

    Due: a retryable status, its back-off over (no `r`: a row of an earlier version, due at
    once), and not queued again since it last failed (a re-queued message is still on its way).
    """
    if status not in RETRYABLE:
        return False
    if retry_at is not None and retry_at > now:
        return False
    return queued_at is None or failed_at is None or queued_at <= failed_at
