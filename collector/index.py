"""The index: normalized fields of every record in per-day Table storage tables (docs/architecture.md).

Writes group entities by (table, partition) into batches of at most 100 (the entity-group
transaction limit; Azurite fails larger ones with a confusing error) and send them from a few
threads, so the storage service is never idle while Python prepares the next batch.

Reads are *scans* of one view in newest-first key order, bounded by time and optionally resumed
after an order key; the query layer merges and filters them.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from . import keys
from .errors import IndexFormatError
from .models import AuditEntry, View
from .tables import TableClients
from .timeutil import format_record_time

log = logging.getLogger(__name__)

BATCH_LIMIT = 100  # entity group transaction: ≤ 100 operations, one partition (docs/storage-facts.md)
# Every text field is cut to MAX_TEXT characters in the index (the raw record in the archive stays
# complete), so one absurd field can never push an entity past the Table service's 64 KiB per
# property (docs/storage-facts.md): 10 fields of 1,024 characters are at most ~60 KiB even if every
# character were a 6-byte JSON escape, and a payload still over MAX_PAYLOAD is packed again with
# fields of SHORT_TEXT characters (well under the limit whatever the characters).
MAX_TEXT = 1024
SHORT_TEXT = 128
MAX_PAYLOAD = 16 * 1024
TABLE_CACHE_SECONDS = 30.0  # how long a scan trusts its list of day tables
# A lookup by Id reads the id tables of at most this many days (newest first; a year and a day)
# with this many requests in flight: an unknown Id costs at most 2 × 366 requests, not two per day
# of a many-year index.
LOCATE_MAX_DAYS = 366
LOCATE_THREADS = 16

# Every index entity keeps its payload in one Edm.Binary property `d` holding a compact UTF-8 JSON
# array. Billed size (docs/storage-facts.md "Billed entity size"): a String costs 4 bytes plus 2
# per character (UTF-16) and every property another 8 bytes plus 2 per character of its name; a
# Binary costs 4 bytes plus 1 per byte. Ten short string properties cost about twice one binary
# array of the same text, and the index is the main running cost. The first element is the
# payload's format, so a later layout can tell its rows apart.
PAYLOAD = "d"
FORMAT = 1
# Content types are stored as their position here: one digit instead of up to 26 characters.
# A storage format: never reorder, only append. Unknown types are stored as their name.
CONTENT_TYPE_CODES = ("Audit.AzureActiveDirectory", "Audit.Exchange", "Audit.SharePoint", "Audit.General", "DLP.All")


@dataclass(frozen=True)
class IndexItem:
    """One record to index: its normalized entry and where its raw form lives."""

    entry: AuditEntry
    when: datetime
    blob: str
    position: int


@dataclass(frozen=True)
class Hit:
    """One row of a view scan: its global order key and the record's normalized fields."""

    key: str
    entry: AuditEntry


@dataclass(frozen=True)
class Lookup:
    """The answer of `AuditIndex.lookup`: where the record is, and how far back the search went."""

    found: tuple[str, int] | None  # (archive blob, position in its JSON array)
    days: int  # id tables read
    oldest_day: str | None  # the oldest day (yyyyMMdd) read, None when none was
    more: bool  # older days exist that were not read


def _pack(values: list[Any]) -> bytes:
    text = json.dumps([FORMAT, *values], ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (a hostile "\ud800" escape): U+FFFD in the index; the archive keeps it
        return re.sub(r"[\ud800-\udfff]", "\ufffd", text).encode("utf-8")


def _unpack(entity: dict[str, Any], size: int, optional: int = 0) -> list[Any]:
    payload = entity.get(PAYLOAD)
    try:
        values = json.loads(payload) if isinstance(payload, bytes | bytearray) else None
    except ValueError:  # not JSON (or not UTF-8)
        values = None
    if not isinstance(values, list) or values[:1] != [FORMAT] or not size + 1 <= len(values) <= size + 1 + optional:
        raise IndexFormatError(
            f"index entity {entity.get('PartitionKey')!r}/{entity.get('RowKey')!r} is not in index format {FORMAT} "
            "(written by another AuditKeep version?)"
        )
    return values[1:]


def view_payload(entry: AuditEntry, tenant_id: str) -> bytes:
    """The normalized fields of a view (t, u, o) entity; `id` and `time` live in the RowKey, except
    an id too long for a key (keys.kid hashes it): then the id is an 11th element."""
    code = CONTENT_TYPE_CODES.index(entry.contentType) if entry.contentType in CONTENT_TYPE_CODES else entry.contentType
    # null: the deployment's own tenant (nearly every record), restored from tenant_id on reading
    org = None if tenant_id and entry.organizationId.lower() == tenant_id.lower() else entry.organizationId
    texts = [entry.user, entry.operation, entry.object, entry.result, entry.clientIp, entry.userAgent, entry.workload]
    extra = [entry.id] if keys.is_hashed(keys.kid(entry.id)) else []
    payload = b""
    for limit in (MAX_TEXT, SHORT_TEXT):
        cut = [text[:limit] for text in texts]
        payload = _pack([*cut, entry.recordType, _clip(code, limit), _clip(org, limit), *(e[:limit] for e in extra)])
        if len(payload) <= MAX_PAYLOAD:
            break
    return payload


def _clip(value: str | int | None, limit: int) -> str | int | None:
    return value[:limit] if isinstance(value, str) else value


def entry_from_entity(order_key: str, entity: dict[str, Any], tenant_id: str) -> AuditEntry:
    when, record_id, _org = keys.split_order_key(order_key)
    values = _unpack(entity, 10, optional=1)
    user, operation, obj, result, ip, agent, workload, record_type, code, org = values[:10]
    if len(values) == 11:
        record_id = values[10]  # an id too long for a key: the key holds its hash (keys.kid)
    return AuditEntry(
        id=record_id,
        time=format_record_time(when),
        user=user,
        operation=operation,
        object=obj,
        result=result,
        clientIp=ip,
        userAgent=agent,
        workload=workload,
        recordType=record_type,
        contentType=CONTENT_TYPE_CODES[code] if isinstance(code, int) else code,
        organizationId=tenant_id if org is None else org,
    )


def entities_for(item: IndexItem, tenant_id: str) -> list[tuple[View, dict[str, Any]]]:
    """The four entities of one record as (view, entity)."""
    entry = item.entry
    order = keys.order_key(item.when, entry.id, entry.organizationId, tenant_id)
    payload = view_payload(entry, tenant_id)
    user_hash = keys.value_hash(entry.user)
    op_hash = keys.value_hash(entry.operation)
    record_key = order[10:]  # kid + org suffix
    return [
        (View.TIME, {"PartitionKey": keys.hour_partition(item.when), "RowKey": order, PAYLOAD: payload}),
        (View.USER, {"PartitionKey": keys.shard(user_hash), "RowKey": user_hash + order, PAYLOAD: payload}),
        (View.OPERATION, {"PartitionKey": keys.shard(op_hash), "RowKey": op_hash + order, PAYLOAD: payload}),
        (View.ID, {"PartitionKey": keys.id_partition(record_key), "RowKey": record_key,
               PAYLOAD: _pack([item.blob, item.position])}),
    ]


def plan_batches(items: Iterable[IndexItem], prefix: str, tenant_id: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """The transactions that index `items`: (table, ≤ 100 entities of one partition) each.

    Duplicates (the same record twice in a blob: docs/api-behaviour.md "Duplicates") collapse onto one key first: a transaction
    may not touch the same entity twice.
    """
    groups: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for item in items:
        day = keys.day_of(item.when)
        for view, entity in entities_for(item, tenant_id):
            table = keys.table_name(prefix, view, day)
            groups.setdefault((table, entity["PartitionKey"]), {})[entity["RowKey"]] = entity
    return [
        (table, chunk)
        for (table, _pk), rows in groups.items()
        for chunk in _chunks(list(rows.values()), BATCH_LIMIT)
    ]


def location_from_entity(entity: dict[str, Any]) -> tuple[str, int]:
    """(archive blob, position in its JSON array) of an id entity."""
    blob, position = _unpack(entity, 2)
    return str(blob), int(position)


class AuditIndex:
    """Per-day index tables: write views in batches, scan them newest first, locate raw records."""

    def __init__(self, clients: TableClients, prefix: str, tenant_id: str, *, writers: int = 4) -> None:
        self.clients = clients
        self.prefix = prefix
        self.tenant_id = tenant_id
        self.writers = writers
        self._listing: dict[View, tuple[float, set[str]]] = {}
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- writing

    def ensure_table(self, name: str) -> None:
        self.clients.create(name)
        view, day = View(name[len(self.prefix)]), name[len(self.prefix) + 1:]
        with self._lock:
            if view in self._listing:
                self._listing[view][1].add(day)

    def write(self, items: Iterable[IndexItem]) -> int:
        """Upsert (replace) every view entity of `items`; returns the number of entities written."""
        batches = plan_batches(items, self.prefix, self.tenant_id)
        for table in {table for table, _ in batches}:
            self.ensure_table(table)
        if len(batches) <= 1 or self.writers <= 1:
            for table, chunk in batches:
                self._submit(table, chunk)
        else:
            with ThreadPoolExecutor(max_workers=self.writers) as pool:
                for result in pool.map(lambda batch: self._submit(*batch), batches):
                    del result  # re-raises the first failure
        return sum(len(chunk) for _, chunk in batches)

    def _submit(self, table: str, chunk: list[dict[str, Any]]) -> None:
        operations = [("upsert", entity, {"mode": UpdateMode.REPLACE}) for entity in chunk]
        # write: a day table dropped by prune-index in another process is recreated, not a failure
        self.clients.write(table, lambda client: client.submit_transaction(operations))

    # ---------------------------------------------------------------- reading

    def tables(self, view: View, *, refresh: bool = False) -> set[str]:
        """Days (yyyyMMdd) that have a table of `view`, from a listing cached for TABLE_CACHE_SECONDS."""
        now = time.monotonic()
        cached = self._listing.get(view)
        if cached is None or refresh or now - cached[0] > TABLE_CACHE_SECONDS:
            low = f"{self.prefix}{view}"
            names = self.clients.names(low, f"{low}~")
            days = {n[len(low):] for n in names if len(n) == len(low) + 8 and n[len(low):].isdigit()}
            cached = (now, days)
            self._listing[view] = cached
        return cached[1]

    def scan(
        self,
        view: View,
        start: datetime,
        end: datetime,
        *,
        value: str | None = None,
        after: str | None = None,
        page_size: int = 1000,
        on_request: Callable[[], None] | None = None,
    ) -> Iterator[Hit]:
        """Rows of `view` (time, user or operation) with start <= time < end, newest first.

        `value` is the user or operation (compared case-insensitively through its hash key);
        `after` resumes strictly after a previous Hit.key. Rows come lazily, page by page, one day
        table after the other (days without a table are skipped). `on_request` is called once per
        storage request (each page, empty continuation pages included): the query's budget.
        """
        spans = keys.scan_days(view, start, end, value=value, after=after)
        if not spans:
            return
        prefix = keys.value_hash(value) if value is not None else ""
        pk = keys.shard(prefix) if prefix else None
        existing = self.tables(view)
        if not {day for day, _, _ in spans} <= existing and time.monotonic() - self._listing[view][0] > 1.0:
            existing = self.tables(view, refresh=True)  # another process may have created a day since
        for day, lo_second, hi_second in spans:
            if day not in existing:
                continue
            rk_low = f"{keys.INV_BASE - hi_second:010d}"
            rk_high = f"{keys.INV_BASE - lo_second + 1:010d}"
            clauses = ["RowKey ge @rlow", "RowKey lt @rhigh"]
            params: dict[str, Any] = {"rlow": prefix + rk_low, "rhigh": prefix + rk_high}
            if after is not None and after >= rk_low:
                clauses.append("RowKey gt @after")
                params["after"] = prefix + after
            if pk is not None:
                clauses.insert(0, "PartitionKey eq @pk")
                params["pk"] = pk
            else:
                clauses[:0] = ["PartitionKey ge @plow", "PartitionKey le @phigh"]
                params["plow"] = keys.hour_partition(keys.from_inv(keys.INV_BASE - hi_second))
                params["phigh"] = keys.hour_partition(keys.from_inv(keys.INV_BASE - lo_second))
            table = self.clients.get(keys.table_name(self.prefix, view, day))
            rows = table.query_entities(" and ".join(clauses), parameters=params, results_per_page=page_size)
            try:
                for page in rows.by_page():
                    if on_request is not None:
                        on_request()
                    for entity in page:
                        order = entity["RowKey"][len(prefix):]
                        yield Hit(order, entry_from_entity(order, entity, self.tenant_id))
            except ResourceNotFoundError:
                continue  # dropped since the listing was cached

    def months(self) -> list[str]:
        """Months (yyyyMM) that have index tables, newest first."""
        return sorted({day[:6] for day in self.tables(View.ID, refresh=True)}, reverse=True)

    def locate(self, record_id: str) -> tuple[str, int] | None:
        """(archive blob, position) of a record by its Id, or None (see `lookup`)."""
        return self.lookup(record_id).found

    def lookup(self, record_id: str, *, max_days: int = LOCATE_MAX_DAYS) -> Lookup:
        """Find a record by its Id in the id tables of the newest `max_days` days, newest first.

        At most two requests per day, LOCATE_THREADS at a time: a point read of the deployment's
        own organization's key in every day first, then (only when that found nothing) a key-range
        query per day for another organization's record with the same Id (its key carries an
        `_org` suffix: the dedupe key is (OrganizationId, Id)). An unknown Id therefore costs at most
        2 × max_days requests in about max_days / 8 round trips, and the answer says how far back
        it looked.
        """
        key = keys.kid(record_id)
        days = sorted(self.tables(View.ID, refresh=True), reverse=True)
        searched = days[:max_days] if key else []
        partition = keys.id_partition(key) if key else ""

        def exact(day: str) -> tuple[str, int] | None:
            table = self.clients.get(keys.table_name(self.prefix, View.ID, day))
            try:
                entity = table.get_entity(partition, key)
            except ResourceNotFoundError:
                return None
            return location_from_entity(entity)

        def other_org(day: str) -> tuple[str, int] | None:
            table = self.clients.get(keys.table_name(self.prefix, View.ID, day))
            try:
                for entity in table.query_entities("RowKey gt @low and RowKey lt @high",
                                                   parameters={"low": key + "_", "high": key + "`"}):
                    return location_from_entity(entity)
            except ResourceNotFoundError:
                pass  # dropped since the listing
            return None

        with ThreadPoolExecutor(max_workers=LOCATE_THREADS) as pool:
            for probe in (exact, other_org):
                for start in range(0, len(searched), 2 * LOCATE_THREADS):  # newest first, in rounds
                    for found in pool.map(probe, searched[start:start + 2 * LOCATE_THREADS]):
                        if found is not None:
                            return Lookup(found, len(searched), searched[-1] if searched else None,
                                          len(days) > len(searched))
        return Lookup(None, len(searched), searched[-1] if searched else None, len(days) > len(searched))

    def drop_month(self, month: str) -> list[str]:
        """Delete a month's tables (one call per view and day): the cheap way to expire the index."""
        dropped = []
        for view in keys.VIEWS:
            for day in sorted(d for d in self.tables(view, refresh=True) if d.startswith(month)):
                name = keys.table_name(self.prefix, view, day)
                self.clients.delete(name)
                dropped.append(name)
        self._listing.clear()
        return dropped

    def drop_day(self, day: str) -> list[str]:
        """Delete one day's tables (yyyyMMdd): retention's unit of expiry. Four delete calls and no
        listing (deleting a missing table is a no-op); the id table goes last, so a drop cut short
        still shows the day to the next run."""
        names = [keys.table_name(self.prefix, view, day) for view in sorted(keys.VIEWS, key=lambda v: v == View.ID)]
        for name in names:
            self.clients.delete(name)
        with self._lock:
            for _, days in self._listing.values():
                days.discard(day)
        return names


def _chunks(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), size):
        yield rows[i:i + size]
