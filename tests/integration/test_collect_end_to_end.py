"""Issue 2 scenarios: simulator over HTTPS → queue → archive → index on Azurite, with the real SDKs."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from azure.core.exceptions import HttpResponseError

from collector.cli import run_cycle
from collector.drain import drain
from collector.errors import UntrustedUrlError
from collector.index import AuditIndex
from collector.models import ContentRef, View
from collector.windows import RETENTION, RETENTION_SAFETY

from .world import START, TENANT, World, record

DAY = timedelta(days=1)


def all_hits(services, start=START - 8 * DAY, end=START + 8 * DAY):
    return list(services.index.scan(View.TIME, start, end))


def cycle(services) -> bool:
    return run_cycle(services, workers=2, quiet=True)


def test_cold_start_starts_subscriptions_and_collects(world: World):
    world.sim.add_blob("Audit.SharePoint", START - timedelta(hours=2),
                       [record(1, START - timedelta(hours=3)), record(2, START - timedelta(hours=2, minutes=30))])
    services = world.services()

    assert cycle(services)

    starts = world.api_requests("subscription_start")
    assert sorted(r.query["contenttype"] for r in starts) == ["Audit.Exchange", "Audit.SharePoint"]
    hits = all_hits(services)
    assert sorted(h.entry.id for h in hits) == [record(1, START)["Id"], record(2, START)["Id"]]
    entry = hits[0].entry
    assert (entry.clientIp, entry.contentType, entry.organizationId) == ("203.0.113.7", "Audit.SharePoint", TENANT)
    # PublisherIdentifier on every API request, the bearer token on every one
    for request in world.api_requests():
        assert request.query.get("publisheridentifier") == TENANT, request.path
        assert request.bearer


def test_af20022_during_listing_starts_the_subscription_and_retries(world: World):
    world.sim.start_subscription("Audit.SharePoint")
    world.sim.start_subscription("Audit.Exchange")
    world.sim.add_blob("Audit.SharePoint", START - timedelta(hours=1), [record(1, START - timedelta(hours=1))])
    world.sim.inject("content_list", code="AF20022", times=1)
    services = world.services(M365_CONTENT_TYPES="Audit.SharePoint")

    assert cycle(services)

    assert len(world.api_requests("subscription_start")) == 1
    assert len(all_hits(services)) == 1


def test_first_run_backfills_seven_days_in_daily_windows(world: World):
    for day in range(3):
        for hour in range(0, 24, 6):
            created = START - timedelta(days=day, hours=hour, minutes=1)  # end is exclusive: "now" is next run
            world.sim.add_blob("Audit.Exchange", created,
                               [record(day * 100 + hour * 2 + k, created - timedelta(minutes=20 + k), Workload="Exchange",
                                       Operation="MailItemsAccessed") for k in range(2)])
    services = world.services(M365_CONTENT_TYPES="Audit.Exchange")

    assert cycle(services)

    windows = sorted({(r.query["starttime"], r.query["endtime"]) for r in world.api_requests("content_list")
                      if "starttime" in r.query and "nextpage" not in r.query})
    # The default first-run backfill is the API's whole 7 days (COLLECT_INITIAL_LOOKBACK_HOURS=168),
    # less the safety margin at the 7-day edge: 7 windows of ≤ 24 h, gapless, ending now.
    fmt = "%Y-%m-%dT%H:%M:%S"
    first = START - RETENTION + RETENTION_SAFETY
    edges = [first + n * DAY for n in range(7)] + [START]
    assert windows == [(a.strftime(fmt), b.strftime(fmt)) for a, b in pairwise(edges)]
    assert len(all_hits(services)) == 3 * 4 * 2
    state = services.state.load("Audit.Exchange")
    assert state.cursor == START and state.last_error == ""


def test_a_backfill_queues_the_oldest_content_of_every_type_first(world: World):
    # The queue is roughly first in, first out: whatever is queued first is fetched first. Listing
    # type after type would leave the last type's oldest day (the first to expire) to the end.
    for content_type in ("Audit.SharePoint", "Audit.Exchange"):
        for day in range(3):
            created = START - timedelta(days=day, hours=1)
            world.sim.add_blob(content_type, created, [record(day, created - timedelta(minutes=20))])
    services = world.services(COLLECT_INITIAL_LOOKBACK_HOURS="72")

    report = services.listing.run()

    assert report.queued == 6
    lists = [(r.query["starttime"], r.query["contenttype"]) for r in world.api_requests("content_list")
             if "starttime" in r.query]
    assert lists == sorted(lists, key=lambda listed: listed[0])  # window by window, both types each time
    assert {content_type for _, content_type in lists[:2]} == {"Audit.SharePoint", "Audit.Exchange"}
    queued = [json.loads(message.content)["contentId"] for message in services.queue.receive(32, 60)]
    created = {blob.content_id: blob.content_created for blob in world.sim.blobs()}
    assert [created[c] for c in queued] == sorted(created[c] for c in queued)


def test_paging_follows_next_page_uri_through_an_empty_page(world: World):
    world.sim.set(page_size=2, emit_empty_page_with_next=True)
    for i in range(7):
        created = START - timedelta(hours=1, minutes=i)
        world.sim.add_blob("Audit.SharePoint", created, [record(i, created - timedelta(minutes=5))])
    services = world.services(M365_CONTENT_TYPES="Audit.SharePoint", COLLECT_INITIAL_LOOKBACK_HOURS="4")

    assert cycle(services)

    pages = [r for r in world.api_requests("content_list") if "nextpage" in r.query]
    assert len(pages) >= 4  # empty first page + 4 pages of ≤ 2 blobs
    assert all(r.query.get("publisheridentifier") == TENANT for r in pages)
    assert len(all_hits(services)) == 7


def test_duplicates_within_and_across_blobs_become_one_entry_each(world: World):
    a, b, c = (record(i, START - timedelta(hours=2, minutes=i)) for i in range(3))
    world.sim.add_blob("Audit.SharePoint", START - timedelta(hours=1, minutes=50), [a, b, a])  # twice in one blob
    world.sim.add_blob("Audit.SharePoint", START - timedelta(hours=1, minutes=40), [b, c])  # and across blobs
    services = world.services(M365_CONTENT_TYPES="Audit.SharePoint")

    assert cycle(services)

    ids = [h.entry.id for h in all_hits(services)]
    assert sorted(ids) == sorted({a["Id"], b["Id"], c["Id"]})
    for view, value in ((View.USER, a["UserId"]), (View.OPERATION, "FileAccessed")):
        hits = list(services.index.scan(view, START - DAY, START, value=value))
        assert len(hits) == len({h.key for h in hits})


def test_a_late_blob_with_three_day_old_records_is_indexed_at_its_event_time(world: World):
    world.sim.add_blob("Audit.SharePoint", START - timedelta(hours=1), [record(1, START - timedelta(hours=1, minutes=5))])
    services = world.services(M365_CONTENT_TYPES="Audit.SharePoint")
    assert cycle(services)

    world.clock.advance(timedelta(minutes=5))
    old = START - timedelta(days=3)
    world.sim.add_blob("Audit.SharePoint", world.clock.now() - timedelta(minutes=1), [record(2, old)])
    assert cycle(services)

    late = [h.entry for h in services.index.scan(View.TIME, old - timedelta(minutes=1), old + timedelta(minutes=1))]
    assert [e.id for e in late] == [record(2, old)["Id"]]
    assert late[0].time == old.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert services.state.load("Audit.SharePoint").cursor == world.clock.now()  # availability time, not event time


def test_relisting_the_overlap_does_not_fetch_a_blob_twice(world: World):
    world.sim.add_blob("Audit.SharePoint", START - timedelta(minutes=10), [record(1, START - timedelta(minutes=15))])
    services = world.services(M365_CONTENT_TYPES="Audit.SharePoint")
    assert cycle(services)
    world.clock.advance(timedelta(minutes=5))
    assert cycle(services)  # lists the same blob again (overlap) but must not queue it again
    assert len(world.api_requests("content_get")) == 1


@pytest.mark.parametrize(
    ("operation", "code", "status"),
    [("content_list", "AF429", None), ("content_list", "AF50000", None), ("content_list", None, 503),
     ("content_get", "AF429", None), ("content_get", "AF50000", None), ("content_get", None, 503),
     ("subscription_list", None, 503)],
)
def test_transient_errors_are_retried(world: World, operation: str, code: str | None, status: int | None):
    world.sim.add_blob("Audit.SharePoint", START - timedelta(hours=1), [record(1, START - timedelta(hours=1))])
    world.sim.inject(operation, status=status, code=code, times=2)
    services = world.services(M365_CONTENT_TYPES="Audit.SharePoint")

    assert cycle(services)

    assert len(all_hits(services)) == 1
    failing = [r for r in world.api_requests(operation) if r.status >= 400]
    assert len(failing) == 2


def test_expired_content_is_skipped_and_counted(world: World):
    blob = world.sim.add_blob("Audit.SharePoint", START - timedelta(hours=1), [record(1, START - timedelta(hours=1))],
                              expiration=START + timedelta(minutes=30))
    world.sim.add_blob("Audit.SharePoint", START - timedelta(minutes=50), [record(2, START - timedelta(hours=1))])
    services = world.services(M365_CONTENT_TYPES="Audit.SharePoint")
    services.listing.run()  # listed and queued while still available
    world.clock.advance(timedelta(hours=1))  # ... but it expires before the queue function gets to it

    result = drain(services.queue, services.processor, workers=1)

    assert result.outcomes == {"expired": 1, "indexed": 1}
    assert [h.entry.id for h in all_hits(services)] == [record(2, START)["Id"]]
    statuses = [r.status for r in world.api_requests("content_get") if blob.content_id in r.path]
    assert statuses.count(400) == 1 and set(statuses) <= {400, 401}  # AF20051 once, not retried (401: token aged with the clock)
    report = services.health.report()  # the world's clock
    sharepoint = next(t for t in report["contentTypes"] if t["contentType"] == "Audit.SharePoint")
    assert sharepoint["expiredContentSkipped"] == 1
    assert sharepoint["recordsIndexedLast24h"] == 1


def test_a_401_triggers_exactly_one_token_refresh(world: World):
    world.sim.add_blob("Audit.SharePoint", START - timedelta(hours=1), [record(1, START - timedelta(hours=1))])
    services = world.services(M365_CONTENT_TYPES="Audit.SharePoint")
    assert cycle(services)
    tokens_before = world.sim.issued_tokens

    world.sim.revoke_tokens()
    world.clock.advance(timedelta(minutes=5))
    world.sim.add_blob("Audit.SharePoint", world.clock.now() - timedelta(minutes=1), [record(2, world.clock.now())])
    assert cycle(services)

    assert world.sim.issued_tokens == tokens_before + 1
    assert len([r for r in world.api_requests() if r.status == 401]) == 1
    assert len(all_hits(services)) == 2


class CrashingIndex(AuditIndex):
    """Our own index class, failing its first write: the process 'dies' between archive and index."""

    crashes = 1

    def write(self, items):  # type: ignore[no-untyped-def]
        if self.crashes:
            self.crashes -= 1
            raise RuntimeError("worker killed between archive and index")
        return super().write(items)


def test_a_run_killed_between_archive_and_index_resumes_without_loss_or_duplicates(world: World):
    records = [record(i, START - timedelta(hours=1, minutes=i)) for i in range(5)] + [record(0, START - timedelta(hours=1))]
    blob = world.sim.add_blob("Audit.SharePoint", START - timedelta(minutes=30), records)
    services = world.services(M365_CONTENT_TYPES="Audit.SharePoint")
    services.__dict__["index"] = CrashingIndex(services.tables, services.settings.table_prefix, TENANT)
    services.listing.run()

    first = drain(services.queue, services.processor, workers=1, retry_delay=0)

    assert first.failed_attempts == 1 and first.poisoned == 0
    hits = all_hits(services)
    assert sorted(h.entry.id for h in hits) == sorted({r["Id"] for r in records})
    archived = services.archive.records(services.index.locate(records[1]["Id"])[0])
    assert archived == records  # the raw blob exactly as delivered, duplicates included
    fetches = [r for r in world.api_requests("content_get") if blob.content_id in r.path]
    assert len(fetches) == 1  # the retry read the archive, not the API
    ref = ContentRef(blob.content_type, blob.content_id, "", blob.content_created, blob.content_expiration)
    assert services.ledger.status(ref) == "done"


def test_a_message_that_always_fails_lands_on_the_poison_queue_and_in_health(world: World):
    blob = world.sim.add_blob("Audit.SharePoint", START - timedelta(minutes=30), [record(1, START - timedelta(hours=1))])
    world.sim.inject("content_get", status=400, code="AF20052", times=None)  # malformed id: never succeeds
    services = world.services(M365_CONTENT_TYPES="Audit.SharePoint", AUDIT_MAX_DEQUEUE_COUNT="2")
    services.listing.run()

    result = drain(services.queue, services.processor, workers=1, retry_delay=0)

    assert result.poisoned == 1
    assert services.queue.poison_depth() == 1
    assert json.loads(json.dumps(services.queue.peek_poison()))[0]["contentId"] == blob.content_id
    report = services.health.report()  # the world's clock
    assert report["poisonQueue"]["approximateMessages"] == 1
    sharepoint = next(t for t in report["contentTypes"] if t["contentType"] == "Audit.SharePoint")
    assert sharepoint["poisonMessages"] == 1 and "AF20052" in sharepoint["lastError"]
    assert report["status"] == "degraded"  # failed content heals by itself; the poison message is named in reasons

    world.sim.clear_injections()
    assert services.queue.replay_poison() == 1
    assert drain(services.queue, services.processor, workers=1).outcomes == {"indexed": 1}


def test_the_token_is_never_sent_to_another_host(world: World):
    services = world.services(M365_CONTENT_TYPES="Audit.SharePoint")
    foreign = world.server.base_url.replace("127.0.0.1", "localhost") + f"/api/v1.0/{TENANT}/activity/feed/audit/x"
    before = len(world.sim.requests)
    with pytest.raises(UntrustedUrlError):
        services.api.fetch_content(foreign)
    with pytest.raises(UntrustedUrlError):
        services.api.fetch_content("https://attacker.example/api/v1.0/x/activity/feed/audit/y")
    assert len(world.sim.requests) == before


def test_a_next_page_uri_on_another_host_is_refused(world: World):
    world.sim.start_subscription("Audit.SharePoint")
    world.sim.add_blob("Audit.SharePoint", START - timedelta(minutes=30), [record(1, START - timedelta(hours=1))])
    world.sim.inject("content_list", status=200, body=[], headers={"NextPageUri": "https://attacker.example/steal"})
    services = world.services(M365_CONTENT_TYPES="Audit.SharePoint")

    report = services.listing.run()

    assert "UntrustedUrlError" in report.types[0].error
    assert services.state.load("Audit.SharePoint").cursor is None  # nothing was skipped past


def test_the_checkpoint_never_passes_a_window_that_failed(world: World):
    world.sim.start_subscription("Audit.SharePoint")
    world.sim.add_blob("Audit.SharePoint", START - timedelta(days=2), [record(1, START - timedelta(days=2))])
    second_window = (START - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")
    # The listing of the backfill's second window (the one holding the blob) fails hard once.
    world.sim.inject("content_list", code="AF20020", times=1,
                     when=lambda request: request.query.get("starttime") == second_window)
    services = world.services(M365_CONTENT_TYPES="Audit.SharePoint", COLLECT_INITIAL_LOOKBACK_HOURS="72")
    with pytest.raises(Exception, match="AF20020"):
        services.listing.run()
    assert services.state.load("Audit.SharePoint").cursor == START - timedelta(days=2)  # after window 1 only

    assert cycle(services)
    assert len(all_hits(services)) == 1
    assert services.state.load("Audit.SharePoint").cursor == START


def test_health_reports_each_content_type(world: World):
    world.sim.add_blob("Audit.SharePoint", START - timedelta(hours=1), [record(1, START - timedelta(hours=1))])
    services = world.services()
    assert cycle(services)
    report = services.health.report()  # the world's clock
    assert report["status"] == "ok"
    by_type = {t["contentType"]: t for t in report["contentTypes"]}
    assert set(by_type) == {"Audit.SharePoint", "Audit.Exchange"}
    assert by_type["Audit.SharePoint"]["recordsIndexedLast24h"] == 1
    assert by_type["Audit.SharePoint"]["lagSeconds"] == 0
    assert by_type["Audit.Exchange"]["lastSuccessfulCollect"] == START.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert datetime.fromisoformat(report["time"].replace("Z", "+00:00")) == START.astimezone(UTC)


def test_the_query_api_serves_what_collect_collected(world: World):
    """Issue 3's routes on data collected from the simulator, through the same handlers serve uses."""
    from collector import api

    a, b = record(1, START - timedelta(hours=2)), record(2, START - timedelta(hours=1), UserId="Megan@contoso.com")
    world.sim.add_blob("Audit.SharePoint", START - timedelta(minutes=30), [a, b])
    services = world.services()
    assert cycle(services)
    handler = api.Api(lambda: services, stream=False)

    page = json.loads(handler.audit({"user": "megan@CONTOSO.com", "start": "2026-11-19T00:00:00Z",
                                     "end": "2026-11-21T00:00:00Z"}, "http://x/api/audit").read())
    assert [r["id"] for r in page["value"]] == [b["Id"]]
    everything = json.loads(handler.audit({"start": "2026-11-19T00:00:00Z", "end": "2026-11-21T00:00:00Z"},
                                          "http://x/api/audit").read())
    assert [r["id"] for r in everything["value"]] == [b["Id"], a["Id"]]  # newest first
    raw = handler.record(a["Id"])
    assert raw.status == 200 and json.loads(raw.read()) == a  # exactly as archived
    health = json.loads(handler.health().read())
    assert {t["contentType"] for t in health["contentTypes"]} == {"Audit.SharePoint", "Audit.Exchange"}


class _BlockingProcessor:
    """Our ContentProcessor, holding one message until `others` other messages are done."""

    def __init__(self, processor, blocked_id: str, others: int) -> None:  # type: ignore[no-untyped-def]
        self.processor, self.settings = processor, processor.settings
        self.blocked_id, self.others = blocked_id, others
        self.done: list[str] = []
        self.enough = threading.Event()
        self.waited_out = False

    def process(self, body, dequeue_count=1):  # type: ignore[no-untyped-def]
        content_id = json.loads(body)["contentId"]
        if content_id == self.blocked_id:
            self.waited_out = not self.enough.wait(timeout=30)
        result = self.processor.process(body, dequeue_count)
        self.done.append(content_id)
        if len(self.done) >= self.others:
            self.enough.set()
        return result


def test_drain_keeps_workers_busy_while_one_blob_is_slow(world: World):
    blobs = [world.sim.add_blob("Audit.SharePoint", START - timedelta(minutes=50 - i), [record(i, START - timedelta(hours=1))])
             for i in range(10)]
    services = world.services(M365_CONTENT_TYPES="Audit.SharePoint")
    services.listing.run()
    slow = _BlockingProcessor(services.processor, blobs[0].content_id, others=9)  # all the others

    # Two workers: the slow blob holds one; the other must go on to fresh messages instead of
    # waiting for the slow one's batch to finish (the Functions host behaves so too).
    result = drain(services.queue, slow, workers=2)  # type: ignore[arg-type]

    assert not slow.waited_out
    assert result.outcomes == {"indexed": 10}
    assert slow.done[-1] == blobs[0].content_id


def test_drain_stops_after_limit_messages_and_leaves_the_rest_queued(world: World):
    for i in range(5):
        world.sim.add_blob("Audit.SharePoint", START - timedelta(minutes=50 - i), [record(i, START - timedelta(hours=1))])
    services = world.services(M365_CONTENT_TYPES="Audit.SharePoint")
    services.listing.run()

    first = drain(services.queue, services.processor, workers=2, limit=3)

    assert first.processed == 3 and services.queue.depth() == 2
    rest = drain(services.queue, services.processor, workers=2)
    assert rest.processed == 2 and len(all_hits(services)) == 5


class _CountingQueue:
    """The real ContentQueue, its receive calls counted (what the drain asks of the queue)."""

    def __init__(self, queue) -> None:  # type: ignore[no-untyped-def]
        self.queue = queue
        self.receives: list[int] = []

    def receive(self, count, visibility_timeout):  # type: ignore[no-untyped-def]
        got = self.queue.receive(count, visibility_timeout)
        self.receives.append(len(got))
        return got

    def __getattr__(self, name):  # type: ignore[no-untyped-def]
        return getattr(self.queue, name)


def test_drain_asks_the_queue_for_a_batch_per_workers_messages_not_one_per_message(world: World):
    for i in range(16):
        world.sim.add_blob("Audit.SharePoint", START - timedelta(minutes=50 - i), [record(i, START - timedelta(hours=1))])
    services = world.services(M365_CONTENT_TYPES="Audit.SharePoint")
    services.listing.run()
    counting = _CountingQueue(services.queue)

    result = drain(counting, services.processor, workers=4)  # type: ignore[arg-type]

    assert result.outcomes == {"indexed": 16} and services.queue.depth() == 0
    assert len(all_hits(services)) == 16
    delivering = [got for got in counting.receives if got]
    # 8 in hand at first (two per worker), then 4 more each time only 4 are left: 8 + 4 + 4.
    assert delivering[0] == 8 and len(delivering) <= 4, counting.receives
    assert sum(delivering) == 16


def test_drain_with_a_new_batch_threshold_of_all_but_one_asks_after_every_message(world: World):
    for i in range(6):
        world.sim.add_blob("Audit.SharePoint", START - timedelta(minutes=50 - i), [record(i, START - timedelta(hours=1))])
    services = world.services(M365_CONTENT_TYPES="Audit.SharePoint")
    services.listing.run()
    counting = _CountingQueue(services.queue)

    result = drain(counting, services.processor, workers=1, new_batch_threshold=1)  # type: ignore[arg-type]

    assert result.outcomes == {"indexed": 6}
    assert [got for got in counting.receives if got] == [2, 1, 1, 1, 1]


def test_send_all_sends_every_message_and_raises_the_failure_after_the_others(world: World):
    services = world.services(M365_CONTENT_TYPES="Audit.SharePoint")
    created = START - timedelta(hours=1)

    def ref(n: int, uri_length: int = 40) -> ContentRef:
        return ContentRef("Audit.SharePoint", f"id-{n}", "https://example.invalid/" + "x" * uri_length, created,
                          created + timedelta(days=7))

    refs = [ref(n) for n in range(12)]
    services.queue.send_all(refs)
    assert services.queue.depth() == 12

    # A message over the queue's 64 KiB limit fails; the others of the call are still sent.
    with pytest.raises(HttpResponseError, match="(?i)too large"):
        services.queue.send_all([ref(20), ref(21, uri_length=70_000), ref(22)])
    received = {ContentRef.decode(m.content).content_id for m in services.queue.receive(32, 30)}
    received |= {ContentRef.decode(m.content).content_id for m in services.queue.receive(32, 30)}
    assert received == {f"id-{n}" for n in [*range(12), 20, 22]}
