"""Per content type collector state: the checkpoint and the last run's outcome (Table storage)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from . import keys
from .tables import TableClients
from .timeutil import format_iso, parse_time


@dataclass(frozen=True)
class TypeState:
    content_type: str
    cursor: datetime | None = None  # end of the last window whose blobs are all durably queued
    last_run_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str = ""
    last_error_at: datetime | None = None
    last_subscribe_at: datetime | None = None
    lost_before: datetime | None = None  # newest start of content that aged out before we listed it
    # A window listed in part (the run's deadline came between two pages): its bounds and the
    # NextPageUri to resume from. Every blob of the pages before it is queued; the cursor moves to
    # page_end once the last page is queued.
    page_start: datetime | None = None
    page_end: datetime | None = None
    next_page: str = ""

    def but(self, **changes: Any) -> TypeState:
        return replace(self, **changes)


_FIELDS = {
    "cursor": "cursor", "last_run_at": "lastRunAt", "last_success_at": "lastSuccessAt",
    "last_error_at": "lastErrorAt", "last_subscribe_at": "lastSubscribeAt", "lost_before": "lostBefore",
    "page_start": "pageStart", "page_end": "pageEnd",
}


class StateStore:
    def __init__(self, clients: TableClients, prefix: str, tenant_id: str) -> None:
        self.table = clients.get(keys.state_table(prefix))
        self.tenant_id = tenant_id or "local"

    def ensure(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            self.table.create_table()

    def load(self, content_type: str) -> TypeState:
        try:
            row = self.table.get_entity(self.tenant_id, content_type)
        except ResourceNotFoundError:
            return TypeState(content_type)
        return _from_row(content_type, row)

    def load_all(self) -> list[TypeState]:
        try:
            rows = list(self.table.query_entities("PartitionKey eq @pk", parameters={"pk": self.tenant_id}))
        except ResourceNotFoundError:
            return []
        return [_from_row(row["RowKey"], row) for row in rows]

    def save(self, state: TypeState) -> None:
        entity: dict[str, Any] = {"PartitionKey": self.tenant_id, "RowKey": state.content_type,
                                  "lastError": state.last_error, "nextPage": state.next_page}
        for attr, name in _FIELDS.items():
            value = getattr(state, attr)
            entity[name] = format_iso(value) if value is not None else ""
        self.table.upsert_entity(entity, mode=UpdateMode.REPLACE)


def _from_row(content_type: str, row: dict[str, Any]) -> TypeState:
    values: dict[str, Any] = {}
    for attr, name in _FIELDS.items():
        text = row.get(name) or ""
        values[attr] = parse_time(text) if text else None
    return TypeState(content_type, last_error=row.get("lastError", "") or "",
                     next_page=row.get("nextPage", "") or "", **values)
