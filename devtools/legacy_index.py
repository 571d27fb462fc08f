"""Index format 1, as AuditKeep wrote it up to 2026-12-03: one entity per record and view, in the
day tables `{p}t`, `{p}u`, `{p}o` and `{p}i` (collector/index.py reads it still, and never writes
it). Kept here, out of the deployed package, for the tests that prove such tables stay readable and
for the benchmark that measures what format 2 saves against it.

Also format 2 as it was written up to 2026-12-04, with each day's id entries in its keys table
(`{p}k`, RowKey `i` + keys.id_entry_key) instead of the ids table `{p}j`: lookups still read them
there (`plan_batches_ids_in_keys`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from collector import keys
from collector.index import BATCH_LIMIT, PAYLOAD, IndexItem, _pack, plan_entities, view_payload
from collector.models import View


def entities_for(item: IndexItem, tenant_id: str) -> list[tuple[View, dict[str, Any]]]:
    """The four format 1 entities of one record as (view, entity)."""
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
    """Format 1's transactions for `items`: (table, ≤ 100 entities of one partition) each."""
    groups: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for item in items:
        day = keys.day_of(item.when)
        for view, entity in entities_for(item, tenant_id):
            table = keys.table_name(prefix, view, day)
            groups.setdefault((table, entity["PartitionKey"]), {})[entity["RowKey"]] = entity
    return [(table, chunk)
            for (table, _pk), rows in groups.items()
            for chunk in (list(rows.values())[i:i + BATCH_LIMIT] for i in range(0, len(rows), BATCH_LIMIT))]


def plan_batches_ids_in_keys(items: Iterable[IndexItem], prefix: str, tenant_id: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """Format 2's transactions for `items` as written before the ids table: the same entities, the
    id entries in the keys table under RowKey `i` + id key (same partitions)."""
    groups: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for letter, day, entity in plan_entities(items, tenant_id):
        if letter == keys.IDS_TABLE:
            letter, entity = keys.KEYS_TABLE, {**entity, "RowKey": keys.KEYS_ID_MARK + entity["RowKey"]}
        groups.setdefault((keys.table_name(prefix, letter, day), entity["PartitionKey"]), {})[entity["RowKey"]] = entity
    return [(table, chunk)
            for (table, _pk), rows in groups.items()
            for chunk in (list(rows.values())[i:i + BATCH_LIMIT] for i in range(0, len(rows), BATCH_LIMIT))]
