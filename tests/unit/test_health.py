"""HealthReporter over in-memory stand-ins of its Protocols: the status rules and the document's shape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from collector.health import HealthReporter, Thresholds
from collector.ledger import FailedContent, LedgerSummary, WaitingContent
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
        "lastErrorAt": None, "contentLostBefore": None, "reason": None, "failedContent": 0, "nextRetryAt": None,
        "waiting": 0, "oldestWaiting": None,
    }
    assert document["reasons"] == [] and document["oldestWaiting"] is None
    assert document["thresholds"] == {"lagMinutes": 30, "maxWaitMinutes": 60, "maxLagHours": 24}


def test_a_type_never_collected_or_far_behind_is_lagging():
    document = report(healthy(SP, lag=timedelta(minutes=31)))

    assert by_type(document)[SP]["status"] == "lagging"
    assert by_type(document)[EX]["status"] == "lagging" and by_type(document)[EX]["checkpoint"] is None
    assert document["status"] == "lagging"


def test_failed_content_degrades_its_type_with_the_last_failure_as_last_error_and_the_next_round():
    """Failed content heals by itself (healing.py): degraded, not failing, while it waits for its round."""
    failed = (FailedContent("a", "FatalApiError: HTTP 400 AF20052", NOW), FailedContent("b", "", NOW))
    retry = NOW + timedelta(minutes=15)
    document = report(healthy(SP), healthy(EX), ledger=Summaries(LedgerSummary(SP, failed=failed[:1], next_retry_at=retry)))

    sharepoint = by_type(document)[SP]
    assert (sharepoint["status"], sharepoint["failedContent"], sharepoint["lastError"], sharepoint["nextRetryAt"]) == (
        "degraded", 1, "FatalApiError: HTTP 400 AF20052", "2026-11-20T12:15:00.000Z")
    assert document["status"] == "degraded"
    assert document["reasons"] == [f"{SP}: 1 content blob(s) failed; they are retried by themselves until they expire "
                                   "(nextRetryAt)"]
    unnamed = by_type(report(healthy(SP), ledger=Summaries(LedgerSummary(SP, failed=failed[1:]))))[SP]
    assert unnamed["lastError"] == "content processing failed"


def test_poison_messages_turn_an_ok_deployment_degraded_and_are_named():
    document = report(healthy(SP), healthy(EX), queue=Queue(poison=2))
    assert document["status"] == "degraded"
    assert document["reasons"] == ["2 message(s) in the poison queue audit-content-poison"]


def test_a_listing_error_is_an_error():
    state = TypeState(SP, cursor=NOW, last_run_at=NOW, last_success_at=NOW - timedelta(minutes=10),
                      last_error="RetryAfterError: Retry-After 900 s", last_error_at=NOW)
    document = report(state, healthy(EX))
    assert (by_type(document)[SP]["status"], document["status"]) == ("error", "error")


def test_content_waiting_longer_than_the_threshold_is_failing_and_the_oldest_waiting_item_is_shown():
    """The queue does not drain: the oldest queued blob, across types, is what the operator needs."""
    ex_old = WaitingContent("ex-1", NOW - timedelta(minutes=61), failed=False)
    sp_new = WaitingContent("sp-1", NOW - timedelta(minutes=20), failed=True)
    ledger = Summaries(LedgerSummary(EX, waiting=7, oldest_waiting=ex_old), LedgerSummary(SP, waiting=1, oldest_waiting=sp_new))
    document = report(healthy(SP), healthy(EX), ledger=ledger, queue=Queue(depth=8))

    assert document["status"] == "failing"
    assert (by_type(document)[EX]["status"], by_type(document)[SP]["status"]) == ("failing", "ok")
    assert document["oldestWaiting"] == {"contentType": EX, "contentId": "ex-1", "queuedAt": "2026-11-20T10:59:00.000Z",
                                         "waitSeconds": 3660, "retry": False}
    assert by_type(document)[EX]["waiting"] == 7
    assert by_type(document)[SP]["oldestWaiting"] == {"contentId": "sp-1", "queuedAt": "2026-11-20T11:40:00.000Z",
                                                      "waitSeconds": 1200, "retry": True}
    assert document["reasons"] == [f"{EX}: content ex-1 has waited 61 min (over 60 min): the queue is not draining"]


def test_thresholds_are_settings_and_a_long_silent_listing_is_failing():
    waiting = Summaries(LedgerSummary(SP, waiting=1, oldest_waiting=WaitingContent("x", NOW - timedelta(minutes=61), False)))
    relaxed = HealthReporter(content_types=(SP,), state=States(healthy(SP)), ledger=waiting, queue=Queue(),
                             clock=FixedClock(NOW), thresholds=Thresholds(max_wait=timedelta(hours=2))).report()
    assert relaxed["status"] == "ok" and relaxed["thresholds"]["maxWaitMinutes"] == 120  # type: ignore[index]

    assert report(healthy(SP, lag=timedelta(hours=23)), types=(SP,))["status"] == "lagging"
    silent = report(healthy(SP, lag=timedelta(hours=25)), types=(SP,))
    assert silent["status"] == "failing" and silent["reasons"] == [f"{SP}: nothing listed for 25.0 h (over 24.0 h)"]


def test_a_type_no_longer_configured_is_listed_after_the_others_but_does_not_count():
    document = report(healthy(SP), healthy(EX), TypeState("Audit.General"))

    assert [t["contentType"] for t in document["contentTypes"]] == [SP, EX, "Audit.General"]  # type: ignore[attr-defined]
    assert document["status"] == "ok"


def test_the_oldest_day_of_each_tier_is_shown_and_asked_at_most_every_15_minutes():
    asked: list[int] = []

    def oldest() -> dict[str, str | None]:
        asked.append(1)
        return {"hot": "2026-08-22", "cold": "2019-11-21", "archive": None}

    clock = FixedClock(NOW)
    reporter = HealthReporter(content_types=(SP,), state=States(healthy(SP)), ledger=Summaries(), queue=Queue(),
                              clock=clock, oldest_days=oldest)
    assert reporter.report()["oldestDay"] == {"hot": "2026-08-22", "cold": "2019-11-21", "archive": None}
    clock.value = NOW + timedelta(minutes=14)
    reporter.report()
    clock.value = NOW + timedelta(minutes=16)
    reporter.report()
    assert len(asked) == 2
    assert report(healthy(SP))["oldestDay"] is None  # a reporter without tiers says so


def test_a_tier_listing_failure_does_not_take_health_down():
    from azure.core.exceptions import ServiceRequestError

    def broken() -> dict[str, str | None]:
        raise ServiceRequestError("connection refused")

    document = HealthReporter(content_types=(SP,), state=States(healthy(SP)), ledger=Summaries(), queue=Queue(),
                              clock=FixedClock(NOW), oldest_days=broken).report()
    assert document["status"] == "ok" and document["oldestDay"] == {"error": "ServiceRequestError: connection refused"}
