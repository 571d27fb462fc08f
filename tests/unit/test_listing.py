"""ListingService (the timer) over in-memory fakes of its Protocols: order, dedupe and faults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from collector.collect import SUBSCRIBE_INTERVAL, ListingService
from collector.errors import (
    AuthError,
    FatalApiError,
    InvalidWindowError,
    SubscriptionError,
    TransientApiError,
)
from collector.models import LedgerStatus, Window
from collector.settings import Settings
from collector.state import TypeState
from collector.windows import RETENTION, RETENTION_SAFETY
from tests.unit.fakes import (
    Entry,
    FakeLedger,
    FakeListingApi,
    FakeQueue,
    FakeStateStore,
    FixedClock,
    Journal,
    ref,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
SP, EX = "Audit.SharePoint", "Audit.Exchange"
W1, W2 = Window(NOW - 2 * DAY, NOW - DAY), Window(NOW - DAY, NOW)  # a 48 h first run: two windows


class Ticker:
    """The run's deadline clock (ListingService's `monotonic` seam): moves only when told."""

    def __init__(self) -> None:
        self.value = 0.0

    def __call__(self) -> float:
        return self.value


class Rig:
    def __init__(self, *states: TypeState, types: tuple[str, ...] = (SP, EX), lookback_hours: float = 48,
                 subscriptions: dict[str, str] | None = None) -> None:
        self.journal = Journal()
        enabled = {content_type: "enabled" for content_type in types}
        self.api = FakeListingApi(self.journal, subscriptions=enabled if subscriptions is None else subscriptions,
                                  now=NOW)
        self.queue = FakeQueue(self.journal)
        self.ledger = FakeLedger(self.journal)
        self.state = FakeStateStore(self.journal, *states)
        self.settings = Settings(content_types=types, initial_lookback_hours=lookback_hours, overlap_minutes=60,
                                 max_runtime_seconds=240)
        self.ticker = Ticker()
        self.service = self.new_service()

    def new_service(self, now: datetime = NOW) -> ListingService:
        """A fresh service (as the next timer run builds it) over the same stores."""
        self.ticker = Ticker()
        return ListingService(self.settings, self.api, self.queue, self.ledger, self.state, clock=FixedClock(now),
                              monotonic=self.ticker)

    def listed(self) -> list[tuple[str, Window]]:
        return [(call[1], call[2]) for call in self.journal.named("api.list_content")]


def test_oldest_window_first_across_content_types():
    rig = Rig()
    rig.api.add(ref(SP, 1, W1.start + HOUR), ref(EX, 1, W1.start + 2 * HOUR), ref(SP, 2, W2.start + HOUR))

    report = rig.service.run()

    assert rig.listed() == [(SP, W1), (EX, W1), (SP, W2), (EX, W2)]
    assert [r.content_id for r in rig.queue.sent] == [f"{SP}-001", f"{EX}-001", f"{SP}-002"]
    assert [(t.content_type, t.windows, t.windows_done, t.queued) for t in report.types] == [(SP, 2, 2, 2), (EX, 2, 2, 1)]
    assert report.ok and report.queued == 3


def test_enqueue_before_ledger_before_checkpoint():
    rig = Rig(types=(SP,), lookback_hours=24)
    a, b = ref(SP, 1, W2.start + HOUR), ref(SP, 2, W2.start + 2 * HOUR)
    rig.api.add(a, b)

    rig.service.run()

    assert rig.journal.named("queue.send", "ledger.mark_queued", "state.save") == [
        ("queue.send", a.content_id),
        ("queue.send", b.content_id),
        ("ledger.mark_queued", (a.content_id, b.content_id)),
        ("state.save", SP, NOW),  # the checkpoint of the window
        ("state.save", SP, NOW),  # the run's outcome, once at the end
    ]
    saved = rig.state.states[SP]
    assert (saved.cursor, saved.last_run_at, saved.last_success_at, saved.last_error) == (NOW, NOW, NOW, "")


def test_blobs_the_ledger_knows_are_not_queued_again():
    rig = Rig(types=(SP,), lookback_hours=24)
    seen, new = ref(SP, 1, W2.start + HOUR), ref(SP, 2, W2.start + 2 * HOUR)
    rig.api.add(seen, new)
    rig.ledger.mark_queued([seen], NOW - HOUR)

    report = rig.service.run()

    assert [r.content_id for r in rig.queue.sent] == [new.content_id]
    assert (report.types[0].listed, report.types[0].already_known, report.types[0].queued) == (2, 1, 1)


def test_a_later_run_lists_from_the_checkpoint_minus_the_overlap():
    rig = Rig(TypeState(SP, cursor=NOW - 3 * HOUR), types=(SP,))

    rig.service.run()

    assert rig.listed() == [(SP, Window(NOW - 4 * HOUR, NOW))]


def test_a_transient_error_on_one_type_does_not_stop_the_others():
    rig = Rig()
    rig.api.add(ref(EX, 1, W1.start + HOUR), ref(EX, 2, W2.start + HOUR))
    rig.api.faults.fail("list_content", SP, TransientApiError("HTTP 503: busy", status=503))

    report = rig.service.run()  # no exception: the next run retries SharePoint

    assert rig.listed() == [(SP, W1), (EX, W1), (EX, W2)]  # SharePoint stops at its failed window
    sharepoint, exchange = report.types
    assert sharepoint.error == "TransientApiError: HTTP 503: busy" and not sharepoint.fatal
    assert (exchange.error, exchange.queued, exchange.windows_done) == ("", 2, 2)
    assert not report.ok
    sp, ex = rig.state.states[SP], rig.state.states[EX]
    assert (sp.cursor, sp.last_error, sp.last_error_at, sp.last_success_at) == (
        None, "TransientApiError: HTTP 503: busy", NOW, None)
    assert (ex.cursor, ex.last_success_at, ex.last_error) == (NOW, NOW, "")


def test_an_auth_error_stops_every_type_at_once_and_still_records_the_states():
    rig = Rig()
    rig.api.faults.fail("list_content", SP, AuthError("AADSTS7000215: invalid client secret"))

    with pytest.raises(AuthError):
        rig.service.run()

    assert rig.listed() == [(SP, W1)]  # Exchange is never listed: the credentials fail for every type
    assert rig.state.states[SP].last_error == "AuthError: AADSTS7000215: invalid client secret"
    assert rig.state.states[EX].last_run_at == NOW  # saved in the finally, untouched otherwise
    assert rig.journal.named("ledger.prune") == []


def test_an_auth_error_listing_subscriptions_stops_the_run_before_anything_else():
    rig = Rig()
    rig.api.faults.fail("list_subscriptions", "", AuthError("AADSTS700016: unknown app"))

    with pytest.raises(AuthError):
        rig.service.run()

    assert rig.journal.calls == [("api.list_subscriptions",)]


def test_a_fatal_error_is_raised_after_the_other_types_ran():
    rig = Rig()
    rig.api.add(ref(EX, 1, W2.start + HOUR))
    rig.api.faults.fail("list_content", SP, FatalApiError("HTTP 400 AF20020: invalid content type", status=400,
                                                          code="AF20020"))

    with pytest.raises(FatalApiError, match="^Audit.SharePoint: FatalApiError: HTTP 400 AF20020"):
        rig.service.run()

    assert rig.listed() == [(SP, W1), (EX, W1), (EX, W2)]
    assert [r.content_id for r in rig.queue.sent] == [f"{EX}-001"]
    assert rig.state.states[EX].cursor == NOW and rig.state.states[SP].cursor is None
    assert rig.journal.named("ledger.prune") == [("ledger.prune",)]  # housekeeping still ran


def test_a_failing_prune_does_not_fail_the_run():
    rig = Rig(types=(SP,), lookback_hours=24)
    rig.ledger.faults.fail("prune", "", RuntimeError("table service unavailable"))

    assert rig.service.run().ok


def test_a_subscription_that_is_not_enabled_is_started_before_listing():
    rig = Rig(subscriptions={EX: "enabled", SP: "disabled"})

    rig.service.run()

    calls = rig.journal.named("api.start_subscription", "api.list_content")
    assert calls[0] == ("api.start_subscription", SP)
    assert [call[0] for call in calls].count("api.start_subscription") == 1
    assert rig.state.states[SP].last_subscribe_at == NOW
    assert rig.state.states[EX].last_subscribe_at is None


@pytest.mark.parametrize(("ago", "starts"), [(SUBSCRIBE_INTERVAL - timedelta(seconds=1), 0), (SUBSCRIBE_INTERVAL, 1)])
def test_a_subscription_is_started_at_most_once_per_15_minutes(ago: timedelta, starts: int):
    rig = Rig(TypeState(SP, last_subscribe_at=NOW - ago), types=(SP,), subscriptions={})

    rig.service.run()

    assert len(rig.journal.named("api.start_subscription")) == starts
    assert rig.state.states[SP].last_subscribe_at == (NOW if starts else NOW - ago)


def test_af20022_while_listing_starts_the_subscription_and_lists_again():
    rig = Rig(types=(SP,), lookback_hours=24)
    rig.api.add(ref(SP, 1, W2.start + HOUR))
    rig.api.faults.fail("list_content", SP, SubscriptionError("HTTP 400 AF20022", status=400, code="AF20022"))

    report = rig.service.run()

    assert rig.journal.named("api.start_subscription", "api.list_content") == [
        ("api.list_content", SP, W2), ("api.start_subscription", SP), ("api.list_content", SP, W2)]
    assert rig.queue.sent[0].content_id == f"{SP}-001"
    assert report.ok and report.queued == 1


def test_af20022_right_after_a_start_stands_until_the_next_run():
    rig = Rig(TypeState(SP, last_subscribe_at=NOW - timedelta(minutes=5)), types=(SP,), lookback_hours=24)
    rig.api.faults.fail("list_content", SP, SubscriptionError("HTTP 400 AF20023", status=400, code="AF20023"))

    report = rig.service.run()  # not fatal: no exception

    assert rig.journal.named("api.start_subscription") == []
    assert rig.listed() == [(SP, W2)]
    assert report.types[0].error == "SubscriptionError: HTTP 400 AF20023" and not report.types[0].fatal


def test_af20031_lists_the_window_again_from_its_start():
    rig = Rig(types=(SP,), lookback_hours=168)
    rig.api.server_offset = timedelta(minutes=30)  # a clamp to the server's 7-day edge would move the start
    first = Window(NOW - RETENTION + RETENTION_SAFETY, NOW - RETENTION + RETENTION_SAFETY + DAY)
    rig.api.add(ref(SP, 1, first.start + HOUR))
    rig.api.faults.fail("list_content", SP, InvalidWindowError("HTTP 400 AF20031", status=400, code="AF20031"))

    report = rig.service.run()

    assert rig.listed()[:2] == [(SP, first), (SP, first)]
    assert [r.content_id for r in rig.queue.sent] == [f"{SP}-001"] and report.ok


def test_af20055_clamps_the_window_to_the_server_clocks_7_day_edge():
    rig = Rig(types=(SP,), lookback_hours=168)
    rig.api.server_offset = timedelta(minutes=30)  # the server's clock is 30 minutes ahead of ours
    rig.api.faults.fail("list_content", SP, InvalidWindowError("HTTP 400 AF20055", status=400, code="AF20055"))

    rig.service.run()

    first = NOW - RETENTION + RETENTION_SAFETY
    server_floor = NOW + timedelta(minutes=30) - RETENTION + RETENTION_SAFETY
    assert rig.listed()[:2] == [(SP, Window(first, first + DAY)), (SP, Window(server_floor, first + DAY))]


def test_content_listed_already_expired_is_recorded_and_counted_not_queued():
    rig = Rig(types=(SP,), lookback_hours=24)
    expired = ref(SP, 1, W2.start + HOUR, lifetime=timedelta(hours=1))  # expired at W2.start + 2 h < NOW
    live = ref(SP, 2, W2.start + HOUR)
    rig.api.add(expired, live)

    report = rig.service.run()

    assert [r.content_id for r in rig.queue.sent] == [live.content_id]
    assert rig.journal.named("ledger.mark_queued", "ledger.mark", "queue.send") == [
        ("ledger.mark_queued", (expired.content_id,)),
        ("ledger.mark", expired.content_id, LedgerStatus.EXPIRED),
        ("queue.send", live.content_id),
        ("ledger.mark_queued", (live.content_id,)),
    ]
    assert rig.ledger.entry(expired).error == "expired before it could be queued"
    assert (report.types[0].expired, report.types[0].queued) == (1, 1)


def test_an_interval_older_than_the_api_keeps_is_reported_lost():
    cursor = NOW - 8 * DAY
    rig = Rig(TypeState(SP, cursor=cursor), types=(SP,))

    report = rig.service.run()

    floor = NOW - RETENTION + RETENTION_SAFETY
    assert report.types[0].lost == Window(cursor, floor)
    assert rig.state.states[SP].lost_before == floor
    assert rig.listed()[0] == (SP, Window(floor, floor + DAY))


# ------------------------------------------------------------------ issue 12: nothing stalls, nothing vanishes


def failed_entry(item, *, failed_at, retry_at, attempts=1, queued_at=None):  # type: ignore[no-untyped-def]
    return Entry(ref=item, status=LedgerStatus.FAILED, error="TransientApiError: HTTP 503", attempts=attempts,
                 queued_at=queued_at or failed_at - HOUR, settled_at=failed_at, retry_at=retry_at)


def test_failed_content_is_queued_again_once_its_back_off_is_over_even_outside_the_overlap():
    rig = Rig(TypeState(SP, cursor=NOW - timedelta(minutes=5)), types=(SP,))
    old = ref(SP, 1, NOW - 2 * DAY)  # long before the overlap: no listing will ever show it again
    waiting = ref(SP, 2, NOW - 2 * DAY)
    rig.ledger.entries[(SP, old.content_id)] = failed_entry(old, failed_at=NOW - HOUR, retry_at=NOW - HOUR / 2)
    rig.ledger.entries[(SP, waiting.content_id)] = failed_entry(waiting, failed_at=NOW - HOUR, retry_at=NOW + HOUR)

    report = rig.service.run()

    assert [r.content_id for r in rig.queue.sent] == [old.content_id]  # the exact message, rebuilt
    assert rig.queue.sent == [old]
    assert rig.journal.named("queue.send", "ledger.mark_queued")[:2] == [
        ("queue.send", old.content_id), ("ledger.mark_queued", (old.content_id,))]  # enqueue before ledger
    assert (report.types[0].requeued, report.types[0].queued) == (1, 1)

    rig.service = rig.new_service(NOW + timedelta(minutes=5))
    rig.service.run()  # its new message is on its way: not queued a second time
    assert rig.queue.sent == [old]


def test_failed_content_listed_in_the_overlap_is_queued_again_when_due_but_only_once():
    rig = Rig(TypeState(SP, cursor=NOW - timedelta(minutes=5)), types=(SP,))
    item = ref(SP, 1, NOW - timedelta(minutes=30))
    rig.api.add(item)
    legacy = Entry(status=LedgerStatus.MISSING, settled_at=NOW - HOUR)  # an earlier version's row: no uri, no `r`
    rig.ledger.entries[(SP, item.content_id)] = legacy

    report = rig.service.run()

    assert rig.queue.sent == [item]
    assert (report.types[0].queued, report.types[0].already_known) == (1, 0)


def test_failed_content_not_yet_due_stays_known_to_the_listing():
    rig = Rig(TypeState(SP, cursor=NOW - timedelta(minutes=5)), types=(SP,))
    item = ref(SP, 1, NOW - timedelta(minutes=30))
    rig.api.add(item)
    rig.ledger.entries[(SP, item.content_id)] = failed_entry(item, failed_at=NOW - HOUR, retry_at=NOW + HOUR)

    report = rig.service.run()

    assert rig.queue.sent == [] and report.types[0].already_known == 1


def test_a_window_that_outlasts_the_run_saves_its_paging_and_the_next_run_goes_on_from_there():
    rig = Rig(types=(SP,), lookback_hours=24)
    blobs = [ref(SP, i, W2.start + HOUR + i * timedelta(minutes=1)) for i in range(5)]
    rig.api.add(*blobs)
    rig.api.page_size = 2

    def slow_page(number: int) -> None:
        rig.ticker.value += 250  # every page outlasts the run's whole 240 s

    rig.api.on_page = slow_page
    first = rig.service.run()

    assert [r.content_id for r in rig.queue.sent] == [b.content_id for b in blobs[:2]]
    saved = rig.state.states[SP]
    assert (saved.cursor, saved.page_start, saved.page_end, saved.next_page) == (None, W2.start, W2.end, "page:1")
    assert first.types[0].windows_done == 0 and first.types[0].error == ""
    assert rig.journal.named("queue.send", "ledger.mark_queued", "state.save")[:4] == [
        ("queue.send", blobs[0].content_id), ("queue.send", blobs[1].content_id),
        ("ledger.mark_queued", (blobs[0].content_id, blobs[1].content_id)), ("state.save", SP, None)]

    for _ in range(2):  # each later run gets one page further: every run advances
        rig.journal.calls.clear()
        rig.service = rig.new_service()
        rig.service.run()
        assert [call[:4] for call in rig.journal.named("api.list_content", "api.list_page")][0][0] == "api.list_page"

    assert [r.content_id for r in rig.queue.sent] == [b.content_id for b in blobs]  # each exactly once
    done = rig.state.states[SP]
    assert (done.cursor, done.next_page, done.page_start) == (NOW, "", None)


def test_a_page_that_fails_mid_window_keeps_the_pages_before_it_and_the_error():
    rig = Rig(types=(SP,), lookback_hours=24)
    blobs = [ref(SP, i, W2.start + HOUR + i * timedelta(minutes=1)) for i in range(4)]
    rig.api.add(*blobs)
    rig.api.page_size = 2
    rig.api.faults.fail("list_page", f"{SP}#1", TransientApiError("HTTP 503 AF50001: busy", status=503))

    report = rig.service.run()

    assert report.types[0].error == "TransientApiError: HTTP 503 AF50001: busy"
    saved = rig.state.states[SP]
    assert (saved.next_page, saved.last_error, saved.cursor) == ("page:1", report.types[0].error, None)
    rig.service = rig.new_service()
    assert rig.service.run().ok
    assert [r.content_id for r in rig.queue.sent] == [b.content_id for b in blobs]


def test_a_storage_failure_while_queueing_is_recorded_in_the_types_state():
    rig = Rig(types=(SP, EX), lookback_hours=24)
    rig.api.add(ref(SP, 1, W2.start + HOUR), ref(EX, 1, W2.start + HOUR))
    rig.queue.faults.fail("send", f"{SP}-001", ConnectionResetError("queue service unreachable"))

    report = rig.service.run()

    assert rig.state.states[SP].last_error == "ConnectionResetError: queue service unreachable"
    assert rig.state.states[SP].cursor is None
    assert rig.state.states[EX].cursor == NOW and report.types[1].error == ""
