"""The rules engine on ingest: each content blob's records, as ContentProcessor indexes them, are
matched against the rules; matches become alerts, stored and queued for delivery.

Exactly once per (rule, key, window), whatever the order, the lateness, the redeliveries or the
number of instances: an alert's id is derived from what it is about (event rules: the record;
threshold rules: the rule, key and window bucket; first-seen rules: the rule, key and the record
that opened the episode), and it is written with insert-if-not-exists. Windows are fixed buckets
of event time (late content lands in its own bucket), kept as one row per matching record in
Table storage, so a repeated record counts once and several instances add to the same window.
First-seen keys live in a small table, updated with ETag conditions.

A failing rule never blocks ingest: it is logged (`alerts.rule_failed`) and counted (`stats`), the
other rules run, and the blob is marked done. A storage failure (AzureError) is not a rule's: it
propagates, so the queue retries the message (archive and index writes are idempotent, alert,
window and first-seen keys deterministic) and no window row is lost to an outage.
Delivery happens later, from the alert queue (deliver.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from azure.core.exceptions import AzureError

from ..index import IndexItem
from ..models import ContentRef
from ..timeutil import format_iso
from .rules import Event, Rule, numbers

log = logging.getLogger(__name__)

MAX_RECORD_IDS = 50  # recordIds of one alert (count says how many records there were)
FIRED_CACHE = 10_000  # alert ids this process knows are stored and queued


@dataclass(frozen=True)
class Alert:
    id: str
    rule: str
    severity: str
    time: datetime  # the event (event, first-seen), the window's start (threshold), the episode (health)
    user: str
    summary: str
    record_ids: tuple[str, ...]
    count: int
    kind: str = "event"
    key: Mapping[str, str] = field(default_factory=dict)
    window_end: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON of GET /api/alerts and of the webhook body."""
        body: dict[str, Any] = {"id": self.id, "rule": self.rule, "severity": self.severity, "time": format_iso(self.time),
                                "user": self.user, "summary": self.summary, "recordIds": list(self.record_ids),
                                "count": self.count, "kind": self.kind, "key": dict(self.key)}
        if self.window_end is not None:
            body["windowEnd"] = format_iso(self.window_end)
        return body


def alert_id(*parts: str) -> str:
    """Deterministic: the same subject always gives the same id (32 hex digits)."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def key_hash(values: Sequence[str]) -> str:
    return hashlib.sha256("\x1f".join(values).encode("utf-8")).hexdigest()[:24]


def bucket(when: datetime, length: timedelta) -> tuple[datetime, datetime]:
    """The fixed window of `length` (aligned on the epoch) that holds `when`."""
    seconds = int(length.total_seconds())
    start = int(when.timestamp()) // seconds * seconds
    begin = datetime.fromtimestamp(start, UTC)
    return begin, begin + length


# ------------------------------------------------------------------ collaborators


class WindowStore(Protocol):
    def add(self, rule: str, key: str, start: datetime, rows: Sequence[WindowRow]) -> None: ...

    def rows(self, rule: str, key: str, start: datetime, limit: int) -> list[WindowRow]: ...


class SeenStore(Protocol):
    def sighting(self, rule: str, key: str, when: datetime, record: str, history: timedelta) -> str | None:
        """The record that opened this key's current episode when `when` opens or is that episode
        (the alert is due, or due again after a crash), else None (the key is known)."""
        ...


class AlertStore(Protocol):
    def insert(self, alert: Alert) -> bool: ...  # False: an alert with its id exists already

    def queued(self, alert: Alert) -> bool: ...  # has its delivery been queued?

    def mark_queued(self, alert: Alert) -> None: ...


class AlertOutbox(Protocol):
    def send(self, alert: Alert) -> None: ...


@dataclass(frozen=True)
class WindowRow:
    record: str  # the record id (a window counts each once)
    values: Mapping[str, str | float]  # the fields its threshold tests read


@dataclass
class EngineStats:
    records: int = 0
    matched: int = 0
    alerts: int = 0
    errors: int = 0
    seconds: float = 0.0


class AlertEngine:
    """The `AlertSink` of ContentProcessor (collect.py)."""

    def __init__(self, rules: Iterable[Rule], *, alerts: AlertStore, outbox: AlertOutbox, windows: WindowStore,
                 seen: SeenStore, tenant_id: str = "") -> None:
        self.rules = [rule for rule in rules if rule.kind in ("event", "threshold", "first-seen")]
        self.alerts = alerts
        self.outbox = outbox
        self.windows = windows
        self.seen = seen
        self.tenant_id = tenant_id
        self.stats = EngineStats()
        self._fired: dict[str, None] = {}
        # Rules by the operations they can match: a record is tested only against its operation's rules.
        self._by_operation: dict[str, list[Rule]] = {}
        self._any_operation: list[Rule] = []
        self._generic_for: dict[str, tuple[Rule, ...]] = {}
        for rule in self.rules:
            if rule.operations is None:
                self._any_operation.append(rule)
            else:
                for operation in rule.operations:
                    self._by_operation.setdefault(operation, []).append(rule)

    def observe(self, records: Sequence[Mapping[str, Any]], items: Sequence[IndexItem], ref: ContentRef) -> EngineStats:
        """Match one content blob's records (as indexed) and raise their alerts. A rule's failure is
        logged and counted; a storage failure (AzureError) propagates, so the message is retried."""
        began = time.monotonic()
        try:
            self._observe(records, items, ref)
        except AzureError:
            raise  # storage trouble: the message is retried (see the module docstring)
        except Exception:  # noqa: BLE001 - ingest goes on; the failure is logged and counted
            self.stats.errors += 1
            log.exception("alerts.rule_failed %s %s", ref.content_type, ref.content_id,
                          extra={"contentType": ref.content_type, "contentId": ref.content_id})
        self.stats.seconds += time.monotonic() - began
        return self.stats

    def _observe(self, records: Sequence[Mapping[str, Any]], items: Sequence[IndexItem], ref: ContentRef) -> None:
        windows: dict[tuple[str, tuple[str, ...], datetime], dict[str, tuple[WindowRow, Event]]] = {}
        named = {rule.name: rule for rule in self.rules}
        by_operation, generic = self._by_operation, self._any_operation
        self.stats.records += len(items)
        for item in items:
            operation = item.entry.operation.lower()
            candidates = by_operation.get(operation)
            gated = self._generic_for.get(operation)
            if gated is None:  # which rules without an operation list can match this operation (few distinct)
                gated = self._generic_for[operation] = tuple(
                    rule for rule in generic if rule.operation_gate is None or rule.operation_gate(operation))
            if not candidates and not gated:
                continue
            event: Event | None = None
            for rule in (*(candidates or ()), *gated):
                if event is None:
                    event = Event(item.entry, records[item.position])
                try:
                    if not rule.matches(event):
                        continue
                    self.stats.matched += 1
                    if rule.kind == "event":
                        self.raise_alert(self._event_alert(rule, event))
                    elif rule.kind == "first-seen":
                        self._first_seen(rule, event, item.when)
                    else:
                        assert rule.window is not None
                        key = rule.key_of(event)
                        start, _ = bucket(item.when, rule.window)
                        rows = windows.setdefault((rule.name, key, start), {})
                        record = self._record_key(event)
                        rows[record] = (WindowRow(record, self._row_values(rule, event)), event)
                except AzureError:
                    raise
                except Exception:  # noqa: BLE001 - one rule's failure spares the others
                    self.stats.errors += 1
                    log.exception("alerts.rule_failed %s on %s", rule.name, item.entry.id,
                                  extra={"rule": rule.name, "contentType": ref.content_type, "contentId": ref.content_id})
        for (name, key, start), rows in windows.items():
            rule = named[name]
            try:
                self._window(rule, key, start, rows)
            except AzureError:
                raise
            except Exception:  # noqa: BLE001
                self.stats.errors += 1
                log.exception("alerts.rule_failed %s window %s", rule.name, format_iso(start),
                              extra={"rule": rule.name, "contentType": ref.content_type, "contentId": ref.content_id})

    # -- the three kinds

    def _record_key(self, event: Event) -> str:
        org = event.entry.organizationId.lower()
        return event.entry.id if not org or org == self.tenant_id.lower() else f"{event.entry.id}|{org}"

    def _event_alert(self, rule: Rule, event: Event) -> Alert:
        entry = event.entry
        return Alert(alert_id(rule.name, self._record_key(event)), rule.name, rule.severity, entry.when, entry.user,
                     _summary(rule, entry.operation, entry.user, entry.object), (entry.id,), 1, "event")

    def _first_seen(self, rule: Rule, event: Event, when: datetime) -> None:
        assert rule.window is not None
        key = rule.key_of(event)
        digest = key_hash(key)
        opened = self.seen.sighting(rule.name, digest, when, self._record_key(event), rule.window)
        if opened is None:
            return
        entry = event.entry
        self.raise_alert(Alert(alert_id(rule.name, digest, opened), rule.name, rule.severity, when, entry.user,
                          _summary(rule, entry.operation, entry.user, entry.object) + f" (first in {_span(rule.window)})",
                          (entry.id,), 1, "first-seen", dict(zip(rule.key, key, strict=True))))

    def _window(self, rule: Rule, key: tuple[str, ...], start: datetime, rows: Mapping[str, tuple[WindowRow, Event]]) -> None:
        assert rule.window is not None and rule.threshold is not None
        digest = key_hash(key)
        identity = alert_id(rule.name, digest, str(int(start.timestamp())))
        if identity in self._fired:
            return  # stored and queued by this process already: the window is closed for us
        self.windows.add(rule.name, digest, start, [row for row, _ in rows.values()])
        stored = self.windows.rows(rule.name, digest, start, limit=_ROW_LIMIT)
        measures = measure(rule, stored)
        if not rule.threshold.holds(measures):
            return
        events = [event for _, event in rows.values()]
        users = sorted({e.entry.user for e in events if e.entry.user})
        user = dict(zip(rule.key, key, strict=True)).get("user") or (users[0] if len(users) == 1 else "")
        where = ", ".join(f"{name}={value}" for name, value in zip(rule.key, key, strict=True) if value)
        summary = (f"{rule.description} {len(stored)} records in {_span(rule.window)} from {format_iso(start)}"
                   f"{f' ({where})' if where else ''}: {rule.threshold.describe()}")
        ids = tuple(sorted(row.record.split("|", 1)[0] for row in stored))[:MAX_RECORD_IDS]
        self.raise_alert(Alert(identity, rule.name, rule.severity, start, user, summary, ids, len(stored), "threshold",
                          dict(zip(rule.key, key, strict=True)), start + rule.window))

    @staticmethod
    def _row_values(rule: Rule, event: Event) -> dict[str, str | float]:
        assert rule.threshold is not None
        values: dict[str, str | float] = {}
        for test in rule.threshold.tests:
            if test.measure == "distinct":
                values[test.field] = event.first(test.field).lower()
            elif test.measure == "sum":
                values[test.field] = sum(numbers(event.values(test.field))[:1])
        return values

    # -- storing and queueing

    def raise_alert(self, alert: Alert) -> None:
        if alert.id in self._fired:
            return
        created = self.alerts.insert(alert)
        if created:
            self.stats.alerts += 1
            log.warning("alerts.raised %s %s: %s", alert.rule, alert.severity, alert.summary,
                        extra={"alertId": alert.id, "rule": alert.rule, "severity": alert.severity,
                               "alertTime": format_iso(alert.time), "count": alert.count})
        if created or not self.alerts.queued(alert):
            # A crash between storing and queueing leaves the alert unqueued: whoever meets it again queues it.
            self.outbox.send(alert)
            self.alerts.mark_queued(alert)
        if len(self._fired) >= FIRED_CACHE:
            self._fired.clear()
        self._fired[alert.id] = None


_ROW_LIMIT = 2000


def measure(rule: Rule, rows: Sequence[WindowRow]) -> dict[str, float]:
    """count, distinct(field) and sum(field) over a window's rows (each record once)."""
    assert rule.threshold is not None
    out: dict[str, float] = {"count": float(len(rows))}
    for test in rule.threshold.tests:
        if test.measure == "distinct":
            out[test.name] = float(len({str(row.values.get(test.field, "")) for row in rows} - {""}))
        elif test.measure == "sum":
            out[test.name] = float(sum(float(row.values.get(test.field, 0) or 0) for row in rows))
    return out


def _summary(rule: Rule, operation: str, user: str, target: str) -> str:
    what = f"{operation} by {user or 'an unknown user'}"
    return f"{rule.description} {what}" + (f" on {target[:200]}" if target else "")


def _span(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400} d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min"


def encode_values(values: Mapping[str, str | float]) -> str:
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
