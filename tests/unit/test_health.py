"""HealthReporter over in-memory stand-ins of its Protocols: the status rules and the document's shape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from collector.health import HealthReporter
from collector.ledger import FailedContent, LedgerSummary
from collector.state import TypeState
from tests.unit.fakes import FixedClock

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SP, EX = "Audit.SharePoint", "Audit.Exchange"


class States:
    def __init__(self, *states: TypeState) -> None:
        self.states = list(states)

    def load_all(self) -> Sequence[TypeState]:
        return self.states


class Summaries:
    def __init__(self, *summaries: LedgerSummary) -> None:
        self.by_type = {s.content_type: s for s in summaries}
        self.asked: list[tuple[datetime, datetime]] = []

    def summaries(self, now: datetime, *, since: datetime) -> Mapping[str, LedgerSummary]:
        self.asked.append((now, since))
        return self.by_type


class Queue:
    name, poison_name = "audit-content", "audit-content-poison"

    def __init__(self, depth: int = 0, poison: int = 0) -> None:
        self._depth, self._poison = depth, poison

    def depth(self) -> int:
        return self._depth

    def poison_depth(self) -> int:
        return self._poison


def healthy(content_type: str, lag: timedelta = timedelta(minutes=5)) -> TypeState:
    return TypeState(content_type, cursor=NOW - lag, last_run_at=NOW - lag, last_success_at=NOW - lag)


def report(*states: TypeState, ledger: Summaries | None = None, queue: Queue | None = None,
           types: tuple[str, ...] = (SP, EX)) -> dict[str, object]:
    return HealthReporter(content_types=types, state=States(*states), ledger=ledger or Summaries(),
                          queue=queue or Queue(), clock=FixedClock(NOW)).report()


def by_type(document: dict[str, object]) -> dict[str, dict[str, object]]:
    return {t["contentType"]: t for t in document["contentTypes"]}  # type: ignore[attr-defined, index]


def test_every_type_keeping_up_is_ok_and_the_document_has_its_fields():
    ledger = Summaries(LedgerSummary(SP, records_indexed=42, expired_or_missing=1))
    document = report(healthy(SP), healthy(EX), ledger=ledger, queue=Queue(depth=3))

    assert ledger.asked == [(NOW, NOW - timedelta(hours=24))]
    assert document["status"] == "ok"
    assert document["time"] == "2026-11-20T12:00:00.000Z"
    assert document["workQueue"] == {"name": "audit-content", "approximateMessages": 3}
    assert document["poisonQueue"] == {"name": "audit-content-poison", "approximateMessages": 0}
    assert by_type(document)[SP] == {
        "contentType": SP, "status": "ok", "lastSuccessfulCollect": "2026-11-20T11:55:00.000Z",
        "lastRun": "2026-11-20T11:55:00.000Z", "checkpoint": "2026-11-20T11:55:00.000Z", "lagSeconds": 300,
        "recordsIndexedLast24h": 42, "expiredContentSkipped": 1, "poisonMessages": 0, "lastError": None,
        "lastErrorAt": None, "contentLostBefore": None,
    }


def test_a_type_never_collected_or_far_behind_is_lagging():
    document = report(healthy(SP, lag=timedelta(minutes=31)))

    assert by_type(document)[SP]["status"] == "lagging"
    assert by_type(document)[EX]["status"] == "lagging" and by_type(document)[EX]["checkpoint"] is None
    assert document["status"] == "lagging"


def test_failed_content_makes_its_type_an_error_with_the_last_failure_as_last_error():
    failed = (FailedContent("a", "FatalApiError: HTTP 400 AF20052", NOW), FailedContent("b", "", NOW))
    document = report(healthy(SP), healthy(EX), ledger=Summaries(LedgerSummary(SP, failed=failed[:1])))

    sharepoint = by_type(document)[SP]
    assert (sharepoint["status"], sharepoint["poisonMessages"], sharepoint["lastError"]) == (
        "error", 1, "FatalApiError: HTTP 400 AF20052")
    assert document["status"] == "error"
    unnamed = by_type(report(healthy(SP), ledger=Summaries(LedgerSummary(SP, failed=failed[1:]))))[SP]
    assert unnamed["lastError"] == "content processing failed"


def test_poison_messages_turn_an_ok_deployment_into_an_error():
    assert report(healthy(SP), healthy(EX), queue=Queue(poison=2))["status"] == "error"


def test_a_type_no_longer_configured_is_listed_after_the_others_but_does_not_count():
    document = report(healthy(SP), healthy(EX), TypeState("Audit.General"))

    assert [t["contentType"] for t in document["contentTypes"]] == [SP, EX, "Audit.General"]  # type: ignore[attr-defined]
    assert document["status"] == "ok"
