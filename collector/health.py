"""GET /api/health: is collection keeping up, per content type (issue 3).

Pure assembly of what the stores report: the state (checkpoint, last run, last error), the ledger's
per content type summaries and the queue depths. The collaborators are Protocols, so the report
can be computed from any store that answers these questions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from azure.core.exceptions import AzureError

from .ledger import LedgerSummary, WaitingContent
from .state import TypeState
from .timeutil import Clock, format_iso

INDEXED_SPAN = timedelta(hours=24)  # recordsIndexedLast24h
OLDEST_DAYS_CACHE = timedelta(minutes=15)
log = logging.getLogger(__name__)
# Worst last: ok; lagging (the checkpoint trails, or never collected); degraded (failed content
# heals by itself, poison messages wait for a look); error (the last listing run failed);
# failing (content waits longer than HEALTH_MAX_WAIT_MINUTES, i.e. the queue does not drain, or
# nothing was listed for HEALTH_MAX_LAG_HOURS: content nears the API's 7-day expiry).
Status = Literal["ok", "lagging", "degraded", "error", "failing"]
STATUSES: tuple[Status, ...] = ("ok", "lagging", "degraded", "error", "failing")
RANK: dict[Status, int] = {status: rank for rank, status in enumerate(STATUSES)}
NOTES = ("expiredContentSkipped, failedContent and waiting count content blobs of the last 9 days (the ledger's "
         "span). Poison messages stay in the poison queue after their content healed: clear them once read.")


@dataclass(frozen=True)
class Thresholds:
    """HEALTH_LAG_MINUTES, HEALTH_MAX_WAIT_MINUTES, HEALTH_MAX_LAG_HOURS (collector/settings.py)."""

    lag: timedelta = timedelta(minutes=30)  # a 5-minute schedule's checkpoint trails now by one interval
    max_wait: timedelta = timedelta(minutes=60)  # a queued blob is normally done within minutes
    max_lag: timedelta = timedelta(hours=24)


class StateSource(Protocol):
    def load_all(self) -> Sequence[TypeState]: ...


class LedgerSource(Protocol):
    def summaries(self, now: datetime, *, since: datetime) -> Mapping[str, LedgerSummary]: ...


class QueueSource(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def poison_name(self) -> str: ...

    def depth(self) -> int: ...

    def poison_depth(self) -> int: ...


def _iso(value: datetime | None) -> str | None:
    return format_iso(value) if value is not None else None


class HealthReporter:
    """Per content type: last success, checkpoint, lag, records indexed in 24 h, expired content
    skipped, failed content and its next round, content waiting and the oldest of it, last error;
    overall: the worst content type's status, the queues, and the oldest waiting item of all."""

    def __init__(self, *, content_types: Sequence[str], state: StateSource, ledger: LedgerSource,
                 queue: QueueSource, clock: Clock, thresholds: Thresholds = Thresholds(),
                 oldest_days: Callable[[], Mapping[str, str | None]] | None = None) -> None:
        self.content_types = tuple(content_types)
        self.state = state
        self.ledger = ledger
        self.queue = queue
        self.clock = clock
        self.thresholds = thresholds
        # The oldest day each tier holds (retention.oldest_days: a few listings per year of data),
        # cached: monitors poll health every few minutes and the answer changes once a day.
        self.oldest_days = oldest_days
        self._oldest: tuple[datetime, Mapping[str, str | None]] | None = None

    def report(self) -> dict[str, Any]:
        now = self.clock.now()
        states = {state.content_type: state for state in self.state.load_all()}
        configured = list(self.content_types)
        names = configured + sorted(set(states) - set(configured))
        summaries = self.ledger.summaries(now, since=now - INDEXED_SPAN)
        poison_total = self.queue.poison_depth()
        statuses: dict[str, Status] = {}
        types = []
        oldest: tuple[str, WaitingContent] | None = None
        for name in names:
            state = states.get(name)
            summary = summaries.get(name) or LedgerSummary(name)
            status, entry = _type_report(name, state, summary, now, self.thresholds)
            statuses[name] = status
            types.append(entry)
            waiting = summary.oldest_waiting
            if waiting is not None and (oldest is None or waiting.queued_at < oldest[1].queued_at):
                oldest = (name, waiting)
        overall: Status = max((statuses[name] for name in configured), key=RANK.__getitem__, default="lagging")
        reasons = [f"{name}: {entry['reason']}" for name, entry in zip(names, types, strict=True)
                   if entry["reason"] and name in configured]
        if poison_total and RANK[overall] < RANK["degraded"]:
            overall = "degraded"
        if poison_total:
            reasons.append(f"{poison_total} message(s) in the poison queue {self.queue.poison_name}")
        return {
            "status": overall,
            "reasons": reasons,
            "time": format_iso(now),
            "oldestWaiting": _waiting(oldest[1], now, oldest[0]) if oldest else None,
            "thresholds": {"lagMinutes": _minutes(self.thresholds.lag),
                           "maxWaitMinutes": _minutes(self.thresholds.max_wait),
                           "maxLagHours": self.thresholds.max_lag.total_seconds() / 3600},
            "oldestDay": self._oldest_days(now),
            "poisonQueue": {"name": self.queue.poison_name, "approximateMessages": poison_total},
            "workQueue": {"name": self.queue.name, "approximateMessages": self.queue.depth()},
            "contentTypes": types,
            "notes": NOTES,
        }


    def _oldest_days(self, now: datetime) -> Mapping[str, str | None] | None:
        if self.oldest_days is None:
            return None
        if self._oldest is None or now - self._oldest[0] > OLDEST_DAYS_CACHE or now < self._oldest[0]:
            try:
                self._oldest = (now, dict(self.oldest_days()))
            except AzureError as exc:  # the rest of health still answers; the next call asks again
                log.warning("health.oldest_days_failed %s", exc.__class__.__name__, extra={"error": str(exc)[:300]})
                return {"error": f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"}
        return self._oldest[1]


def _minutes(value: timedelta) -> float:
    return value.total_seconds() / 60


def _waiting(item: WaitingContent, now: datetime, content_type: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"contentType": content_type} if content_type else {}
    entry.update({"contentId": item.content_id, "queuedAt": format_iso(item.queued_at),
                  "waitSeconds": max(0, int((now - item.queued_at).total_seconds())), "retry": item.failed})
    return entry


def _type_report(name: str, state: TypeState | None, summary: LedgerSummary, now: datetime,
                 thresholds: Thresholds = Thresholds()) -> tuple[Status, dict[str, Any]]:
    """One content type's status, the reason for it, and its entry of `contentTypes` (pure)."""
    cursor = state.cursor if state else None
    lag = now - cursor if cursor else None
    last_error = state.last_error if state else ""
    failed = summary.failed
    waiting = summary.oldest_waiting
    wait = now - waiting.queued_at if waiting else None
    status: Status = "ok"
    reason = ""
    if wait is not None and wait > thresholds.max_wait:
        status, reason = "failing", (f"content {waiting.content_id if waiting else ''} has waited "
                                     f"{_span(wait)} (over {_span(thresholds.max_wait)}): the queue is not draining")
    elif lag is not None and lag > thresholds.max_lag:
        status, reason = "failing", f"nothing listed for {_span(lag)} (over {_span(thresholds.max_lag)})"
    elif last_error:
        status, reason = "error", "the last listing run failed (lastError)"
    elif failed:
        status, reason = "degraded", (f"{len(failed)} content blob(s) failed; they are retried by themselves "
                                      "until they expire (nextRetryAt)")
    elif state is None or cursor is None:
        status, reason = "lagging", "never collected yet"
    elif lag is not None and lag > thresholds.lag:
        status, reason = "lagging", f"checkpoint {_span(lag)} behind (over {_span(thresholds.lag)})"
    if failed and not last_error:
        last_error = failed[-1].error or "content processing failed"
    return status, {
        "contentType": name,
        "status": status,
        "reason": reason or None,
        "lastSuccessfulCollect": _iso(state.last_success_at) if state else None,
        "lastRun": _iso(state.last_run_at) if state else None,
        "checkpoint": _iso(cursor),
        "lagSeconds": int(lag.total_seconds()) if lag is not None else None,
        "recordsIndexedLast24h": summary.records_indexed,
        "expiredContentSkipped": summary.expired_or_missing,
        "poisonMessages": len(failed),
        "failedContent": len(failed),
        "nextRetryAt": _iso(summary.next_retry_at),
        "waiting": summary.waiting,
        "oldestWaiting": _waiting(waiting, now) if waiting else None,
        "lastError": last_error or None,
        "lastErrorAt": _iso(state.last_error_at) if state else None,
        "contentLostBefore": _iso(state.lost_before) if state else None,
    }


def _span(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
