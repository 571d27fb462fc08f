"""The types every layer shares: what a content blob is, a listing window, a normalized audit entry,
and the closed sets of names (index views, processing outcomes, ledger statuses).

Pure data and codecs; no I/O. The string values of the enums are storage and wire formats (table
names, ledger column values, report keys): never change them, only add.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from .errors import MessageFormatError
from .timeutil import format_iso, parse_time

# Content the listing gives no contentExpiration for is assumed to live 7 days, the API's
# documented availability (docs/api-behaviour.md, "Content lifetime").
DEFAULT_CONTENT_LIFETIME = timedelta(days=7)


class View(StrEnum):
    """An index view; the value is the letter in its day tables' names (`{prefix}{view}{yyyyMMdd}`)."""

    TIME = "t"
    USER = "u"
    OPERATION = "o"
    ID = "i"


class Outcome(StrEnum):
    """What processing one queue message came to."""

    INDEXED = "indexed"
    SKIPPED = "skipped"  # a duplicate message: the ledger says it is settled already
    EXPIRED = "expired"  # the API no longer has it and it was never archived


class LedgerStatus(StrEnum):
    """A content blob's status in the ledger (column `s`)."""

    QUEUED = "queued"
    DONE = "done"
    EXPIRED = "expired"
    MISSING = "missing"  # legacy: earlier versions' 404/AF20050 rows; now retried like FAILED (healing.py)
    FAILED = "failed"  # attempts used up for now: retried by a later listing run (healing.py)


@dataclass(frozen=True)
class Window:
    """A listing window of contentCreated: [start, end)."""

    start: datetime  # inclusive
    end: datetime  # exclusive

    def __str__(self) -> str:
        return f"[{self.start:%Y-%m-%dT%H:%M:%S}Z, {self.end:%Y-%m-%dT%H:%M:%S}Z)"


@dataclass(frozen=True)
class ContentRef:
    """One content blob as listed by /subscriptions/content, and as queued for processing."""

    content_type: str
    content_id: str
    content_uri: str
    content_created: datetime
    content_expiration: datetime

    @classmethod
    def from_listing(cls, item: dict[str, Any]) -> ContentRef:
        created = parse_time(str(item["contentCreated"]))
        expiration = item.get("contentExpiration")
        return cls(
            content_type=str(item["contentType"]),
            content_id=str(item["contentId"]),
            content_uri=str(item["contentUri"]),
            content_created=created,
            # Authoritative and opaque (sometimes 14 days); 7 days if a listing omitted it.
            content_expiration=parse_time(str(expiration)) if expiration else created + DEFAULT_CONTENT_LIFETIME,
        )

    # -- the queue message: JSON {"contentType", "contentId", "contentUri", "contentCreated", "contentExpiration"}

    def to_message(self) -> dict[str, str]:
        return {
            "contentType": self.content_type,
            "contentId": self.content_id,
            "contentUri": self.content_uri,
            "contentCreated": format_iso(self.content_created),
            "contentExpiration": format_iso(self.content_expiration),
        }

    @classmethod
    def from_message(cls, body: dict[str, Any]) -> ContentRef:
        return cls.from_listing(body)

    def encode(self) -> str:
        """The queue message text (the queue client base64-encodes it, as the Functions trigger expects)."""
        return json.dumps(self.to_message())

    @classmethod
    def decode(cls, body: bytes | str) -> ContentRef:
        """A queue message's text back to the reference; MessageFormatError when it is not one."""
        try:
            data = json.loads(body)
            if not isinstance(data, dict):
                raise TypeError(f"expected a JSON object, got {type(data).__name__}")
            return cls.from_message(data)
        except (ValueError, KeyError, TypeError) as exc:
            raise MessageFormatError(f"unreadable queue message ({exc.__class__.__name__}: {exc})") from exc


FIELDS = (
    "id", "time", "user", "operation", "object", "result", "clientIp", "userAgent",
    "workload", "recordType", "contentType", "organizationId",
)


@dataclass(frozen=True)
class AuditEntry:
    """One record's normalized fields, in the order of the query API's records (docs/normalization.md)."""

    id: str
    time: str  # YYYY-MM-DDTHH:MM:SSZ
    user: str
    operation: str
    object: str
    result: str
    clientIp: str  # noqa: N815 - the API's field name
    userAgent: str  # noqa: N815
    workload: str
    recordType: int | None  # noqa: N815
    contentType: str  # noqa: N815
    organizationId: str  # noqa: N815

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELDS}

    @property
    def when(self) -> datetime:
        return parse_time(self.time)
