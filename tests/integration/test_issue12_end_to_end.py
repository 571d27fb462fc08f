"""Issue 12 over the real parts (simulator over HTTPS, Azurite): content never stalls or vanishes
quietly. Failed content heals by itself, a first 404 is not the end, a busy front end is not
fatal, a server's Retry-After is honoured, and a table dropped by prune-index comes back."""

from __future__ import annotations

import json
from datetime import timedelta

from collector.auth import build_token_provider
from collector.bootstrap import Services
from collector.drain import drain
from collector.healing import RETRY_BASE
from collector.management_api import ManagementApiClient
from collector.models import ContentRef, LedgerStatus, View
from collector.settings import Settings

from .world import START, World, record

SP = "Audit.SharePoint"


def services_with(world: World, waits: list[float], **overrides: str) -> Services:
    """The world's services, with an API client whose back-off sleeps are recorded, not slept."""
    settings = Settings.from_env({**world.env, "M365_CONTENT_TYPES": SP, **overrides})
    api = ManagementApiClient(settings, build_token_provider(settings), clock=world.clock, backoff_base=0.01,
                              sleep=waits.append)
    services = Services(settings, clock=world.clock, api=api)
    services.ensure_storage()
    return services


def ref_of(blob) -> ContentRef:  # type: ignore[no-untyped-def]
    return ContentRef(blob.content_type, blob.content_id, "", blob.content_created, blob.content_expiration)


def ids(services: Services) -> list[str]:
    return sorted(h.entry.id for h in services.index.scan(View.TIME, START - timedelta(days=8), START + timedelta(days=8)))


def test_poisoned_content_older_than_the_overlap_heals_by_itself(world: World):
    blob = world.sim.add_blob(SP, START - timedelta(hours=3), [record(1, START - timedelta(hours=3))])
    # Every attempt fails until the fault clears (a fatal answer, so no in-attempt retries to wait out).
    world.sim.inject("content_get", status=400, code="AF20052", times=None)
    services = services_with(world, [], AUDIT_MAX_DEQUEUE_COUNT="2", COLLECT_OVERLAP_MINUTES="60")
    services.listing.run()

    assert drain(services.queue, services.processor, workers=1, retry_delay=0).poisoned == 1
    assert services.ledger.status(ref_of(blob)) is LedgerStatus.FAILED

    world.sim.clear_injections()
    world.clock.advance(RETRY_BASE - timedelta(minutes=1))
    assert services.listing.run().types[0].requeued == 0  # its back-off is not over yet
    world.clock.advance(timedelta(minutes=2))
    report = services.listing.run()  # the overlap no longer reaches the blob; the ledger does

    assert report.types[0].requeued == 1
    assert drain(services.queue, services.processor, workers=1).outcomes == {"indexed": 1}
    assert services.ledger.status(ref_of(blob)) is LedgerStatus.DONE
    assert ids(services) == [record(1, START)["Id"]]
    world.clock.advance(timedelta(hours=7))
    assert services.listing.run().types[0].requeued == 0  # done is done: never queued again


def test_a_404_on_the_first_fetch_is_retried_not_recorded_missing(world: World):
    world.sim.add_blob(SP, START - timedelta(minutes=30), [record(1, START - timedelta(hours=1))])
    world.sim.inject("content_get", status=404, body=b"", times=1)
    world.sim.inject("content_get", code="AF20050", times=1)
    services = services_with(world, [])
    services.listing.run()

    result = drain(services.queue, services.processor, workers=1, retry_delay=0)

    assert result.outcomes == {"indexed": 1} and result.failed_attempts == 2
    assert ids(services) == [record(1, START)["Id"]]


def test_a_503_with_an_unlisted_code_and_a_200_that_is_not_json_are_retried(world: World):
    world.sim.start_subscription(SP)
    world.sim.add_blob(SP, START - timedelta(minutes=30), [record(1, START - timedelta(hours=1))])
    world.sim.inject("content_list", status=503, code="AF50001", times=1)
    world.sim.inject("content_list", status=200, body='[{"contentType": "Audit.Shar', times=1)  # cut off
    world.sim.inject("subscription_list", status=200, body="<html>gateway</html>", times=1)
    waits: list[float] = []
    services = services_with(world, waits)

    report = services.listing.run()

    assert report.ok and report.queued == 1
    assert len(waits) == 3  # one back-off per failure, each retried
    assert services.state.load(SP).last_error == ""


def test_a_retry_after_longer_than_the_run_stops_the_listing_and_says_why(world: World):
    world.sim.start_subscription(SP)
    world.sim.add_blob(SP, START - timedelta(minutes=30), [record(1, START - timedelta(hours=1))])
    world.sim.inject("content_list", status=429, code="AF429", headers={"Retry-After": "90"}, times=1)
    waits: list[float] = []
    services = services_with(world, waits, COLLECT_MAX_RUNTIME_SECONDS="60")

    report = services.listing.run()

    assert waits == []  # never retried early, never slept past the deadline
    assert "Retry-After 90 s" in report.types[0].error and not report.types[0].fatal
    state = services.state.load(SP)
    assert "Retry-After 90 s" in state.last_error and state.cursor is None
    assert services.listing.run().ok  # the next run resumes
    assert services.state.load(SP).cursor == START


def test_a_retry_after_within_the_run_is_honoured_in_full(world: World):
    world.sim.start_subscription(SP)
    world.sim.inject("content_list", status=429, code="AF429", headers={"Retry-After": "90"}, times=1)
    waits: list[float] = []
    services = services_with(world, waits, COLLECT_MAX_RUNTIME_SECONDS="240")

    assert services.listing.run().ok

    assert waits == [90.0]  # not cut to 60 s


def test_index_and_ledger_writes_recreate_tables_that_prune_index_dropped(world: World):
    first = world.sim.add_blob(SP, START - timedelta(minutes=30), [record(1, START - timedelta(hours=1))])
    worker = services_with(world, [])
    worker.listing.run()
    assert drain(worker.queue, worker.processor, workers=1).outcomes == {"indexed": 1}

    pruner = services_with(world, [])  # another process: `python -m collector prune-index`
    dropped = pruner.index.drop_month(START.strftime("%Y%m"))
    dropped += [pruner.tables.delete(name) or name for name in pruner.tables.names(
        f"{pruner.settings.table_prefix}ledger", f"{pruner.settings.table_prefix}ledger~")]
    assert len(dropped) == 4  # the time view, keys and ids tables of one day (index format 2), one ledger day

    world.clock.advance(timedelta(minutes=5))
    second = world.sim.add_blob(SP, world.clock.now() - timedelta(minutes=1), [record(2, START - timedelta(hours=1))])
    worker.listing.run()  # the worker still believes every table exists
    result = drain(worker.queue, worker.processor, workers=1, retry_delay=0)

    # The ledger day went too, so the first blob (re-listed in the overlap) is indexed once more:
    # the same keys, the same entities.
    assert result.outcomes == {"indexed": 2} and result.poisoned == 0 and result.failed_attempts == 0
    assert ids(worker) == [record(1, START)["Id"], record(2, START)["Id"]]
    assert [worker.ledger.status(ref_of(blob)) for blob in (first, second)] == [LedgerStatus.DONE] * 2


def test_health_turns_failing_when_queued_content_waits_and_shows_each_tiers_oldest_day(world: World):
    """The queue does not drain (nobody processes it): past HEALTH_MAX_WAIT_MINUTES health is
    failing and names the oldest waiting blob; once drained it is ok again. oldestDay per tier."""
    blob = world.sim.add_blob("Audit.SharePoint", START - timedelta(minutes=30), [record(1, START - timedelta(days=1, hours=2))])
    services = world.services(M365_CONTENT_TYPES="Audit.SharePoint", HEALTH_MAX_WAIT_MINUTES="20")
    services.listing.run()
    assert services.health.report()["status"] == "ok"

    world.clock.advance(timedelta(minutes=21))
    waiting = services.health.report()
    assert waiting["status"] == "failing"
    assert waiting["oldestWaiting"]["contentId"] == blob.content_id and waiting["oldestWaiting"]["waitSeconds"] == 21 * 60
    assert waiting["reasons"] == [f"Audit.SharePoint: content {blob.content_id} has waited 21 min (over 20 min): "
                                  "the queue is not draining"]

    assert drain(services.queue, services.processor, workers=1).outcomes == {"indexed": 1}
    world.clock.advance(timedelta(minutes=16))  # past the 15-minute cache of oldestDay
    services.listing.run()  # the next timer run: the checkpoint keeps up again
    drained = services.health.report()
    assert (drained["status"], drained["oldestWaiting"]) == ("ok", None)
    day = (START - timedelta(days=1)).date().isoformat()
    assert drained["oldestDay"] == {"hot": day, "cold": None, "archive": (START - timedelta(minutes=30)).date().isoformat()}


def test_lone_surrogate_escapes_in_a_record_do_not_poison_its_blob(world: World):
    """JSON allows "\\ud800": a hostile record with lone surrogates in its Id, user and object is
    indexed (keys hashed, U+FFFD in the index payload), its blob-mates too; the archive keeps it."""
    plain = [record(1, START - timedelta(hours=1)), record(2, START - timedelta(hours=1))]
    blob = world.sim.add_blob("Audit.SharePoint", START - timedelta(minutes=30), plain)
    raw = json.dumps(plain, separators=(",", ":"))  # the served body, with \u escapes the simulator cannot make itself
    for field, odd in (("00000000-0000-4000-8000-000000000001", "\\ud800-odd-id"), ("user1@contoso.com", "u\\udc00@contoso.com"),
                       ("https://contoso.sharepoint.com/sites/x/doc1.docx", "o\\ud83d")):
        raw = raw.replace(field, odd, 1)
    world.sim.inject("content_get", status=200, body=raw.encode(), times=None)
    services = world.services(M365_CONTENT_TYPES="Audit.SharePoint")
    services.listing.run()
    result = drain(services.queue, services.processor, workers=1, retry_delay=0)
    assert (result.outcomes, result.poisoned) == ({"indexed": 1}, 0)
    hits = list(services.index.scan(View.TIME, START - timedelta(days=1), START))
    users = sorted(hit.entry.user for hit in hits)
    assert users == ["user2@contoso.com", "u\ufffd@contoso.com"]
    assert services.archive.records(services.archive.name(ref_of(blob)))[0]["Id"] == "\ud800-odd-id"
