"""The two use cases of collection and the local queue runner.

- ListingService.run: the timer. Per content type: plan windows; then, oldest window first across
  the types, list content, queue every blob the ledger has not seen, record it in the ledger, then
  advance that type's checkpoint. Enqueue before ledger, ledger before checkpoint: a crash
  anywhere re-does work, never skips it.
- ContentProcessor.process: one queue message. Fetch (or re-read the archive), archive write-once,
  index, mark done. Archive before index, index before done.
- drain: what the Functions queue trigger does in Azure, for the CLI and tests: process messages
  with a few threads, retry failures, move a message to the poison queue after max attempts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from . import keys
from .archive import RawArchive
from .errors import (
    AuthError,
    CollectorError,
    ContentUnavailableError,
    FatalApiError,
    InvalidWindowError,
    NotFoundError,
    SubscriptionError,
)
from .index import AuditIndex, IndexItem
from .ledger import Ledger
from .management_api import ManagementApiClient
from .models import ContentRef, Window
from .normalize import normalize_record
from .queue import ContentQueue
from .settings import Settings
from .state import StateStore, TypeState
from .timeutil import Clock, SystemClock
from .windows import RETENTION, RETENTION_SAFETY, plan_windows

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
SUBSCRIBE_INTERVAL = timedelta(minutes=15)  # "wait 15 minutes before another start request" (§3.1)
PROCESS_BUDGET_SECONDS = 300.0
PROGRESS_SECONDS = 10.0  # drain progress lines at most this often


def _quiet(_: str) -> None:
    return None


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


class ListingService:
    """The timer: list new content for every content type and queue it (see module docstring)."""

    def __init__(self, settings: Settings, api: ManagementApiClient, queue: ContentQueue, ledger: Ledger,
                 state: StateStore, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.api = api
        self.queue = queue
        self.ledger = ledger
        self.state = state
        self.clock = clock or SystemClock()

    def run(self, progress: Progress = _quiet) -> RunReport:
        deadline = time.monotonic() + self.settings.max_runtime_seconds
        now = self.clock.now()
        try:
            subscriptions = {str(s.get("contentType", "")).lower(): str(s.get("status", "")).lower()
                             for s in self.api.list_subscriptions(deadline)}
        except (FatalApiError, AuthError):
            raise  # bad credentials, wrong tenant, no permission: nothing will work, say so at once
        except CollectorError as exc:
            log.warning("collect.subscriptions_unavailable %s", exc)
            subscriptions = {}
        runs: list[_TypeRun] = []
        try:
            for content_type in self.settings.content_types:
                runs.append(_TypeRun(TypeReport(content_type), self.state.load(content_type).but(last_run_at=now)))
                self._begin(runs[-1], now, subscriptions, deadline)
            # Oldest window first, across content types (ties in configured order): a backfill queues
            # every type's oldest content before anybody's newer content, and the queue is roughly
            # first in, first out, so the queue function reaches the content nearest to expiry first
            # (content lives 7 days, reference §5.3). Type after type, the last type's oldest day
            # would wait behind the whole backfill of the others and could expire meanwhile.
            while pending := [run for run in runs if run.next_window is not None]:
                if time.monotonic() > deadline:
                    for run in pending:
                        log.warning("collect.deadline %s stopped after %d of %d windows", run.report.content_type,
                                    run.report.windows_done, run.report.windows)
                    break
                self._step(min(pending, key=lambda run: run.next_window.start), now, deadline, progress)  # type: ignore[union-attr]
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
                          "(the collector was away longer than the API keeps content)", content_type, plan.lost)

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
            log.error("collect.type_failed %s: %s", report.content_type, report.error)
            if isinstance(exc, AuthError):
                raise

    def _subscribe(self, content_type: str, state: TypeState, now: datetime, deadline: float) -> TypeState:
        if state.last_subscribe_at is not None and now - state.last_subscribe_at < SUBSCRIBE_INTERVAL:
            return state  # started recently; content can take up to 12 h to appear (§3.1)
        log.info("collect.subscription_start %s", content_type)
        self.api.start_subscription(content_type, deadline)
        return state.but(last_subscribe_at=now)

    def _list(self, content_type: str, window: Window, state: TypeState, now: datetime,
              deadline: float) -> tuple[list[ContentRef], TypeState]:
        try:
            return self.api.list_content(content_type, window, deadline), state
        except SubscriptionError:
            # AF20022 / AF20023: (re)start the subscription and try once more (§4), but never more
            # than one start per 15 minutes: until then the error stands and the next run retries.
            started = self._subscribe(content_type, state, now, deadline)
            if started is state:
                raise
            return self.api.list_content(content_type, window, deadline), started
        except InvalidWindowError as exc:
            if exc.code == "AF20031":  # a bad nextPage token: list the window again from its start
                return self.api.list_content(content_type, window, deadline), state
            # AF20055/AF20030: the server's clock disagrees with ours; clamp to its 7-day edge.
            floor = (self.api.server_now() - RETENTION + RETENTION_SAFETY).replace(microsecond=0)
            if window.end <= floor:
                raise
            log.warning("collect.window_clamped %s %s to start at %s (server clock)", content_type, window, floor)
            return self.api.list_content(content_type, Window(max(window.start, floor), window.end), deadline), state

    def _queue(self, refs: list[ContentRef], report: TypeReport, now: datetime) -> None:
        report.listed += len(refs)
        known = self.ledger.known(refs[0].content_type, refs) if refs else set()
        fresh = [ref for ref in refs if ref.content_id not in known]
        report.already_known += len(refs) - len(fresh)
        live = []
        for ref in fresh:
            if ref.content_expiration <= now:
                # Listed but already expired (§5.3): it can never be fetched. Counted, not hidden.
                self.ledger.mark_queued([ref], now)
                self.ledger.mark(ref, "expired", now, error="expired before it could be queued")
                report.expired += 1
                log.error("collect.content_expired %s %s", ref.content_type, ref.content_id)
            else:
                live.append(ref)
        for ref in live:
            self.queue.send(ref)  # enqueue first: a ledger entry without a message would be a loss
        self.ledger.mark_queued(live, now)
        report.queued += len(live)


@dataclass
class ProcessResult:
    content_id: str
    outcome: str  # indexed | skipped | expired | missing
    records: int = 0
    entities: int = 0
    fetched: bool = False


class ContentProcessor:
    """One queue message: fetch → archive → index → ledger done (see module docstring)."""

    def __init__(self, settings: Settings, api: ManagementApiClient, archive: RawArchive, index: AuditIndex,
                 ledger: Ledger, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.api = api
        self.archive = archive
        self.index = index
        self.ledger = ledger
        self.clock = clock or SystemClock()

    def process(self, body: bytes | str, dequeue_count: int = 1) -> ProcessResult:
        ref = parse_message(body)
        try:
            return self._process(ref, dequeue_count)
        except Exception as exc:
            if dequeue_count >= self.settings.max_dequeue_count:
                # Last attempt: the message goes to the poison queue; the ledger says why (health).
                log.error("collect.content_failed %s %s after %d attempts: %s", ref.content_type, ref.content_id,
                          dequeue_count, exc)
                self.ledger.mark(ref, "failed", self.clock.now(), error=f"{exc.__class__.__name__}: {exc}")
            raise

    def _process(self, ref: ContentRef, dequeue_count: int = 1) -> ProcessResult:
        if self.ledger.status(ref) in ("done", "expired", "missing"):
            return ProcessResult(ref.content_id, "skipped")  # a duplicate message
        now = self.clock.now()
        name = keys.archive_blob_name(ref.content_type, ref.content_id, ref.content_created)
        # A retry may find the blob archived by an attempt that died before indexing: index from the
        # archive instead of fetching again (the content may have expired since). A first delivery
        # fetches straight away, saving a storage round trip per blob.
        body = self._archived(name) if dequeue_count > 1 else None
        fetched = body is None
        if body is None:
            try:
                body = self.api.fetch_content(ref.content_uri, time.monotonic() + PROCESS_BUDGET_SECONDS)
            except ContentUnavailableError as exc:
                body = self._archived(name)  # a duplicate message of a blob archived in time
                if body is None:
                    outcome = "expired" if exc.code == "AF20051" or ref.content_expiration <= now else "missing"
                    log.error("collect.content_%s %s %s: %s", outcome, ref.content_type, ref.content_id, exc)
                    self.ledger.mark(ref, outcome, now, error=str(exc))
                    return ProcessResult(ref.content_id, outcome)
                fetched = False
        records = parse_records(body, ref)
        if fetched:
            self.archive.put(ref.content_type, ref.content_id, ref.content_created, body, len(records))
        items = []
        for position, record in enumerate(records):
            entry, when = normalize_record(record, ref.content_type, ref.content_created)
            items.append(IndexItem(entry, when, name, position))
        entities = self.index.write(items)
        self.ledger.mark(ref, "done", self.clock.now(), records=len(records), blob=name)
        return ProcessResult(ref.content_id, "indexed", len(records), entities, fetched)

    def _archived(self, name: str) -> bytes | None:
        try:
            return self.archive.read(name)
        except NotFoundError:
            return None


def parse_message(body: bytes | str) -> ContentRef:
    return ContentRef.decode(body)


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


@dataclass
class DrainReport:
    processed: int = 0
    records: int = 0
    entities: int = 0
    failed_attempts: int = 0
    poisoned: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


def drain(queue: ContentQueue, processor: ContentProcessor, *, workers: int = 4, visibility_timeout: int = 300,
          retry_delay: int = 2, deadline: float | None = None, limit: int | None = None,
          progress: Progress = _quiet) -> DrainReport:
    """Process the queue until it is empty (or the deadline, or `limit` messages), like the Functions queue trigger.

    Like the host (batchSize / newBatchThreshold in host.json), it keeps every worker busy: it asks
    the queue for more as soon as fewer than 2 × `workers` messages are in hand, instead of waiting
    for a whole batch to finish, so one slow blob never leaves the other workers (and the storage
    service) idle.
    """
    report = DrainReport()
    max_attempts = processor.settings.max_dequeue_count
    in_hand_max = 2 * workers  # one running and one ready per worker; the rest stay visible to others
    received = 0
    last_progress = time.monotonic()

    def handle(message: Any) -> tuple[Any, ProcessResult | None, BaseException | None]:
        try:
            return message, processor.process(message.content, dequeue_count=message.dequeue_count or 1), None
        except Exception as exc:  # noqa: BLE001 - reported below, exactly as the host would
            return message, None, exc

    def settle(message: Any, result: ProcessResult | None, error: BaseException | None) -> None:
        if result is not None:
            queue.delete(message)
            report.processed += 1
            report.records += result.records
            report.entities += result.entities
            report.outcomes[result.outcome] = report.outcomes.get(result.outcome, 0) + 1
        elif (message.dequeue_count or 1) >= max_attempts:
            queue.to_poison(message)
            report.poisoned += 1
            log.error("collect.poisoned message after %d attempts: %s", message.dequeue_count, error)
        else:
            report.failed_attempts += 1
            log.warning("collect.retry message (attempt %d): %s", message.dequeue_count, error)
            queue.retry_later(message, retry_delay * (message.dequeue_count or 1))

    in_hand: set[Future[tuple[Any, ProcessResult | None, BaseException | None]]] = set()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while True:
            stopping = (deadline is not None and time.monotonic() >= deadline) or (limit is not None and received >= limit)
            room = in_hand_max - len(in_hand)
            if limit is not None:
                room = min(room, limit - received)
            if not stopping and room > 0:
                messages = queue.receive(min(32, room), visibility_timeout)
                received += len(messages)
                in_hand.update(pool.submit(handle, message) for message in messages)
            if not in_hand:
                if stopping or queue.depth() == 0:
                    break
                time.sleep(0.5)  # messages waiting out a retry delay
                continue
            done, in_hand = wait(in_hand, return_when=FIRST_COMPLETED)
            for future in done:
                settle(*future.result())
            if time.monotonic() - last_progress >= PROGRESS_SECONDS or not in_hand:
                last_progress = time.monotonic()
                progress(f"processed {report.processed} blobs, {report.records:,} records "
                         f"({queue.depth()} waiting, {report.poisoned} poisoned)")
    return report
