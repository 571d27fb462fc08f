"""GET /api/health: is collection keeping up, per content type (issue 3)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .timeutil import format_iso

if TYPE_CHECKING:
    from .bootstrap import Services

# A content type whose checkpoint is older than this is "lagging": with a 5-minute schedule the
# checkpoint normally trails now by one schedule interval.
LAG_WARNING = timedelta(minutes=30)
RANK = {"ok": 0, "lagging": 1, "error": 2}


def _iso(value: datetime | None) -> str | None:
    return format_iso(value) if value is not None else None


def health_report(services: Services, now: datetime | None = None) -> dict[str, Any]:
    """Per content type: last success, checkpoint, lag, records indexed in 24 h, expired content
    skipped, poison messages, last error; and an overall status (ok, lagging, error)."""
    now = now or services._clock().now()
    states = {state.content_type: state for state in services.state.load_all()}
    configured = list(services.settings.content_types)
    names = configured + sorted(set(states) - set(configured))
    since = now - timedelta(hours=24)
    rows = services.ledger.recent(now)
    poison_total = services.queue.poison_depth()
    types = []
    for name in names:
        state = states.get(name)
        mine = [row for row in rows if row.get("PartitionKey") == name]
        indexed_24h = sum(int(row.get("n") or 0) for row in mine if row.get("s") == "done" and (row.get("d") or "") >= format_iso(since))
        expired = sum(1 for row in mine if row.get("s") in ("expired", "missing"))
        failed = [row for row in mine if row.get("s") == "failed"]
        cursor = state.cursor if state else None
        lag = (now - cursor).total_seconds() if cursor else None
        last_error = state.last_error if state else ""
        if failed and not last_error:
            last_error = str(failed[-1].get("e") or "content processing failed")
        if state is None or cursor is None:
            status = "lagging"  # never collected yet
        elif last_error or failed:
            status = "error"
        elif lag is not None and lag > LAG_WARNING.total_seconds():
            status = "lagging"
        else:
            status = "ok"
        types.append({
            "contentType": name,
            "status": status,
            "lastSuccessfulCollect": _iso(state.last_success_at) if state else None,
            "lastRun": _iso(state.last_run_at) if state else None,
            "checkpoint": _iso(cursor),
            "lagSeconds": int(lag) if lag is not None else None,
            "recordsIndexedLast24h": indexed_24h,
            "expiredContentSkipped": expired,
            "poisonMessages": len(failed),
            "lastError": last_error or None,
            "lastErrorAt": _iso(state.last_error_at) if state else None,
            "contentLostBefore": _iso(state.lost_before) if state else None,
        })
    overall = max((t["status"] for t in types if t["contentType"] in configured), key=RANK.__getitem__, default="lagging")
    if poison_total and overall == "ok":
        overall = "error"
    return {
        "status": overall,
        "time": format_iso(now),
        "poisonQueue": {"name": services.queue.poison.queue_name, "approximateMessages": poison_total},
        "workQueue": {"name": services.queue.queue.queue_name, "approximateMessages": services.queue.depth()},
        "contentTypes": types,
        "notes": "expiredContentSkipped and poisonMessages count content blobs of the last 9 days (the ledger's span).",
    }
