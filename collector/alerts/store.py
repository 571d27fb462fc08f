"""Where alerts live: the alerts table, the window and first-seen tables, and the alert queue.

| table | PartitionKey | RowKey | what |
|---|---|---|---|
| `{p}alerts` | `a` | `{inv(time):010}{id}` (newest first) | one alert: its JSON fields as properties, `queued`, `delivered`, and while an instance sends it `leaseOwner`, `leaseUntil` (deliver.py) |
| `{p}alertw{yyyyMMdd}` (day of the window's start) | `{epoch of the start's hour}` | `{rule}~{key hash}~{start epoch}~{record hash}` | a record that matched a threshold rule: `w` its window (`{rule}~{key hash}~{start epoch}`), `id` its id, `v` the values its tests read |
| `{p}alertseen` | rule | key hash | first-seen keys: `first`, `last`, `opened` (the record that opened the episode), `openedAt` |

Alerts are inserted with `create_entity` (insert-if-not-exists: a second writer of the same id
gets a conflict and stores nothing); window rows are upserts of deterministic keys (a repeated
record rewrites its own row); first-seen episodes and delivery leases change under an ETag condition. Window tables
are dropped after WINDOW_DAYS (`prune`); late content older than that opens no window.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode
from azure.storage.queue import QueueServiceClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from .. import transaction
from ..errors import MessageFormatError
from ..keys import epoch, inv
from ..tables import TableClients, table_missing
from ..timeutil import format_iso, parse_time
from .engine import Alert, Seen, WindowRow, apply_sightings

log = logging.getLogger(__name__)

PARTITION = "a"
WINDOWS_PER_QUERY = 14  # a filter holds at most 15 comparisons: the partition's and one per window
WINDOW_DAYS = 40  # longer than the longest window (31 d) plus the API's 7 days of late content
MESSAGE_TTL_SECONDS = 7 * 24 * 3600


def alerts_table(prefix: str) -> str:
    return f"{prefix}alerts"


def window_table(prefix: str, start: datetime) -> str:
    return f"{prefix}alertw{start:%Y%m%d}"


def seen_table(prefix: str) -> str:
    return f"{prefix}alertseen"


def alert_row_key(alert_time: datetime, identity: str) -> str:
    return f"{inv(alert_time):010d}{identity}"


def _missing(exc: HttpResponseError) -> bool:
    return isinstance(exc, ResourceNotFoundError) or table_missing(exc)


class AlertTable:
    """The alerts table (GET /api/alerts reads it newest first)."""

    def __init__(self, tables: TableClients, prefix: str) -> None:
        self.tables = tables
        self.name = alerts_table(prefix)

    def insert(self, alert: Alert) -> bool:
        entity = to_entity(alert)
        try:
            self.tables.write(self.name, lambda client: client.create_entity(entity))
        except ResourceExistsError:
            return False
        return True

    def get(self, row_key: str) -> dict[str, Any] | None:
        found = self.read(row_key)
        return found[0] if found is not None else None

    def queued(self, alert: Alert) -> bool:
        found = self.get(alert_row_key(alert.time, alert.id))
        return bool(found and found.get("queued"))

    def mark_queued(self, alert: Alert) -> None:
        self._merge(alert_row_key(alert.time, alert.id), {"queued": True})

    def read(self, row_key: str) -> tuple[dict[str, Any], str] | None:
        """The alert row and its ETag (deliver.py's claim is conditional on it); None when not stored."""
        try:
            entity = self.tables.get(self.name).get_entity(PARTITION, row_key)
        except HttpResponseError as exc:
            if _missing(exc):
                return None
            raise
        return dict(entity), str(entity.metadata["etag"])

    def update(self, row_key: str, values: Mapping[str, Any], etag: str) -> str | None:
        """MERGE `values` into the row if nobody changed it since `etag`: its new ETag, or None when
        another writer changed it first (412, ResourceModifiedError)."""
        entity = {"PartitionKey": PARTITION, "RowKey": row_key, **values}
        try:
            meta = self.tables.write(self.name, lambda client: client.update_entity(
                entity, mode=UpdateMode.MERGE, etag=etag, match_condition=MatchConditions.IfNotModified))
        except ResourceModifiedError:
            return None
        return str(meta["etag"])

    def _merge(self, row_key: str, values: dict[str, Any]) -> None:
        entity = {"PartitionKey": PARTITION, "RowKey": row_key, **values}
        self.tables.write(self.name, lambda client: client.update_entity(entity, mode=UpdateMode.MERGE))

    def scan(self, start: datetime | None, end: datetime | None, *, after: str | None = None,
             rule: str | None = None, severity: str | None = None, user: str | None = None) -> Iterator[dict[str, Any]]:
        """Alerts with start <= time < end, newest first, from after the row key `after`."""
        clauses = ["PartitionKey eq @p"]
        params: dict[str, Any] = {"p": PARTITION}
        low = after if after is not None else (f"{inv(end) + 1:010d}" if end is not None else None)
        if low is not None:
            clauses.append("RowKey gt @low" if after is not None else "RowKey ge @low")
            params["low"] = low
        if start is not None:
            clauses.append("RowKey lt @high")
            params["high"] = f"{inv(start) + 1:010d}"
        for name, value in (("rule", rule), ("severity", severity), ("userKey", user.lower() if user else None)):
            if value is not None:
                clauses.append(f"{name} eq @{name}")
                params[name] = value
        client = self.tables.get(self.name)
        try:
            for entity in client.query_entities(" and ".join(clauses), parameters=params, results_per_page=200):
                yield dict(entity)
        except HttpResponseError as exc:
            if not _missing(exc):
                raise


def to_entity(alert: Alert) -> dict[str, Any]:
    return {
        "PartitionKey": PARTITION, "RowKey": alert_row_key(alert.time, alert.id),
        "id": alert.id, "rule": alert.rule, "severity": alert.severity, "time": format_iso(alert.time),
        "user": alert.user, "userKey": alert.user.lower(), "summary": alert.summary[:4000],
        "recordIds": json.dumps(list(alert.record_ids)), "count": alert.count, "kind": alert.kind,
        "key": json.dumps(dict(alert.key), ensure_ascii=False)[:4000],
        "windowEnd": format_iso(alert.window_end) if alert.window_end else "", "queued": False, "delivered": "",
    }


def from_entity(entity: dict[str, Any]) -> Alert:
    end = entity.get("windowEnd") or ""
    return Alert(id=str(entity["id"]), rule=str(entity["rule"]), severity=str(entity["severity"]),
                 time=parse_time(str(entity["time"])), user=str(entity.get("user", "")),
                 summary=str(entity.get("summary", "")), record_ids=tuple(json.loads(entity.get("recordIds") or "[]")),
                 count=int(entity.get("count", 0)), kind=str(entity.get("kind", "event")),
                 key=json.loads(entity.get("key") or "{}"), window_end=parse_time(end) if end else None)


class WindowTable:
    """Threshold windows: one row per matching record, in day tables dropped after WINDOW_DAYS.

    The windows that start in one hour share a partition (engine.partition_of: every rule, key and
    start; a blob's records mostly fall in one or two hours), and a window is the row key's prefix,
    `{rule}~{key hash}~{start epoch}` (also the property `w`). So a content blob's rows are written
    in one transaction per (partition, 100 rows), and the windows it touched read back with one
    query per (partition, WINDOWS_PER_QUERY windows): a small constant number of requests per blob,
    whatever the number of rules, keys and window starts it meets. `start` below is the
    partition's hour; its day names the table (a window's start and its hour share a day)."""

    def __init__(self, tables: TableClients, prefix: str) -> None:
        self.tables = tables
        self.prefix = prefix

    def add(self, start: datetime, rows: Mapping[str, Sequence[WindowRow]]) -> None:
        """Upsert the rows of the windows (engine.window_name) of the partition `start`."""
        partition = str(epoch(start))
        entities = [{"PartitionKey": partition, "RowKey": f"{window}~{_record_hash(row.record)}", "w": window,
                     "id": row.record, "v": json.dumps(row.values, separators=(",", ":"), ensure_ascii=False)}
                    for window, window_rows in rows.items() for row in window_rows]
        name = window_table(self.prefix, start)
        for offset in range(0, len(entities), transaction.LIMIT):  # hand-encoded: 6x less CPU than the SDK's
            self.tables.upsert(name, entities[offset:offset + transaction.LIMIT])

    def rows(self, start: datetime, windows: Sequence[str], limit: int) -> dict[str, list[WindowRow]]:
        """Each window's rows (at most `limit` of each)."""
        client = self.tables.get(window_table(self.prefix, start))
        found: dict[str, dict[str, WindowRow]] = {window: {} for window in windows}
        pending = sorted(found)
        partition = str(epoch(start))
        while pending:
            ask, pending = pending[:WINDOWS_PER_QUERY], pending[WINDOWS_PER_QUERY:]
            while ask and self._query(client, partition, ask, limit, found):
                ask = [window for window in ask if len(found[window]) < limit]  # one at its limit: the others again
        return {window: list(rows.values()) for window, rows in found.items()}

    @staticmethod
    def _query(client: TableClient, partition: str, windows: Sequence[str], limit: int,
               found: dict[str, dict[str, WindowRow]]) -> bool:
        """One query for `windows`, their rows added to `found` (by row key: a row read twice counts
        once). It stops at the first window that reaches `limit` (True: the caller asks again for
        the others), so a huge window is not read to its end. One window is a row key range; several
        are `w eq` tests (a filter holds at most 15 comparisons; an `or` of row key ranges would be
        a partition scan all the same)."""
        params: dict[str, Any] = {"p": partition}
        if len(windows) == 1:
            where = "PartitionKey eq @p and RowKey gt @low and RowKey lt @high"
            params["low"], params["high"] = f"{windows[0]}~", f"{windows[0]}~~"  # '~' sorts after the hex digits
        else:
            tests = " or ".join(f"w eq @w{i}" for i in range(len(windows)))
            where = f"PartitionKey eq @p and ( {tests} )"  # spaced: the SDK substitutes @names between spaces
            params.update({f"w{i}": window for i, window in enumerate(windows)})
        try:
            for entity in client.query_entities(where, parameters=params, results_per_page=1000,
                                                select=["RowKey", "w", "id", "v"]):
                rows = found.get(str(entity.get("w", "")))
                if rows is None:
                    continue
                rows[str(entity["RowKey"])] = WindowRow(str(entity["id"]), json.loads(entity.get("v") or "{}"))
                if len(rows) >= limit:
                    return True
        except HttpResponseError as exc:
            if not _missing(exc):
                raise
        return False

    def prune(self, now: datetime) -> list[str]:
        """Drop the window tables of days older than WINDOW_DAYS; the names dropped."""
        cutoff = f"{self.prefix}alertw{(now - timedelta(days=WINDOW_DAYS)):%Y%m%d}"
        names = self.tables.names(f"{self.prefix}alertw", cutoff)
        for name in names:
            self.tables.delete(name)
        return names


def _record_hash(record: str) -> str:
    return hashlib.sha256(record.encode("utf-8")).hexdigest()[:32]


class SeenTable:
    """First-seen keys per rule (the SeenStore of engine.py): one entity per (rule, key), `first`,
    `last`, `opened` (the record that opened the current episode) and `openedAt`. A content blob's
    sightings of a key are decided together (apply_sightings) and written once, under an ETag
    condition: a get and at most one write per (rule, key) and blob."""

    def __init__(self, tables: TableClients, prefix: str) -> None:
        self.tables = tables
        self.name = seen_table(prefix)

    def _client(self) -> TableClient:
        self.tables.create(self.name)
        return self.tables.get(self.name)

    def sightings(self, rule: str, key: str, seen: Sequence[tuple[datetime, str]],
                  history: timedelta) -> tuple[list[str], Seen | None, int]:
        client = self._client()
        for _ in range(8):  # ETag races with other instances: read again and decide again
            entity: Any = None
            state: Seen | None = None
            try:
                entity = client.get_entity(rule, key)
                state = Seen(parse_time(str(entity["first"])), parse_time(str(entity["last"])),
                             str(entity["opened"]), parse_time(str(entity.get("openedAt") or entity["first"])))
            except ResourceNotFoundError:
                pass
            after, due, used = apply_sightings(state, seen, history)
            if after == state:
                return due, after, used
            assert after is not None  # a sighting never forgets a key
            values = {"PartitionKey": rule, "RowKey": key, "first": format_iso(after.first),
                      "last": format_iso(after.last), "opened": after.opened, "openedAt": format_iso(after.opened_at)}
            try:
                if entity is None:
                    client.create_entity(values)
                else:
                    client.update_entity(values, mode=UpdateMode.MERGE, etag=entity.metadata["etag"],
                                         match_condition=MatchConditions.IfNotModified)
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                continue
            return due, after, used
        log.warning("alerts.seen_contended %s: gave up after repeated ETag conflicts", rule, extra={"rule": rule})
        return [], None, len(seen)


class AlertQueue:
    """The alert delivery queue (AUDIT_ALERT_QUEUE): one message per alert, `{"id", "rowKey"}`."""

    def __init__(self, service: QueueServiceClient, name: str) -> None:
        codec: dict[str, Any] = {"message_encode_policy": TextBase64EncodePolicy(),
                                 "message_decode_policy": TextBase64DecodePolicy()}
        self.name = name
        self.client = service.get_queue_client(name, **codec)
        self.poison = service.get_queue_client(f"{name}-poison", **codec)

    def ensure(self) -> None:
        for client in (self.client, self.poison):
            with contextlib.suppress(ResourceExistsError):
                client.create_queue()

    def send(self, alert: Alert) -> None:
        self.client.send_message(encode_message(alert), time_to_live=MESSAGE_TTL_SECONDS)

    def send_later(self, body: str, delay_seconds: int) -> None:
        """The message `body` again, invisible for `delay_seconds` (deliver.py: an alert another
        instance is delivering is looked at again once that instance's lease has run out)."""
        self.client.send_message(body, visibility_timeout=delay_seconds, time_to_live=MESSAGE_TTL_SECONDS)

    def drain(self, deliver: Callable[[str], object], *, max_dequeue: int = 5, visibility_timeout: int = 60) -> int:
        """What the deliver_alert queue function does, in-process (`python -m collector collect`,
        `make run`): each message delivered then deleted; a failure leaves it for a retry after
        `visibility_timeout`, and after `max_dequeue` attempts it goes to the poison queue, as the
        Functions host would. The number delivered."""
        delivered = 0
        for message in self.client.receive_messages(messages_per_page=32, visibility_timeout=visibility_timeout):
            try:
                deliver(str(message.content))
            except Exception as exc:  # noqa: BLE001 - left for a retry, then poison: never lost
                log.warning("alerts.delivery_failed %s: %s", exc.__class__.__name__, exc,
                            extra={"dequeueCount": message.dequeue_count})
                if (message.dequeue_count or 0) >= max_dequeue:
                    self.poison.send_message(str(message.content))
                    self.client.delete_message(message)
                continue
            self.client.delete_message(message)
            delivered += 1
        return delivered


def encode_message(alert: Alert) -> str:
    return json.dumps({"id": alert.id, "rowKey": alert_row_key(alert.time, alert.id)})


def decode_message(body: bytes | str) -> tuple[str, str]:
    try:
        data = json.loads(body)
        return str(data["id"]), str(data["rowKey"])
    except (ValueError, KeyError, TypeError) as exc:
        raise MessageFormatError(f"unreadable alert message ({exc.__class__.__name__}: {exc})") from exc


def page_cursor(row_key: str) -> str:
    return base64.urlsafe_b64encode(row_key.encode()).decode().rstrip("=")


def read_cursor(text: str) -> str | None:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return raw if len(raw) == 42 and raw[:10].isdigit() else None
