"""drain: what the Functions queue host does in Azure, for the CLI, the bench and tests.

It processes messages with a few threads, deletes each one that succeeded, makes a failed one
visible again after a delay, and moves it to the poison queue after `max_dequeue_count` attempts,
as the host does with host.json's queue settings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Protocol

from azure.storage.queue import QueueMessage

from .collect import ProcessResult
from .models import Outcome
from .settings import Settings

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
PROGRESS_SECONDS = 10.0  # progress lines at most this often


def _quiet(_: str) -> None:
    return None


class MessageQueue(Protocol):
    """The work queue as the host sees it (ContentQueue in production)."""

    def receive(self, count: int, visibility_timeout: int) -> list[QueueMessage]: ...

    def delete(self, message: QueueMessage) -> None: ...

    def retry_later(self, message: QueueMessage, seconds: int) -> None: ...

    def to_poison(self, message: QueueMessage) -> None: ...

    def depth(self) -> int: ...


class MessageProcessor(Protocol):
    """The queue function (ContentProcessor); its settings give the attempts before poison."""

    settings: Settings

    def process(self, body: bytes | str, dequeue_count: int = 1) -> ProcessResult: ...


@dataclass
class DrainReport:
    processed: int = 0
    records: int = 0
    entities: int = 0
    failed_attempts: int = 0
    poisoned: int = 0
    outcomes: dict[Outcome, int] = field(default_factory=dict)


_Handled = tuple[QueueMessage, ProcessResult | None, Exception | None]


def drain(queue: MessageQueue, processor: MessageProcessor, *, workers: int = 4, visibility_timeout: int = 300,
          retry_delay: int = 2, deadline: float | None = None, limit: int | None = None,
          new_batch_threshold: int | None = None, progress: Progress = _quiet) -> DrainReport:
    """Process the queue until it is empty (or the deadline, or `limit` messages), like the Functions queue trigger.

    Like the host (batchSize / newBatchThreshold in host.json), it keeps every worker busy without
    waiting for a whole batch to finish, so one slow blob never leaves the other workers (and the
    storage service) idle: it holds up to 2 × `workers` messages (one running and one ready per
    worker) and asks the queue for more once no more than `workers` are in hand, which is still one
    per worker. Asking only then, for `workers` or more at a time, costs one receive per `workers`
    messages instead of one per message. `new_batch_threshold` (default `workers`) moves that
    point: 2 × `workers` − 1 asks after every message, as this function did before.
    """
    report = DrainReport()
    max_attempts = processor.settings.max_dequeue_count
    in_hand_max = 2 * workers  # one running and one ready per worker; the rest stay visible to others
    # the host's newBatchThreshold: ask again once this few are in hand
    refill_at = workers if new_batch_threshold is None else max(0, min(new_batch_threshold, in_hand_max - 1))
    received = 0
    started = last_progress = time.monotonic()

    def handle(message: QueueMessage) -> _Handled:
        try:
            return message, processor.process(message.content, dequeue_count=message.dequeue_count or 1), None
        except Exception as exc:  # noqa: BLE001 - settled below, exactly as the host would: retry or poison
            return message, None, exc

    def settle(message: QueueMessage, result: ProcessResult | None, error: Exception | None) -> None:
        attempt = message.dequeue_count or 1
        if result is not None:
            queue.delete(message)
            report.processed += 1
            report.records += result.records
            report.entities += result.entities
            report.outcomes[result.outcome] = report.outcomes.get(result.outcome, 0) + 1
        elif attempt >= max_attempts:
            queue.to_poison(message)
            report.poisoned += 1
            log.error("collect.poisoned message after %d attempts: %s", message.dequeue_count, error,
                      extra={"messageId": message.id, "attempt": attempt, "errorType": type(error).__name__})
        else:
            report.failed_attempts += 1
            log.warning("collect.retry message (attempt %d): %s", message.dequeue_count, error,
                        extra={"messageId": message.id, "attempt": attempt, "errorType": type(error).__name__,
                               "retryDelaySeconds": retry_delay * attempt})
            queue.retry_later(message, retry_delay * attempt)

    in_hand: set[Future[_Handled]] = set()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        while True:
            stopping = (deadline is not None and time.monotonic() >= deadline) or (limit is not None and received >= limit)
            room = in_hand_max - len(in_hand) if len(in_hand) <= refill_at else 0
            if limit is not None:
                room = min(room, limit - received)
            if not stopping and room > 0:
                messages = queue.receive(min(32, room), visibility_timeout)
                received += len(messages)
                in_hand.update(pool.submit(handle, message) for message in messages)
            if not in_hand:
                if stopping or queue.depth() == 0:
                    break
                time.sleep(0.5)  # messages waiting out a retry delay
                continue
            done, in_hand = wait(in_hand, return_when=FIRST_COMPLETED)
            for future in done:
                settle(*future.result())
            if time.monotonic() - last_progress >= PROGRESS_SECONDS or not in_hand:
                last_progress = time.monotonic()
                progress(f"processed {report.processed} blobs, {report.records:,} records "
                         f"({queue.depth()} waiting, {report.poisoned} poisoned)")
    log.info("collect.drain_done %d blobs, %d records, %d poisoned", report.processed, report.records,
             report.poisoned,
             extra={"processed": report.processed, "records": report.records, "entities": report.entities,
                    "failedAttempts": report.failed_attempts, "poisoned": report.poisoned,
                    "durationMs": int((time.monotonic() - started) * 1000)})
    return report
