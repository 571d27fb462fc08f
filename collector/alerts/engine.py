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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol

from azure.core.exceptions import AzureError

from ..index import IndexItem
from ..models import FIELDS, ContentRef
from ..timeutil import format_iso
from .rules import Event, Predicate, Rule, field_reader, numbers

log = logging.getLogger(__name__)

MAX_RECORD_IDS = 50  # recordIds of one alert (count says how many records there were)
FIRED_CACHE = 10_000  # alert ids this process knows are stored and queued
OPERATION_CACHE = 10_000  # distinct operations whose rules are known (a tenant has a few hundred)
PARTITION_SECONDS = 3600


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


def window_name(rule: str, digest: str, start: int) -> str:
    """A threshold window among those of its partition: the rule, the key's hash and its start (epoch)."""
    return f"{rule}~{digest}~{start}"


def partition_of(start: int) -> int:
    """The window partition (an hour, epoch seconds) of a window that starts at `start`: every
    window starting in one hour shares it, so a blob's rows and reads of 3, 5, 10 and 60-minute
    windows go in one transaction and one query per partition rather than one per start (a blob
    spanning an hour met a dozen starts). Windows of an hour or more start on the hour."""
    return start - start % PARTITION_SECONDS


# ------------------------------------------------------------------ collaborators


class WindowStore(Protocol):
    """Threshold windows by their partition (partition_of: the hour of their start); a window is
    `{rule}~{key hash}~{start}` (window_name)."""

    def add(self, start: datetime, rows: Mapping[str, Sequence[WindowRow]]) -> None:
        """Store a blob's rows of the windows of the partition `start`, by window."""
        ...

    def rows(self, start: datetime, windows: Sequence[str], limit: int) -> dict[str, list[WindowRow]]:
        """Each window's stored rows (at most `limit` of each)."""
        ...


class SeenStore(Protocol):
    def sightings(self, rule: str, key: str, seen: Sequence[tuple[datetime, str]],
                  history: timedelta) -> tuple[list[str], Seen | None, int]:
        """Record a blob's sightings (time, record) of a key, in order, as apply_sightings decides
        them: the records whose alert is due, the key's state after them (None: unknown, nothing
        stored), and how many of `seen` were decided (the caller raises the due alert and passes
        the rest again; apply_sightings says why)."""
        ...


class AlertStore(Protocol):
    def insert(self, alert: Alert) -> bool: ...  # False: an alert with its id exists already

    def queued(self, alert: Alert) -> bool: ...  # has its delivery been queued?

    def mark_queued(self, alert: Alert) -> None: ...


class AlertOutbox(Protocol):
    def send(self, alert: Alert) -> None: ...


class WindowRow(NamedTuple):
    record: str  # the record id (a window counts each once)
    values: Mapping[str, str | float]  # the fields its threshold tests read


class Seen(NamedTuple):
    """A first-seen key's stored state: the episode opened by `opened` at `opened_at`."""

    first: datetime
    last: datetime
    opened: str
    opened_at: datetime


def apply_sightings(state: Seen | None, seen: Sequence[tuple[datetime, str]],
                    history: timedelta) -> tuple[Seen | None, list[str], int]:
    """Sightings (time, record) of one key decided in order, as each record alone would be: a new
    key, or one unseen for longer than `history`, opens an episode (its record's alert is due); the
    record that opened the current episode is due again (a redelivery after a crash before its
    alert was stored); otherwise `first` and `last` widen. Stops before a second due record, so the
    stored state names the opener of every alert raised before it (a crash after storing then
    loses none). The state after, the due records, how many sightings were decided."""
    due: list[str] = []
    for used, (when, record) in enumerate(seen):
        after = state
        if state is None:
            after = Seen(when, when, record, when)
        elif state.opened == record:
            pass
        elif when - state.last > history:
            after = Seen(state.first, when, record, when)
        elif when > state.last:
            state = state._replace(last=when)
            continue
        elif when < state.first:
            state = state._replace(first=when)
            continue
        else:
            continue
        if due:
            return state, due, used
        due.append(record)
        state = after
    return state, due, len(seen)


class _Plan:
    """A rule as the engine's hot loop reads it: its kind, window and fields' readers decided once."""

    __slots__ = ("key", "kind", "row", "rule", "seconds")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.kind = rule.kind
        self.seconds = int(rule.window.total_seconds()) if rule.window is not None else 0
        self.key = tuple(_first_lower(name) for name in rule.key)
        tests = rule.threshold.tests if rule.threshold is not None else ()
        # (field, summed, reader) of each distinct/sum test, in order: a later test of a field wins.
        self.row: tuple[tuple[str, bool, Callable[[Event], Any]], ...] = tuple((test.field, test.measure == "sum",
                          field_reader(test.field) if test.measure == "sum" else _first_lower(test.field))
                         for test in tests if test.measure in ("distinct", "sum"))

    def key_of(self, event: Event) -> tuple[str, ...]:
        """Rule.key_of, with the readers chosen once."""
        if len(self.key) == 1:
            return (self.key[0](event),)
        return tuple(read(event) for read in self.key)

    def row_values(self, event: Event) -> dict[str, str | float]:
        """What a window row keeps of a record: distinct fields' first value (lower case), summed
        fields' first number (0 when none)."""
        values: dict[str, str | float] = {}
        for name, summed, read in self.row:
            values[name] = sum(numbers(read(event))[:1]) if summed else read(event)
        return values


def _first_lower(name: str) -> Callable[[Event], str]:
    """`event.first(name).lower()`, the entry's text fields read directly."""
    if name in FIELDS and name != "recordType":
        return lambda event: str(getattr(event.entry, name)).lower()
    read = field_reader(name)

    def first(event: Event) -> str:
        found = read(event)
        return found[0].lower() if found else ""
    return first


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
        self._tenant = tenant_id.lower()
        self._plans = [_Plan(rule) for rule in self.rules]
        self._window_ids: dict[tuple[str, tuple[str, ...], int], tuple[str, str]] = {}
        self._seen: dict[tuple[str, str], Seen] = {}  # first-seen keys' state as this process last met it
        # Per distinct operation, the rules that can match its records, each with its condition
        # less the operation tests (None: every record of the operation matches). A day holds a few
        # hundred operations, so this is built a few hundred times and read once per record.
        self._for_operation: dict[str, tuple[tuple[_Plan, Predicate | None], ...]] = {}

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
        # The hot loop of the rules' ingest cost (docs/performance.md "alerts"): per record one cache
        # lookup by operation, then only the rules (plans) and tests that operation leaves.
        windows: dict[tuple[_Plan, tuple[str, ...], int], dict[str, tuple[dict[str, str | float], Event]]] = {}
        sightings: dict[tuple[_Plan, tuple[str, ...]], list[tuple[datetime, str, Event]]] = {}
        cache = self._for_operation
        matched = 0
        self.stats.records += len(items)
        try:
            for item in items:
                candidates = cache.get(item.entry.operation)
                if candidates is None:
                    candidates = self._rules_for(item.entry.operation)
                if not candidates:
                    continue
                event = Event(item.entry, records[item.position])
                for plan, predicate in candidates:
                    try:
                        if predicate is not None and not predicate(event):
                            continue
                        matched += 1
                        if plan.kind == "threshold":  # fixed windows of event time, aligned on the epoch
                            seconds = plan.seconds
                            slot = (plan, plan.key_of(event), int(item.when.timestamp()) // seconds * seconds)
                            rows = windows.get(slot)
                            if rows is None:
                                rows = windows[slot] = {}
                            rows[self._record_key(event)] = (plan.row_values(event), event)
                        elif plan.kind == "event":
                            self.raise_alert(self._event_alert(plan.rule, event))
                        else:  # decided per key once the blob is read (_first_seen)
                            sightings.setdefault((plan, plan.key_of(event)), []).append(
                                (item.when, self._record_key(event), event))
                    except AzureError:
                        raise
                    except Exception:  # noqa: BLE001 - one rule's failure spares the others
                        self.stats.errors += 1
                        log.exception("alerts.rule_failed %s on %s", plan.rule.name, item.entry.id,
                                      extra={"rule": plan.rule.name, "contentType": ref.content_type,
                                             "contentId": ref.content_id})
        finally:
            self.stats.matched += matched
        for (plan, key), seen in sightings.items():
            try:
                self._first_seen(plan.rule, key, seen)
            except AzureError:
                raise
            except Exception:  # noqa: BLE001
                self.stats.errors += 1
                log.exception("alerts.rule_failed %s first-seen", plan.rule.name,
                              extra={"rule": plan.rule.name, "contentType": ref.content_type, "contentId": ref.content_id})
        # A blob's windows by their partition (every rule's and start's): each partition's windows
        # are written and read back together.
        groups: dict[int, dict[tuple[_Plan, tuple[str, ...], int], dict[str, tuple[dict[str, str | float], Event]]]] = {}
        for (plan, key, epoch_start), rows in windows.items():
            groups.setdefault(partition_of(epoch_start), {})[(plan, key, epoch_start)] = rows
        # One after the other: a pool of threads saved wall time on Azurite but cost more CPU than
        # the rules' matching (bench_alerts), and an instance's throughput is bound by its CPU.
        for partition, by_window in groups.items():
            self._partition(datetime.fromtimestamp(partition, UTC), by_window, ref)

    def _partition(self, partition: datetime, by_window: Mapping[tuple[_Plan, tuple[str, ...], int], Mapping[
            str, tuple[Mapping[str, str | float], Event]]], ref: ContentRef) -> None:
        try:
            self._windows(partition, by_window, ref)
        except AzureError:
            raise
        except Exception:  # noqa: BLE001
            self.stats.errors += 1
            log.exception("alerts.rule_failed windows %s", format_iso(partition),
                          extra={"contentType": ref.content_type, "contentId": ref.content_id})

    def _rules_for(self, operation: str) -> tuple[tuple[_Plan, Predicate | None], ...]:
        if len(self._for_operation) >= OPERATION_CACHE:  # hostile or drifting input: stay bounded
            self._for_operation.clear()
        found = []
        for plan in self._plans:
            predicate = plan.rule.for_operation(operation)
            if predicate is not False:
                found.append((plan, None if predicate is True else predicate))
        self._for_operation[operation] = result = tuple(found)
        return result

    # -- the three kinds

    def _record_key(self, event: Event) -> str:
        org = event.entry.organizationId
        if not org:
            return event.entry.id
        org = org.lower()
        return event.entry.id if org == self._tenant else f"{event.entry.id}|{org}"

    def _event_alert(self, rule: Rule, event: Event) -> Alert:
        entry = event.entry
        return Alert(alert_id(rule.name, self._record_key(event)), rule.name, rule.severity, entry.when, entry.user,
                     _summary(rule, entry.operation, entry.user, entry.object), (entry.id,), 1, "event")

    def _first_seen(self, rule: Rule, key: tuple[str, ...], seen: Sequence[tuple[datetime, str, Event]]) -> None:
        """A blob's sightings of one first-seen key, in blob order: one store call (a get and at most
        one write) unless this process knows them all to be inside the key's stored [first, last]
        and none to be the episode's opener. Storage only ever widens that span (and a new episode
        opens only beyond it), so such sightings change nothing and raise nothing."""
        assert rule.window is not None
        digest = key_hash(key)
        known = self._seen.get((rule.name, digest))
        if known is not None and all(known.first <= when <= known.last and record != known.opened
                                     for when, record, _ in seen):
            return
        events = {record: (when, event) for when, record, event in reversed(seen)}  # each record's first sighting
        pending = [(when, record) for when, record, _ in seen]
        while pending:
            due, state, used = self.seen.sightings(rule.name, digest, pending, rule.window)
            if state is not None:
                if len(self._seen) >= FIRED_CACHE:
                    self._seen.clear()
                self._seen[(rule.name, digest)] = state
            for opened in due:
                when, event = events[opened]
                entry = event.entry
                self.raise_alert(Alert(alert_id(rule.name, digest, opened), rule.name, rule.severity, when, entry.user,
                                  _summary(rule, entry.operation, entry.user, entry.object)
                                  + f" (first in {_span(rule.window)})",
                                  (entry.id,), 1, "first-seen", dict(zip(rule.key, key, strict=True))))
            pending = pending[used:]

    def _windows(self, partition: datetime, by_window: Mapping[tuple[_Plan, tuple[str, ...], int], Mapping[
            str, tuple[Mapping[str, str | float], Event]]], ref: ContentRef) -> None:
        """A blob's rows of the windows of one partition, every rule, key and start at once: written
        (one transaction per 100 rows), then those windows' rows read back. Writing first, then
        reading, is what makes the last of several writers see every row (docs/alerts.md "Exactly
        once")."""
        open_windows: dict[str, tuple[_Plan, tuple[str, ...], int, str]] = {}
        for plan, key, epoch_start in by_window:
            rule = plan.rule
            slot = (rule.name, key, epoch_start)
            ids = self._window_ids.get(slot)
            if ids is None:  # a window is met by many blobs: its name and alert id once
                if len(self._window_ids) >= FIRED_CACHE:
                    self._window_ids.clear()
                digest = key_hash(key)
                ids = self._window_ids[slot] = (window_name(rule.name, digest, epoch_start),
                                                alert_id(rule.name, digest, str(epoch_start)))
            if ids[1] not in self._fired:  # else stored and queued by this process already: closed for us
                open_windows[ids[0]] = (plan, key, epoch_start, ids[1])
        if not open_windows:
            return
        self.windows.add(partition, {window: [WindowRow(record, values) for record, (values, _)
                                              in by_window[(plan, key, epoch_start)].items()]
                                     for window, (plan, key, epoch_start, _) in open_windows.items()})
        stored = self.windows.rows(partition, list(open_windows), limit=_ROW_LIMIT)
        for window, (plan, key, epoch_start, identity) in open_windows.items():
            rule = plan.rule
            start = datetime.fromtimestamp(epoch_start, UTC)
            try:
                self._window(rule, key, start, identity, by_window[(plan, key, epoch_start)], stored.get(window, []))
            except AzureError:
                raise
            except Exception:  # noqa: BLE001 - one window's failure spares the others
                self.stats.errors += 1
                log.exception("alerts.rule_failed %s window %s", rule.name, format_iso(start),
                              extra={"rule": rule.name, "contentType": ref.content_type, "contentId": ref.content_id})

    def _window(self, rule: Rule, key: tuple[str, ...], start: datetime, identity: str,
                rows: Mapping[str, tuple[Mapping[str, str | float], Event]], stored: Sequence[WindowRow]) -> None:
        assert rule.window is not None and rule.threshold is not None
        if len(stored) < rule.threshold.min_rows:
            return  # too few records for any count or distinct test to hold (most windows)
        measures = measure(rule, stored)
        if not rule.threshold.holds(measures):
            return
        events = [event for _, event in rows.values()]
        users = sorted({e.entry.user for e in events if e.entry.user})
        user = dict(zip(rule.key, key, strict=True)).get("user") or (users[0] if len(users) == 1 else "")
        where = ", ".join(f"{name}={value}" for name, value in zip(rule.key, key, strict=True) if value)
        summary = (f"{rule.description} {len(stored)} records in {_span(rule.window)} from {format_iso(start)}"
                   f"{f' ({where})' if where else ''}: {rule.threshold.describe()}")
        records = tuple(sorted(row.record.split("|", 1)[0] for row in stored))[:MAX_RECORD_IDS]
        self.raise_alert(Alert(identity, rule.name, rule.severity, start, user, summary, records, len(stored), "threshold",
                          dict(zip(rule.key, key, strict=True)), start + rule.window))

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
