"""GET /api/health: is collection keeping up, per content type (issue 3).

Pure assembly of what the stores report: the state (checkpoint, last run, last error), the ledger's
per content type summaries and the queue depths. The collaborators are Protocols, so the report
can be computed from any store that answers these questions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from .ledger import LedgerSummary
from .state import TypeState
from .timeutil import Clock, format_iso

# A content type whose checkpoint is older than this is "lagging": with a 5-minute schedule the
# checkpoint normally trails now by one schedule interval.
LAG_WARNING = timedelta(minutes=30)
INDEXED_SPAN = timedelta(hours=24)  # recordsIndexedLast24h
Status = Literal["ok", "lagging", "error"]
RANK: dict[Status, int] = {"ok": 0, "lagging": 1, "error": 2}
NOTES = "expiredContentSkipped and poisonMessages count content blobs of the last 9 days (the ledger's span)."


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
    skipped, poison messages, last error; and an overall status (ok, lagging, error)."""

    def __init__(self, *, content_types: Sequence[str], state: StateSource, ledger: LedgerSource,
                 queue: QueueSource, clock: Clock) -> None:
        self.content_types = tuple(content_types)
        self.state = state
        self.ledger = ledger
        self.queue = queue
        self.clock = clock

    def report(self) -> dict[str, Any]:
        now = self.clock.now()
        states = {state.content_type: state for state in self.state.load_all()}
        configured = list(self.content_types)
        names = configured + sorted(set(states) - set(configured))
        summaries = self.ledger.summaries(now, since=now - INDEXED_SPAN)
        poison_total = self.queue.poison_depth()
        statuses: dict[str, Status] = {}
        types = []
        for name in names:
            state = states.get(name)
            summary = summaries.get(name) or LedgerSummary(name)
            status, entry = _type_report(name, state, summary, now)
            statuses[name] = status
            types.append(entry)
        overall = max((statuses[name] for name in configured), key=RANK.__getitem__, default="lagging")
        if poison_total and overall == "ok":
            overall = "error"
        return {
            "status": overall,
            "time": format_iso(now),
            "poisonQueue": {"name": self.queue.poison_name, "approximateMessages": poison_total},
            "workQueue": {"name": self.queue.name, "approximateMessages": self.queue.depth()},
            "contentTypes": types,
            "notes": NOTES,
        }


def _type_report(name: str, state: TypeState | None, summary: LedgerSummary,
                 now: datetime) -> tuple[Status, dict[str, Any]]:
    """One content type's status and its entry of `contentTypes` (pure)."""
    cursor = state.cursor if state else None
    lag = (now - cursor).total_seconds() if cursor else None
    last_error = state.last_error if state else ""
    failed = summary.failed
    if failed and not last_error:
        last_error = failed[-1].error or "content processing failed"
    status: Status
    if state is None or cursor is None:
        status = "lagging"  # never collected yet
    elif last_error or failed:
        status = "error"
    elif lag is not None and lag > LAG_WARNING.total_seconds():
        status = "lagging"
    else:
        status = "ok"
    return status, {
        "contentType": name,
        "status": status,
        "lastSuccessfulCollect": _iso(state.last_success_at) if state else None,
        "lastRun": _iso(state.last_run_at) if state else None,
        "checkpoint": _iso(cursor),
        "lagSeconds": int(lag) if lag is not None else None,
        "recordsIndexedLast24h": summary.records_indexed,
        "expiredContentSkipped": summary.expired_or_missing,
        "poisonMessages": len(failed),
        "lastError": last_error or None,
        "lastErrorAt": _iso(state.last_error_at) if state else None,
        "contentLostBefore": _iso(state.lost_before) if state else None,
    }
