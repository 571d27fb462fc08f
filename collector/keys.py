"""Deterministic names and keys for the archive, index, ledger and state (pure logic).

The layout is specified in docs/architecture.md ("Storage layout"); this module is its only
implementation. Same input, same key: every retry rewrites the same blob and the same entities.
"""

from __future__ import annotations

import hashlib
import math
import re
from datetime import UTC, datetime, timedelta

from .models import View

INV_BASE = 9_999_999_999
# Partitions per view and day for the user, operation and id views. Writes batch per partition
# (≤ 100 entities), so fewer partitions mean fuller batches; more partitions keep each one small
# (Azurite's upsert scans the whole partition) and give Azure 2,000 entities/s each
# (docs/storage-facts.md "Partition and account throughput"). Reads never span shards: a user, an operation or an id always maps to exactly one.
SHARDS = 4
# Partitions per day of format 2's keys table (collector/index.py): its entries of one content blob
# and partition go in one transaction, so fewer partitions mean fewer requests per blob. Two keep
# each under the Table service's 2,000 entities/s per partition (docs/storage-facts.md) at about 1.5
# entries per record for a 200,000-seat tenant's busiest hours (~1,400 records/s). A storage
# format: changing it needs a new index format.
KEY_SHARDS = 2
HASH_LEN = 16
VIEWS: tuple[View, ...] = tuple(View)  # t, u, o, i: the index's views (query plans, listings)
# The keys table of index format 2 (collector/index.py): the user and operation blocks of a day in
# one table, so that a content blob's entries of one shard go in one transaction. Days written
# before the ids table existed (up to 2026-12-04) hold their id entries here too (RowKey `i` +
# id_entry_key): lookups still read them there.
KEYS_TABLE = "k"
# The ids table of index format 2: a day's id entries, apart from the keys table that user and
# operation queries read, so those queries (Azurite scans a whole table per request) never wade
# through one id entry per record. KEY_SHARDS partitions, like the keys table.
IDS_TABLE = "j"
# The RowKey letter of an id entry in a keys table written before IDS_TABLE (the old place).
KEYS_ID_MARK = "i"
# Every day table letter, the order a day is dropped in: the id tables last, so that a drop cut
# short still shows the day to the next run (format 1's i, then j).
TABLE_LETTERS: tuple[str, ...] = (View.TIME, View.USER, View.OPERATION, KEYS_TABLE, View.ID, IDS_TABLE)

# Characters Table keys may not hold (plus `%`, our escape, and `_`, our org separator); blob
# names get the same treatment so a contentId is always one path segment.
_UNSAFE = re.compile(r"[%/\\#?_\x00-\x1f\x7f-\x9f]")
_UNSAFE_BLOB = re.compile(r"[%/\\#?\x00-\x1f\x7f-\x9f]")


def escape_key(text: str) -> str:
    return _UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", text)


def unescape_key(text: str) -> str:
    return re.sub(r"%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), text)


def epoch(value: datetime) -> int:
    return int(value.astimezone(UTC).timestamp())


def inv(value: datetime) -> int:
    """Inverted epoch seconds: ascending keys = newest first."""
    return INV_BASE - epoch(value)


def from_inv(number: int) -> datetime:
    return datetime.fromtimestamp(INV_BASE - number, UTC)


# A record id or organization id goes into RowKeys verbatim (escaped) up to MAX_KEY_ID UTF-16 code
# units; a longer one is replaced by HASHED + 40 hex digits of its SHA-256, so that no id can push
# a key past the Table service's 1 KiB (docs/storage-facts.md) and poison its blob. "%Z" is never
# written by escape_key (its % is always followed by two hex digits) nor read by unescape_key. The
# index payload keeps the id itself (collector/index.py); the archive keeps the raw record.
MAX_KEY_ID = 200
HASHED = "%ZZ"


# A lone surrogate (JSON allows "\ud800" escapes, so a hostile record can hold one) cannot be sent
# in a key: such an id is hashed like an over-long one (the payload keeps the id itself).
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _bounded(escaped: str) -> str:
    if not _SURROGATE.search(escaped) and len(escaped.encode("utf-16-le")) <= 2 * MAX_KEY_ID:
        return escaped
    return HASHED + hashlib.sha256(escaped.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def is_hashed(key: str) -> bool:
    return key.startswith(HASHED)


def kid(record_id: str) -> str:
    return _bounded(escape_key(record_id.lower()))


def org_suffix(organization_id: str, tenant_id: str) -> str:
    """Empty for the deployment's own tenant (the usual case); `_org` keeps other orgs apart.

    The dedupe key is (OrganizationId, Id): the suffix makes it so without spending key bytes on
    the one organization every record of a single-tenant deployment shares.
    """
    org = organization_id.lower()
    return "" if not org or org == tenant_id.lower() else "_" + _bounded(escape_key(org))


def order_key(when: datetime, record_id: str, organization_id: str, tenant_id: str) -> str:
    """Global newest-first order of index rows, the same in every view; query cursors use it."""
    return f"{inv(when):010d}{kid(record_id)}{org_suffix(organization_id, tenant_id)}"


def split_order_key(key: str) -> tuple[datetime, str, str | None]:
    """order key → (time, record id, organization id or None for the tenant's own)."""
    when = from_inv(int(key[:10]))
    rest = key[10:]
    ident, _, org = rest.partition("_")
    return when, unescape_key(ident), (unescape_key(org) if org else None)


def value_hash(value: str) -> str:
    return hashlib.sha256(value.casefold().encode("utf-8", "surrogatepass")).hexdigest()[:HASH_LEN]


def shard(value_digest: str, shards: int = SHARDS) -> str:
    return f"{int(value_digest[:8], 16) % shards:02d}"


def id_partition(record_key: str, shards: int = SHARDS) -> str:
    """Partition of an id entity: a shard of its key, so one lookup needs only the id."""
    return shard(hashlib.sha256(record_key.encode("utf-8")).hexdigest(), shards)


def day_of(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%d")


def month_of(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m")


def table_name(prefix: str, view: View | str, day: str) -> str:
    """`{prefix}{letter}{yyyyMMdd}`: one table per letter (a view, or the keys table) and day of event time."""
    return f"{prefix}{view}{day}"


# Format 2's id entries key a canonical GUID (nearly every record Id) by its 128 bits in 22
# characters of this alphabet instead of 36 hex digits and dashes: RowKey characters cost 2 bytes
# each (docs/storage-facts.md "Billed entity size"). No `_` (the org separator), `/`, `\`, `#`, `?`.
_ID64 = "-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def id_entry_key(record_key: str) -> str:
    """The RowKey of a record's id entry in the ids table: `g` + 22 characters for a GUID Id, `x` +
    the escaped Id otherwise, then the organization suffix (`_org`, see org_suffix)."""
    ident, sep, org = record_key.partition("_")
    if _GUID.fullmatch(ident):
        number = int(ident.replace("-", ""), 16)
        digits = []
        for _ in range(22):
            number, digit = divmod(number, 64)
            digits.append(_ID64[digit])
        return "g" + "".join(reversed(digits)) + sep + org
    return "x" + record_key


def keys_table_id_key(record_key: str) -> str:
    """The RowKey the same id entry had in the keys table of a day written before IDS_TABLE existed."""
    return KEYS_ID_MARK + id_entry_key(record_key)


def hour_partition(when: datetime) -> str:
    """Time-view partition: one per hour, inverted so newer hours sort first within the day."""
    return f"{23 - when.astimezone(UTC).hour:02d}"


def days_newest_first(start: datetime, end: datetime) -> list[str]:
    """Days (yyyyMMdd) overlapping [start, end), newest first."""
    last = (end - timedelta(microseconds=1)).astimezone(UTC).date()
    first = start.astimezone(UTC).date()
    days = []
    while last >= first:
        days.append(last.strftime("%Y%m%d"))
        last -= timedelta(days=1)
    return days


def scan_days(view: View, start: datetime, end: datetime, *, value: str | None,
              after: str | None) -> list[tuple[str, int, int]]:
    """The day tables a scan of `view` over start <= time < end reads, newest first, each with the
    epoch seconds [low, high] it covers there (second resolution; `after`, an order key, caps the
    high end). ValueError for the id view (point reads only) or a user/operation scan without a
    value. The one reading of a scan's bounds: the hot index and the tiered view both use it."""
    if view not in (View.TIME, View.USER, View.OPERATION):
        raise ValueError(f"unknown view {view!r}")  # the id view is for point reads, not scans
    if view != View.TIME and value is None:
        raise ValueError("user and operation scans need a value")
    first_second = math.ceil(start.timestamp())
    last_second = math.ceil(end.timestamp()) - 1  # time < end, at second resolution
    if after is not None:
        last_second = min(last_second, INV_BASE - int(after[:10]))
    if last_second < first_second:
        return []
    spans = []
    for day in days_newest_first(from_inv(INV_BASE - first_second), from_inv(INV_BASE - last_second) + timedelta(seconds=1)):
        day_start, day_end = day_bounds(day)
        low, high = max(first_second, int(day_start.timestamp())), min(last_second, int(day_end.timestamp()) - 1)
        if low <= high:
            spans.append((day, low, high))
    return spans


def day_bounds(day: str) -> tuple[datetime, datetime]:
    start = datetime(int(day[:4]), int(day[4:6]), int(day[6:]), tzinfo=UTC)
    return start, start + timedelta(days=1)


def months_newest_first(start: datetime, end: datetime) -> list[str]:
    """Calendar months (yyyyMM) overlapping [start, end), newest first."""
    last = (end - timedelta(microseconds=1)).astimezone(UTC)
    year, month = last.year, last.month
    first = start.astimezone(UTC)
    months: list[str] = []
    while (year, month) >= (first.year, first.month):
        months.append(f"{year:04d}{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months


def month_bounds(month: str) -> tuple[datetime, datetime]:
    year, mon = int(month[:4]), int(month[4:])
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=UTC)
    return start, end


def archive_blob_name(content_type: str, content_id: str, content_created: datetime) -> str:
    created = content_created.astimezone(UTC)
    stamp = created.strftime("%Y%m%dT%H%M%S") + f"{created.microsecond // 1000:03d}Z"
    safe_id = _UNSAFE_BLOB.sub(lambda m: f"%{ord(m.group()):02X}", content_id)
    return f"{content_type}/{created:%Y/%m/%d/%H}/{stamp}_{safe_id}.json.gz"


def ledger_table(prefix: str, content_created: datetime) -> str:
    return f"{prefix}ledger{content_created.astimezone(UTC):%Y%m%d}"


def state_table(prefix: str) -> str:
    return f"{prefix}state"
