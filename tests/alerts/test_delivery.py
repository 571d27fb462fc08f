"""Delivery from the alert queue to a local webhook receiver: each alert once, signed with
HMAC-SHA256; a failing receiver is retried from the queue; the Teams and Slack shapes."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from collector.alerts.deliver import ID_HEADER, SIGNATURE_HEADER, webhook_body
from collector.alerts.engine import Alert
from collector.errors import CollectorError
from simulator import stories
from tests.integration.world import START, World

from .helpers import collect

SECRET = "s3cret-for-tests"


class Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[dict[str, str], bytes]] = []
        self.fail_next = 0


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.server.fail_next:
            self.server.fail_next -= 1
            self.send_response(503)
        else:
            self.server.seen.append((dict(self.headers), body))
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_the_webhook_sees_each_alert_once_with_a_valid_signature(world: World, receiver: Receiver) -> None:
    when = START - timedelta(hours=2)
    for index, name in enumerate(stories.HEADLINE):
        stories.publish(world.sim, name, when + index * timedelta(minutes=10))
    services = world.services(ALERT_WEBHOOK_URL=f"http://127.0.0.1:{receiver.server_port}/hook",
                              ALERT_WEBHOOK_SECRET=SECRET)
    collect(services)
    queue = services.alerts.queue.client
    deliverer = services.alerts.deliverer
    receiver.fail_next = 1  # the first POST fails: that message stays and is retried
    attempts = 0
    for _ in range(4):  # a failed message becomes visible again after its 1 s visibility timeout
        if _ and queue.get_queue_properties().approximate_message_count == 0:
            break
        time.sleep(1.1 if _ else 0)
        for message in queue.receive_messages(max_messages=32, visibility_timeout=1):
            attempts += 1
            try:
                deliverer.deliver_message(message.content)
            except CollectorError:
                continue  # the host retries it (here: the next receive, once visible again)
            if attempts == 2:
                deliverer.deliver_message(message.content)  # delivered twice by the host: sent once
            queue.delete_message(message)
    ids = [headers[ID_HEADER] for headers, _ in receiver.seen]
    rules = sorted(json.loads(body)["rule"] for _, body in receiver.seen)
    assert len(ids) == len(set(ids)) == 6, rules  # the five stories, and the spray's credential stuffing
    for headers, body in receiver.seen:
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers[SIGNATURE_HEADER], expected)
        assert json.loads(body)["id"] == headers[ID_HEADER]


def test_teams_and_slack_bodies() -> None:
    alert = Alert("a" * 32, "password-spray", "high", START, "megan@contoso.com", "spray from 198.51.100.66",
                  ("r1",), 20, "threshold")
    teams = webhook_body(alert, "teams")
    card = teams["attachments"][0]
    assert teams["type"] == "message" and card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard" and "password-spray" in card["content"]["body"][0]["text"]
    slack = webhook_body(alert, "slack")
    assert slack["text"].startswith("[HIGH] password-spray") and slack["blocks"][0]["type"] == "header"
    assert webhook_body(alert, "json")["recordIds"] == ["r1"]
