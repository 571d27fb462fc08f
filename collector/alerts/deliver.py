"""Delivery of a stored alert to the outputs the user configured, from the alert queue.

Outputs, each sent once per alert (the alert row's `delivered` lists those done, so a retry of the
message skips them):
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import requests

from ..errors import CollectorError
from .engine import Alert
from .store import decode_message, from_entity

log = logging.getLogger(__name__)

FORMATS = ("json", "teams", "slack")
SIGNATURE_HEADER = "X-AuditKeep-Signature"
ID_HEADER = "X-AuditKeep-Alert-Id"
TIMEOUT_SECONDS = 15.0
_COLOURS = {"critical": "attention", "high": "attention", "medium": "warning", "low": "accent", "informational": "default"}


class AlertRows(Protocol):
    def get(self, row_key: str) -> dict[str, Any] | None: ...

    def mark_delivered(self, row_key: str, outputs: list[str]) -> None: ...


class MessageSink(Protocol):
    def send_message(self, content: str, **kwargs: Any) -> object: ...


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
    def __init__(self, rows: AlertRows, *, webhook: WebhookConfig | None = None, output_queue: MessageSink | None = None,
                 post: Callable[..., requests.Response] | None = None) -> None:
        self.rows = rows
        self.webhook = webhook
        self.output_queue = output_queue
        self.post = post or requests.post

    def deliver_message(self, body: bytes | str) -> list[str]:
        """One alert-queue message; the outputs sent by this attempt."""
        _, row_key = decode_message(body)
        entity = self.rows.get(row_key)
        if entity is None:
            raise CollectorError(f"alert {row_key[10:]} is queued but not stored (row {row_key})")
        done = [name for name in str(entity.get("delivered") or "").split(",") if name]
        alert = from_entity(entity)
        sent = []
        for name, send in self._outputs():
            if name in done:
                continue
            send(alert)
            done.append(name)
            sent.append(name)
            self.rows.mark_delivered(row_key, done)
        return sent

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
