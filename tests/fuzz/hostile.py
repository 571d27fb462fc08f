"""The fuzz tests' dataset and oracle: the query tests' records plus records whose values look like
attacks on the index (OData quotes and operators, key-unsafe characters, control characters), and
a plain-Python reading of the query contract (docs/configuration.md and the OpenAPI document),
written without the query code, that every fuzzed answer is checked against.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from collector.bootstrap import Services
from collector.index import IndexItem
from collector.models import FIELDS, AuditEntry, ContentRef
from collector.timeutil import format_record_time
from tests.constants import TENANT
from tests.query.data import NOW, Row, blob_body, build_rows, index_view, key_of_record, make_services

__all__ = ["NOW", "Fuzzed", "HOSTILE_VALUES", "Outcome", "expected", "fuzz_rows", "key_of_record", "load",
           "parse_time", "records_of_ndjson"]

# Values that would widen or break a hand-built OData filter, or that Table keys cannot hold.
HOSTILE_VALUES = [
    "o'brien@contoso.com",
    "x' or 1 eq 1 or 'a' eq 'a",
    "' or PartitionKey ne '",
    "$filter=PartitionKey ne ''",
    "a eq b",
    "100% _sure_ #1 /a\\b?c",
    "tab\there\x00nul\x1fus\x7fdel\x85nel\x9fapc",
    "ünïcödé ß ǅ ﬃ İ",  # casefold changes lengths (ß → ss, ﬃ → ffi)
    "comma, inside",
    "  padded  ",
]
MAX_RANGE_DAYS = 31
SINGLE_VALUED = ("start", "end", "object", "q", "top", "format", "cursor")
LISTS = ("user", "operation", "workload", "result", "clientIp", "contentType", "recordType")
FIELD_OF = {"user": "user", "operation": "operation", "workload": "workload", "result": "result",
            "clientIp": "clientIp", "contentType": "contentType"}
KNOWN = SINGLE_VALUED + LISTS
PASSTHROUGH = ("code",)


def _hostile_rows() -> list[Row]:
    rows: list[Row] = []
    for n, value in enumerate(HOSTILE_VALUES):
        when = NOW - timedelta(hours=2, minutes=7 * n)
        entry = AuditEntry(
            id=f"hostile-{n:02d}-{value[:6]}'%_#-{uuid.UUID(int=n)}".replace("/", "-").replace("?", "-"),
            time=format_record_time(when), user=value, operation=value, object=value, result=value,
            clientIp=value, userAgent=value, workload=value, recordType=n, contentType=value,
            organizationId=TENANT,
        )
        raw: dict[str, Any] = {"Id": entry.id, "CreationTime": entry.time[:-1], "UserId": value, "Operation": value,
                               "ObjectId": value, "ResultStatus": value, "ClientIP": value, "UserAgent": value,
                               "Workload": value, "RecordType": n, "OrganizationId": TENANT}
        rows.append(Row(entry, when, raw))
    return rows


def fuzz_rows() -> list[Row]:
    return build_rows() + _hostile_rows()


@dataclass
class Fuzzed:
    rows: list[Row]
    env: dict[str, str]
    services: Services


def load(connection_string: str) -> Fuzzed:
    """Archive and index the fuzz rows in Azurite under fresh names (as processing would)."""
    name = "f" + uuid.uuid4().hex[:10]
    env = {"M365_TENANT_ID": TENANT, "AUDIT_STORAGE_CONNECTION_STRING": connection_string, "AUDIT_TABLE_PREFIX": name,
           "AUDIT_ARCHIVE_CONTAINER": name, "AUDIT_QUEUE_NAME": name, "QUERY_MAX_RANGE_DAYS": str(MAX_RANGE_DAYS)}
    services = make_services(env)
    services.ensure_storage()
    rows = fuzz_rows()
    items: list[IndexItem] = []
    for n in range(0, len(rows), 25):
        chunk = rows[n:n + 25]
        ref = ContentRef("Audit.General", f"blob-{n:04d}", "", chunk[0].when, chunk[0].when)
        archived = services.archive.put(ref, blob_body(chunk), len(chunk))
        items += [IndexItem(row.entry, row.when, archived.name, position) for position, row in enumerate(chunk)]
    services.index.write(items)
    return Fuzzed(rows, env, services)


# ---------------------------------------------------------------- the oracle

# The documented start/end syntax (ISO 8601 date or date-time, `T`/`t`/space, optional seconds,
# fraction, `Z` or an offset whose `+` may arrive as a space), ASCII digits only.
_ISO = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?"
                  r"([Zz]|[+ -][0-9]{2}:?[0-9]{2})?)?")


@dataclass(frozen=True)
class Outcome:
    """What the contract says a request must give: a 400 whose message names one of `culprits`, or
    a 200 with exactly `keys` (order keys, newest first, all pages together)."""

    status: int
    keys: tuple[str, ...] = ()
    culprits: tuple[str, ...] = ()


def parse_time(text: str) -> datetime | None:
    """start/end as the contract reads them (None: not a valid time); written apart from the collector."""
    match = _ISO.fullmatch(text)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        value = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
                         int((fraction or "0")[:6].ljust(6, "0")))
        offset = timedelta(0)
        if zone and zone not in "Zz":
            digits = zone[1:].replace(":", "")
            offset = (-1 if zone[0] == "-" else 1) * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        return (value - offset).replace(tzinfo=UTC) if abs(offset) < timedelta(days=1) else None
    except (ValueError, OverflowError):
        return None


def _split(values: Iterable[str]) -> list[str]:
    out: list[str] = []
    for chunk in values:
        out += [item.strip() for item in chunk.split(",") if item.strip()]
    return out


def _bad_text(value: str) -> bool:
    return len(value) > 1024 or any(0xD800 <= ord(c) <= 0xDFFF for c in value)


def _bad_int(item: str) -> bool:
    digits = item[1:] if item[:1] in ("+", "-") else item
    return not (digits.isascii() and digits.isdigit() and len(digits) <= 10 and -(2**31) <= int(item) < 2**31)


def expected(rows: Sequence[Row], pairs: Sequence[tuple[str, str]], now: datetime = NOW) -> Outcome:
    """The oracle: what GET /api/audit with these query pairs must answer."""
    ours = [(n, v) for n, v in pairs if n not in PASSTHROUGH]
    unknown = [n for n, _ in ours if n not in KNOWN]
    if unknown:
        return Outcome(400, culprits=tuple(unknown))
    grouped: dict[str, list[str]] = {}
    for name, value in ours:
        grouped.setdefault(name, []).append(value)
    repeated = tuple(n for n in SINGLE_VALUED if len(grouped.get(n, [])) > 1)
    if repeated:
        return Outcome(400, culprits=repeated)
    one = {name: grouped.get(name, [""])[0] for name in SINGLE_VALUED}
    lists = {name: _split(grouped.get(name, [])) for name in LISTS}
    # Several things may be wrong at once: the parser may refuse any of them first.
    culprits = [n for n in LISTS if any(_bad_text(v) for v in lists[n]) or len({v.casefold() for v in lists[n]}) > 50]
    culprits += [n for n in ("object", "q") if _bad_text(one[n])]
    if any(_bad_int(item) for item in lists["recordType"]):
        culprits.append("recordType")
    if one["top"] and not (one["top"].isascii() and one["top"].isdigit() and len(one["top"]) <= 9
                           and 1 <= int(one["top"]) <= 1000):
        culprits.append("top")
    if one["format"] not in ("", "json", "csv", "ndjson"):
        culprits.append("format")
    if one["cursor"]:
        culprits.append("cursor")  # a fuzzed cursor is never one the API issued (it carries a checksum)
    end = parse_time(one["end"]) if one["end"] else now
    try:
        start = parse_time(one["start"]) if one["start"] else (end - timedelta(hours=24) if end else None)
    except OverflowError:
        start = None
    culprits += [name for name, value in (("start", start), ("end", end)) if value is None and one[name]]
    if start is None and not one["start"] and end is not None:
        culprits.append("end")  # end so early that end - 24 h is not a time
    if start is not None and end is not None:
        if end <= start:
            culprits.append("end")
        elif not lists["user"] and not lists["operation"] and end - start > timedelta(days=MAX_RANGE_DAYS):
            culprits.append("start")
    if culprits:
        return Outcome(400, culprits=tuple(dict.fromkeys(culprits)))
    if start is None or end is None:
        raise AssertionError(f"the oracle found no range in {pairs!r}")  # unreachable: a culprit above

    def matches(entry: AuditEntry) -> bool:
        seen = index_view(entry)
        for name, attr in FIELD_OF.items():
            wanted = {v.casefold() for v in lists[name]}
            if wanted and str(getattr(seen, attr)).casefold() not in wanted:
                return False
        if lists["recordType"] and seen.recordType not in {int(v) for v in lists["recordType"]}:
            return False
        if one["object"] and not seen.object.casefold().startswith(one["object"].casefold()):
            return False
        needle = one["q"].casefold()
        return not needle or any(needle in str(getattr(seen, f)).casefold() for f in FIELDS if getattr(seen, f) is not None)

    chosen = sorted((r for r in rows if start <= r.when < end and matches(r.entry)), key=lambda r: r.order_key)
    return Outcome(200, tuple(r.order_key for r in chosen))


def records_of_ndjson(body: bytes) -> list[dict[str, Any]]:
    # Lines end at b"\n" only: str.splitlines would also split at U+0085 and U+2028, which JSON
    # strings may hold unescaped.
    return [json.loads(line) for line in body.split(b"\n") if line]
