"""Ledger on Azurite: statuses and the per content type summaries /api/health is built from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from collector.ledger import FailedContent, Ledger, LedgerSummary, WaitingContent
from collector.models import ContentRef, LedgerStatus
from collector.tables import TableClients

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SP, EX = "Audit.SharePoint", "Audit.Exchange"


def ref(content_type: str, content_id: str, created: datetime) -> ContentRef:
    return ContentRef(content_type, content_id, f"https://api.test/{content_id}", created, created + timedelta(days=7))


def test_summaries_count_per_content_type_over_the_ledgers_days(storage_connection_string: str, unique_prefix: str):
    ledger = Ledger(TableClients.from_connection_string(storage_connection_string), unique_prefix)
    today, yesterday, old = NOW - timedelta(hours=1), NOW - timedelta(days=1, hours=1), NOW - timedelta(days=12)
    recent_done = ref(SP, "a/1", today)  # "/" is escaped in the RowKey and comes back unescaped
    older_done = ref(SP, "a2", yesterday)
    expired, missing, failed = ref(SP, "a3", yesterday), ref(SP, "a4", today), ref(EX, "b1", today)
    queued, pruned_day = ref(EX, "b2", today), ref(EX, "b3", old)
    everything = [recent_done, older_done, expired, missing, failed, queued, pruned_day]
    for content_type in (SP, EX):  # as the listing does: one content type (one partition) per call
        ledger.mark_queued([r for r in everything if r.content_type == content_type], NOW - timedelta(days=2))
    ledger.mark(recent_done, LedgerStatus.DONE, NOW - timedelta(hours=2), records=250, blob="x")
    ledger.mark(older_done, LedgerStatus.DONE, NOW - timedelta(hours=25), records=7, blob="y")  # before `since`
    ledger.mark(expired, LedgerStatus.EXPIRED, NOW, error="AF20051")
    ledger.mark(missing, LedgerStatus.MISSING, NOW, error="AF20050")
    ledger.mark(failed, LedgerStatus.FAILED, NOW - timedelta(minutes=3), error="FatalApiError: HTTP 400 AF20052")
    ledger.mark(pruned_day, LedgerStatus.FAILED, NOW, error="outside the ledger's days")
    healing = ref(EX, "b4", today)  # failed an hour ago, queued again by healing ten minutes ago: waiting again
    ledger.mark_queued([healing], NOW - timedelta(hours=2))
    ledger.mark(healing, LedgerStatus.FAILED, NOW - timedelta(hours=1), error="TransientApiError: HTTP 503",
                attempts=1, retry_at=NOW - timedelta(minutes=45))
    ledger.mark_queued([healing], NOW - timedelta(minutes=10))

    summaries = ledger.summaries(NOW, since=NOW - timedelta(hours=24))

    assert summaries == {
        SP: LedgerSummary(SP, records_indexed=250, expired_or_missing=2),
        EX: LedgerSummary(EX, failed=(FailedContent("b1", "FatalApiError: HTTP 400 AF20052", NOW - timedelta(minutes=3)),
                                      FailedContent("b4", "TransientApiError: HTTP 503", NOW - timedelta(hours=1))),
                          waiting=2, oldest_waiting=WaitingContent("b2", NOW - timedelta(days=2), failed=False),
                          next_retry_at=NOW - timedelta(minutes=45)),
    }
    assert [ledger.status(r) for r in everything] == [
        LedgerStatus.DONE, LedgerStatus.DONE, LedgerStatus.EXPIRED, LedgerStatus.MISSING, LedgerStatus.FAILED,
        LedgerStatus.QUEUED, LedgerStatus.FAILED]
    assert ledger.status(ref(SP, "never-listed", today)) is None
