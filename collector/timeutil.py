"""Timestamps of the Management Activity API and of audit records (docs/api-behaviour.md
"Timestamps"), and the clock seam."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Protocol

_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$",
    re.IGNORECASE,
)


class Clock(Protocol):
    """The only source of "now" in the collector, so tests can move time."""

    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def parse_time(text: str) -> datetime:
    """Parse an API or record timestamp into an aware UTC datetime.

    Records use `YYYY-MM-DDTHH:MM:SS` without suffix, which is UTC; the API's own fields
    carry `.fffZ`; server-built NextPageUri values carry 7 fractional digits. All are accepted.
    """
    match = _TIME.match(text.strip())
    if not match:
        raise ValueError(f"not an ISO 8601 timestamp: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    value = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro)
    if zone and zone.upper() != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset = sign * (int(digits[:2]) * 60 + int(digits[2:]))
        return value.replace(tzinfo=timezone(timedelta(minutes=offset))).astimezone(UTC)
    return value.replace(tzinfo=UTC)


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def format_api_time(value: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS` in UTC: the documented request format, no `+` to mis-encode."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S")


def format_record_time(value: datetime) -> str:
    """The normalized `time` field: `YYYY-MM-DDTHH:MM:SSZ`."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_exact_time(value: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS[.ffffff]Z`: exact to the microsecond, the fraction only when there is one
    (the query API's pinned `start`/`end` in next links and its range error messages)."""
    micro = as_utc(value).microsecond
    return format_api_time(value) + (f".{micro:06d}" if micro else "") + "Z"


def format_iso(value: datetime) -> str:
    """Our own stored timestamps: ISO 8601 with milliseconds and Z."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.") + f"{as_utc(value).microsecond // 1000:03d}Z"
