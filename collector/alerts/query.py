"""GET /api/alerts: stored alerts, newest first, filtered and paged (framework-free; api.py routes it).

Parameters: `start`, `end` (ISO 8601; start <= time < end), `rule`, `severity`, `user` (exact,
case-insensitive), `top` (1-1000, default 100), `cursor` (from `@odata.nextLink` only). Unknown
parameters are refused (400), as on /api/audit.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, Protocol

from ..errors import QueryError, shown
from ..timeutil import parse_time
from .rules import SEVERITIES
from .store import from_entity, page_cursor, read_cursor

PARAMETERS = ("start", "end", "rule", "severity", "user", "top", "cursor")
DEFAULT_TOP = 100
MAX_TOP = 1000


class AlertScan(Protocol):
    def scan(self, start: datetime | None, end: datetime | None, *, after: str | None = None, rule: str | None = None,
             severity: str | None = None, user: str | None = None) -> Iterator[dict[str, Any]]: ...


def alerts_page(table: AlertScan, pairs: Iterable[tuple[str, str]], base_url: str) -> dict[str, Any]:
    """The JSON body of one page; QueryError (400) for a bad parameter."""
    given: dict[str, str] = {}
    for name, value in pairs:
        if name == "code":
            continue  # the function key, handled by the host
        if name not in PARAMETERS:
            raise QueryError(f"unknown parameter {shown(name)}; /api/alerts takes {', '.join(PARAMETERS)}",
                             parameter=name, code="InvalidParameter")
        if name in given:
            raise QueryError(f"parameter {name} is given twice", parameter=name, code="InvalidParameter")
        if value.strip():
            given[name] = value.strip()
    start, end = _time(given, "start"), _time(given, "end")
    if start and end and end <= start:
        raise QueryError("end must be after start", parameter="end", code="InvalidParameter")
    severity = given.get("severity", "").lower() or None
    if severity is not None and severity not in SEVERITIES:
        raise QueryError(f"severity must be one of {', '.join(SEVERITIES)}", parameter="severity", code="InvalidParameter")
    top = DEFAULT_TOP
    if "top" in given:
        if not given["top"].isdigit() or not 1 <= int(given["top"]) <= MAX_TOP:
            raise QueryError(f"top must be a whole number from 1 to {MAX_TOP}", parameter="top", code="InvalidParameter")
        top = int(given["top"])
    after = None
    if "cursor" in given:
        after = read_cursor(given["cursor"])
        if after is None:
            raise QueryError("cursor is not one of this API's next links", parameter="cursor", code="InvalidParameter")
    rows: list[dict[str, Any]] = []
    more = False
    for entity in table.scan(start, end, after=after, rule=given.get("rule"), severity=severity, user=given.get("user")):
        if len(rows) == top:
            more = True
            break
        rows.append(entity)
    body: dict[str, Any] = {"value": [_public(from_entity(row).as_dict()) for row in rows]}
    if more:
        params = {k: v for k, v in given.items() if k != "cursor"}
        params["cursor"] = page_cursor(str(rows[-1]["RowKey"]))
        body["@odata.nextLink"] = f"{base_url}/alerts?{urllib.parse.urlencode(params, quote_via=urllib.parse.quote)}"
    return body


FIELDS = ("id", "rule", "severity", "time", "user", "summary", "recordIds", "count")


def _public(data: dict[str, Any]) -> dict[str, Any]:
    # The contract's fields first, then what else an alert knows (kind, key, windowEnd).
    return {**{name: data[name] for name in FIELDS}, **{k: v for k, v in data.items() if k not in FIELDS}}


def _time(given: dict[str, str], name: str) -> datetime | None:
    if name not in given:
        return None
    try:
        return parse_time(given[name])
    except ValueError:
        raise QueryError(f"{name} must be an ISO 8601 time such as 2024-05-01T08:00:00Z", parameter=name,
                         code="InvalidParameter") from None
