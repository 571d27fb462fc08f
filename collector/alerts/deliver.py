"""Delivery of a stored alert to the outputs the user configured, from the alert queue.

Outputs, each sent once per alert (the alert row's `delivered` lists those done, so a retry of the
message skips them, and one instance at a time sends them: see `Deliverer`):
- `event`: always. A structured log event `alert.raised` whose fields (alertId, rule, severity...)
  Application Insights shows as the custom dimensions of a trace, queryable like a custom event.
- `webhook` (ALERT_WEBHOOK_URL): ALERT_WEBHOOK_FORMAT `json` (the alert's JSON), `teams` (an
  Adaptive Card message, the Teams Workflows incoming-webhook format) or `slack` (Slack's incoming
  webhook `text` + `blocks`). With ALERT_WEBHOOK_SECRET every request carries
  `X-AuditKeep-Signature: sha256=<hex HMAC-SHA256 of the exact body with the secret>`, and always
  `X-AuditKeep-Alert-Id` (receivers dedupe on it: delivery is at least once).
- `queue` (ALERT_OUTPUT_QUEUE): the alert's JSON as a message, for your own consumer.

A failed output raises: the queue host retries the message (and after its attempts moves it to
the poison queue), never the ingest path.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import requests

from ..errors import CollectorError
from ..timeutil import Clock, SystemClock, format_iso, parse_time
from .engine import Alert
from .store import decode_message, from_entity

log = logging.getLogger(__name__)

FORMATS = ("json", "teams", "slack")
SIGNATURE_HEADER = "X-AuditKeep-Signature"
ID_HEADER = "X-AuditKeep-Alert-Id"
TIMEOUT_SECONDS = 15.0
# A lease covers sending one output: a webhook POST is at most a connect and a read of
# TIMEOUT_SECONDS each; each output marked done renews it for the next.
LEASE_SECONDS = 2 * TIMEOUT_SECONDS + 30
CLAIM_ATTEMPTS = 5
# A message put back behind another attempt's lease counts its deferrals, so that an alert whose
# lease keeps being taken still ends in the poison queue (a new message restarts the host's
# dequeue count).
MAX_DEFERRALS = 10
_COLOURS = {"critical": "attention", "high": "attention", "medium": "warning", "low": "accent", "informational": "default"}


class AlertRows(Protocol):
    def read(self, row_key: str) -> tuple[dict[str, Any], str] | None: ...  # the row and its ETag

    def update(self, row_key: str, values: Mapping[str, Any], etag: str) -> str | None: ...  # None: changed since


class MessageSink(Protocol):
    def send_message(self, content: str, **kwargs: Any) -> object: ...


class Redelivery(Protocol):
    def send_later(self, body: str, delay_seconds: int) -> None: ...


@dataclass(frozen=True)
class Busy:
    """Another instance holds the row's live lease until `until`."""
    until: datetime


def delivered(entity: Mapping[str, Any]) -> list[str]:
    return [name for name in str(entity.get("delivered") or "").split(",") if name]


def lease_holder(entity: Mapping[str, Any], now: datetime) -> Busy | None:
    """The live lease on an alert row, if any (pure). A row without one (written before leases,
    released, or expired: its holder crashed or stalled) is free."""
    until = str(entity.get("leaseUntil") or "")
    if not until:
        return None
    end = parse_time(until)
    return Busy(end) if end > now else None


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    format: str = "json"
    secret: str = ""


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def webhook_body(alert: Alert, fmt: str) -> dict[str, Any]:
    """The request body of one alert in a webhook format (pure)."""
    data = alert.as_dict()
    title = f"[{alert.severity.upper()}] {alert.rule}"
    facts = [("Time", data["time"]), ("User", alert.user or "-"), ("Records", str(alert.count)), ("Alert id", alert.id)]
    if fmt == "teams":
        return {"type": "message", "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None,
            "content": {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                        "version": "1.4", "body": [
                            {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": True,
                             "color": _COLOURS.get(alert.severity, "default")},
                            {"type": "TextBlock", "text": alert.summary, "wrap": True},
                            {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts]}]}}]}
    if fmt == "slack":
        return {"text": f"{title}: {alert.summary}", "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": alert.summary[:2900]}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in facts]}]}
    return data


class Deliverer:
    """Sends one alert-queue message's alert to the outputs not yet done, under a lease.

    An alert can have two delivery messages (docs/alerts.md, "Exactly once"), and the host can run
    a message again while a slow first attempt still runs (its visibility timeout expired). So
    before sending, an attempt claims the alert row: `leaseOwner` (its own token) and `leaseUntil`
    (now + LEASE_SECONDS), written under the ETag it read. Of two attempts that read the row at the
    same moment, one claim succeeds and the other gets 412, reads again, finds the live lease and
    puts the message back on the queue, invisible until the lease ends (`retry`), instead of failing
    (which would count towards the poison queue). Each output sent is marked done under the ETag of
    the previous write, renewing the lease; the last mark releases it. A lease that runs out (its
    holder crashed or stalled) frees the row: the next attempt sends what is not marked done. A
    write of another field meanwhile (`queued`) is not a lost lease: `_mark` reads the row again
    and, while the lease is still ours, writes again. So a
    webhook or output queue sees an alert twice only after a crash between its send and its mark,
    or a send slower than the lease; receivers dedupe on `X-AuditKeep-Alert-Id`."""

    def __init__(self, rows: AlertRows, *, webhook: WebhookConfig | None = None, output_queue: MessageSink | None = None,
                 retry: Redelivery | None = None, clock: Clock | None = None,
                 post: Callable[..., requests.Response] | None = None) -> None:
        self.rows = rows
        self.webhook = webhook
        self.output_queue = output_queue
        self.retry = retry
        self.clock = clock or SystemClock()
        self.post = post or requests.post

    def deliver_message(self, body: bytes | str) -> list[str]:
        """One alert-queue message; the outputs sent by this attempt."""
        _, row_key = decode_message(body)
        owner = uuid.uuid4().hex
        claimed = self._claim(row_key, owner)
        if isinstance(claimed, Busy):
            self._later(body, row_key, claimed)
            return []
        if claimed is None:
            return []
        entity, etag = claimed
        done = delivered(entity)
        alert = from_entity(entity)
        sent: list[str] = []
        pending = [(name, send) for name, send in self._outputs() if name not in done]
        for index, (name, send) in enumerate(pending):
            try:
                send(alert)
            except Exception:
                self._release(row_key, owner, etag, done)  # the host's retry need not wait for the lease
                raise
            done.append(name)
            sent.append(name)
            last = index == len(pending) - 1
            values = {"delivered": ",".join(sorted(done)), "leaseOwner": "" if last else owner,
                      "leaseUntil": "" if last else self._lease_end()}
            renewed = self._mark(row_key, owner, etag, values)
            if renewed is None:  # our lease ran out and another attempt claimed the row: it sends the rest
                log.warning("alerts.lease_lost %s after %s: another attempt goes on", alert.id, name,
                            extra={"alertId": alert.id, "output": name})
                return sent
            etag = renewed
        return sent

    def _mark(self, row_key: str, owner: str, etag: str, values: Mapping[str, Any]) -> str | None:
        """`values` written while the lease is ours: the new ETag, or None once another attempt
        holds it. A write of another field meanwhile (the engine marks the row queued right after
        queueing its message, so often while it is delivered) is not a lost lease: read again,
        write again."""
        for _ in range(CLAIM_ATTEMPTS):
            written = self.rows.update(row_key, values, etag)
            if written is not None:
                return written
            found = self.rows.read(row_key)
            if found is None or str(found[0].get("leaseOwner") or "") != owner:
                return None
            etag = found[1]
        raise CollectorError(f"alert {row_key[10:]}: the row changed under {CLAIM_ATTEMPTS} writes in a row; retried")

    def _claim(self, row_key: str, owner: str) -> tuple[dict[str, Any], str] | Busy | None:
        """The row and the ETag of our claim on it; Busy when another attempt holds it; None when
        every output is done already."""
        for _ in range(CLAIM_ATTEMPTS):
            found = self.rows.read(row_key)
            if found is None:
                raise CollectorError(f"alert {row_key[10:]} is queued but not stored (row {row_key})")
            entity, etag = found
            done = delivered(entity)
            if all(name in done for name, _ in self._outputs()):
                return None
            busy = lease_holder(entity, self.clock.now())
            if busy is not None:
                return busy
            claimed = self.rows.update(row_key, {"leaseOwner": owner, "leaseUntil": self._lease_end()}, etag)
            if claimed is not None:
                return entity, claimed
        raise CollectorError(f"alert {row_key[10:]}: the row changed under {CLAIM_ATTEMPTS} claims in a row; retried")

    def _release(self, row_key: str, owner: str, etag: str, done: list[str]) -> None:
        try:
            self._mark(row_key, owner, etag, {"delivered": ",".join(sorted(done)), "leaseOwner": "", "leaseUntil": ""})
        except Exception as exc:  # noqa: BLE001 - the send's error is the one raised; the lease then runs out
            log.warning("alerts.lease_not_released %s: %s", row_key[10:], exc, extra={"alertId": row_key[10:]})

    def _lease_end(self) -> str:
        return format_iso(self.clock.now() + timedelta(seconds=LEASE_SECONDS))

    def _later(self, body: bytes | str, row_key: str, busy: Busy) -> None:
        wait = max(1, math.ceil((busy.until - self.clock.now()).total_seconds()) + 1)
        log.info("alerts.delivery_deferred %s: another attempt holds it for %d s", row_key[10:], wait,
                 extra={"alertId": row_key[10:], "waitSeconds": wait})
        message = json.loads(body)
        deferrals = int(message.get("deferrals", 0))
        if self.retry is None or deferrals >= MAX_DEFERRALS:  # the host retries it (and in the end: poison)
            raise CollectorError(f"alert {row_key[10:]} is being delivered by another attempt "
                                 f"(deferred {deferrals} times); retried")
        self.retry.send_later(json.dumps({**message, "deferrals": deferrals + 1}), wait)

    def _outputs(self) -> list[tuple[str, Callable[[Alert], None]]]:
        outputs: list[tuple[str, Callable[[Alert], None]]] = [("event", self._event)]
        if self.webhook is not None:
            outputs.append(("webhook", self._webhook))
        if self.output_queue is not None:
            outputs.append(("queue", self._queue))
        return outputs

    @staticmethod
    def _event(alert: Alert) -> None:
        log.warning("alert.raised %s %s: %s", alert.rule, alert.severity, alert.summary,
                    extra=_dimensions(alert.as_dict()))

    def _webhook(self, alert: Alert) -> None:
        assert self.webhook is not None
        body = json.dumps(webhook_body(alert, self.webhook.format), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json", ID_HEADER: alert.id}
        if self.webhook.secret:
            headers[SIGNATURE_HEADER] = signature(self.webhook.secret, body)
        try:
            response = self.post(self.webhook.url, data=body, headers=headers, timeout=TIMEOUT_SECONDS)
        except requests.RequestException as exc:
            raise CollectorError(f"alert webhook unreachable ({exc.__class__.__name__}); retried from the queue") from None
        if not 200 <= response.status_code < 300:
            raise CollectorError(f"alert webhook answered {response.status_code}; retried from the queue")

    def _queue(self, alert: Alert) -> None:
        assert self.output_queue is not None
        self.output_queue.send_message(json.dumps(alert.as_dict(), ensure_ascii=False))


def _dimensions(data: Mapping[str, Any]) -> dict[str, Any]:
    # `extra` keys become custom dimensions; camelCase, prefixed so they never clash with LogRecord's.
    return {"alertId": data["id"], "alertRule": data["rule"], "alertSeverity": data["severity"],
            "alertTime": data["time"], "alertUser": data["user"], "alertCount": data["count"],
            "alertRecordIds": ",".join(data["recordIds"][:20])}
