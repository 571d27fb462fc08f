from datetime import UTC, datetime, timedelta

import pytest

from collector.models import Window
from collector.windows import MAX_WINDOW, RETENTION, RETENTION_SAFETY, plan_windows

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
H = timedelta(hours=1)


def plan(cursor, *, overlap=timedelta(minutes=120), lookback=timedelta(hours=168), now=NOW):
    return plan_windows(cursor, now, overlap=overlap, initial_lookback=lookback)


@pytest.mark.parametrize(
    ("cursor", "lookback", "expected_first_start", "expected_count"),
    [
        # first run: everything the API still offers (7 days minus the safety margin) in ≤24 h windows
        (None, timedelta(hours=168), NOW - RETENTION + RETENTION_SAFETY, 7),
        # first run with a short configured backfill
        (None, timedelta(hours=3), NOW - 3 * H, 1),
        # caught up: only the overlap before the checkpoint is listed again
        (NOW - timedelta(minutes=5), timedelta(hours=168), NOW - timedelta(minutes=125), 1),
        # a 3-day backlog: start = cursor − overlap, split into 24 h windows
        (NOW - 72 * H, timedelta(hours=168), NOW - 74 * H, 4),
    ],
)
def test_plans(cursor, lookback, expected_first_start, expected_count):
    result = plan(cursor, lookback=lookback)
    assert result.windows[0].start == expected_first_start
    assert len(result.windows) == expected_count
    assert result.windows[-1].end == NOW
    assert result.lost is None


def test_windows_are_contiguous_and_at_most_24_hours():
    windows = plan(None).windows
    for a, b in zip(windows, windows[1:], strict=False):
        assert a.end == b.start
    assert all(w.end - w.start <= MAX_WINDOW for w in windows)
    assert all(w.start >= NOW - RETENTION for w in windows)


def test_a_cursor_older_than_retention_reports_the_lost_interval():
    cursor = NOW - timedelta(days=9)
    result = plan(cursor)
    assert result.lost == Window(cursor, NOW - RETENTION + RETENTION_SAFETY)
    assert result.windows[0].start == NOW - RETENTION + RETENTION_SAFETY


def test_nothing_to_do_when_the_cursor_is_now_and_no_overlap():
    assert plan(NOW, overlap=timedelta(0)).windows == []


def test_sub_second_now_is_truncated():
    result = plan(None, lookback=H, now=NOW + timedelta(microseconds=999_999))
    assert result.windows[-1].end == NOW
    assert result.windows[0].start == NOW - H
