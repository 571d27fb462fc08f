"""Delivery from the alert queue to a local webhook receiver: each alert once, signed with
HMAC-SHA256, also when two instances deliver the same message at once; a failing receiver is
retried from the queue; a crashed attempt's lease delays delivery until it runs out; the Teams
and Slack shapes."""

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
import requests

from collector.alerts.deliver import ID_HEADER, LEASE_SECONDS, MAX_DEFERRALS, SIGNATURE_HEADER, webhook_body
from collector.alerts.engine import Alert
from collector.alerts.store import AlertTable, from_entity
from collector.bootstrap import Services
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


class Together:
    """The alert rows of one attempt whose first read waits for the other attempt's: both read
    the row before either claims it, the race the lease decides (real rows and ETags on Azurite)."""

    def __init__(self, table: AlertTable, barrier: threading.Barrier) -> None:
        self.table = table
        self.barrier: threading.Barrier | None = barrier

    def read(self, row_key: str) -> tuple[dict[str, Any], str] | None:
        found = self.table.read(row_key)
        if self.barrier is not None:
            barrier, self.barrier = self.barrier, None
            barrier.wait(timeout=30)
        return found

    def update(self, row_key: str, values: dict[str, Any], etag: str) -> str | None:
        return self.table.update(row_key, values, etag)


class Recorded:
    """The alert queue, and what was put back on it (invisible for a while, so not readable there)."""

    def __init__(self, services: Services, put_back: list[tuple[str, int]]) -> None:
        self.queue = services.alerts.queue
        self.put_back = put_back

    def send_later(self, body: str, delay_seconds: int) -> None:
        self.put_back.append((body, delay_seconds))
        self.queue.send_later(body, delay_seconds)


def _hooked(world: World, receiver: Receiver) -> Services:
    return world.services(ALERT_WEBHOOK_URL=f"http://127.0.0.1:{receiver.server_port}/hook",
                          ALERT_WEBHOOK_SECRET=SECRET)


def _bodies(services: Services) -> list[str]:
    queue = services.alerts.queue.client
    bodies = []
    for message in queue.receive_messages(max_messages=32, visibility_timeout=300):
        bodies.append(str(message.content))
        queue.delete_message(message)
    return bodies


def test_two_instances_delivering_the_same_message_at_once_send_each_alert_once(world: World, receiver: Receiver) -> None:
    when = START - timedelta(hours=2)
    for index, name in enumerate(stories.HEADLINE):
        stories.publish(world.sim, name, when + index * timedelta(minutes=10))
    one, two = _hooked(world, receiver), _hooked(world, receiver)
    collect(one)
    bodies = _bodies(one)
    put_back: list[tuple[str, int]] = []
    for services in (one, two):
        services.alerts.deliverer.retry = Recorded(services, put_back)
    assert len({json.loads(body)["id"] for body in bodies}) == 6
    outcomes = [_at_once((one, two), body) for body in bodies]  # each message on both at the same moment
    # One attempt of each pair sent both outputs; the other lost the claim (412), read the row
    # again and found the lease (it put the message back) or, when the winner was already done,
    # every output done.
    assert all(sorted([a, b]) == [[], ["event", "webhook"]] for a, b in outcomes), outcomes
    ids = [headers[ID_HEADER] for headers, _ in receiver.seen]
    assert len(ids) == len(set(ids)) == len(set(json.loads(body)["id"] for body in bodies))
    for headers, body in receiver.seen:
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers[SIGNATURE_HEADER], expected)
    # The messages put back (invisible until the lease's end) find every output done.
    assert {json.loads(b)["id"] for b, _ in put_back} <= {json.loads(b)["id"] for b in bodies}
    for body, _ in put_back:
        assert json.loads(body)["deferrals"] == 1
        assert one.alerts.deliverer.deliver_message(body) == []
    assert len(receiver.seen) == len(ids)


def _at_once(instances: tuple[Services, Services], body: str) -> tuple[list[str], list[str]]:
    """`body` delivered by both instances in two threads whose first reads of the row meet."""
    barrier = threading.Barrier(2)
    results: dict[int, list[str]] = {}

    def attempt(slot: int) -> None:
        deliverer = instances[slot].alerts.deliverer
        deliverer.rows = Together(instances[slot].alerts.table, barrier)
        results[slot] = deliverer.deliver_message(body)
    threads = [threading.Thread(target=attempt, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results[0], results[1]


class Crash(BaseException):
    """The process dies mid-send (not an error the deliverer handles)."""


def test_a_crashed_attempts_lease_delays_delivery_until_it_runs_out(world: World, receiver: Receiver) -> None:
    stories.publish(world.sim, "audit-disabled", START - timedelta(hours=1))
    services = _hooked(world, receiver)
    collect(services)
    [body] = _bodies(services)
    deliverer = services.alerts.deliverer
    put_back: list[tuple[str, int]] = []
    deliverer.retry = Recorded(services, put_back)

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise Crash()
    deliverer.post = crash
    with pytest.raises(Crash):
        deliverer.deliver_message(body)  # the event is sent and marked; the webhook POST never returns
    deliverer.post = requests.post
    assert deliverer.deliver_message(body) == []  # the lease is live: put back, not sent
    world.clock.advance(timedelta(seconds=LEASE_SECONDS - 1))
    assert deliverer.deliver_message(body) == []
    with pytest.raises(CollectorError, match="deferred 10 times"):  # an endless lease still ends in poison
        deliverer.deliver_message(json.dumps({**json.loads(body), "deferrals": MAX_DEFERRALS}))
    assert [json.loads(b)["deferrals"] for b, _ in put_back] == [1, 1]
    assert all(0 < delay <= LEASE_SECONDS + 1 for _, delay in put_back)
    world.clock.advance(timedelta(seconds=2))  # the crashed attempt's lease has run out
    receiver.fail_next = 1
    with pytest.raises(CollectorError, match="503"):
        deliverer.deliver_message(body)
    row = services.alerts.table.read(json.loads(body)["rowKey"])
    assert row is not None and row[0]["leaseUntil"] == "" and row[0]["delivered"] == "event"  # released
    assert deliverer.deliver_message(body) == ["webhook"]  # the retry need not wait for a lease
    assert deliverer.deliver_message(body) == []
    assert [headers[ID_HEADER] for headers, _ in receiver.seen] == [json.loads(body)["id"]]
    row = services.alerts.table.read(json.loads(body)["rowKey"])
    assert row is not None and row[0]["leaseUntil"] == "" and row[0]["delivered"] == "event,webhook"


def test_another_write_to_the_row_while_sending_is_not_a_lost_lease(world: World, receiver: Receiver) -> None:
    stories.publish(world.sim, "audit-disabled", START - timedelta(hours=1))
    services = _hooked(world, receiver)
    collect(services)
    [body] = _bodies(services)
    deliverer, table = services.alerts.deliverer, services.alerts.table
    row = table.read(json.loads(body)["rowKey"])
    assert row is not None

    def marked_queued_meanwhile(url: str, **kwargs: Any) -> requests.Response:
        table.mark_queued(from_entity(row[0]))  # the engine's mark, racing with this delivery: a new ETag
        return requests.post(url, **kwargs)
    deliverer.post = marked_queued_meanwhile
    assert deliverer.deliver_message(body) == ["event", "webhook"]
    after = table.read(json.loads(body)["rowKey"])
    assert after is not None and after[0]["delivered"] == "event,webhook" and after[0]["leaseUntil"] == ""
    assert len(receiver.seen) == 1


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
