"""Our own silence is an alert: the health rules of rules.json (kind `health`) over the
/api/health document (HealthReporter.report(), read as it is; health.py stays as it is).

- feed-silent: a content type's checkpoint trails now by more than the rule's window.
- feed-empty: listing succeeds but a content type indexed no record in the last 24 hours.
- queue-stuck: the oldest queued content has waited longer than the window (the queue is not draining).
- poison: messages wait in the poison queue.
- subscription-disabled: the last listing error is AF20022/AF20023 (no or a disabled subscription).

Each alert is about one episode, and its id derives from it (the checkpoint it is stuck at, the
waiting content, the error's time, the day), so checking every few minutes raises it once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from ..timeutil import Clock, parse_time
from .engine import Alert, alert_id
from .rules import Rule

log = logging.getLogger(__name__)


def _day(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def health_alerts(rules: Iterable[Rule], report: Mapping[str, Any], now: datetime) -> list[Alert]:
    """The alerts a health report calls for (pure)."""
    out = []
    types = [t for t in report.get("contentTypes", []) if isinstance(t, dict)]
    for rule in rules:
        if rule.kind != "health":
            continue

        def alert(episode: str, when: datetime, summary: str, key: dict[str, str], r: Rule = rule) -> Alert:
            return Alert(alert_id(r.name, *key.values(), episode), r.name, r.severity, when.replace(microsecond=0), "",
                         f"{r.description} {summary}", (), 1, "health", key)

        window = rule.window or timedelta(0)
        if rule.check == "feed-silent":
            for t in types:
                lag = t.get("lagSeconds")
                if t.get("checkpoint") and lag is not None and lag > window.total_seconds():
                    out.append(alert(t["checkpoint"], parse_time(t["checkpoint"]),
                                     f"{t['contentType']}: checkpoint {t['checkpoint']}, {lag // 60} min behind",
                                     {"contentType": t["contentType"]}))
        elif rule.check == "feed-empty":
            for t in types:
                last = t.get("lastSuccessfulCollect")
                if last and t.get("recordsIndexedLast24h") == 0 and now - parse_time(last) < window:
                    out.append(alert(f"{_day(now):%Y%m%d}", _day(now), f"{t['contentType']}: 0 records in 24 h",
                                     {"contentType": t["contentType"]}))
        elif rule.check == "queue-stuck":
            waiting = report.get("oldestWaiting")
            if isinstance(waiting, dict) and waiting.get("waitSeconds", 0) > window.total_seconds():
                out.append(alert(str(waiting.get("contentId")), parse_time(str(waiting["queuedAt"])),
                                 f"{waiting.get('contentType')} content {waiting.get('contentId')} waited "
                                 f"{waiting['waitSeconds'] // 60} min", {"contentType": str(waiting.get("contentType"))}))
        elif rule.check == "poison":
            poison = report.get("poisonQueue") or {}
            count = int(poison.get("approximateMessages") or 0)
            if count:
                out.append(alert(f"{_day(now):%Y%m%d}", _day(now), f"{count} message(s) in {poison.get('name')}",
                                 {"queue": str(poison.get("name"))}))
        elif rule.check == "subscription-disabled":
            for t in types:
                error = str(t.get("lastError") or "")
                if ("AF20022" in error or "AF20023" in error) and t.get("lastErrorAt"):
                    out.append(alert(t["lastErrorAt"], parse_time(t["lastErrorAt"]), f"{t['contentType']}: {error[:300]}",
                                     {"contentType": t["contentType"]}))
    return out


class SilenceCheck:
    """Runs the health rules on a timer: report → alerts → stored and queued (once per episode)."""

    def __init__(self, rules: Iterable[Rule], report: Callable[[], Mapping[str, Any]],
                 raise_alert: Callable[[Alert], None], *, clock: Clock) -> None:
        self.rules = [rule for rule in rules if rule.kind == "health"]
        self.report = report
        self.raise_alert = raise_alert
        self.clock = clock

    def run(self) -> list[Alert]:
        if not self.rules:
            return []
        found = health_alerts(self.rules, self.report(), self.clock.now())
        for alert in found:
            self.raise_alert(alert)
        return found
