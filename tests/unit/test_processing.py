"""ContentProcessor (the queue function) over in-memory fakes of its Protocols: order, retries, faults."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from collector.collect import ContentProcessor
from collector.errors import CollectorError, ContentUnavailableError, MessageFormatError
from collector.models import ContentRef, LedgerStatus, Outcome
from collector.settings import Settings
from tests.unit.fakes import FakeArchive, FakeContentSource, FakeIndex, FakeLedger, FixedClock, Journal, ref

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TENANT = "7f3c1e2a-4b5d-4c6e-8f90-1a2b3c4d5e6f"
SP = "Audit.SharePoint"
MAX_ATTEMPTS = 3


def record(i: int) -> dict[str, object]:
    return {"Id": f"00000000-0000-4000-8000-{i:012d}", "CreationTime": f"2026-11-20T10:{i:02d}:00",
            "Operation": "FileAccessed", "OrganizationId": TENANT, "RecordType": 6, "Workload": "SharePoint",
            "UserId": f"user{i}@contoso.com"}


RECORDS = [record(1), record(2), record(1)]  # the API's duplicates stay in the blob (and the archive)
BODY = json.dumps(RECORDS).encode()


class Rig:
    def __init__(self) -> None:
        self.journal = Journal()
        self.api = FakeContentSource(self.journal)
        self.archive = FakeArchive(self.journal)
        self.index = FakeIndex(self.journal)
        self.ledger = FakeLedger(self.journal)
        self.clock = FixedClock(NOW)
        self.processor = ContentProcessor(Settings(max_dequeue_count=MAX_ATTEMPTS), self.api, self.archive,
                                          self.index, self.ledger, clock=self.clock)
        self.ref = ref(SP, 1, NOW - timedelta(hours=1))
        self.api.bodies[self.ref.content_uri] = BODY
        self.ledger.mark_queued([self.ref], NOW - timedelta(hours=1))  # as the listing left it
        self.journal.calls.clear()

    def process(self, dequeue_count: int = 1, target: ContentRef | None = None):  # type: ignore[no-untyped-def]
        return self.processor.process((target or self.ref).encode(), dequeue_count)

    def steps(self) -> list[str]:
        return [call[0] for call in self.journal.calls]


def test_a_first_delivery_fetches_then_archives_then_indexes_then_marks_done():
    rig = Rig()

    result = rig.process()

    assert rig.journal.calls == [
        ("ledger.status", rig.ref.content_id),
        ("api.fetch_content", rig.ref.content_uri),
        ("archive.put", rig.ref.content_id, 3),
        ("index.write", 3),
        ("ledger.mark", rig.ref.content_id, LedgerStatus.DONE),
    ]
    assert (result.outcome, result.records, result.entities, result.fetched) == (Outcome.INDEXED, 3, 12, True)
    name = rig.archive.name(rig.ref)
    assert rig.archive.blobs[name] == (BODY, 3)  # the exact bytes the API returned
    items = rig.index.writes[0]
    assert [(i.entry.id, i.blob, i.position) for i in items] == [
        (RECORDS[0]["Id"], name, 0), (RECORDS[1]["Id"], name, 1), (RECORDS[2]["Id"], name, 2)]
    entry = rig.ledger.entry(rig.ref)
    assert (entry.status, entry.records, entry.blob) == (LedgerStatus.DONE, 3, name)


def test_a_redelivery_indexes_from_the_archive_without_fetching():
    rig = Rig()
    rig.archive.blobs[rig.archive.name(rig.ref)] = (BODY, 3)  # an earlier attempt died after archiving

    result = rig.process(dequeue_count=2)

    assert rig.steps() == ["ledger.status", "archive.read", "index.write", "ledger.mark"]
    assert (result.outcome, result.records, result.fetched) == (Outcome.INDEXED, 3, False)
    assert rig.ledger.entry(rig.ref).status is LedgerStatus.DONE


def test_a_redelivery_of_content_never_archived_fetches_it():
    rig = Rig()

    result = rig.process(dequeue_count=2)

    assert rig.steps() == ["ledger.status", "archive.read", "api.fetch_content", "archive.put", "index.write",
                           "ledger.mark"]
    assert result.fetched


def test_an_index_failure_leaves_the_content_archived_and_not_done_and_the_retry_finishes_it():
    rig = Rig()
    rig.index.faults.fail("write", "", RuntimeError("worker killed between archive and index"))

    with pytest.raises(RuntimeError, match="worker killed"):
        rig.process(dequeue_count=1)

    assert rig.steps() == ["ledger.status", "api.fetch_content", "archive.put", "index.write"]
    assert rig.ledger.entry(rig.ref).status is LedgerStatus.QUEUED  # not failed: attempts remain
    rig.journal.calls.clear()

    assert rig.process(dequeue_count=2).outcome is Outcome.INDEXED
    assert rig.steps() == ["ledger.status", "archive.read", "index.write", "ledger.mark"]
    assert len(rig.journal.named("api.fetch_content")) == 0


def test_an_archive_failure_indexes_nothing():
    rig = Rig()
    rig.archive.faults.fail("put", rig.ref.content_id, RuntimeError("blob service unavailable"))

    with pytest.raises(RuntimeError):
        rig.process()

    assert rig.steps() == ["ledger.status", "api.fetch_content", "archive.put"]
    assert rig.index.writes == []


@pytest.mark.parametrize("settled", [LedgerStatus.DONE, LedgerStatus.EXPIRED])
def test_a_duplicate_message_of_settled_content_is_skipped(settled: LedgerStatus):
    rig = Rig()
    rig.ledger.mark(rig.ref, settled, NOW)
    rig.journal.calls.clear()

    result = rig.process(dequeue_count=2)

    assert result.outcome is Outcome.SKIPPED and result.records == 0
    assert rig.journal.calls == [("ledger.status", rig.ref.content_id)]


def test_content_that_failed_before_is_processed_again_when_its_message_is_replayed():
    rig = Rig()
    rig.ledger.mark(rig.ref, LedgerStatus.FAILED, NOW, error="FatalApiError: HTTP 400 AF20052")

    assert rig.process().outcome is Outcome.INDEXED
    assert rig.ledger.entry(rig.ref).status is LedgerStatus.DONE


def test_content_the_api_no_longer_has_is_indexed_from_its_archived_copy():
    rig = Rig()
    rig.archive.blobs[rig.archive.name(rig.ref)] = (BODY, 3)  # archived by a duplicate message in time
    rig.api.faults.fail("fetch_content", rig.ref.content_uri,
                        ContentUnavailableError("HTTP 400 AF20051: expired", status=400, code="AF20051"))

    result = rig.process(dequeue_count=1)

    assert rig.steps() == ["ledger.status", "api.fetch_content", "archive.read", "index.write", "ledger.mark"]
    assert (result.outcome, result.fetched) == (Outcome.INDEXED, False)
    assert rig.journal.named("archive.put") == []


@pytest.mark.parametrize(
    ("code", "lifetime"),
    [("AF20051", timedelta(days=7)),  # the API says expired
     ("AF20050", timedelta(minutes=30)),  # unknown, and past its contentExpiration
     (None, timedelta(minutes=30))],  # a plain 404 past its contentExpiration
)
def test_unavailable_content_past_its_expiration_without_an_archived_copy_is_counted_expired(
        code: str | None, lifetime: timedelta):
    rig = Rig()
    gone = ref(SP, 2, NOW - timedelta(hours=1), lifetime=lifetime)
    rig.api.faults.fail("fetch_content", gone.content_uri, ContentUnavailableError("gone", status=400, code=code))

    result = rig.process(target=gone)

    assert result.outcome is Outcome.EXPIRED
    assert rig.steps() == ["ledger.status", "api.fetch_content", "archive.read", "ledger.mark"]
    entry = rig.ledger.entry(gone)
    assert (entry.status, entry.error) == (LedgerStatus.EXPIRED, "gone")
    assert rig.index.writes == []


@pytest.mark.parametrize(("code", "status"), [("AF20050", 400), (None, 404)])
def test_a_404_or_af20050_before_the_expiration_is_retried_not_written_off(code: str | None, status: int):
    rig = Rig()
    rig.api.faults.fail("fetch_content", rig.ref.content_uri,
                        *[ContentUnavailableError("not there (yet)", status=status, code=code)] * MAX_ATTEMPTS)

    for attempt in range(1, MAX_ATTEMPTS + 1):
        with pytest.raises(ContentUnavailableError):
            rig.process(dequeue_count=attempt)
        if attempt < MAX_ATTEMPTS:
            assert rig.ledger.entry(rig.ref).status is LedgerStatus.QUEUED  # the host retries the message

    entry = rig.ledger.entry(rig.ref)  # poisoned, but due again in 15 minutes (healing.py)
    assert (entry.status, entry.attempts, entry.retry_at) == (LedgerStatus.FAILED, 1, NOW + timedelta(minutes=15))
    assert rig.ledger.due(NOW + timedelta(minutes=15), [SP]) == [rig.ref]

    rig.journal.calls.clear()  # the listing queued it again; this time the API has it
    assert rig.process().outcome is Outcome.INDEXED
    assert rig.ledger.entry(rig.ref).status is LedgerStatus.DONE


def test_content_an_earlier_version_wrote_off_as_missing_is_fetched_when_queued_again():
    rig = Rig()
    rig.ledger.mark(rig.ref, LedgerStatus.MISSING, NOW - timedelta(hours=1), error="HTTP 404")

    assert rig.process().outcome is Outcome.INDEXED
    assert rig.ledger.entry(rig.ref).status is LedgerStatus.DONE


def test_a_failure_on_the_last_attempt_marks_the_ledger_failed_with_a_retry_time_and_still_raises():
    rig = Rig()
    rig.archive.blobs[rig.archive.name(rig.ref)] = (BODY, 3)
    rig.index.faults.fail("write", "", RuntimeError("boom"), RuntimeError("boom again"))

    with pytest.raises(RuntimeError, match="boom"):
        rig.process(dequeue_count=MAX_ATTEMPTS)

    assert rig.journal.calls[-1] == ("ledger.mark_failed", rig.ref.content_id)
    entry = rig.ledger.entry(rig.ref)
    assert (entry.status, entry.error, entry.attempts, entry.retry_at) == (
        LedgerStatus.FAILED, "RuntimeError: boom", 1, NOW + timedelta(minutes=15))

    rig.clock.value = NOW + timedelta(minutes=20)  # the second round fails too: the back-off doubles
    with pytest.raises(RuntimeError, match="boom again"):
        rig.process(dequeue_count=MAX_ATTEMPTS)
    entry = rig.ledger.entry(rig.ref)
    assert (entry.attempts, entry.retry_at) == (2, rig.clock.value + timedelta(minutes=30))


def test_a_last_failure_after_the_expiration_of_content_never_archived_counts_it_expired():
    rig = Rig()
    rig.clock.value = rig.ref.content_expiration + timedelta(minutes=1)
    rig.api.faults.fail("fetch_content", rig.ref.content_uri, RuntimeError("connection reset"))

    with pytest.raises(RuntimeError):
        rig.process(dequeue_count=MAX_ATTEMPTS)

    entry = rig.ledger.entry(rig.ref)
    assert (entry.status, entry.error) == (LedgerStatus.EXPIRED, "RuntimeError: connection reset")
    assert rig.ledger.due(rig.clock.value + timedelta(days=1), [SP]) == []


def test_a_late_failure_does_not_undo_done_from_a_duplicate_message():
    rig = Rig()
    rig.ledger.mark(rig.ref, LedgerStatus.DONE, NOW, records=3, blob="x")

    assert rig.ledger.mark_failed(rig.ref, NOW, error="RuntimeError: late") is None
    assert rig.ledger.entry(rig.ref).status is LedgerStatus.DONE


def test_a_failure_before_the_last_attempt_leaves_the_ledger_alone():
    rig = Rig()
    rig.index.faults.fail("write", "", RuntimeError("boom"))

    with pytest.raises(RuntimeError):
        rig.process(dequeue_count=MAX_ATTEMPTS - 1)

    assert rig.journal.named("ledger.mark", "ledger.mark_failed") == []


def test_an_unreadable_message_fails_before_touching_anything():
    rig = Rig()

    with pytest.raises(MessageFormatError, match="unreadable queue message"):
        rig.processor.process(b"not json", dequeue_count=MAX_ATTEMPTS)

    assert rig.journal.calls == []


def test_a_body_that_is_not_json_is_neither_archived_nor_indexed():
    rig = Rig()
    rig.api.bodies[rig.ref.content_uri] = b"<html>maintenance</html>"

    with pytest.raises(CollectorError, match="is not JSON"):
        rig.process()

    assert rig.steps() == ["ledger.status", "api.fetch_content"]
