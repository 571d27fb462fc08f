"""Query API requests: parameters → a validated QueryPlan (pure), and the plan run over the index views.

Parsing, matching and cursors are pure functions tested with tables of cases; `QueryService` is the
only part that reads storage, always through `AuditIndex.scan` (filter values never become OData
text: user and operation reach storage only as hashes, everything else is matched in Python).
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import heapq
import itertools
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from . import keys
from .errors import QueryError
from .models import FIELDS, AuditEntry
from .timeutil import SystemClock, parse_time

if TYPE_CHECKING:
    from .index import AuditIndex, Hit
    from .settings import Settings
    from .timeutil import Clock

DEFAULT_TOP = 100
MAX_TOP = 1000
DEFAULT_SPAN = timedelta(hours=24)
MAX_VALUE_LENGTH = 1024  # the index keeps `object` and `userAgent` up to 1,024 characters
MAX_LIST_ITEMS = 50  # each user/operation value is one index scan
PREFETCH_DAYS = 8  # day tables read ahead in parallel when a scan is sparse
FORMATS = ("json", "csv", "ndjson")
CURSOR = "cursor"
INDEX_EPOCH = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2286, 1, 1, tzinfo=UTC))  # what order keys can express
# Query parameters that are not ours but may reach us: the Functions host's function key.
PASSTHROUGH = ("code",)

Kind = Literal["datetime", "list", "int-list", "text", "top", "format", "cursor"]


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

# Accepted syntax of start/end (also the OpenAPI pattern). A space before the offset is read as
# "+": an unencoded `+02:00` in a URL arrives as " 02:00".
TIME_PATTERN = (r"[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
                r"([Zz]|[+ -][0-9]{2}:?[0-9]{2})?)?")
CURSOR_PATTERN = r"[A-Za-z0-9_-]{20,2000}"
_TIME = re.compile(TIME_PATTERN)
_TOP = re.compile(r"[0-9]{1,9}")
_INT = re.compile(r"[+-]?[0-9]{1,10}")
_CURSOR_TEXT = re.compile(CURSOR_PATTERN)
_ORDER_KEY = re.compile(r"[0-9]{10}[^/\\#?\x00-\x1f\x7f]{1,1100}")
_INT32 = (-(2**31), 2**31 - 1)


# ---------------------------------------------------------------- the plan (pure)


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
    def view(self) -> str:
        """The index view that drives the scan: user, else operation, else time."""
        return "u" if self.users else "o" if self.operations else "t"

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
        pairs = [("start", format_time(self.start)), ("end", format_time(self.end))]
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


def day_windows(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """[start, end) cut at UTC midnights, newest first: one window per index day table."""
    windows: list[tuple[datetime, datetime]] = []
    high = end.astimezone(UTC)
    start = start.astimezone(UTC)
    while high > start:
        midnight = (high - timedelta(microseconds=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        low = max(start, midnight)
        windows.append((low, high))
        high = low
    return windows


def format_time(value: datetime) -> str:
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{value.microsecond:06d}" if value.microsecond else "") + "Z"


def param_pairs(params: Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(name, value) pairs from a mapping (str or list values) or from pairs (repeats kept)."""
    if isinstance(params, Mapping):
        out: list[tuple[str, str]] = []
        for name, value in params.items():
            if isinstance(value, str):
                out.append((name, value))
            else:
                out.extend((name, v) for v in value)
        return out
    return list(params)


def shown(text: str, limit: int = 60) -> str:
    """User input quoted for an error message: bounded, printable, always valid UTF-8."""
    clipped = text if len(text) <= limit else text[:limit] + "…"
    return repr(clipped.encode("utf-8", "backslashreplace").decode("utf-8"))


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


def parse_request(
    params: Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]],
    *,
    now: datetime,
    max_range_days: int,
) -> QueryPlan:
    """Validate the query parameters of GET /api/audit into a plan; QueryError (400) names the culprit.

    Unknown parameters are refused (a typo must not silently widen a search); list parameters may
    repeat (values add up), single-valued ones may not; empty values mean "not given".
    """
    grouped: dict[str, list[str]] = {}
    unknown: list[str] = []
    for name, value in param_pairs(params):
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
    start = _time("start", start_text) if start_text else end - DEFAULT_SPAN
    if end <= start:
        raise QueryError(f"end must be after start (start {format_time(start)} is inclusive, end {format_time(end)} "
                         "exclusive; end defaults to now)", parameter="end", code="InvalidParameter")

    users = _list("user", grouped.get("user", []))
    operations = _list("operation", grouped.get("operation", []))
    if not users and not operations and end - start > timedelta(days=max_range_days):
        raise QueryError(
            f"the range from start to end is {_days(end - start)} days; without a user or operation filter it may "
            f"span at most {max_range_days} days (setting QUERY_MAX_RANGE_DAYS): narrow start/end, add user= or "
            "operation=, or split the range", parameter="start", code="RangeTooLarge")

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
        object_prefix=_text("object", grouped.get("object", [""])[0]),
        q=_text("q", grouped.get("q", [""])[0]),
        top=top,
        format=fmt,
        after=decode_cursor(cursor_text) if cursor_text else None,
        top_given=bool(top_text),
    )


def _days(span: timedelta) -> str:
    days = span.total_seconds() / 86400
    return f"{days:.0f}" if days == int(days) else f"{days:.1f}"


# ---------------------------------------------------------------- cursors (pure)


def _checksum(payload: bytes) -> bytes:
    return hashlib.sha256(b"auditkeep-cursor-v1" + payload).digest()[:4]


def encode_cursor(order_key: str) -> str:
    """The opaque cursor of an order key: base64url(checksum + key). The checksum catches a
    truncated or edited cursor, which would otherwise resume at the wrong place."""
    payload = order_key.encode("utf-8")
    return base64.urlsafe_b64encode(_checksum(payload) + payload).rstrip(b"=").decode("ascii")


def decode_cursor(text: str) -> str:
    """The order key of a cursor; QueryError (400) when it was not produced by encode_cursor."""
    problem = QueryError("cursor is not valid: use the @odata.nextLink of the previous page unchanged",
                         parameter=CURSOR, code="InvalidCursor")
    if not _CURSOR_TEXT.fullmatch(text):
        raise problem
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        key = raw[4:].decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise problem from None
    if raw[:4] != _checksum(raw[4:]) or not _ORDER_KEY.fullmatch(key):
        raise problem
    return key


# ---------------------------------------------------------------- matching (pure)


def matcher(plan: QueryPlan) -> Callable[[AuditEntry], bool]:
    """A predicate applying every filter of the plan case-insensitively, the driving value included
    (index keys are hashes, so the scan's value is re-checked too)."""
    checks: list[Callable[[AuditEntry], bool]] = []

    def one_of(attr: str, values: tuple[str, ...]) -> None:
        if values:
            folded = frozenset(v.casefold() for v in values)
            checks.append(lambda e: getattr(e, attr).casefold() in folded)

    one_of("user", plan.users)
    one_of("operation", plan.operations)
    one_of("workload", plan.workloads)
    one_of("result", plan.results)
    one_of("clientIp", plan.client_ips)
    one_of("contentType", plan.content_types)
    if plan.record_types:
        types = frozenset(plan.record_types)
        checks.append(lambda e: e.recordType in types)
    if plan.object_prefix:
        prefix = plan.object_prefix.casefold()
        checks.append(lambda e: e.object.casefold().startswith(prefix))
    if plan.q:
        needle = plan.q.casefold()
        checks.append(lambda e: any(needle in str(v).casefold() for v in (getattr(e, f) for f in FIELDS) if v is not None))
    return lambda entry: all(check(entry) for check in checks)


# ---------------------------------------------------------------- execution (reads the index)


@dataclass(frozen=True)
class Page:
    """One JSON page: the entries, and the order key to resume after (None on the last page)."""

    entries: list[AuditEntry]
    next_key: str | None
    scanned: int


class Export:
    """Every matching entry of a plan across pages, up to `limit` rows or `seconds` of scanning.

    Iterate it once; afterwards `truncated` says whether it stopped early ("limit" or "time") and
    `next_key` is where a follow-up request (cursor) continues.
    """

    def __init__(self, service: QueryService, plan: QueryPlan, limit: int, seconds: float | None) -> None:
        self.service, self.plan, self.limit, self.seconds = service, plan, limit, seconds
        self.rows = 0
        self.scanned = 0
        self.truncated: str | None = None
        self.next_key: str | None = None

    def __iter__(self) -> Iterator[AuditEntry]:
        service, plan = self.service, self.plan
        match = matcher(plan)
        deadline = None if self.seconds is None else service.timer() + self.seconds
        last_emitted: str | None = None
        lookahead_deadline: float | None = None
        lookahead_scanned = 0
        for hit in service.hits(plan, page_size=1000):
            self.scanned += 1
            if lookahead_deadline is not None:
                lookahead_scanned += 1
            if match(hit.entry):
                if self.rows >= self.limit:
                    self._stop("limit", last_emitted)
                    return
                self.rows += 1
                last_emitted = hit.key
                yield hit.entry
                if self.rows >= self.limit and lookahead_deadline is None:
                    # One more match would mean truncation; bound that search like a JSON page.
                    lookahead_deadline = service.timer() + service.scan_budget_seconds
            if lookahead_deadline is not None and (lookahead_scanned >= service.scan_budget_rows
                                                   or service.timer() > lookahead_deadline):
                self._stop("limit", hit.key)
                return
            if deadline is not None and service.timer() > deadline:
                self._stop("time", hit.key)
                return

    def _stop(self, reason: str, key: str | None) -> None:
        self.truncated = reason
        self.next_key = key


class QueryService:
    """Runs query plans over the index views, newest first, with stateless cursors.

    A JSON page stops scanning after `scan_budget_rows` rows or `scan_budget_seconds`, whichever
    comes first, and then returns what it found (possibly nothing) with a next key at the last
    scanned row: selective filters over long ranges stay responsive, and paging still reaches
    every result.
    """

    def __init__(
        self,
        index: AuditIndex,
        *,
        max_range_days: int = 31,
        max_export_rows: int = 1_000_000,
        clock: Clock | None = None,
        scan_budget_rows: int = 50_000,
        scan_budget_seconds: float = 2.0,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.index = index
        self.max_range_days = max_range_days
        self.max_export_rows = max_export_rows
        self.clock = clock or SystemClock()
        self.scan_budget_rows = scan_budget_rows
        self.scan_budget_seconds = scan_budget_seconds
        self.timer = timer

    @classmethod
    def from_settings(cls, index: AuditIndex, settings: Settings, clock: Clock | None = None) -> QueryService:
        return cls(index, max_range_days=settings.query_max_range_days,
                   max_export_rows=settings.query_max_export_rows, clock=clock)

    def parse(self, params: Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]]) -> QueryPlan:
        return parse_request(params, now=self.clock.now(), max_range_days=self.max_range_days)

    def hits(self, plan: QueryPlan, *, page_size: int = 1000) -> Iterator[Hit]:
        """Rows of the driving view in [start, end) after the plan's cursor, newest first (unfiltered).

        The range is read one UTC day at a time (the index has a table per day). A value whose days
        come back short is sparse, so the next days are fetched ahead in parallel (1, 2, 4 … up to
        PREFETCH_DAYS at a time): a rare user over a month costs a few round trips, not thirty.
        """
        bounds = self._bounds(plan)
        if bounds is None:
            return
        start, end = bounds
        if plan.after is not None:
            end = min(end, keys.from_inv(int(plan.after[:10])) + timedelta(seconds=1))
        windows = day_windows(start, end)
        if not windows:
            return
        values: tuple[str | None, ...] = plan.users or plan.operations or (None,)
        pool = ThreadPoolExecutor(max_workers=PREFETCH_DAYS, thread_name_prefix="query-prefetch")
        chains = [self._chain(pool, plan, value, windows, page_size) for value in values]
        merged = chains[0] if len(chains) == 1 else heapq.merge(*chains, key=lambda hit: hit.key)
        last = None
        try:
            for hit in merged:
                if hit.key != last:  # the same record cannot come twice, but be sure
                    last = hit.key
                    yield hit
        finally:
            for chain in chains:
                chain.close()
            pool.shutdown(wait=False, cancel_futures=True)

    def _chain(self, pool: ThreadPoolExecutor, plan: QueryPlan, value: str | None,
               windows: list[tuple[datetime, datetime]], page_size: int) -> Iterator[Hit]:
        def first_page(lo: datetime, hi: datetime) -> tuple[list[Hit], Iterator[Hit] | None]:
            rows = self.index.scan(plan.view, lo, hi, value=value, after=plan.after, page_size=page_size)
            head = list(itertools.islice(rows, page_size))
            return head, (rows if len(head) == page_size else None)

        pending: deque[Future[tuple[list[Hit], Iterator[Hit] | None]]] = deque()
        upcoming = iter(windows)
        ahead = 1
        try:
            while True:
                while len(pending) < ahead:
                    window = next(upcoming, None)
                    if window is None:
                        break
                    pending.append(pool.submit(first_page, *window))
                if not pending:
                    return
                head, rest = pending.popleft().result()
                yield from head
                if rest is not None:
                    yield from rest  # a dense day: read the rest of it lazily
                else:
                    ahead = min(PREFETCH_DAYS, ahead * 2)  # a short day: look further ahead
        finally:
            for future in pending:
                future.cancel()

    def _bounds(self, plan: QueryPlan) -> tuple[datetime, datetime] | None:
        """The plan's range within what the index can hold (order keys have ten digits: 1970 to
        2286), narrowed to the months that have tables when it spans many months (a user query over
        ten years should not probe 120 missing tables)."""
        start, end = max(plan.start, INDEX_EPOCH[0]), min(plan.end, INDEX_EPOCH[1])
        if end - start > timedelta(days=93):
            months = self.index.months()
            if not months:
                return None
            start = max(start, keys.month_bounds(months[-1])[0])
            end = min(end, keys.month_bounds(months[0])[1])
        return (start, end) if start < end else None

    def page(self, plan: QueryPlan) -> Page:
        """Up to `plan.top` matching entries; `next_key` is None only when nothing more can match."""
        match = matcher(plan)
        page_size = 1000 if plan.residual else min(1000, plan.top + 1)
        deadline = self.timer() + self.scan_budget_seconds
        entries: list[AuditEntry] = []
        last_emitted: str | None = None
        scanned = 0
        hits = self.hits(plan, page_size=page_size)
        try:
            for hit in hits:
                scanned += 1
                if match(hit.entry):
                    if len(entries) == plan.top:  # one more match exists: there is a next page
                        return Page(entries, last_emitted, scanned)
                    entries.append(hit.entry)
                    last_emitted = hit.key
                if scanned >= self.scan_budget_rows or self.timer() > deadline:
                    return Page(entries, hit.key, scanned)
        finally:
            hits.close()
        return Page(entries, None, scanned)

    def export(self, plan: QueryPlan, *, seconds: float | None = None) -> Export:
        return Export(self, plan, self.max_export_rows, seconds)
