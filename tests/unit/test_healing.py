"""healing.py: failed content is tried again with a growing back-off, several times before it expires."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from collector.healing import LAST_CHANCE, RETRY_CAP, is_due, next_retry
from collector.models import LedgerStatus

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def rounds_before(expiration: datetime, start: datetime) -> list[datetime]:
    """The start of every round after the first, as the ledger schedules them, up to expiration."""
    starts, now, attempts = [], start, 1
    while True:
        now = next_retry(attempts, now, expiration)
        if now >= expiration:
            return starts
        starts.append(now)
        attempts += 1


def test_the_back_off_doubles_up_to_its_cap():
    far = NOW + timedelta(days=30)
    delays = [next_retry(attempts, NOW, far) - NOW for attempts in range(1, 9)]
    assert delays[:5] == [timedelta(minutes=15 * 2 ** n) for n in range(5)]
    assert delays[5:] == [RETRY_CAP] * 3


def test_content_of_7_days_is_tried_again_about_30_times_and_once_more_just_before_it_expires():
    expiration = NOW + timedelta(days=7)
    starts = rounds_before(expiration, NOW)
    assert 25 <= len(starts) <= 35
    assert expiration - LAST_CHANCE in starts  # the last chance, not a back-off past the expiration
    assert all(later > earlier for earlier, later in zip(starts, starts[1:], strict=False))


def test_content_failing_an_hour_before_it_expires_still_gets_a_round():
    expiration = NOW + timedelta(hours=1)
    assert rounds_before(expiration, NOW) == [NOW + timedelta(minutes=15), expiration - LAST_CHANCE]


def test_due_needs_a_retryable_status_an_elapsed_back_off_and_no_message_on_its_way():
    failed = dict(retry_at=NOW, failed_at=NOW - timedelta(hours=1), now=NOW)
    assert is_due(LedgerStatus.FAILED, queued_at=NOW - timedelta(hours=2), **failed)
    assert is_due(LedgerStatus.MISSING, retry_at=None, queued_at=None, failed_at=None, now=NOW)  # an old row
    assert not is_due(LedgerStatus.FAILED, queued_at=NOW - timedelta(minutes=5), **failed)  # queued again since
    assert not is_due(LedgerStatus.FAILED, queued_at=None, retry_at=NOW + timedelta(seconds=1),
                      failed_at=NOW, now=NOW)
    for settled in (LedgerStatus.DONE, LedgerStatus.EXPIRED, LedgerStatus.QUEUED, None):
        assert not is_due(settled, queued_at=None, **failed)
