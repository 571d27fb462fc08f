"""The ledger: what happened to each content blob (queued, done, expired, missing, failed).

It makes re-listing the overlap harmless (a blob already queued is not queued again) and feeds
/api/health. One table per day of `contentCreated`; content lives 7 days, so tables older than
LEDGER_DAYS are dropped whole (one call, no per-entity deletes).

Field ownership avoids lost updates without ETags: the listing writes only `c` and `q`; the
processor writes `s`, `d`, `n`, `b`, `e`. Both merge, so neither overwrites the other's news.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from . import keys
from .models import ContentRef
from .tables import TableClients
from .timeutil import format_iso

log = logging.getLogger(__name__)

LEDGER_DAYS = 9
STATUSES = ("queued", "done", "expired", "missing", "failed")


class Ledger:
    def __init__(self, clients: TableClients, prefix: str) -> None:
        self.clients = clients
        self.prefix = prefix

    def _table(self, created: datetime) -> Any:
        return self._table_named(keys.ledger_table(self.prefix, created))

    def _table_named(self, name: str) -> Any:
        self.clients.create(name)
        return self.clients.get(name)

    def known(self, content_type: str, refs: list[ContentRef]) -> set[str]:
        """contentIds among `refs` that the ledger already has (in any status)."""
        if not refs:
            return set()
        by_day: dict[datetime, list[ContentRef]] = {}
        for ref in refs:
            day = ref.content_created.replace(hour=0, minute=0, second=0, microsecond=0)
            by_day.setdefault(day, []).append(ref)
        found: set[str] = set()
        for day_refs in by_day.values():
            table = self._table(day_refs[0].content_created)
            earliest = min(ref.content_created for ref in day_refs)
            rows = table.query_entities(
                "PartitionKey eq @pk and c ge @earliest",
                parameters={"pk": content_type, "earliest": format_iso(earliest)},
                select=["RowKey"],
            )
            wanted = {keys.escape_key(ref.content_id): ref.content_id for ref in day_refs}
            for row in rows:
                if row["RowKey"] in wanted:
                    found.add(wanted[row["RowKey"]])
        return found

    def mark_queued(self, refs: Iterable[ContentRef], now: datetime) -> None:
        groups: dict[str, list[tuple[str, dict[str, Any], dict[str, Any]]]] = {}
        for ref in refs:
            entity = {"PartitionKey": ref.content_type, "RowKey": keys.escape_key(ref.content_id),
                      "c": format_iso(ref.content_created), "q": format_iso(now)}
            name = keys.ledger_table(self.prefix, ref.content_created)
            groups.setdefault(name, []).append(("upsert", entity, {"mode": UpdateMode.MERGE}))
        for name, operations in groups.items():
            table = self._table_named(name)
            for i in range(0, len(operations), 100):
                table.submit_transaction(operations[i:i + 100])

    def status(self, ref: ContentRef) -> str | None:
        try:
            row = self._table(ref.content_created).get_entity(ref.content_type, keys.escape_key(ref.content_id))
        except ResourceNotFoundError:
            return None
        return str(row.get("s") or "queued")

    def mark(self, ref: ContentRef, status: str, now: datetime, *, records: int | None = None,
             blob: str | None = None, error: str | None = None) -> None:
        assert status in STATUSES
        entity: dict[str, Any] = {"PartitionKey": ref.content_type, "RowKey": keys.escape_key(ref.content_id),
                                  "s": status, "d": format_iso(now)}
        if records is not None:
            entity["n"] = records
        if blob is not None:
            entity["b"] = blob
        if error is not None:
            entity["e"] = error[:1000]
        self._table(ref.content_created).upsert_entity(entity, mode=UpdateMode.MERGE)

    def recent(self, now: datetime, days: int = LEDGER_DAYS) -> list[dict[str, Any]]:
        """Every ledger row of the last `days` days (for health), with its content type."""
        rows: list[dict[str, Any]] = []
        for offset in range(days):
            name = keys.ledger_table(self.prefix, now - timedelta(days=offset))
            try:
                rows.extend(self.clients.get(name).query_entities(
                    "s ne @queued", parameters={"queued": "queued"}, select=["PartitionKey", "s", "d", "n", "e"]))
            except ResourceNotFoundError:
                continue
        return rows

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
