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
        ("i", {"PartitionKey": record_key[:2], "RowKey": record_key, "b": item.blob, "n": item.position}),
    ]


class AuditIndex:
    """Monthly index tables: write views in batches, scan them newest first, locate raw records."""

    def __init__(self, service: TableServiceClient, prefix: str, tenant_id: str, *, writers: int = 4) -> None:
        self.service = service
        self.prefix = prefix
        self.tenant_id = tenant_id
        self.writers = writers
        self._tables: set[str] = set()
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- writing

    def ensure_table(self, name: str) -> None:
        if name in self._tables:
            return
        with contextlib.suppress(ResourceExistsError):
            self.service.create_table(name)
        with self._lock:
            self._tables.add(name)

    def write(self, items: Iterable[IndexItem]) -> int:
        """Upsert (replace) every view entity of `items`; returns the number of entities written.

        Duplicates (same record twice in a blob, §5.5) collapse onto one key before batching: a
        batch may not touch the same entity twice.
        """
        groups: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        for item in items:
            month = keys.month_of(item.when)
            for view, entity in entities_for(item, self.tenant_id):
                table = keys.table_name(self.prefix, view, month)
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
        `after` resumes strictly after a previous Hit.key. Rows come lazily, page by page.
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
        for month in keys.months_newest_first(keys.from_inv(keys.INV_BASE - first_second),
                                              keys.from_inv(keys.INV_BASE - last_second) + timedelta(seconds=1)):
            month_start, month_end = keys.month_bounds(month)
            lo_second = max(first_second, int(month_start.timestamp()))
            hi_second = min(last_second, int(month_end.timestamp()) - 1)
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
            table = self.service.get_table_client(keys.table_name(self.prefix, view, month))
            rows = table.query_entities(" and ".join(clauses), parameters=params, results_per_page=page_size)
            try:
                for entity in rows:
                    order = entity["RowKey"][len(prefix):]
                    yield Hit(order, entry_from_entity(order, entity, self.tenant_id))
            except ResourceNotFoundError:
                continue  # no table for that month: nothing was indexed then

    def months(self) -> list[str]:
        """Months that have an id table, newest first."""
        low, high = f"{self.prefix}i", f"{self.prefix}j"
        names = [t.name for t in self.service.query_tables("TableName ge @low and TableName lt @high",
                                                            parameters={"low": low, "high": high})]
        return sorted((n[len(low):] for n in names if n[len(low):].isdigit()), reverse=True)

    def locate(self, record_id: str) -> tuple[str, int] | None:
        """(archive blob, position) of a record by its Id, searching months newest first."""
        key = keys.kid(record_id)
        if not key:
            return None
        months = self.months()
        for month in months:
            table = self.service.get_table_client(keys.table_name(self.prefix, "i", month))
            try:
                entity = table.get_entity(key[:2], key)
            except ResourceNotFoundError:
                continue
            return str(entity["b"]), int(entity["n"])
        # Another organization's record with the same Id carries an `_org` suffix (dedupe key).
        for month in months:
            table = self.service.get_table_client(keys.table_name(self.prefix, "i", month))
            rows = table.query_entities("PartitionKey eq @pk and RowKey gt @low and RowKey lt @high",
                                        parameters={"pk": key[:2], "low": key + "_", "high": key + "`"})
            for entity in rows:
                return str(entity["b"]), int(entity["n"])
        return None

    def drop_month(self, month: str) -> list[str]:
        """Delete a month's four tables (one call each): the cheap way to expire the index."""
        dropped = []
        for view in keys.VIEWS:
            name = keys.table_name(self.prefix, view, month)
            try:
                self.service.delete_table(name)
                dropped.append(name)
            except ResourceNotFoundError:
                continue
            with self._lock:
                self._tables.discard(name)
        return dropped


def _chunks(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), size):
        yield rows[i:i + size]
