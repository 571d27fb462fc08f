"""AlertQueue.drain on Azurite: what the deliver_alert function does, in-process (collect, make run)."""

from __future__ import annotations

from azure.storage.queue import QueueServiceClient

from collector.alerts.store import AlertQueue


def test_delivered_messages_are_deleted_and_failing_ones_retried_then_poisoned(storage_connection_string: str,
                                                                             unique_prefix: str) -> None:
    queue = AlertQueue(QueueServiceClient.from_connection_string(storage_connection_string), unique_prefix.lower())
    queue.ensure()
    for body in ("ok-1", "fails", "ok-2"):
        queue.client.send_message(body)
    seen: list[str] = []

    def deliver(body: str) -> None:
        seen.append(body)
        if body == "fails":
            raise RuntimeError("webhook answered 503")

    assert queue.drain(deliver, max_dequeue=2, visibility_timeout=1) == 2
    assert sorted(seen) == ["fails", "ok-1", "ok-2"]
    import time

    time.sleep(1.5)  # the failed one is visible again: second and last attempt, then the poison queue
    assert queue.drain(deliver, max_dequeue=2, visibility_timeout=1) == 0
    assert seen.count("fails") == 2
    assert [m.content for m in queue.poison.receive_messages()] == ["fails"]
    time.sleep(1.5)
    assert list(queue.client.receive_messages()) == []
