"""The index: normalized fields of every record in monthly Table storage tables (docs/architecture.md).

Writes group entities by (table, partition) into batches of at most 100 (the entity-group
transaction limit; Azurite fails larger ones with a confusing error) and send them from a few
threads, so the storage service is never idle while Python prepares the next batch.

Reads are *scans* of one view in newest-first key order, bounded by time and optionally resumed
after an order key; the query layer merges and filters them.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode

from . import keys
from .normalize import AuditEntry
from .timeutil import format_record_time

log = logging.getLogger(__name__)

BATCH_LIMIT = 100  # entity group transaction: ≤ 100 operations, one partition (cost-anchors §4)
MAX_TEXT = 1024  # `object` and `userAgent` are cut here in the index; the raw record is complete
TABLE_CACHE_SECONDS = 30.0  # how long a scan trusts its list of day tables

# normalized field → short property name (billed size counts each property name twice)
_PROPS = {
    "user": "u", "operation": "op", "object": "ob", "result": "r", "clientIp": "ip", "userAgent": "ua",
    "workload": "w", "recordType": "rt", "contentType": "ct", "organizationId": "org",
}


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


def view_properties(entry: AuditEntry) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for field, name in _PROPS.items():
        value = getattr(entry, field)
        if value is None or value == "":
            continue
        if isinstance(value, str) and len(value) > MAX_TEXT and field in ("object", "userAgent"):
            value = value[:MAX_TEXT]
        props[name] = value
    return props


def entry_from_entity(order_key: str, entity: dict[str, Any], tenant_id: str) -> AuditEntry:
    when, record_id, org = keys.split_order_key(order_key)
    rt = entity.get("rt")
    return AuditEntry(
        id=record_id,
        time=format_record_time(when),
        user=entity.get("u", ""),
        operation=entity.get("op", ""),
        object=entity.get("ob", ""),
        result=entity.get("r", ""),
        clientIp=entity.get("ip", ""),
        userAgent=entity.get("ua", ""),
        workload=entity.get("w", ""),
        recordType=int(rt) if rt is not None else None,
        contentType=entity.get("ct", ""),
        organizationId=entity.get("org", "") or (org or tenant_id),
    )


def entities_for(item: IndexItem, tenant_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The four entities of one record as (view, entity)."""
    entry = item.entry
    order = keys.order_key(item.when, entry.id, entry.organizationId, tenant_id)
    props = view_properties(entry)
    user_hash = keys.value_hash(entry.user)
    op_hash = keys.value_hash(entry.operation)
    record_key = order[10:]  # kid + org suffix
    return [
        ("t", {"PartitionKey": keys.hour_partition(item.when), "RowKey": order, **props}),
        ("u", {"PartitionKey": keys.shard(user_hash), "RowKey": user_hash + order, **props}),
        ("o", {"PartitionKey": keys.shard(op_hash), "RowKey": op_hash + order, **props}),
        ("i", {"PartitionKey": keys.id_partition(record_key), "RowKey": record_key, "b": item.blob, "n": item.position}),
    ]


class AuditIndex:
    """Monthly index tables: write views in batches, scan them newest first, locate raw records."""

    def __init__(self, service: TableServiceClient, prefix: str, tenant_id: str, *, writers: int = 4) -> None:
        self.service = service
        self.prefix = prefix
        self.tenant_id = tenant_id
        self.writers = writers
        self._tables: set[str] = set()
        self._listing: dict[str, tuple[float, set[str]]] = {}
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- writing

    def ensure_table(self, name: str) -> None:
        if name in self._tables:
            return
        with contextlib.suppress(ResourceExistsError):
            self.service.create_table(name)
        with self._lock:
            self._tables.add(name)
            view, day = name[len(self.prefix)], name[len(self.prefix) + 1:]
            if view in self._listing:
                self._listing[view][1].add(day)

    def write(self, items: Iterable[IndexItem]) -> int:
        """Upsert (replace) every view entity of `items`; returns the number of entities written.

        Duplicates (same record twice in a blob, §5.5) collapse onto one key before batching: a
        batch may not touch the same entity twice.
        """
        groups: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        for item in items:
            day = keys.day_of(item.when)
            for view, entity in entities_for(item, self.tenant_id):
                table = keys.table_name(self.prefix, view, day)
                groups.setdefault((table, entity["PartitionKey"]), {})[entity["RowKey"]] = entity
        batches = [
            (table, chunk)
            for (table, _pk), rows in groups.items()
            for chunk in _chunks(list(rows.values()), BATCH_LIMIT)
        ]
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
        client = self.service.get_table_client(table)
        client.submit_transaction([("upsert", entity, {"mode": UpdateMode.REPLACE}) for entity in chunk])

    # ---------------------------------------------------------------- reading

    def tables(self, view: str, *, refresh: bool = False) -> set[str]:
        """Days (yyyyMMdd) that have a table of `view`, from a listing cached for TABLE_CACHE_SECONDS."""
        now = time.monotonic()
        cached = self._listing.get(view)
        if cached is None or refresh or now - cached[0] > TABLE_CACHE_SECONDS:
            low, high = f"{self.prefix}{view}", f"{self.prefix}{view}~"
            names = self.service.query_tables("TableName ge @low and TableName lt @high",
                                              parameters={"low": low, "high": high})
            days = {n.name[len(low):] for n in names if len(n.name) == len(low) + 8 and n.name[len(low):].isdigit()}
            cached = (now, days)
            self._listing[view] = cached
        return cached[1]

    def scan(
        self,
        view: str,
        start: datetime,
        end: datetime,
        *,
        value: str | None = None,
        after: str | None = None,
        page_size: int = 1000,
    ) -> Iterator[Hit]:
        """Rows of `view` ("t" time, "u" user, "o" operation) with start <= time < end, newest first.

        `value` is the user or operation (compared case-insensitively through its hash key);
        `after` resumes strictly after a previous Hit.key. Rows come lazily, page by page, one day
        table after the other (days without a table are skipped).
        """
        if view not in ("t", "u", "o"):
            raise ValueError(f"unknown view {view!r}")
        if view != "t" and value is None:
            raise ValueError("user and operation scans need a value")
        first_second = math.ceil(start.timestamp())
        last_second = math.ceil(end.timestamp()) - 1  # time < end, at second resolution
        if after is not None:
            last_second = min(last_second, keys.INV_BASE - int(after[:10]))
        if last_second < first_second:
            return
        prefix = keys.value_hash(value) if value is not None else ""
        pk = keys.shard(prefix) if prefix else None
        days = keys.days_newest_first(keys.from_inv(keys.INV_BASE - first_second),
                                      keys.from_inv(keys.INV_BASE - last_second) + timedelta(seconds=1))
        existing = self.tables(view)
        if not set(days) <= existing and time.monotonic() - self._listing[view][0] > 1.0:
            existing = self.tables(view, refresh=True)  # another process may have created a day since
        for day in days:
            if day not in existing:
                continue
            day_start, day_end = keys.day_bounds(day)
            lo_second = max(first_second, int(day_start.timestamp()))
            hi_second = min(last_second, int(day_end.timestamp()) - 1)
            if hi_second < lo_second:
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
            table = self.service.get_table_client(keys.table_name(self.prefix, view, day))
            rows = table.query_entities(" and ".join(clauses), parameters=params, results_per_page=page_size)
            try:
                for entity in rows:
                    order = entity["RowKey"][len(prefix):]
                    yield Hit(order, entry_from_entity(order, entity, self.tenant_id))
            except ResourceNotFoundError:
                continue  # dropped since the listing was cached

    def months(self) -> list[str]:
        """Months (yyyyMM) that have index tables, newest first."""
        return sorted({day[:6] for day in self.tables("i", refresh=True)}, reverse=True)

    def locate(self, record_id: str) -> tuple[str, int] | None:
        """(archive blob, position) of a record by its Id: point reads of the id tables, newest day first."""
        key = keys.kid(record_id)
        if not key:
            return None
        days = sorted(self.tables("i", refresh=True), reverse=True)
        partition = keys.id_partition(key)

        def probe(day: str) -> tuple[str, int] | None:
            table = self.service.get_table_client(keys.table_name(self.prefix, "i", day))
            try:
                entity = table.get_entity(partition, key)
            except ResourceNotFoundError:
                return None
            return str(entity["b"]), int(entity["n"])

        with ThreadPoolExecutor(max_workers=8) as pool:
            for start in range(0, len(days), 32):  # newest first, 32 days per round
                for found in pool.map(probe, days[start:start + 32]):
                    if found is not None:
                        return found
        # Another organization's record with the same Id carries an `_org` suffix (dedupe key).
        for day in days:
            table = self.service.get_table_client(keys.table_name(self.prefix, "i", day))
            for entity in table.query_entities("RowKey gt @low and RowKey lt @high",
                                               parameters={"low": key + "_", "high": key + "`"}):
                return str(entity["b"]), int(entity["n"])
        return None

    def drop_month(self, month: str) -> list[str]:
        """Delete a month's tables (one call per view and day): the cheap way to expire the index."""
        dropped = []
        for view in keys.VIEWS:
            for day in sorted(d for d in self.tables(view, refresh=True) if d.startswith(month)):
                name = keys.table_name(self.prefix, view, day)
                try:
                    self.service.delete_table(name)
                except ResourceNotFoundError:
                    continue
                dropped.append(name)
                with self._lock:
                    self._tables.discard(name)
        self._listing.clear()
        return dropped


def _chunks(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), size):
        yield rows[i:i + size]
