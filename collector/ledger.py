"""The ledger: what happened to each content blob (queued, done, expired, missing, failed).

It makes re-listing the overlap harmless (a blob already queued is not queued again) and answers
/api/health's questions (`summaries`). The one-letter columns are this module's own business
(docs/architecture.md, "Collector state"); nobody else reads them. One table per day of `contentCreated`; content lives 7 days, so tables older than
LEDGER_DAYS are dropped whole (one call, no per-entity deletes).

Field ownership avoids lost updates without ETags: the listing writes only `c`, `q`, `u`, `x`;
the processor writes `s`, `d`, `n`, `b`, `e`, `a`, `r`. Both merge, so neither overwrites the
other's news. (One exception: content listed already past its contentExpiration is marked
`expired` by the listing; no message, so no processor, ever touches it.)

Columns: `c` contentCreated, `q` queuedAt (the last time the listing queued it), `u` contentUri and
`x` contentExpiration (so a failed blob's message can be rebuilt when it is due again: healing.py),
`s` status, `d` when the status was set, `n` records, `b` archive blob, `e` last error, `a` failed
rounds (a round: one message's attempts up to AUDIT_MAX_DEQUEUE_COUNT), `r` when the next round may
start. Rows of earlier versions lack `u`, `x`, `a`, `r`: they read as 0 rounds and due at once, and
a failed one without `u` heals when the listing lists it again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from . import keys
from .healing import RETRYABLE, is_due, next_retry
from .models import ContentRef, LedgerStatus
from .tables import TableClients
from .timeutil import format_iso, parse_time

log = logging.getLogger(__name__)

LEDGER_DAYS = 9
TRANSACTION_LIMIT = 100  # entity group transaction: at most 100 operations
DUE_LIMIT = 500  # failed blobs re-queued per listing run at most; the rest wait for the next run


@dataclass(frozen=True)
class FailedContent:
    """A content blob whose last attempt failed (its message went to the poison queue)."""

    content_id: str
    error: str  # the last attempt's error, "" if none was recorded
    failed_at: datetime | None


@dataclass(frozen=True)
class WaitingContent:
    """A content blob queued (or re-queued by healing) and not finished since."""

    content_id: str
    queued_at: datetime
    failed: bool  # an earlier round failed: it waits for the round healing queued


@dataclass(frozen=True)
class LedgerSummary:
    """What the ledger knows about one content type over its span (LEDGER_DAYS of contentCreated)."""

    content_type: str
    records_indexed: int = 0  # records of the blobs marked done at or after `since`
    expired_or_missing: int = 0  # blobs the API no longer had (or never had) and that were never archived
    # In the ledger's scan order: newest contentCreated day first, then by contentId.
    failed: tuple[FailedContent, ...] = field(default=())
    waiting: int = 0  # blobs queued and not finished (not done, expired, missing nor failed since)
    oldest_waiting: WaitingContent | None = None  # the one queued longest ago
    next_retry_at: datetime | None = None  # the earliest next round of the failed blobs


class Ledger:
    def __init__(self, clients: TableClients, prefix: str) -> None:
        self.clients = clients
        self.prefix = prefix

    def _table(self, created: datetime) -> TableClient:
        return self._table_named(keys.ledger_table(self.prefix, created))

    def _table_named(self, name: str) -> TableClient:
        self.clients.create(name)
        return self.clients.get(name)

    def known(self, content_type: str, refs: list[ContentRef], now: datetime | None = None) -> set[str]:
        """contentIds among `refs` that need no message: the ledger has them, and (given `now`) they
        are not failed content due for another round (healing.is_due), which the listing queues again."""
        if not refs:
            return set()
        by_day: dict[datetime, list[ContentRef]] = {}
        for ref in refs:
            day = ref.content_created.replace(hour=0, minute=0, second=0, microsecond=0)
            by_day.setdefault(day, []).append(ref)
        found: set[str] = set()
        for day_refs in by_day.values():
            name = keys.ledger_table(self.prefix, day_refs[0].content_created)
            earliest = min(ref.content_created for ref in day_refs)
            wanted = {keys.escape_key(ref.content_id): ref.content_id for ref in day_refs}

            def query(table: TableClient, earliest: datetime = earliest) -> list[dict[str, Any]]:
                return list(table.query_entities(
                    "PartitionKey eq @pk and c ge @earliest",
                    parameters={"pk": content_type, "earliest": format_iso(earliest)},
                    select=["RowKey", "s", "q", "d", "r"]))

            for row in self.clients.write(name, query):
                if row["RowKey"] in wanted and not (now is not None and _due(row, now)):
                    found.add(wanted[row["RowKey"]])
        return found

    def due(self, now: datetime, content_types: Iterable[str], *, limit: int = DUE_LIMIT) -> list[ContentRef]:
        """Failed content whose next round is due (healing.is_due), oldest contentCreated day first,
        rebuilt from the row (rows of earlier versions without `u` cannot be, and are left to the
        listing's overlap)."""
        wanted = set(content_types)
        refs: list[ContentRef] = []
        for offset in reversed(range(LEDGER_DAYS)):
            name = keys.ledger_table(self.prefix, now - timedelta(days=offset))
            retryable = sorted(status.value for status in RETRYABLE)
            try:
                rows = list(self.clients.get(name).query_entities(
                    " or ".join(f"s eq @s{i}" for i in range(len(retryable))),
                    parameters={f"s{i}": value for i, value in enumerate(retryable)},
                    select=["PartitionKey", "RowKey", "s", "c", "q", "d", "r", "u", "x"]))
            except ResourceNotFoundError:
                continue  # no content was created that day (or it was pruned)
            for row in rows:
                if row["PartitionKey"] not in wanted or not row.get("u") or not row.get("c") or not _due(row, now):
                    continue
                created = parse_time(str(row["c"]))
                expiration = _time(row.get("x")) or created + timedelta(days=7)
                refs.append(ContentRef(str(row["PartitionKey"]), keys.unescape_key(str(row["RowKey"])),
                                       str(row["u"]), created, expiration))
                if len(refs) >= limit:
                    return refs
        return refs

    def mark_queued(self, refs: Iterable[ContentRef], now: datetime) -> None:
        """Record `refs` as queued; all of one content type (a transaction is one partition)."""
        groups: dict[str, list[dict[str, Any]]] = {}
        for ref in refs:
            entity = {"PartitionKey": ref.content_type, "RowKey": keys.escape_key(ref.content_id),
                      "c": format_iso(ref.content_created), "q": format_iso(now), "u": ref.content_uri,
                      "x": format_iso(ref.content_expiration)}
            name = keys.ledger_table(self.prefix, ref.content_created)
            groups.setdefault(name, []).append(entity)
        for name, entities in groups.items():
            for i in range(0, len(entities), TRANSACTION_LIMIT):
                # merge: a row already indexed (a listing seen twice) keeps its state
                self.clients.upsert(name, entities[i:i + TRANSACTION_LIMIT], UpdateMode.MERGE)

    def status(self, ref: ContentRef) -> LedgerStatus | None:
        row = self._row(ref)
        return None if row is None else LedgerStatus(row.get("s") or LedgerStatus.QUEUED)  # the listing writes no `s`

    def _row(self, ref: ContentRef) -> dict[str, Any] | None:
        try:
            row: dict[str, Any] = self._table(ref.content_created).get_entity(
                ref.content_type, keys.escape_key(ref.content_id))
        except ResourceNotFoundError:
            return None
        return row

    def mark_failed(self, ref: ContentRef, now: datetime, *, error: str) -> datetime | None:
        """One more failed round: status `failed`, `a` + 1, and `r` when the next round may start
        (healing.next_retry); returns that time. Content settled meanwhile (a duplicate message
        finished it) stays settled: returns None."""
        row = self._row(ref) or {}
        if (row.get("s") or LedgerStatus.QUEUED) in (LedgerStatus.DONE, LedgerStatus.EXPIRED):
            return None
        attempts = int(row.get("a") or 0) + 1
        retry_at = next_retry(attempts, now, ref.content_expiration)
        self.mark(ref, LedgerStatus.FAILED, now, error=error, attempts=attempts, retry_at=retry_at)
        return retry_at

    def mark(self, ref: ContentRef, status: LedgerStatus, now: datetime, *, records: int | None = None,
             blob: str | None = None, error: str | None = None, attempts: int | None = None,
             retry_at: datetime | None = None) -> None:
        entity: dict[str, Any] = {"PartitionKey": ref.content_type, "RowKey": keys.escape_key(ref.content_id),
                                  "s": status.value, "d": format_iso(now)}
        if records is not None:
            entity["n"] = records
        if blob is not None:
            entity["b"] = blob
        if error is not None:
            entity["e"] = error[:1000]
        if attempts is not None:
            entity["a"] = attempts
        if retry_at is not None:
            entity["r"] = format_iso(retry_at)
        self.clients.write(keys.ledger_table(self.prefix, ref.content_created),
                           lambda table: table.upsert_entity(entity, mode=UpdateMode.MERGE))

    def summaries(self, now: datetime, *, since: datetime) -> dict[str, LedgerSummary]:
        """Per content type (only those the ledger has rows of), over the last LEDGER_DAYS days:
        records indexed since `since`, blobs expired or missing, failed blobs with their last error
        and next round, and the blobs still waiting with the one queued longest ago.

        A blob waits from the listing's `q` until the processor settles it: rows without `s` (the
        listing writes none) and rows queued again by healing after a failed round (`q` later
        than the failure's `d`)."""
        totals: dict[str, _Totals] = {}
        for row in self._rows(now):
            content_type = str(row["PartitionKey"])
            total = totals.setdefault(content_type, _Totals())
            status = LedgerStatus(row.get("s") or LedgerStatus.QUEUED)
            done_at = _time(row.get("d"))
            queued_at = _time(row.get("q"))
            content_id = keys.unescape_key(str(row["RowKey"]))
            if status is LedgerStatus.DONE:
                if done_at is not None and done_at >= since:
                    total.indexed += int(row.get("n") or 0)
            elif status in (LedgerStatus.EXPIRED, LedgerStatus.MISSING):
                total.lost += 1
            elif status is LedgerStatus.FAILED:
                total.failed.append(FailedContent(content_id, str(row.get("e") or ""), done_at))
                retry_at = _time(row.get("r"))
                if retry_at is not None and (total.next_retry is None or retry_at < total.next_retry):
                    total.next_retry = retry_at
                if queued_at is not None and done_at is not None and queued_at > done_at:
                    total.wait(WaitingContent(content_id, queued_at, failed=True))
            elif queued_at is not None:
                total.wait(WaitingContent(content_id, queued_at, failed=False))
        return {content_type: LedgerSummary(content_type, t.indexed, t.lost, tuple(t.failed), t.waiting, t.oldest,
                                            t.next_retry)
                for content_type, t in totals.items()}

    def _rows(self, now: datetime) -> Iterator[dict[str, Any]]:
        """Every row of the last LEDGER_DAYS days, newest day first."""
        for offset in range(LEDGER_DAYS):
            name = keys.ledger_table(self.prefix, now - timedelta(days=offset))
            try:
                yield from self.clients.get(name).list_entities(
                    select=["PartitionKey", "RowKey", "s", "d", "n", "e", "q", "r"])
            except ResourceNotFoundError:
                continue  # no content was created that day (or it was pruned)

    def prune(self, now: datetime) -> list[str]:
        """Drop ledger tables older than LEDGER_DAYS."""
        cutoff = keys.ledger_table(self.prefix, now - timedelta(days=LEDGER_DAYS))
        low = f"{self.prefix}ledger"
        dropped = []
        for name in self.clients.names(low, cutoff):
            if name[len(low):].isdigit():
                self.clients.delete(name)
                dropped.append(name)
        return dropped


@dataclass
class _Totals:
    indexed: int = 0
    lost: int = 0
    failed: list[FailedContent] = field(default_factory=list)
    waiting: int = 0
    oldest: WaitingContent | None = None
    next_retry: datetime | None = None

    def wait(self, item: WaitingContent) -> None:
        self.waiting += 1
        if self.oldest is None or item.queued_at < self.oldest.queued_at:
            self.oldest = item


def _time(value: Any) -> datetime | None:  # Any: an entity property as the SDK returns it
    return parse_time(str(value)) if value else None


def _due(row: dict[str, Any], now: datetime) -> bool:
    status = row.get("s")
    return is_due(LedgerStatus(status) if status else None, retry_at=_time(row.get("r")),
                  queued_at=_time(row.get("q")), failed_at=_time(row.get("d")), now=now)
