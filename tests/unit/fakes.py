"""In-memory fakes of the collection use cases' Protocols (collector/collect.py), for unit tests.

Each fake does what the real store does to the data (a ledger remembers statuses, an archive keeps
bodies) and appends every call to one shared `Journal`, so a test can assert the exact calls and
their order across collaborators. Faults are scripted per call: `fail(...)` queues exceptions that
the next matching calls raise, one each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from collector.errors import NotFoundError
from collector.healing import is_due, next_retry
from collector.index import IndexItem
from collector.management_api import ContentPage
from collector.models import ContentRef, LedgerStatus, Window
from collector.state import TypeState

Call = tuple[Any, ...]


@dataclass
class Journal:
    """Every call to every fake, in order: ("queue.send", "id-1"), ("state.save", "Audit.Exchange", cursor) …"""

    calls: list[Call] = field(default_factory=list)

    def add(self, *call: Any) -> None:
        self.calls.append(call)

    def named(self, *names: str) -> list[Call]:
        return [call for call in self.calls if call[0] in names]


class Faults:
    """Exceptions to raise from the next calls that match (operation, key)."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, str], list[Exception]] = {}

    def fail(self, operation: str, key: str, *errors: Exception) -> None:
        self._pending.setdefault((operation, key), []).extend(errors)

    def check(self, operation: str, key: str) -> None:
        pending = self._pending.get((operation, key))
        if pending:
            raise pending.pop(0)


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.value = now

    def now(self) -> datetime:
        return self.value


def ref(content_type: str, n: int, created: datetime, *, lifetime: timedelta = timedelta(days=7)) -> ContentRef:
    content_id = f"{content_type}-{n:03d}"
    return ContentRef(content_type, content_id, f"https://api.test/feed/audit/{content_id}", created, created + lifetime)


# ------------------------------------------------------------------ listing


class FakeListingApi:
    """ListingApi: content blobs per content type, listed by contentCreated in [start, end), in
    pages of `page_size` (None: one page). A page's NextPageUri is "page:N" (N: the next page's
    number). Faults: "list_content" (key: content type) fails the first page of a listing,
    "list_page" (key: "{content type}#{N}") page N ≥ 1. `on_page` runs as each page is served
    (a test's deadline clock can move there)."""

    def __init__(self, journal: Journal, *, subscriptions: dict[str, str] | None = None,
                 server_offset: timedelta = timedelta(0), now: datetime | None = None) -> None:
        self.journal = journal
        self.faults = Faults()
        self.subscriptions = dict(subscriptions or {})  # content type → "enabled" / "disabled"
        self.blobs: dict[str, list[ContentRef]] = {}
        self.server_offset = server_offset
        self.now = now
        self.page_size: int | None = None
        self.on_page: Callable[[int], None] = lambda _number: None

    def add(self, *refs: ContentRef) -> None:
        for item in refs:
            self.blobs.setdefault(item.content_type, []).append(item)

    def list_subscriptions(self, deadline: float | None = None) -> list[dict[str, Any]]:
        self.journal.add("api.list_subscriptions")
        self.faults.check("list_subscriptions", "")
        return [{"contentType": name, "status": status, "webhook": None} for name, status in self.subscriptions.items()]

    def start_subscription(self, content_type: str, deadline: float | None = None) -> None:
        self.journal.add("api.start_subscription", content_type)
        self.faults.check("start_subscription", content_type)
        self.subscriptions[content_type] = "enabled"

    def list_pages(self, content_type: str, window: Window, deadline: float | None = None,
                   next_page: str | None = None) -> Iterator[ContentPage]:
        listed = sorted((b for b in self.blobs.get(content_type, []) if window.start <= b.content_created < window.end),
                        key=lambda b: (b.content_created, b.content_id))
        size = self.page_size or max(len(listed), 1)
        pages = [listed[i:i + size] for i in range(0, len(listed), size)] or [[]]
        number = int(next_page.removeprefix("page:")) if next_page else 0
        while True:
            if number == 0:
                self.journal.add("api.list_content", content_type, window)
                self.faults.check("list_content", content_type)
            else:
                self.journal.add("api.list_page", content_type, window, number)
                self.faults.check("list_page", f"{content_type}#{number}")
            following = f"page:{number + 1}" if number + 1 < len(pages) else None
            self.on_page(number)  # the time the page took to arrive
            yield ContentPage(pages[number], following)
            if following is None:
                return
            number += 1

    def server_now(self) -> datetime:
        assert self.now is not None, "set FakeListingApi.now to use the server clock"
        return self.now + self.server_offset


class FakeQueue:
    """WorkQueue: remembers what was sent."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.faults = Faults()
        self.sent: list[ContentRef] = []

    def send_all(self, refs: Sequence[ContentRef]) -> None:
        """In order, one at a time (ContentQueue sends several at once; the listing only relies on
        every message being sent, or an error raised, before it returns)."""
        for ref in refs:
            self.journal.add("queue.send", ref.content_id)
            self.faults.check("send", ref.content_id)
            self.sent.append(ref)


@dataclass
class Entry:
    ref: ContentRef | None = None  # what the listing recorded (the real ledger's c, u, x)
    status: LedgerStatus = LedgerStatus.QUEUED
    records: int | None = None
    blob: str | None = None
    error: str | None = None
    queued_at: datetime | None = None
    settled_at: datetime | None = None
    attempts: int = 0
    retry_at: datetime | None = None

    def due(self, now: datetime) -> bool:
        return is_due(self.status, retry_at=self.retry_at, queued_at=self.queued_at, failed_at=self.settled_at,
                      now=now)


class FakeLedger:
    """ListingLedger and ProcessingLedger: one Entry per (content type, content id), with the real
    ledger's rules for what is due again (collector/healing.py)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.faults = Faults()
        self.entries: dict[tuple[str, str], Entry] = {}

    def known(self, content_type: str, refs: list[ContentRef], now: datetime | None = None) -> set[str]:
        self.journal.add("ledger.known", content_type, tuple(r.content_id for r in refs))
        return {r.content_id for r in refs if (entry := self.entries.get((content_type, r.content_id))) is not None
                and not (now is not None and entry.due(now))}

    def due(self, now: datetime, content_types: Iterable[str]) -> list[ContentRef]:
        wanted = set(content_types)
        self.journal.add("ledger.due", tuple(sorted(wanted)))
        self.faults.check("due", "")
        return [entry.ref for (content_type, _), entry in self.entries.items()
                if content_type in wanted and entry.ref is not None and entry.due(now)]

    def mark_queued(self, refs: Iterable[ContentRef], now: datetime) -> None:
        refs = list(refs)
        self.journal.add("ledger.mark_queued", tuple(r.content_id for r in refs))
        for item in refs:
            entry = self.entries.setdefault((item.content_type, item.content_id), Entry())
            entry.ref, entry.queued_at = item, now

    def mark(self, ref: ContentRef, status: LedgerStatus, now: datetime, *, records: int | None = None,
             blob: str | None = None, error: str | None = None) -> None:
        self.journal.add("ledger.mark", ref.content_id, status)
        self.faults.check("mark", ref.content_id)
        entry = self.entries.setdefault((ref.content_type, ref.content_id), Entry())
        entry.status = status
        entry.settled_at = now
        entry.records = records if records is not None else entry.records
        entry.blob = blob if blob is not None else entry.blob
        entry.error = error if error is not None else entry.error

    def mark_failed(self, ref: ContentRef, now: datetime, *, error: str) -> datetime | None:
        self.journal.add("ledger.mark_failed", ref.content_id)
        self.faults.check("mark", ref.content_id)
        entry = self.entries.setdefault((ref.content_type, ref.content_id), Entry())
        if entry.status in (LedgerStatus.DONE, LedgerStatus.EXPIRED):
            return None
        entry.status, entry.settled_at, entry.error = LedgerStatus.FAILED, now, error
        entry.attempts += 1
        entry.retry_at = next_retry(entry.attempts, now, ref.content_expiration)
        return entry.retry_at

    def prune(self, now: datetime) -> list[str]:
        self.journal.add("ledger.prune")
        self.faults.check("prune", "")
        return []

    def status(self, ref: ContentRef) -> LedgerStatus | None:
        self.journal.add("ledger.status", ref.content_id)
        entry = self.entries.get((ref.content_type, ref.content_id))
        return entry.status if entry else None

    def entry(self, ref: ContentRef) -> Entry:
        return self.entries[(ref.content_type, ref.content_id)]


class FakeStateStore:
    """CheckpointStore: the saved TypeState per content type, and every save in order."""

    def __init__(self, journal: Journal, *states: TypeState) -> None:
        self.journal = journal
        self.states = {state.content_type: state for state in states}
        self.saved: list[TypeState] = []

    def load(self, content_type: str) -> TypeState:
        self.journal.add("state.load", content_type)
        return self.states.get(content_type, TypeState(content_type))

    def save(self, state: TypeState) -> None:
        self.journal.add("state.save", state.content_type, state.cursor)
        self.states[state.content_type] = state
        self.saved.append(state)


# ------------------------------------------------------------------ processing


class FakeContentSource:
    """ContentSource: response bodies by contentUri."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.faults = Faults()
        self.bodies: dict[str, bytes] = {}

    def fetch_content(self, content_uri: str, deadline: float | None = None) -> bytes:
        self.journal.add("api.fetch_content", content_uri)
        self.faults.check("fetch_content", content_uri)
        return self.bodies[content_uri]


class FakeArchive:
    """ContentArchive: write-once bodies by blob name."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.faults = Faults()
        self.blobs: dict[str, tuple[bytes, int]] = {}

    def name(self, ref: ContentRef) -> str:
        return f"{ref.content_type}/{ref.content_id}.json.gz"

    def put(self, ref: ContentRef, body: bytes, records: int) -> bool:
        self.journal.add("archive.put", ref.content_id, records)
        self.faults.check("put", ref.content_id)
        return self.blobs.setdefault(self.name(ref), (body, records)) == (body, records)

    def read(self, ref: ContentRef) -> bytes:
        self.journal.add("archive.read", ref.content_id)
        stored = self.blobs.get(self.name(ref))
        if stored is None:
            raise NotFoundError(f"archive blob {self.name(ref)!r} does not exist")
        return stored[0]


class FakeIndex:
    """RecordIndex: every write's items; four entities per record, as the real index writes."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.faults = Faults()
        self.writes: list[list[IndexItem]] = []

    def write(self, items: Iterable[IndexItem]) -> int:
        items = list(items)
        self.journal.add("index.write", len(items))
        self.faults.check("write", "")
        self.writes.append(items)
        return 4 * len(items)
