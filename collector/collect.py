"""The two use cases of collection.

- ListingService.run: the timer. Per content type: plan windows; then, oldest window first across
  the types, list content, queue every blob the ledger has not seen, record it in the ledger, then
  advance that type's checkpoint. Enqueue before ledger, ledger before checkpoint: a crash
  anywhere re-does work, never skips it.
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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from .errors import (
    AuthError,
    CollectorError,
    ContentUnavailableError,
    FatalApiError,
    InvalidWindowError,
    NotFoundError,
    SubscriptionError,
)
from .index import IndexItem
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

    def list_content(self, content_type: str, window: Window, deadline: float | None = None) -> list[ContentRef]: ...

    def server_now(self) -> datetime: ...


class WorkQueue(Protocol):
    def send(self, ref: ContentRef) -> None: ...


class ListingLedger(Protocol):
    def known(self, content_type: str, refs: list[ContentRef]) -> set[str]: ...

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

    @property
    def next_window(self) -> Window | None:
        done = self.report.windows_done
        return None if self.report.error or done >= len(self.windows) else self.windows[done]


def _oldest_next(pending: list[_TypeRun]) -> _TypeRun:
    """The run whose next window starts first (ties: the earlier in configured order)."""
    starts = [(run.next_window.start, position) for position, run in enumerate(pending) if run.next_window is not None]
    return pending[min(starts)[1]]


class ListingService:
    """The timer: list new content for every content type and queue it (see module docstring)."""

    def __init__(self, settings: Settings, api: ListingApi, queue: WorkQueue, ledger: ListingLedger,
                 state: CheckpointStore, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.api = api
        self.queue = queue
        self.ledger = ledger
        self.state = state
        self.clock = clock or SystemClock()

    def run(self, progress: Progress = _quiet) -> RunReport:
        started = time.monotonic()
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
            # Oldest window first, across content types (ties in configured order): a backfill queues
            # every type's oldest content before anybody's newer content, and the queue is roughly
            # first in, first out, so the queue function reaches the content nearest to expiry first
            # (content lives about 7 days: docs/api-behaviour.md "Content lifetime"). Type after type, the last type's oldest day would wait behind the
            # whole backfill of the others and could expire meanwhile.
            while pending := [run for run in runs if run.next_window is not None]:
                if time.monotonic() > deadline:
                    for run in pending:
                        log.warning("collect.deadline %s stopped after %d of %d windows", run.report.content_type,
                                    run.report.windows_done, run.report.windows,
                                    extra={"contentType": run.report.content_type,
                                           "windowsDone": run.report.windows_done, "windows": run.report.windows})
                    break
                self._step(_oldest_next(pending), now, deadline, progress)
            for run in runs:
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
            plan = plan_windows(run.state.cursor, now,
                                overlap=timedelta(minutes=self.settings.overlap_minutes),
                                initial_lookback=timedelta(hours=self.settings.initial_lookback_hours))
            run.windows = plan.windows
            run.report.windows = len(plan.windows)
            if plan.lost is not None:
                run.report.lost = plan.lost
                run.state = run.state.but(lost_before=plan.lost.end)
                log.error("collect.content_lost %s: content available %s can no longer be listed "
                          "(the collector was away longer than the API keeps content)", content_type, plan.lost,
                          extra={"contentType": content_type, "lostStart": plan.lost.start.isoformat(),
                                 "lostEnd": plan.lost.end.isoformat()})

    def _step(self, run: _TypeRun, now: datetime, deadline: float, progress: Progress) -> None:
        """List one window of one content type, queue what is new, then move its checkpoint."""
        report = run.report
        window = run.windows[report.windows_done]
        with self._failures_of(run, now):
            refs, run.state = self._list(report.content_type, window, run.state, now, deadline)
            self._queue(refs, report, now)
            run.state = run.state.but(cursor=window.end)
            self.state.save(run.state)  # the checkpoint moves only after the blobs are queued
            report.windows_done += 1
            progress(f"{report.content_type}: window {report.windows_done}/{report.windows} {window}: "
                     f"{len(refs)} blobs listed, {report.queued} queued so far")

    @contextlib.contextmanager
    def _failures_of(self, run: _TypeRun, now: datetime) -> Iterator[None]:
        """A CollectorError ends this content type's part of the run (recorded in its state); the
        others go on, except after an AuthError: the credentials will fail for every type."""
        try:
            yield
        except CollectorError as exc:
            report = run.report
            report.error = f"{exc.__class__.__name__}: {exc}"
            report.fatal = isinstance(exc, FatalApiError) and not isinstance(exc, SubscriptionError)
            run.state = run.state.but(last_error=report.error, last_error_at=now)
            log.error("collect.type_failed %s: %s", report.content_type, report.error,
                      extra={"contentType": report.content_type, "errorType": type(exc).__name__,
                             "fatal": report.fatal, "windowsDone": report.windows_done, "windows": report.windows})
            if isinstance(exc, AuthError):
                raise

    def _subscribe(self, content_type: str, state: TypeState, now: datetime, deadline: float) -> TypeState:
        if state.last_subscribe_at is not None and now - state.last_subscribe_at < SUBSCRIBE_INTERVAL:
            # Started recently; content can take up to 12 h to appear after a start
            # (docs/api-behaviour.md "Starting a subscription").
            return state
        log.info("collect.subscription_start %s", content_type, extra={"contentType": content_type})
        self.api.start_subscription(content_type, deadline)
        return state.but(last_subscribe_at=now)

    def _list(self, content_type: str, window: Window, state: TypeState, now: datetime,
              deadline: float) -> tuple[list[ContentRef], TypeState]:
        try:
            return self.api.list_content(content_type, window, deadline), state
        except SubscriptionError:
            # AF20022 / AF20023 (no subscription / disabled; docs/api-behaviour.md "Error codes"):
            # (re)start it and try once more, but never more than one start
            # per 15 minutes: until then the error stands and the next run retries.
            started = self._subscribe(content_type, state, now, deadline)
            if started is state:
                raise
            return self.api.list_content(content_type, window, deadline), started
        except InvalidWindowError as exc:
            if exc.code == "AF20031":  # a bad nextPage token: list the window again from its start ("Paging")
                return self.api.list_content(content_type, window, deadline), state
            # AF20055/AF20030: the server's clock disagrees with ours; clamp to its 7-day edge
            # (docs/api-behaviour.md "Listing windows").
            floor = (self.api.server_now() - RETENTION + RETENTION_SAFETY).replace(microsecond=0)
            if window.end <= floor:
                raise
            log.warning("collect.window_clamped %s %s to start at %s (server clock)", content_type, window, floor,
                        extra={"contentType": content_type, "windowStart": window.start.isoformat(),
                               "windowEnd": window.end.isoformat(), "clampedStart": floor.isoformat(),
                               "errorCode": exc.code})
            return self.api.list_content(content_type, Window(max(window.start, floor), window.end), deadline), state

    def _queue(self, refs: list[ContentRef], report: TypeReport, now: datetime) -> None:
        report.listed += len(refs)
        known = self.ledger.known(refs[0].content_type, refs) if refs else set()
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
        for ref in live:
            self.queue.send(ref)  # enqueue first: a ledger entry without a message would be a loss
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


# A message for content the ledger already settled is a duplicate (the listing's overlap, a
# redelivery after "done" but before the host deleted the message): nothing to do.
SETTLED = frozenset({LedgerStatus.DONE, LedgerStatus.EXPIRED, LedgerStatus.MISSING})


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
                 ledger: ProcessingLedger, *, clock: Clock | None = None) -> None:
        self.settings = settings
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
                # Last attempt: the message goes to the poison queue; the ledger says why (health).
                log.error("collect.content_failed %s %s after %d attempts: %s", ref.content_type, ref.content_id,
                          dequeue_count, exc,
                          extra={"contentType": ref.content_type, "contentId": ref.content_id,
                                 "attempt": dequeue_count, "errorType": type(exc).__name__})
                self.ledger.mark(ref, LedgerStatus.FAILED, self.clock.now(), error=f"{exc.__class__.__name__}: {exc}")
            raise

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
                    expired = exc.code == "AF20051" or ref.content_expiration <= now
                    outcome, status = ((Outcome.EXPIRED, LedgerStatus.EXPIRED) if expired
                                       else (Outcome.MISSING, LedgerStatus.MISSING))
                    log.error("collect.content_%s %s %s: %s", outcome, ref.content_type, ref.content_id, exc,
                              extra={"contentType": ref.content_type, "contentId": ref.content_id,
                                     "attempt": dequeue_count, "errorCode": exc.code})
                    self.ledger.mark(ref, status, now, error=str(exc))
                    return ProcessResult(ref.content_id, outcome)
                fetched = False
        records = parse_records(body, ref)
        if fetched:
            self.archive.put(ref, body, len(records))
        name = self.archive.name(ref)
        items = []
        for position, record in enumerate(records):
            entry, when = normalize_record(record, ref.content_type, ref.content_created)
            items.append(IndexItem(entry, when, name, position))
        entities = self.index.write(items)
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


def parse_records(body: bytes, ref: ContentRef) -> list[dict[str, Any]]:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise CollectorError(f"content {ref.content_id} is not JSON: {exc}") from exc
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise CollectorError(f"content {ref.content_id} is {type(data).__name__}, expected a JSON array")
    return [record for record in data if isinstance(record, dict)]
