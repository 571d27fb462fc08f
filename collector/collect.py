"""The two use cases of collection.

- ListingService.run: the timer. First it queues again the failed content whose back-off is over
  (healing.py). Per content type: plan windows; then, oldest window first across the types, list
  content page by page, queue every blob the ledger has not seen, record it in the ledger, then
  save that type's progress (the NextPageUri within a window, the checkpoint after its last page).
  Enqueue before ledger, ledger before checkpoint: a crash anywhere re-does work, never skips it.
- ContentProcessor.process: one queue message. Fetch (or re-read the archive), archive write-once,
  index, mark done. Archive before index, index before done.

Each use case declares the collaborators it needs as Protocols right next to it (only the methods
it calls); bootstrap.py passes the Azure-backed stores, tests pass in-memory fakes. The local
stand-in for the Functions queue host is drain.py.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from .errors import (
    AuthError,
    CollectorError,
    ConfigError,
    ContentUnavailableError,
    FatalApiError,
    InvalidWindowError,
    NotFoundError,
    SubscriptionError,
)
from .index import IndexItem
from .management_api import ContentPage
from .models import ContentRef, LedgerStatus, Outcome, Window
from .normalize import normalize_record
from .settings import Settings
from .state import TypeState
from .timeutil import Clock, SystemClock
from .windows import RETENTION, RETENTION_SAFETY, plan_windows

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
# "Wait 15 minutes before another start request" (docs/api-behaviour.md "Starting a subscription").
SUBSCRIBE_INTERVAL = timedelta(minutes=15)
PROCESS_BUDGET_SECONDS = 300.0


def _quiet(_: str) -> None:
    return None


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


# ------------------------------------------------------------------ the timer: listing


class ListingApi(Protocol):
    """What listing needs of the Management Activity API client."""

    def list_subscriptions(self, deadline: float | None = None) -> list[dict[str, Any]]: ...

    def start_subscription(self, content_type: str, deadline: float | None = None) -> None: ...

    def list_pages(self, content_type: str, window: Window, deadline: float | None = None,
                   next_page: str | None = None) -> Iterator[ContentPage]: ...

    def server_now(self) -> datetime: ...


class WorkQueue(Protocol):
    def send_all(self, refs: Sequence[ContentRef]) -> None: ...  # all sent when it returns, or it raises


class ListingLedger(Protocol):
    def known(self, content_type: str, refs: list[ContentRef], now: datetime | None = None) -> set[str]: ...

    def due(self, now: datetime, content_types: Iterable[str]) -> list[ContentRef]: ...

    def mark_queued(self, refs: Iterable[ContentRef], now: datetime) -> None: ...

    def mark(self, ref: ContentRef, status: LedgerStatus, now: datetime, *, error: str | None = None) -> None: ...

    def prune(self, now: datetime) -> object: ...


class CheckpointStore(Protocol):
    def load(self, content_type: str) -> TypeState: ...

    def save(self, state: TypeState) -> None: ...


@dataclass
class TypeReport:
    content_type: str
    windows: int = 0
    windows_done: int = 0
    listed: int = 0
    queued: int = 0
    requeued: int = 0  # failed content queued again (healing.py), included in `queued`
    already_known: int = 0
    expired: int = 0
    lost: Window | None = None
    error: str = ""
    fatal: bool = False


@dataclass
class RunReport:
    types: list[TypeReport] = field(default_factory=list)

    @property
    def queued(self) -> int:
        return sum(t.queued for t in self.types)

    @property
    def ok(self) -> bool:
        return not any(t.error for t in self.types)


@dataclass
class _TypeRun:
    """One content type's part of a listing run: its windows, progress and state."""

    report: TypeReport
    state: TypeState
    windows: list[Window] = field(default_factory=list)
    stopped: bool = False  # the deadline came in the middle of a window: its progress is saved

    @property
    def next_window(self) -> Window | None:
        done = self.report.windows_done
        return None if self.report.error or self.stopped or done >= len(self.windows) else self.windows[done]


def _oldest_next(pending: list[_TypeRun]) -> _TypeRun:
    """The run whose next window starts first (ties: the earlier in configured order)."""
    starts = [(run.next_window.start, position) for position, run in enumerate(pending) if run.next_window is not None]
    return pending[min(starts)[1]]


class ListingService:
    """The timer: list new content for every content type and queue it (see module docstring)."""

    def __init__(self, settings: Settings, api: ListingApi, queue: WorkQueue, ledger: ListingLedger,
                 state: CheckpointStore, *, clock: Clock | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.api = api
        self.queue = queue
        self.ledger = ledger
        self.state = state
        self.clock = clock or SystemClock()
        self.monotonic = monotonic  # the run's deadline clock (tests move it)

    def run(self, progress: Progress = _quiet) -> RunReport:
        started = self.monotonic()
        deadline = started + self.settings.max_runtime_seconds
        now = self.clock.now()
        try:
            subscriptions = {str(s.get("contentType", "")).lower(): str(s.get("status", "")).lower()
                             for s in self.api.list_subscriptions(deadline)}
        except (FatalApiError, AuthError):
            raise  # bad credentials, wrong tenant, no permission: nothing will work, say so at once
        except CollectorError as exc:
            # Not fatal: each type's listing still works if its subscription is on, and a type whose
            # subscription is off gets a start request (at most one per SUBSCRIBE_INTERVAL).
            log.warning("collect.subscriptions_unavailable %s", exc, extra={"errorType": type(exc).__name__})
            subscriptions = {}
        runs: list[_TypeRun] = []
        try:
            for content_type in self.settings.content_types:
                runs.append(_TypeRun(TypeReport(content_type), self.state.load(content_type).but(last_run_at=now)))
                self._begin(runs[-1], now, subscriptions, deadline)
            self._heal(runs, now)
            # Oldest window first, across content types (ties in configured order): a backfill queues
            # every type's oldest content before anybody's newer content, and the queue is roughly
            # first in, first out, so the queue function reaches the content nearest to expiry first
            # (content lives about 7 days: docs/api-behaviour.md "Content lifetime"). Type after type, the last type's oldest day would wait behind the
            # whole backfill of the others and could expire meanwhile.
            while pending := [run for run in runs if run.next_window is not None]:
                if self.monotonic() > deadline:
                    for run in pending:
                        log.warning("collect.deadline %s stopped after %d of %d windows", run.report.content_type,
                                    run.report.windows_done, run.report.windows,
                                    extra={"contentType": run.report.content_type,
                                           "windowsDone": run.report.windows_done, "windows": run.report.windows})
                    break
                self._step(_oldest_next(pending), now, deadline, progress)
            for run in runs:
                if run.stopped:
                    log.warning("collect.deadline %s stopped inside window %d of %d; resuming there next run",
                                run.report.content_type, run.report.windows_done + 1, run.report.windows,
                                extra={"contentType": run.report.content_type,
                                       "windowsDone": run.report.windows_done, "windows": run.report.windows})
                if run.report.windows_done == run.report.windows and not run.report.error:
                    run.state = run.state.but(last_success_at=now, last_error="")
        finally:
            for run in runs:  # whatever ends the run, every type's outcome is recorded once
                self.state.save(run.state)
        try:
            self.ledger.prune(now)
        except Exception:  # noqa: BLE001 - housekeeping must not fail a run; logged with traceback
            log.exception("collect.ledger_prune_failed")
        report = RunReport([run.report for run in runs])
        log.info("collect.listing_done %d blobs queued of %d listed in %d content types", report.queued,
                 sum(t.listed for t in report.types), len(report.types),
                 extra={"queued": report.queued, "listed": sum(t.listed for t in report.types),
                        "alreadyKnown": sum(t.already_known for t in report.types),
                        "requeued": sum(t.requeued for t in report.types),
                        "expired": sum(t.expired for t in report.types),
                        "failedTypes": sum(1 for t in report.types if t.error), "durationMs": _ms(started)})
        failures = [t for t in report.types if t.fatal]
        if failures:
            raise FatalApiError("; ".join(f"{t.content_type}: {t.error}" for t in failures))
        return report

    def _begin(self, run: _TypeRun, now: datetime, subscriptions: dict[str, str], deadline: float) -> None:
        """Subscribe if needed and plan the windows of one content type."""
        content_type = run.report.content_type
        with self._failures_of(run, now):
            if subscriptions.get(content_type.lower()) != "enabled":
                run.state = self._subscribe(content_type, run.state, now, deadline)
            state = run.state
            resume = (Window(state.page_start, state.page_end)
                      if state.next_page and state.page_start is not None and state.page_end is not None else None)
            plan = plan_windows(state.cursor, now,
                                overlap=timedelta(minutes=self.settings.overlap_minutes),
                                initial_lookback=timedelta(hours=self.settings.initial_lookback_hours),
                                resume=resume)
            run.windows = plan.windows
            run.report.windows = len(plan.windows)
            if plan.lost is not None:
                run.report.lost = plan.lost
                run.state = run.state.but(lost_before=plan.lost.end)
                log.error("collect.content_lost %s: content available %s can no longer be listed "
                          "(the collector was away longer than the API keeps content)", content_type, plan.lost,
                          extra={"contentType": content_type, "lostStart": plan.lost.start.isoformat(),
                                 "lostEnd": plan.lost.end.isoformat()})

    def _heal(self, runs: list[_TypeRun], now: datetime) -> None:
        """Queue again the failed content whose next round is due (healing.py): the ledger rebuilds
        each message. Enqueue before ledger, as for new content. A failure here is logged and does
        not stop the listing: the due content stays due for the next run."""
        for run in runs:
            if run.report.error:
                continue
            content_type = run.report.content_type
            try:
                due = self.ledger.due(now, [content_type])
                self.queue.send_all(due)
                if due:
                    self.ledger.mark_queued(due, now)
            except (AuthError, ConfigError):
                raise
            except Exception:  # noqa: BLE001 - logged with its traceback; retried next run
                log.exception("collect.requeue_failed %s", content_type, extra={"contentType": content_type})
                continue
            run.report.requeued += len(due)
            run.report.queued += len(due)
            if due:
                log.warning("collect.content_requeued %s: %d failed blobs queued again", content_type, len(due),
                            extra={"contentType": content_type, "requeued": len(due)})

    def _step(self, run: _TypeRun, now: datetime, deadline: float, progress: Progress) -> None:
        """List one window of one content type page by page: queue what is new on each page, then
        save the progress (the next page, or the checkpoint after the last page)."""
        report = run.report
        window = run.windows[report.windows_done]
        with self._failures_of(run, now):
            listed = 0
            for listed_window, page in self._pages(run, window, now, deadline):
                self._queue(page.refs, report, now)
                listed += len(page.refs)
                if page.next_page is None:  # the checkpoint moves only after the window's blobs are queued
                    run.state = run.state.but(cursor=listed_window.end, page_start=None, page_end=None, next_page="")
                else:
                    run.state = run.state.but(page_start=listed_window.start, page_end=listed_window.end,
                                              next_page=page.next_page)
                self.state.save(run.state)
                if page.next_page is not None and self.monotonic() > deadline:
                    run.stopped = True  # resumed from page.next_page by the next run
                    return
            report.windows_done += 1
            progress(f"{report.content_type}: window {report.windows_done}/{report.windows} {window}: "
                     f"{listed} blobs listed, {report.queued} queued so far")

    def _pages(self, run: _TypeRun, window: Window, now: datetime,
               deadline: float) -> Iterator[tuple[Window, ContentPage]]:
        """The window's pages, from the saved next page if an earlier run stopped inside it, with the
        recoveries of docs/api-behaviour.md "Error codes" (each at most once per window): AF20022 /
        AF20023 start the subscription (within the 15-minute rule) and go on from the last page;
        AF20031 (bad nextPage) lists the window again from its start; AF20055 / AF20030 clamp the
        window to the server clock's 7-day edge."""
        content_type = run.report.content_type
        state = run.state
        token = state.next_page if (state.next_page and state.page_start == window.start
                                    and state.page_end == window.end) else None
        tried: set[str] = set()
        while True:
            try:
                for page in self.api.list_pages(content_type, window, deadline, next_page=token):
                    yield window, page
                    token = page.next_page
                return
            except SubscriptionError:
                started = None if "subscribe" in tried else self._subscribe(content_type, run.state, now, deadline)
                if started is None or started is run.state:
                    raise  # started less than 15 minutes ago: the error stands, the next run retries
                tried.add("subscribe")
                run.state = started
            except InvalidWindowError as exc:
                if exc.code == "AF20031":  # a bad nextPage token: list the window again from its start ("Paging")
                    if "restart" in tried:
                        raise
                    tried.add("restart")
                    token = None
                    continue
                floor = (self.api.server_now() - RETENTION + RETENTION_SAFETY).replace(microsecond=0)
                if "clamp" in tried or window.end <= floor:
                    raise
                tried.add("clamp")
                log.warning("collect.window_clamped %s %s to start at %s (server clock)", content_type, window, floor,
                            extra={"contentType": content_type, "windowStart": window.start.isoformat(),
                                   "windowEnd": window.end.isoformat(), "clampedStart": floor.isoformat(),
                                   "errorCode": exc.code})
                window, token = Window(max(window.start, floor), window.end), None

    @contextlib.contextmanager
    def _failures_of(self, run: _TypeRun, now: datetime) -> Iterator[None]:
        """Any failure ends this content type's part of the run and is recorded in its state
        (lastError): a CollectorError, and as well a storage outage or any other surprise, so no
        failure leaves the state looking healthy. The other types go on, except after an AuthError
        or a ConfigError: they fail for every type."""
        try:
            yield
        except Exception as exc:
            if not isinstance(exc, CollectorError):
                log.exception("collect.type_failed_unexpectedly %s", run.report.content_type,
                              extra={"contentType": run.report.content_type, "errorType": type(exc).__name__})
            report = run.report
            report.error = f"{exc.__class__.__name__}: {exc}"
            report.fatal = isinstance(exc, FatalApiError) and not isinstance(exc, SubscriptionError)
            run.state = run.state.but(last_error=report.error, last_error_at=now)
            log.error("collect.type_failed %s: %s", report.content_type, report.error,
                      extra={"contentType": report.content_type, "errorType": type(exc).__name__,
                             "fatal": report.fatal, "windowsDone": report.windows_done, "windows": report.windows})
            if isinstance(exc, AuthError | ConfigError):
                raise

    def _subscribe(self, content_type: str, state: TypeState, now: datetime, deadline: float) -> TypeState:
        if state.last_subscribe_at is not None and now - state.last_subscribe_at < SUBSCRIBE_INTERVAL:
            # Started recently; content can take up to 12 h to appear after a start
            # (docs/api-behaviour.md "Starting a subscription").
            return state
        log.info("collect.subscription_start %s", content_type, extra={"contentType": content_type})
        self.api.start_subscription(content_type, deadline)
        return state.but(last_subscribe_at=now)

    def _queue(self, refs: list[ContentRef], report: TypeReport, now: datetime) -> None:
        report.listed += len(refs)
        # Failed content due for another round is not "known": listing it queues it again.
        known = self.ledger.known(refs[0].content_type, refs, now) if refs else set()
        fresh = [ref for ref in refs if ref.content_id not in known]
        report.already_known += len(refs) - len(fresh)
        live = []
        for ref in fresh:
            if ref.content_expiration <= now:
                # Listed but already past its contentExpiration: it can never be fetched
                # (docs/api-behaviour.md "Content lifetime"). Counted, not hidden.
                self.ledger.mark_queued([ref], now)
                self.ledger.mark(ref, LedgerStatus.EXPIRED, now, error="expired before it could be queued")
                report.expired += 1
                log.error("collect.content_expired %s %s", ref.content_type, ref.content_id,
                          extra={"contentType": ref.content_type, "contentId": ref.content_id,
                                 "contentExpiration": ref.content_expiration.isoformat()})
            else:
                live.append(ref)
        self.queue.send_all(live)  # enqueue first: a ledger entry without a message would be a loss
        self.ledger.mark_queued(live, now)
        report.queued += len(live)


# ------------------------------------------------------------------ the queue function: processing


class ContentSource(Protocol):
    """What processing needs of the Management Activity API client."""

    def fetch_content(self, content_uri: str, deadline: float | None = None) -> bytes: ...


class ContentArchive(Protocol):
    def name(self, ref: ContentRef) -> str: ...

    def put(self, ref: ContentRef, body: bytes, records: int) -> object: ...

    def read(self, ref: ContentRef) -> bytes: ...  # NotFoundError if it was never archived


class RecordIndex(Protocol):
    def write(self, items: Iterable[IndexItem]) -> int: ...


class ProcessingLedger(Protocol):
    def status(self, ref: ContentRef) -> LedgerStatus | None: ...

    def mark(self, ref: ContentRef, status: LedgerStatus, now: datetime, *, records: int | None = None,
             blob: str | None = None, error: str | None = None) -> None: ...

    def mark_failed(self, ref: ContentRef, now: datetime, *, error: str) -> datetime | None: ...


class AlertSink(Protocol):
    """The detection rules (collector/alerts/engine.py): the blob's records as just indexed, in
    memory (no second storage read). A rule's own failure never blocks ingest; a storage failure
    raises like the index's would, so the message is retried."""

    def observe(self, records: Sequence[dict[str, Any]], items: Sequence[IndexItem], ref: ContentRef) -> object: ...


# A message for content the ledger already settled is a duplicate (the listing's overlap, a
# redelivery after "done" but before the host deleted the message): nothing to do. `missing`
# (written by earlier versions) is not settled: that content is tried again (healing.py).
SETTLED = frozenset({LedgerStatus.DONE, LedgerStatus.EXPIRED})


@dataclass
class ProcessResult:
    content_id: str
    outcome: Outcome
    records: int = 0
    entities: int = 0
    fetched: bool = False


class ContentProcessor:
    """One queue message: fetch → archive → index → ledger done (see module docstring)."""

    def __init__(self, settings: Settings, api: ContentSource, archive: ContentArchive, index: RecordIndex,
                 ledger: ProcessingLedger, *, clock: Clock | None = None, alerts: AlertSink | None = None) -> None:
        self.settings = settings
        self.alerts = alerts
        self.api = api
        self.archive = archive
        self.index = index
        self.ledger = ledger
        self.clock = clock or SystemClock()

    def process(self, body: bytes | str, dequeue_count: int = 1) -> ProcessResult:
        ref = ContentRef.decode(body)
        try:
            return self._process(ref, dequeue_count)
        except Exception as exc:
            if dequeue_count >= self.settings.max_dequeue_count:
                self._give_up(ref, exc, dequeue_count)
            raise

    def _give_up(self, ref: ContentRef, exc: Exception, dequeue_count: int) -> None:
        """The message's last attempt failed (it goes to the poison queue). The ledger says why and
        when the listing queues the content again (healing.py); content past its contentExpiration
        that was never archived can never heal and is counted as lost (`expired`) instead."""
        now = self.clock.now()
        error = f"{exc.__class__.__name__}: {exc}"
        extra = {"contentType": ref.content_type, "contentId": ref.content_id, "attempt": dequeue_count,
                 "errorType": type(exc).__name__}
        try:
            if ref.content_expiration <= now and self._archived(ref) is None:
                log.error("collect.content_expired %s %s after %d attempts: %s", ref.content_type, ref.content_id,
                          dequeue_count, exc, extra=extra)
                self.ledger.mark(ref, LedgerStatus.EXPIRED, now, error=error)
                return
            retry_at = self.ledger.mark_failed(ref, now, error=error)
        except Exception:  # noqa: BLE001 - the original failure is what gets raised; this one is logged
            log.exception("collect.ledger_failed_mark %s %s", ref.content_type, ref.content_id, extra=extra)
            return
        log.error("collect.content_failed %s %s after %d attempts, retried from %s: %s", ref.content_type,
                  ref.content_id, dequeue_count, retry_at.isoformat() if retry_at else "-", exc,
                  extra={**extra, "retryAt": retry_at.isoformat() if retry_at else None})

    def _process(self, ref: ContentRef, dequeue_count: int = 1) -> ProcessResult:
        started = time.monotonic()
        if self.ledger.status(ref) in SETTLED:
            return ProcessResult(ref.content_id, Outcome.SKIPPED)
        now = self.clock.now()
        # A retry may find the blob archived by an attempt that died before indexing: index from the
        # archive instead of fetching again (the content may have expired since). A first delivery
        # fetches straight away, saving a storage round trip per blob.
        body = self._archived(ref) if dequeue_count > 1 else None
        fetched = body is None
        if body is None:
            try:
                body = self.api.fetch_content(ref.content_uri, time.monotonic() + PROCESS_BUDGET_SECONDS)
            except ContentUnavailableError as exc:
                body = self._archived(ref)  # a duplicate message of a blob archived in time
                if body is None:
                    if exc.code != "AF20051" and ref.content_expiration > now:
                        # AF20050 or a plain 404 while the content should still be there: a blob
                        # not yet everywhere, a front end's hiccup. Retried (the host's attempts,
                        # then healing.py) until its contentExpiration, never written off at once.
                        raise
                    log.error("collect.content_expired %s %s: %s", ref.content_type, ref.content_id, exc,
                              extra={"contentType": ref.content_type, "contentId": ref.content_id,
                                     "attempt": dequeue_count, "errorCode": exc.code})
                    self.ledger.mark(ref, LedgerStatus.EXPIRED, now, error=str(exc))
                    return ProcessResult(ref.content_id, Outcome.EXPIRED)
                fetched = False
        records = parse_records(body, ref)
        if fetched:
            self.archive.put(ref, body, len(records))
        name = self.archive.name(ref)
        items = content_items(records, ref.content_type, ref.content_created, name)
        entities = self.index.write(items)
        if self.alerts is not None:  # after the index write, before "done": a retry sees the blob again
            self.alerts.observe(records, items, ref)
        self.ledger.mark(ref, LedgerStatus.DONE, self.clock.now(), records=len(records), blob=name)
        log.info("collect.content_indexed %s %s: %d records, %d index entities", ref.content_type, ref.content_id,
                 len(records), entities,
                 extra={"contentType": ref.content_type, "contentId": ref.content_id, "records": len(records),
                        "entities": entities, "attempt": dequeue_count, "fetched": fetched,
                        "durationMs": _ms(started)})
        return ProcessResult(ref.content_id, Outcome.INDEXED, len(records), entities, fetched)

    def _archived(self, ref: ContentRef) -> bytes | None:
        try:
            return self.archive.read(ref)
        except NotFoundError:
            return None


def parse_records(body: bytes, ref: ContentRef | str) -> list[dict[str, Any]]:
    """The records of a content blob's body; `ref` (or an archive blob name) names it in errors."""
    source = ref.content_id if isinstance(ref, ContentRef) else ref
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise CollectorError(f"content {source} is not JSON: {exc}") from exc
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise CollectorError(f"content {source} is {type(data).__name__}, expected a JSON array")
    return [record for record in data if isinstance(record, dict)]


def content_items(records: list[dict[str, Any]], content_type: str, content_created: datetime,
                  blob: str) -> list[IndexItem]:
    """What a content blob's records put in the index: ContentProcessor writes them, reindex.py the same again."""
    items = []
    for position, record in enumerate(records):
        entry, when = normalize_record(record, content_type, content_created)
        items.append(IndexItem(entry, when, blob, position))
    return items
