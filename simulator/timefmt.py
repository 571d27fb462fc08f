"""Timestamp formats the Management Activity API reads and writes (docs/api-behaviour.md "Timestamps", "Paging",
"Content and page identifiers").

Each format is used in exactly one place by the real service, so each has its own function:
request parameters are lenient, server output is fixed-width.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# "Timestamps": documented YYYY-MM-DD, YYYY-MM-DDTHH:MM, YYYY-MM-DDTHH:MM:SS; observed: fractions (up to 7
# digits, as in server-made NextPageUri values) and a trailing Z or a numeric offset.
_API_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$",
    re.IGNORECASE,
)


def parse_api_time(text: str) -> datetime:
    """Parse a startTime/endTime value; naive means UTC. Raises ValueError when unreadable."""
    match = _API_TIME.match(text.strip())
    if not match:
        raise ValueError(f"unreadable time {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    value = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro, tzinfo=UTC)
    if zone and zone.upper() != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        value -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return value


def utc(value: datetime) -> datetime:
    """An aware UTC datetime; naive input is taken as UTC (the API's convention)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def to_millis(value: datetime) -> datetime:
    """Truncate to milliseconds: the API shows contentCreated/contentExpiration with 3 digits ("Timestamps")."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def content_time(value: datetime) -> str:
    """contentCreated / contentExpiration / notificationSent: `2023-10-16T00:56:46.231Z` ("Timestamps")."""
    value = utc(value)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def page_time(value: datetime) -> str:
    """startTime/endTime inside a server-made NextPageUri: 7 fractional digits and Z ("Paging")."""
    value = utc(value)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond:06d}0Z"


def record_time(value: datetime) -> str:
    """Record CreationTime: `YYYY-MM-DDTHH:MM:SS`, UTC, no fraction, no suffix ("Timestamps", "Common fields")."""
    return utc(value).strftime("%Y-%m-%dT%H:%M:%S")


def id_stamp(value: datetime, extra: int) -> str:
    """The 23-digit stamp of content ids: yyyyMMddHHmmssfff + 6 more digits ("Content and page identifiers")."""
    value = utc(value)
    return value.strftime("%Y%m%d%H%M%S") + f"{value.microsecond // 1000:03d}{extra % 1_000_000:06d}"


def parse_id_stamp(stamp: str) -> datetime:
    """Inverse of id_stamp's first 17 digits (the millisecond timestamp)."""
    value = datetime.strptime(stamp[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    return value + timedelta(milliseconds=int(stamp[14:17]))


def epoch_seconds(value: datetime) -> float:
    return (utc(value) - EPOCH).total_seconds()
