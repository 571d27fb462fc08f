"""The ledger's healing columns on Azurite (u, x, a, r): due failed content, rebuilt messages,
old rows still readable, and the listing/processor field ownership."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from collector import keys
from collector.healing import RETRY_BASE
from collector.ledger import Ledger
from collector.models import ContentRef, LedgerStatus
from collector.tables import TableClients

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SP, EX = "Audit.SharePoint", "Audit.Exchange"


def ref(content_type: str, content_id: str, created: datetime) -> ContentRef:
    return ContentRef(content_type, content_id, f"https://api.test/feed/audit/{content_id}", created,
                      created + timedelta(days=7))


def test_failed_content_is_due_after_its_back_off_and_comes_back_as_the_same_message(
        storage_connection_string: str, unique_prefix: str):
    clients = TableClients.from_connection_string(storage_connection_string)
    ledger = Ledger(clients, unique_prefix)
    failed, other_type, done = ref(SP, "a/1$x", NOW - timedelta(days=3)), ref(EX, "b1", NOW), ref(SP, "a2", NOW)
    for item in (failed, other_type, done):
        ledger.mark_queued([item], NOW - timedelta(hours=2))
    ledger.mark(done, LedgerStatus.DONE, NOW - timedelta(hours=1), records=3, blob="x")
    assert ledger.mark_failed(failed, NOW - timedelta(hours=1), error="TransientApiError: HTTP 503") == (
        NOW - timedelta(hours=1) + RETRY_BASE)
    ledger.mark_failed(other_type, NOW - timedelta(hours=1), error="boom")
    assert ledger.mark_failed(done, NOW, error="late") is None  # done stays done

    assert ledger.due(NOW - timedelta(hours=1), [SP]) == []  # back-off not over
    assert ledger.due(NOW, [SP]) == [failed]  # the exact reference the listing queued
    assert ledger.known(SP, [failed, done], NOW) == {done.content_id}  # due content is not "known"
    assert ledger.known(SP, [failed, done]) == {failed.content_id, done.content_id}

    ledger.mark_queued([failed], NOW)  # queued again: on its way, not due
    assert ledger.due(NOW + timedelta(days=1), [SP]) == []
    ledger.mark_failed(failed, NOW + timedelta(minutes=1), error="again")  # the second round fails as well
    assert ledger.due(NOW + timedelta(minutes=1) + 2 * RETRY_BASE, [SP]) == [failed]
    row = clients.get(keys.ledger_table(unique_prefix, failed.content_created)).get_entity(SP, keys.escape_key(failed.content_id))
    assert (row["s"], row["a"], row["u"], row["e"]) == ("failed", 2, failed.content_uri, "again")
    assert ledger.status(done) is LedgerStatus.DONE


def test_rows_of_earlier_versions_stay_readable_and_heal(storage_connection_string: str, unique_prefix: str):
    clients = TableClients.from_connection_string(storage_connection_string)
    ledger = Ledger(clients, unique_prefix)
    old = ref(SP, "legacy", NOW - timedelta(hours=3))
    name = keys.ledger_table(unique_prefix, old.content_created)
    clients.create(name)
    clients.get(name).upsert_entity({"PartitionKey": SP, "RowKey": "legacy", "c": "2026-11-20T09:00:00.000Z",
                                     "q": "2026-11-20T09:00:01.000Z", "s": "missing", "d": "2026-11-20T09:01:00.000Z",
                                     "e": "HTTP 404"})

    assert ledger.status(old) is LedgerStatus.MISSING
    assert ledger.due(NOW, [SP]) == []  # no contentUri to rebuild the message from ...
    assert ledger.known(SP, [old], NOW) == set()  # ... so the listing queues it when it lists it again
    assert ledger.mark_failed(old, NOW, error="x") == NOW + RETRY_BASE  # no `a` yet: the first round
