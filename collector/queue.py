"""The content queue: one message per content blob, base64 JSON as the Functions queue trigger expects."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.storage.queue import QueueMessage, QueueServiceClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from .models import ContentRef

T = TypeVar("T")

# Messages live at most 7 days in a Storage queue by default; content expires in about 7 days too,
# so a message that old can never succeed. Explicit, so the intent is on the page.
MESSAGE_TTL_SECONDS = 7 * 24 * 3600
# A Storage queue takes one message per request: a listing page's messages go this many at a time,
# so a 200-blob page costs about 25 round trips of waiting instead of 200.
SEND_THREADS = 8


class ContentQueue:
    """The work queue and its poison queue `<name>-poison` (the Functions host's naming)."""

    def __init__(self, service: QueueServiceClient, name: str) -> None:
        codec: dict[str, Any] = {
            "message_encode_policy": TextBase64EncodePolicy(),
            "message_decode_policy": TextBase64DecodePolicy(),
        }
        self._work = service.get_queue_client(name, **codec)
        self._poison = service.get_queue_client(f"{name}-poison", **codec)

    @property
    def name(self) -> str:
        return self._work.queue_name

    @property
    def poison_name(self) -> str:
        return self._poison.queue_name

    def ensure(self) -> None:
        for client in (self._work, self._poison):
            try:
                client.create_queue()
            except ResourceExistsError:
                pass
            except HttpResponseError as exc:
                if exc.status_code != 403:  # created by the template; the role may not allow creating
                    raise

    def send(self, ref: ContentRef) -> None:
        self._work.send_message(ref.encode(), time_to_live=MESSAGE_TTL_SECONDS)

    def send_all(self, refs: Sequence[ContentRef]) -> None:
        """One message per ref, SEND_THREADS requests in flight. Returns once every one is sent and
        raises the first failure after the others ended, so a caller that marks the ledger after
        it never records a ref whose message may be missing (messages are not ordered anyway: a
        Storage queue is only roughly first in, first out)."""
        if len(refs) <= 1:
            for ref in refs:
                self.send(ref)
            return
        with ThreadPoolExecutor(max_workers=min(SEND_THREADS, len(refs))) as pool:
            for sent in pool.map(self.send, refs):
                del sent  # re-raises the first failure

    def receive(self, count: int, visibility_timeout: int) -> list[QueueMessage]:
        return list(self._work.receive_messages(messages_per_page=count, max_messages=count,
                                                visibility_timeout=visibility_timeout))

    def delete(self, message: QueueMessage) -> None:
        self._work.delete_message(message)

    def retry_later(self, message: QueueMessage, seconds: int) -> None:
        self._work.update_message(message, visibility_timeout=seconds)

    def to_poison(self, message: QueueMessage) -> None:
        """What the Functions host does after maxDequeueCount failures: move it to <queue>-poison."""
        self._poison.send_message(message.content, time_to_live=-1)
        self._work.delete_message(message)

    def depth(self) -> int:
        return _if_exists(lambda: int(self._work.get_queue_properties().approximate_message_count or 0), 0)

    def poison_depth(self) -> int:
        return _if_exists(lambda: int(self._poison.get_queue_properties().approximate_message_count or 0), 0)

    def peek_poison(self, count: int = 32) -> list[dict[str, Any]]:
        messages: list[QueueMessage] = _if_exists(
            lambda: list(self._poison.peek_messages(max_messages=min(count, 32))), [])
        result = []
        for message in messages:
            try:
                result.append(json.loads(message.content))
            except (TypeError, ValueError):
                result.append({"unreadable": True})
        return result

    def replay_poison(self, limit: int = 1000) -> int:
        """Move poison messages back to the work queue (after fixing the cause)."""
        moved = 0
        while moved < limit:
            batch = list(self._poison.receive_messages(max_messages=min(32, limit - moved), visibility_timeout=60))
            if not batch:
                break
            for message in batch:
                self._work.send_message(message.content, time_to_live=MESSAGE_TTL_SECONDS)
                self._poison.delete_message(message)
                moved += 1
        return moved


def _if_exists(read: Callable[[], T], default: T) -> T:
    """`read()`, or `default` when the queue does not exist yet (404): nothing was ever queued."""
    try:
        return read()
    except HttpResponseError as exc:
        if exc.status_code == 404:
            return default
        raise
