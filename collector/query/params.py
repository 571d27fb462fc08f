"""The query parameters of GET /api/audit and their validation into a `QueryPlan` (pure).

`PARAMETERS` is the one table of names, kinds and descriptions: the parser and the OpenAPI
document both read it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from ..errors import QueryError, shown
from ..models import View
from ..timeutil import format_exact_time, parse_time
from .cursor import CURSOR, decode_cursor, encode_cursor

DEFAULT_TOP = 100
MAX_TOP = 1000
DEFAULT_SPAN = timedelta(hours=24)
MAX_VALUE_LENGTH = 1024  # the index keeps `object` and `userAgent` up to 1,024 characters
MAX_LIST_ITEMS = 50  # each user/operation value is one index scan
FORMATS = ("json", "csv", "ndjson")
# Query parameters that are not ours but may reach us: the Functions host's function key. The
# parser ignores them, and nothing echoes them (next links, export notes and headers leave them out).
PASSTHROUGH = ("code",)

Kind = Literal["datetime", "list", "int-list", "text", "top", "format", "cursor"]
Params = Mapping[str, str] | Iterable[tuple[str, str]]  # a mapping, or pairs (repeats kept)


@dataclass(frozen=True)
class Param:
    """One query parameter of GET /api/audit: the parser and the OpenAPI document both read this table."""

    name: str
    kind: Kind
    description: str


PARAMETERS: tuple[Param, ...] = (
    Param("start", "datetime", "Earliest event time, inclusive. ISO 8601 (`2024-05-01`, `2024-05-01T08:00:00Z`, "
                               "`2024-05-01T10:00:00+02:00`); UTC unless an offset is given. Default: `end` minus 24 hours."),
    Param("end", "datetime", "Event time upper bound, exclusive, same format as `start`. Default: now. Must be after `start`."),
    Param("user", "list", "User (UserId), exact and case-insensitive; a comma-separated list matches any of them."),
    Param("operation", "list", "Operation (activity), exact and case-insensitive; a comma-separated list matches any."),
    Param("workload", "list", "Workload (e.g. `SharePoint`, `Exchange`), exact and case-insensitive; a list matches any."),
    Param("result", "list", "Result status (e.g. `Succeeded`, `Failed`), exact and case-insensitive; a list matches any."),
    Param("recordType", "int-list", "RecordType number; a comma-separated list of integers matches any."),
    Param("clientIp", "list", "Client IP address, exact (case-insensitive for IPv6); a list matches any."),
    Param("contentType", "list", "Content type (e.g. `Audit.SharePoint`), exact and case-insensitive; a list matches any."),
    Param("object", "text", "Object (file URL, mailbox folder, target id…): case-insensitive prefix."),
    Param("q", "text", "Case-insensitive substring of any of the twelve normalized fields (`object` and `userAgent`: "
                       "their first 1,024 characters, as indexed)."),
    Param("top", "top", f"JSON page size, 1 to {MAX_TOP} (default {DEFAULT_TOP}). CSV and NDJSON ignore it: they stream every page."),
    Param("format", "format", "`json` (default; pages with `@odata.nextLink`), `csv` (UTF-8 with BOM, CRLF, RFC 4180) "
                              "or `ndjson` (one JSON record per line); CSV and NDJSON stream every page."),
    Param(CURSOR, "cursor", "Opaque position from an `@odata.nextLink`; do not build it yourself."),
)
PARAMETER_NAMES = tuple(p.name for p in PARAMETERS)
_BY_NAME = {p.name: p for p in PARAMETERS}

# The accepted syntax of start/end: the query API's contract, published as the OpenAPI pattern, and
# stricter than timeutil.parse_time (which also reads the API's and the records' timestamps). A
# space before the offset is read as "+": an unencoded `+02:00` in a URL arrives as " 02:00".
TIME_PATTERN = (r"[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
                r"([Zz]|[+ -][0-9]{2}:?[0-9]{2})?)?")
_TIME = re.compile(TIME_PATTERN)
_TOP = re.compile(r"[0-9]{1,9}")
_INT = re.compile(r"[+-]?[0-9]{1,10}")
_INT32 = (-(2**31), 2**31 - 1)


@dataclass(frozen=True)
class QueryPlan:
    """A validated request. Lists hold the values as given (deduplicated case-insensitively)."""

    start: datetime
    end: datetime
    users: tuple[str, ...] = ()
    operations: tuple[str, ...] = ()
    workloads: tuple[str, ...] = ()
    results: tuple[str, ...] = ()
    record_types: tuple[int, ...] = ()
    client_ips: tuple[str, ...] = ()
    content_types: tuple[str, ...] = ()
    object_prefix: str = ""
    q: str = ""
    top: int = DEFAULT_TOP
    format: str = "json"
    after: str | None = None  # order key from the cursor: resume strictly after it
    top_given: bool = field(default=False, compare=False, repr=False)

    @property
    def view(self) -> View:
        """The index view that drives the scan: user, else operation, else time."""
        return View.USER if self.users else View.OPERATION if self.operations else View.TIME

    @property
    def residual(self) -> bool:
        """Whether filters other than the driving value remain to be applied in Python."""
        return bool(
            (self.operations and self.users) or self.workloads or self.results or self.record_types
            or self.client_ips or self.content_types or self.object_prefix or self.q
        )

    def link_params(self, cursor_key: str | None) -> list[tuple[str, str]]:
        """The query string of this request with start/end pinned (so later pages see the same range)
        and, when given, the cursor of the next page."""
        pairs = [("start", format_exact_time(self.start)), ("end", format_exact_time(self.end))]
        for name, values in (("user", self.users), ("operation", self.operations), ("workload", self.workloads),
                             ("result", self.results), ("recordType", tuple(str(v) for v in self.record_types)),
                             ("clientIp", self.client_ips), ("contentType", self.content_types)):
            if values:
                pairs.append((name, ",".join(values)))
        if self.object_prefix:
            pairs.append(("object", self.object_prefix))
        if self.q:
            pairs.append(("q", self.q))
        if self.top_given:
            pairs.append(("top", str(self.top)))
        if self.format != "json":
            pairs.append(("format", self.format))
        if cursor_key is not None:
            pairs.append((CURSOR, encode_cursor(cursor_key)))
        return pairs


def _text(name: str, value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise QueryError(f"{name} must be valid UTF-8 text", parameter=name, code="InvalidParameter") from None
    if len(value) > MAX_VALUE_LENGTH:
        raise QueryError(f"{name} must be at most {MAX_VALUE_LENGTH} characters (got {len(value)})",
                         parameter=name, code="InvalidParameter")
    return value


def _list(name: str, raw: list[str]) -> tuple[str, ...]:
    values: list[str] = []
    seen: set[str] = set()
    for chunk in raw:
        for item in chunk.split(","):
            item = _text(name, item.strip())
            if item and item.casefold() not in seen:
                seen.add(item.casefold())
                values.append(item)
    if len(values) > MAX_LIST_ITEMS:
        raise QueryError(f"{name} accepts at most {MAX_LIST_ITEMS} comma-separated values (got {len(values)})",
                         parameter=name, code="InvalidParameter")
    return tuple(values)


def _int_list(name: str, raw: list[str]) -> tuple[int, ...]:
    numbers: list[int] = []
    for item in _list(name, raw):
        if not _INT.fullmatch(item) or not _INT32[0] <= int(item) <= _INT32[1]:
            raise QueryError(f"{name} must be an integer or a comma-separated list of integers, got {shown(item)}",
                             parameter=name, code="InvalidParameter")
        if int(item) not in numbers:
            numbers.append(int(item))
    return tuple(numbers)


def _time(name: str, raw: str) -> datetime:
    expected = "an ISO 8601 date or date-time such as 2024-05-01 or 2024-05-01T08:00:00Z (UTC unless an offset is given)"
    if not _TIME.fullmatch(raw):
        raise QueryError(f"{name} must be {expected}, got {shown(raw)}", parameter=name, code="InvalidParameter")
    try:
        return parse_time(_plus_offset(raw))
    except (ValueError, OverflowError):
        raise QueryError(f"{name} must be {expected}, got {shown(raw)}", parameter=name, code="InvalidParameter") from None


def _plus_offset(raw: str) -> str:
    """`2024-05-01T10:00:00 02:00` (a `+` decoded as a space) → `2024-05-01T10:00:00+02:00`."""
    head, space, zone = raw.rpartition(" ")
    return f"{head}+{zone}" if space and ":" in head else raw


def _days(span: timedelta) -> str:
    days = span.total_seconds() / 86400
    return f"{days:.0f}" if days == int(days) else f"{days:.1f}"


def parse_request(params: Params, *, now: datetime, max_range_days: int) -> QueryPlan:
    """Validate the query parameters of GET /api/audit into a plan; QueryError (400) names the culprit.

    Unknown parameters are refused (a typo must not silently widen a search); list parameters may
    repeat (values add up), single-valued ones may not; empty values mean "not given".
    """
    grouped: dict[str, list[str]] = {}
    unknown: list[str] = []
    for name, value in params.items() if isinstance(params, Mapping) else params:
        if name in PASSTHROUGH:
            continue
        if name not in _BY_NAME:
            unknown.append(name)
            continue
        grouped.setdefault(name, []).append(value)
    if unknown:
        hints = []
        for name in unknown[:5]:
            close = difflib.get_close_matches(name, PARAMETER_NAMES, n=1) or [
                p for p in PARAMETER_NAMES if p.lower() == name.lower()]
            hints.append(shown(name, 40) + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise QueryError(f"unknown query parameter{'s' if len(unknown) > 1 else ''} {', '.join(hints)}; "
                         f"expected {', '.join(PARAMETER_NAMES)}", parameter=unknown[0][:100], code="UnknownParameter")
    for name, values in grouped.items():
        if _BY_NAME[name].kind not in ("list", "int-list") and len(values) > 1:
            raise QueryError(f"{name} may be given only once", parameter=name, code="InvalidParameter")

    def single(name: str) -> str:
        return grouped.get(name, [""])[0]

    start_text, end_text = single("start"), single("end")
    end = _time("end", end_text) if end_text else now.astimezone(UTC)
    if not start_text and end < datetime.min.replace(tzinfo=UTC) + DEFAULT_SPAN:
        # The default start (end - 24 h) would fall before year 1 (an OverflowError, i.e. a 500).
        raise QueryError(f"end must be after 0001-01-02 when start is not given, got {shown(end_text)}",
                         parameter="end", code="InvalidParameter")
    start = _time("start", start_text) if start_text else end - DEFAULT_SPAN
    if end <= start:
        raise QueryError(f"end must be after start (start {format_exact_time(start)} is inclusive, "
                         f"end {format_exact_time(end)} exclusive; end defaults to now)", parameter="end",
                         code="InvalidParameter")

    users = _list("user", grouped.get("user", []))
    operations = _list("operation", grouped.get("operation", []))
    if max_range_days and not users and not operations and end - start > timedelta(days=max_range_days):
        raise QueryError(
            f"the range from start to end is {_days(end - start)} days; without a user or operation filter it may "
            f"span at most {max_range_days} days (setting QUERY_MAX_RANGE_DAYS): narrow start/end, add user= or "
            "operation=, or split the range", parameter="start", code="RangeTooLarge")
    # Without the cap (QUERY_MAX_RANGE_DAYS=0, the default) any range is served: the request's
    # Budget bounds every page and export in both tiers, and a spent budget ends the page with a
    # @odata.nextLink at the position reached (query/budget.py), never a silent cut.

    top_text = single("top")
    top = DEFAULT_TOP
    if top_text:
        if not _TOP.fullmatch(top_text) or not 1 <= int(top_text) <= MAX_TOP:
            raise QueryError(f"top must be an integer from 1 to {MAX_TOP}, got {shown(top_text)}",
                             parameter="top", code="InvalidParameter")
        top = int(top_text)

    fmt = single("format") or "json"
    if fmt not in FORMATS:
        raise QueryError(f"format must be one of {', '.join(FORMATS)}, got {shown(fmt)}", parameter="format",
                         code="InvalidParameter")

    cursor_text = single(CURSOR)
    return QueryPlan(
        start=start,
        end=end,
        users=users,
        operations=operations,
        workloads=_list("workload", grouped.get("workload", [])),
        results=_list("result", grouped.get("result", [])),
        record_types=_int_list("recordType", grouped.get("recordType", [])),
        client_ips=_list("clientIp", grouped.get("clientIp", [])),
        content_types=_list("contentType", grouped.get("contentType", [])),
        object_prefix=_text("object", single("object")),
        q=_text("q", single("q")),
        top=top,
        format=fmt,
        after=decode_cursor(cursor_text) if cursor_text else None,
        top_given=bool(top_text),
    )
