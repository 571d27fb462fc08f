"""The index: normalized fields of every record in per-day Table storage tables (docs/architecture.md,
"Index").

Format 2 (this version writes it) packs records into *blocks*: one entity holds the records of one
content blob that share a view key (an hour of the time view, a user, an operation), newest first,
as one raw-DEFLATE-compressed JSON array; a user or operation seen fewer than POSTING_BELOW times
in the blob is kept as *postings* (order keys pointing into the time block). Per record the index
then costs well under a third of the bytes and transactions of format 1 (one entity per record and
view), which it still reads: days written by earlier versions stay queryable as they are.

    {p}t{day}  time view    PK hour (inverted)   RK inv(newest) + blob tag + digest    → rows with blob + positions
    {p}k{day}  keys table   PK shard of 2        RK u + user hash + inv + tag + digest → the user's rows or postings
                                                 RK o + operation hash + inv + tag + digest
    {p}j{day}  ids table    PK shard of 2        RK id key (keys.id_entry_key)         → which time block holds it
    {p}u/o/i{day}  format 1 only (read, never written)

Days written before the ids table existed hold their id entries in the keys table (RowKey `i` + id
key): lookups read the ids table first, then that old place, then format 1's. The user and
operation entries of a blob's shard share one partition of the keys table, and its id entries one
of the ids table, so each goes in one transaction; writes group entities by (table, partition) into
batches of at most 100 (the entity-group transaction limit; Azurite fails larger ones with a
confusing error) and send them from a few threads.

Reads are *scans* of one view in newest-first order-key order. A block's RowKey carries the time of
its newest record and its `o` property the time of its oldest: a scan asks for the blocks that
overlap its range and merges their rows in RowKey order through a heap, releasing a row once no
unread block can hold a newer one. Rows with the same order key (the API's duplicates across blobs)
come out once.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import logging
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from . import keys
from .errors import IndexFormatError
from .models import AuditEntry, View
from .tables import TableClients
from .timeutil import format_record_time

log = logging.getLogger(__name__)

BATCH_LIMIT = 100  # entity group transaction: ≤ 100 operations, one partition (docs/storage-facts.md)
# ... and a request body under 4 MiB: binary properties travel base64-encoded (4/3), so a batch
# carries at most this many payload bytes.
BATCH_BYTES = 2 * 1024 * 1024
# Every text field is cut to MAX_TEXT characters in the index (the raw record in the archive stays
# complete), so one absurd field can never push a record past MAX_PAYLOAD: 10 fields of 1,024
# characters are at most ~60 KiB even if every character were a 6-byte JSON escape, and a record
# still over MAX_PAYLOAD is packed again with fields of SHORT_TEXT characters.
MAX_TEXT = 1024
SHORT_TEXT = 128
MAX_PAYLOAD = 16 * 1024
# A block holds at most BLOCK_BYTES of JSON before compression: under the Table service's 64 KiB
# per binary property (docs/storage-facts.md) even if it did not compress at all.
BLOCK_BYTES = 48 * 1024
# A block is cut once it spans CUT_SECONDS and holds CUT_ROWS rows: a busy blob's blocks stay a few
# minutes long, so a scan holds little more than a few minutes of rows before it can release the
# newest (see ordered_rows), while a quiet blob's records of an hour share one block.
CUT_SECONDS = 300
CUT_ROWS = 64
# A user's or an operation's records of one blob fewer than this are kept as *postings* (order key
# and the time block that holds the row) instead of whole rows: most users appear once or twice per
# blob, and a whole row costs about 100 B more than a posting. A scan reads their time blocks.
POSTING_BELOW = 8
# Blocks carry the time of their oldest row as an Int32 property, seconds since this epoch (good to
# 2088): the service then skips, server-side, blocks that end before a scan's range.
OLDEST = "o"
OLDEST_EPOCH = 1_577_836_800  # 2020-01-01T00:00:00Z
TABLE_CACHE_SECONDS = 30.0  # how long a scan trusts its list of day tables
# A lookup by Id reads the id entries of at most this many days (newest first; a year and a day)
# with this many requests in flight: an unknown Id costs at most 2 × 366 requests, not two per day
# of a many-year index.
LOCATE_MAX_DAYS = 366
LOCATE_THREADS = 16

# Every index entity keeps its payload in one Edm.Binary property `d`. Billed size
# (docs/storage-facts.md "Billed entity size"): a String costs 4 bytes plus 2 per character and
# every property another 8 bytes plus 2 per character of its name; a Binary costs 4 bytes plus 1
# per byte. The payload's first byte is its format: 2 for a block or an id entry of this version,
# `[` for format 1's JSON array `[1, ...]`.
PAYLOAD = "d"
FORMAT = 2
LEGACY_FORMAT = 1
_BLOCK = bytes([FORMAT])
TAG_BYTES = 4  # a block's blob tag: the first 32 bits of the SHA-256 of its archive blob's name
DIGEST_BYTES = 3  # and its content digest (block_suffix)
# Content types are stored as their position here: one digit instead of up to 26 characters.
# A storage format: never reorder, only append. Unknown types are stored as their name.
CONTENT_TYPE_CODES = ("Audit.AzureActiveDirectory", "Audit.Exchange", "Audit.SharePoint", "Audit.General", "DLP.All")
# Rows per block a scan expects when it sizes its first page of entities (it doubles the next ones).
_ROWS_PER_BLOCK = {View.TIME: 32, View.USER: 2, View.OPERATION: 8}
RESOLVE_THREADS = 8  # time blocks read at once for a scan's postings
_VIEW_LETTER = {View.USER: "u", View.OPERATION: "o"}
# Where a day's id entries may be, in the order lookups read them: the ids table, the keys table (a
# day written before the ids table existed), format 1's id table.
_ID_LETTERS: tuple[str, ...] = (keys.IDS_TABLE, keys.KEYS_TABLE, View.ID)


def view_letters(view: View) -> tuple[str, ...]:
    """The day tables that may hold `view`, in either format."""
    if view == View.TIME:
        return (View.TIME,)
    return _ID_LETTERS if view == View.ID else (keys.KEYS_TABLE, view)


def table_days(clients: TableClients, prefix: str, letter: str) -> set[str]:
    """Days (yyyyMMdd) that have a `{prefix}{letter}{day}` table (one listing)."""
    low = f"{prefix}{letter}"
    return {n[len(low):] for n in clients.names(low, f"{low}~") if len(n) == len(low) + 8 and n[len(low):].isdigit()}


@dataclass(frozen=True)
class IndexItem:
    """One record to index: its normalized entry and where its raw form lives."""

    entry: AuditEntry
    when: datetime
    blob: str
    position: int


@dataclass(frozen=True)
class Hit:
    """One row of a view scan: its global order key and the record's normalized fields."""

    key: str
    entry: AuditEntry


@dataclass(frozen=True)
class Lookup:
    """The answer of `AuditIndex.lookup`: where the record is, and how far back the search went."""

    found: tuple[str, int] | None  # (archive blob, position in its JSON array)
    days: int  # days whose id entries were read
    oldest_day: str | None  # the oldest day (yyyyMMdd) read, None when none was
    more: bool  # older days exist that were not read


class BlockRef(NamedTuple):
    """Where a format 2 id entry points: the time block that holds the record."""

    partition: str
    row_key: str


class Row(NamedTuple):
    """One record as a block holds it: its order key, its payload values, and (time view) its raw
    record's place (None for a format 1 entity, whose place is in its id entity). A posting has no
    values yet: `ref` names the time block that holds them."""

    key: str
    values: list[Any] | None
    blob: str | None
    position: int | None
    ref: str | None = None


# ---------------------------------------------------------------- record codec (pure)


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (a hostile "\ud800" escape): U+FFFD in the index; the archive keeps it
        return re.sub(r"[\ud800-\udfff]", "\ufffd", text).encode("utf-8")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _pack(values: list[Any]) -> bytes:
    return _utf8(_dumps([LEGACY_FORMAT, *values]))


def record_values(entry: AuditEntry, tenant_id: str) -> list[Any]:
    """The normalized fields of a record as the index keeps them; `id` and `time` live in the order
    key, except an id too long for a key (keys.kid hashes it): then the id is an 11th element."""
    code = CONTENT_TYPE_CODES.index(entry.contentType) if entry.contentType in CONTENT_TYPE_CODES else entry.contentType
    # null: the deployment's own tenant (nearly every record), restored from tenant_id on reading
    org = None if tenant_id and entry.organizationId.lower() == tenant_id.lower() else entry.organizationId
    texts = [entry.user, entry.operation, entry.object, entry.result, entry.clientIp, entry.userAgent, entry.workload]
    extra = [entry.id] if keys.is_hashed(keys.kid(entry.id)) else []
    values: list[Any] = []
    for limit in (MAX_TEXT, SHORT_TEXT):
        cut = [text[:limit] for text in texts]
        values = [*cut, entry.recordType, _clip(code, limit), _clip(org, limit), *(e[:limit] for e in extra)]
        if len(_pack(values)) <= MAX_PAYLOAD:
            break
    return values


def view_payload(entry: AuditEntry, tenant_id: str) -> bytes:
    """A record's values as one format 1 payload: what `entry_from_entity` reads back. The cold tier
    round-trips entries through this pair, so a cold entry equals the hot one field for field."""
    return _pack(record_values(entry, tenant_id))


def _clip(value: str | int | None, limit: int) -> str | int | None:
    return value[:limit] if isinstance(value, str) else value


def entry_from_values(order_key: str, values: list[Any], tenant_id: str) -> AuditEntry:
    when, record_id, _org = keys.split_order_key(order_key)
    user, operation, obj, result, ip, agent, workload, record_type, code, org = values[:10]
    if len(values) == 11:
        record_id = values[10]  # an id too long for a key: the key holds its hash (keys.kid)
    return AuditEntry(
        id=record_id,
        time=format_record_time(when),
        user=user,
        operation=operation,
        object=obj,
        result=result,
        clientIp=ip,
        userAgent=agent,
        workload=workload,
        recordType=record_type,
        contentType=CONTENT_TYPE_CODES[code] if isinstance(code, int) else code,
        organizationId=tenant_id if org is None else org,
    )


def _format_error(entity: dict[str, Any], expected: str) -> IndexFormatError:
    return IndexFormatError(
        f"index entity {entity.get('PartitionKey')!r}/{entity.get('RowKey')!r} is not in index format {expected} "
        "(written by another AuditKeep version?)"
    )


def _unpack(entity: dict[str, Any], size: int, optional: int = 0) -> list[Any]:
    payload = entity.get(PAYLOAD)
    try:
        values = json.loads(payload) if isinstance(payload, bytes | bytearray) else None
    except ValueError:  # not JSON (or not UTF-8)
        values = None
    if not isinstance(values, list) or values[:1] != [LEGACY_FORMAT] or not size + 1 <= len(values) <= size + 1 + optional:
        raise _format_error(entity, f"{LEGACY_FORMAT} or {FORMAT}")
    return values[1:]


def entry_from_entity(order_key: str, entity: dict[str, Any], tenant_id: str) -> AuditEntry:
    """The entry of a format 1 view entity (or of `{"d": view_payload(...)}`)."""
    return entry_from_values(order_key, _unpack(entity, 10, optional=1), tenant_id)


def location_from_entity(entity: dict[str, Any]) -> tuple[str, int]:
    """(archive blob, position in its JSON array) of a format 1 id entity."""
    blob, position = _unpack(entity, 2)
    return str(blob), int(position)


# ---------------------------------------------------------------- blocks (pure)


def blob_tag(blob: str) -> str:
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:2 * TAG_BYTES]


def block_suffix(newest_inv: int, tag: str, content: str) -> str:
    """inv(newest) + blob tag + content digest: the end of every block's RowKey (24 characters).

    The digest (of the block's order keys) makes the key a function of what the block holds: the
    same records give the same key (a retry rewrites it), other records of the same blob (a reindex
    of part of its range, cut elsewhere) another key, never an overwrite of a block that holds
    records the new one lacks. Overlapping blocks cost bytes, not correctness: scans give each
    order key once."""
    return f"{newest_inv:010d}{tag}{content}"


def block_digest(orders: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(orders).encode("utf-8", "surrogatepass")).hexdigest()[:2 * DIGEST_BYTES]


def _compress(text: str) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)  # raw DEFLATE: no header, no checksum (the service has its own)
    return _BLOCK + packer.compress(_utf8(text)) + packer.flush()


def _decompress(entity: dict[str, Any]) -> Any:
    try:
        return json.loads(zlib.decompress(bytes(entity[PAYLOAD])[1:], -15))
    except (zlib.error, ValueError) as exc:
        raise _format_error(entity, str(FORMAT)) from exc


@dataclass
class _Record:
    order: str  # order key
    inv: int
    record_key: str  # order[10:]: kid + org suffix
    values_json: str  # the values, JSON, without brackets
    position: int
    user_hash: str
    operation_hash: str


def _cut(records: list[_Record], width: Callable[[_Record], int]) -> list[list[_Record]]:
    """Consecutive runs of `records` (newest first): cut at BLOCK_BYTES, and once a run spans
    CUT_SECONDS and holds CUT_ROWS rows."""
    blocks: list[list[_Record]] = []
    current: list[_Record] = []
    newest = size = 0
    for record in records:
        size_of = width(record)
        if current and (size + size_of > BLOCK_BYTES or (record.inv - newest >= CUT_SECONDS and len(current) >= CUT_ROWS)):
            blocks.append(current)
            current, size = [], 0
        if not current:
            newest = record.inv
        current.append(record)
        size += size_of + 1
    if current:
        blocks.append(current)
    return blocks


def oldest_of(block_oldest_inv: int) -> int:
    """The OLDEST property of a block whose oldest row has inverted time `block_oldest_inv`."""
    return keys.INV_BASE - block_oldest_inv - OLDEST_EPOCH


def _width(record: _Record) -> int:
    return len(record.values_json.encode("utf-8", "surrogatepass")) + len(record.record_key) + 24


def _time_row(record: _Record) -> str:
    return f"[{record.inv},{_dumps(record.record_key)},{record.position},{record.values_json}]"


def _posting_row(record: _Record, home: str) -> str:
    """[inv, record key, how much newer its time block's newest row is, that block's digest]: the
    block's RowKey, less the tag it shares with the posting's own (same blob)."""
    return f"[{record.inv},{_dumps(record.record_key)},{record.inv - int(home[:10])},{_dumps(home[10 + 2 * TAG_BYTES:])}]"


def _key_row(record: _Record) -> str:
    return f"[{record.inv},{_dumps(record.record_key)},{record.values_json}]"


def plan_entities(items: Iterable[IndexItem], tenant_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """The entities that index `items`, as (table letter, day, entity).

    A record twice (the API's duplicates: docs/api-behaviour.md "Duplicates") is written once per
    blob; twice across blobs it is in both blobs' blocks, and scans give it once. The same items
    give the same entities, whatever their order: every retry rewrites the same keys.
    """
    by_key: dict[tuple[str, str], tuple[IndexItem, _Record]] = {}
    for item in items:
        entry = item.entry
        order = keys.order_key(item.when, entry.id, entry.organizationId, tenant_id)
        values = _dumps(record_values(entry, tenant_id))[1:-1]
        record = _Record(order, int(order[:10]), order[10:], values, item.position,
                         keys.value_hash(entry.user), keys.value_hash(entry.operation))
        by_key[(item.blob, order)] = (item, record)  # the last of a blob's copies, as format 1 kept it
    groups: dict[tuple[str, ...], list[_Record]] = {}
    for (blob, _order), (item, record) in sorted(by_key.items()):
        day = keys.day_of(item.when)
        groups.setdefault(("t", day, blob, keys.hour_partition(item.when)), []).append(record)
        groups.setdefault(("u", day, blob, record.user_hash), []).append(record)
        groups.setdefault(("o", day, blob, record.operation_hash), []).append(record)
    out: list[tuple[str, str, dict[str, Any]]] = []
    home: dict[tuple[str, str, str], str] = {}  # (blob, day, order key) → RowKey of its time block in that blob
    for (letter, day, blob, group_key), records in groups.items():
        if letter != "t":
            continue
        tag = blob_tag(blob)
        for block in _cut(records, _width):
            content = block_digest(r.order for r in block)
            suffix = block_suffix(block[0].inv, tag, content)
            payload = _compress(f"[{_dumps(blob)},[{','.join(_time_row(r) for r in block)}]]")
            out.append((View.TIME, day, {"PartitionKey": group_key, "RowKey": suffix, PAYLOAD: payload,
                                         OLDEST: oldest_of(block[-1].inv)}))
            pointer = _BLOCK + block[0].inv.to_bytes(5, "big") + bytes.fromhex(tag + content)
            for record in block:
                home[(blob, day, record.order)] = suffix
                out.append((keys.IDS_TABLE, day, {"PartitionKey": keys.id_partition(record.record_key, keys.KEY_SHARDS),
                                                  "RowKey": keys.id_entry_key(record.record_key), PAYLOAD: pointer}))
    for (letter, day, blob, group_key), records in groups.items():
        if letter == "t":
            continue
        tag = blob_tag(blob)
        if len(records) < POSTING_BELOW:
            blocks, head = [records], "1"
            rows = [[_posting_row(r, home[(blob, day, r.order)]) for r in records]]
        else:
            blocks, head = _cut(records, _width), "null"
            rows = [[_key_row(r) for r in block] for block in blocks]
        for block, texts in zip(blocks, rows, strict=True):
            suffix = block_suffix(block[0].inv, tag, block_digest(r.order for r in block))
            out.append((keys.KEYS_TABLE, day, {"PartitionKey": keys.shard(group_key, keys.KEY_SHARDS),
                                               "RowKey": letter + group_key + suffix,
                                               PAYLOAD: _compress(f"[{head},[{','.join(texts)}]]"),
                                               OLDEST: oldest_of(block[-1].inv)}))
    return out


def plan_batches(items: Iterable[IndexItem], prefix: str, tenant_id: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """The transactions that index `items`: (table, ≤ 100 entities of one partition, ≤ BATCH_BYTES) each.

    A transaction may not touch the same entity twice: a record in two blocks of one blob cannot
    happen (it is one row), and an id written twice by one batch keeps the last pointer.
    """
    groups: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for letter, day, entity in plan_entities(items, tenant_id):
        table = keys.table_name(prefix, letter, day)
        groups.setdefault((table, entity["PartitionKey"]), {})[entity["RowKey"]] = entity
    batches: list[tuple[str, list[dict[str, Any]]]] = []
    for (table, _pk), rows in groups.items():
        chunk: list[dict[str, Any]] = []
        size = 0
        for entity in rows.values():
            weight = len(entity[PAYLOAD])
            if chunk and (len(chunk) >= BATCH_LIMIT or size + weight > BATCH_BYTES):
                batches.append((table, chunk))
                chunk, size = [], 0
            chunk.append(entity)
            size += weight
        if chunk:
            batches.append((table, chunk))
    return batches


def rows_of(entity: dict[str, Any], key_prefix: int) -> list[Row]:
    """The rows of one time-view or keys-table entity (format 2 block or posting block, or format 1
    record); `key_prefix` is the length of the RowKey's view prefix (format 1: the hash; format 2:
    the letter and hash)."""
    payload = entity.get(PAYLOAD)
    if isinstance(payload, bytes | bytearray) and payload[:1] == _BLOCK:
        block = _decompress(entity)
        if not (isinstance(block, list) and len(block) == 2 and isinstance(block[1], list)):
            raise _format_error(entity, str(FORMAT))
        head = block[0]
        try:
            if head is None:  # whole rows of a user or an operation
                return [Row(f"{row[0]:010d}{row[1]}", row[2:], None, None) for row in block[1]]
            if head == 1:  # postings: the rows are in time blocks of the same blob (same tag)
                tag = entity["RowKey"][-2 * (TAG_BYTES + DIGEST_BYTES):-2 * DIGEST_BYTES]
                return [Row(f"{row[0]:010d}{row[1]}", None, None, None, block_suffix(row[0] - row[2], tag, row[3]))
                        for row in block[1]]
            return [Row(f"{row[0]:010d}{row[1]}", row[3:], head, row[2]) for row in block[1]]
        except (IndexError, TypeError, ValueError) as exc:
            raise _format_error(entity, str(FORMAT)) from exc
    return [Row(entity["RowKey"][key_prefix:], _unpack(entity, 10, optional=1), None, None)]


def ordered_rows(entities: Iterable[dict[str, Any]], key_prefix: int,
                 keep: Callable[[Row], bool] = lambda row: True) -> Iterator[Row]:
    """The rows of `entities` (as a query returns them: RowKey order within each partition,
    partitions newest first) in order-key order, each key once (the first row of a key that knows
    its blob, if any does).

    A block's RowKey starts (after `key_prefix`) with the inverted time of its newest row: once an
    entity with inverted time b has been read, no later entity holds a row newer than b, so every
    row already read that is strictly newer can go.
    """
    heap: list[tuple[str, int, Row]] = []
    counter = itertools.count()
    last: Row | None = None

    def release(bound: str | None) -> Iterator[Row]:
        nonlocal last
        while heap and (bound is None or heap[0][0][:10] < bound):
            row = heapq.heappop(heap)[2]
            if last is not None and row.key == last.key:
                if last.blob is None and row.blob is not None:
                    last = row
                continue
            if last is not None:
                yield last
            last = row

    for entity in entities:
        yield from release(entity["RowKey"][key_prefix:key_prefix + 10])
        for row in rows_of(entity, key_prefix):
            if keep(row):
                heapq.heappush(heap, (row.key, next(counter), row))
    yield from release(None)
    if last is not None:
        yield last


def pointer_of(entity: dict[str, Any]) -> BlockRef | tuple[str, int]:
    """A format 2 id entry → the time block it points at; a format 1 id entity → its (archive
    blob, position)."""
    payload = entity.get(PAYLOAD)
    if isinstance(payload, bytes | bytearray) and payload[:1] == _BLOCK:
        if len(payload) != 1 + 5 + TAG_BYTES + DIGEST_BYTES:
            raise _format_error(entity, str(FORMAT))
        newest = int.from_bytes(payload[1:6], "big")
        return BlockRef(keys.hour_partition(keys.from_inv(newest)), f"{newest:010d}{bytes(payload[6:]).hex()}")
    return location_from_entity(entity)


# ---------------------------------------------------------------- reading pages


def pages(table: TableClient, query: str | None, parameters: dict[str, Any], first: int,
          select: list[str] | None = None) -> Iterator[list[dict[str, Any]]]:
    """The entities of a query, page by page: `first` entities, then twice as many each time up to
    1,000 (the service's maximum), so a first page of results costs little and a long scan few
    requests."""
    size = max(1, min(1000, first))
    token: Any = None
    while True:
        if query is None:
            pager = table.list_entities(results_per_page=size, select=select).by_page(continuation_token=token)
        else:
            pager = table.query_entities(query, parameters=parameters, results_per_page=size,
                                         select=select).by_page(continuation_token=token)
        page = next(pager, None)
        if page is None:
            return
        yield list(page)
        token = pager.continuation_token  # type: ignore[attr-defined]  # set by the SDK's page iterator after each page
        if not token:
            return
        size = min(1000, size * 2)


class AuditIndex:
    """Per-day index tables: write blocks in batches, scan them newest first, locate raw records."""

    def __init__(self, clients: TableClients, prefix: str, tenant_id: str, *, writers: int = 4) -> None:
        self.clients = clients
        self.prefix = prefix
        self.tenant_id = tenant_id
        self.writers = writers
        self._listing: dict[str, tuple[float, set[str]]] = {}  # table letter → (when, days)
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- writing

    def ensure_table(self, name: str) -> None:
        self.clients.create(name)
        letter, day = name[len(self.prefix)], name[len(self.prefix) + 1:]
        with self._lock:
            if letter in self._listing:
                self._listing[letter][1].add(day)

    def write(self, items: Iterable[IndexItem]) -> int:
        """Upsert (replace) the blocks and id entries of `items`; returns the number of entities written."""
        batches = plan_batches(items, self.prefix, self.tenant_id)
        for table in {table for table, _ in batches}:
            self.ensure_table(table)
        if len(batches) <= 1 or self.writers <= 1:
            for table, chunk in batches:
                self._submit(table, chunk)
        else:
            with ThreadPoolExecutor(max_workers=self.writers) as pool:
                for result in pool.map(lambda batch: self._submit(*batch), batches):
                    del result  # re-raises the first failure
        return sum(len(chunk) for _, chunk in batches)

    def _submit(self, table: str, chunk: list[dict[str, Any]]) -> None:
        # upsert goes through write: a day table dropped by prune-index in another process is recreated
        self.clients.upsert(table, chunk)

    # ---------------------------------------------------------------- listing

    def _days(self, letter: str, refresh: bool) -> set[str]:
        now = time.monotonic()
        cached = self._listing.get(letter)
        if cached is None or refresh or now - cached[0] > TABLE_CACHE_SECONDS:
            cached = (now, table_days(self.clients, self.prefix, letter))
            self._listing[letter] = cached
        return cached[1]

    def tables(self, view: View, *, refresh: bool = False) -> set[str]:
        """Days (yyyyMMdd) that have `view`, in either format, from listings cached for TABLE_CACHE_SECONDS.
        The id view's days include those whose keys table holds the id entries (written before the
        ids table existed)."""
        days: set[str] = set()
        for letter in view_letters(view):
            days |= self._days(letter, refresh)
        return days

    def _listed_at(self, view: View) -> float:
        return min(self._listing[letter][0] for letter in view_letters(view))

    # ---------------------------------------------------------------- scans

    def scan(
        self,
        view: View,
        start: datetime,
        end: datetime,
        *,
        value: str | None = None,
        after: str | None = None,
        page_size: int = 1000,
        on_request: Callable[[], None] | None = None,
    ) -> Iterator[Hit]:
        """Rows of `view` (time, user or operation) with start <= time < end, newest first.

        `value` is the user or operation (compared case-insensitively through its hash key);
        `after` resumes strictly after a previous Hit.key. Rows come lazily, page by page, one day
        after the other (days without a table are skipped); `page_size` is the number of rows the
        caller expects to want first. `on_request` is called once per storage request (each page,
        empty continuation pages included): the query's budget.
        """
        spans = keys.scan_days(view, start, end, value=value, after=after)
        if not spans:
            return
        existing = self.tables(view)
        if not {day for day, _, _ in spans} <= existing and time.monotonic() - self._listed_at(view) > 1.0:
            existing = self.tables(view, refresh=True)  # another process may have created a day since
        for day, lo_second, hi_second in spans:
            if day not in existing:
                continue
            sources = [self._day_rows(view, day, letter, value, after, lo_second, hi_second, page_size, on_request)
                       for letter in self._letters(view, day)]
            merged = sources[0] if len(sources) == 1 else heapq.merge(*sources, key=lambda row: row.key)
            last = None
            for row in merged:
                if row.key != last:  # a record in both formats (rewritten by reindex): once
                    last = row.key
                    yield Hit(row.key, entry_from_values(row.key, row.values or [], self.tenant_id))

    def _letters(self, view: View, day: str) -> list[str]:
        """The tables of `day` that hold `view`: the keys table (format 2) and/or the view's own (format 1)."""
        if view == View.TIME:
            return [View.TIME]
        letters = [keys.KEYS_TABLE] if day in self._days(keys.KEYS_TABLE, False) else []
        if day in self._days(view, False) or not letters:
            letters.append(view)
        return letters

    def _day_rows(self, view: View, day: str, letter: str, value: str | None, after: str | None, lo_second: int,
                  hi_second: int, page_size: int, on_request: Callable[[], None] | None) -> Iterator[Row]:
        legacy = letter == view and view != View.TIME
        digest = keys.value_hash(value) if value is not None else ""
        prefix = digest if legacy else (_VIEW_LETTER[view] + digest if digest else "")
        low_inv, high_inv = keys.INV_BASE - hi_second, keys.INV_BASE - lo_second
        clauses = ["RowKey lt @rhigh"]  # blocks whose newest row is at or after the range's start
        params: dict[str, Any] = {"rhigh": f"{prefix}{high_inv + 1:010d}", "rlow": f"{prefix}{low_inv:010d}"}
        if legacy:  # format 1: one row per entity, keyed by its order key
            clauses.insert(0, "RowKey ge @rlow")
            if after is not None and after >= f"{low_inv:010d}":
                clauses.append("RowKey gt @after")
                params["after"] = prefix + after
        elif view == View.TIME:  # blocks that end in the range, or start before it ends; format 1 rows in it
            clauses.append(f"( {OLDEST} le @oldest or RowKey ge @rlow )")  # the SDK substitutes @names between spaces
            params["oldest"] = hi_second - OLDEST_EPOCH
        else:  # the user's or operation's blocks that start before the range ends
            clauses[:0] = ["RowKey ge @prefix"]
            clauses.append(f"{OLDEST} le @oldest")
            params.update(prefix=prefix, oldest=hi_second - OLDEST_EPOCH)
        if digest:
            clauses.insert(0, "PartitionKey eq @pk")
            params["pk"] = keys.shard(digest, keys.SHARDS if legacy else keys.KEY_SHARDS)
        else:
            clauses[:0] = ["PartitionKey ge @plow", "PartitionKey le @phigh"]
            params["plow"] = keys.hour_partition(keys.from_inv(low_inv))
            params["phigh"] = keys.hour_partition(keys.from_inv(high_inv))
        table = self.clients.get(keys.table_name(self.prefix, letter, day))
        first = -(-page_size // (1 if legacy else _ROWS_PER_BLOCK[view]))
        query = " and ".join(clauses)
        used = {name: value for name, value in params.items() if "@" + name in query}

        def entities() -> Iterator[dict[str, Any]]:
            try:
                for page in pages(table, query, used, first):
                    if on_request is not None:
                        on_request()
                    yield from page
            except ResourceNotFoundError:
                # Dropped since the listing was cached (expired after compaction, or prune-index):
                # forget it, so that the tiered view no longer takes the day for hot.
                with self._lock:
                    cached = self._listing.get(letter)
                    if cached is not None:
                        cached[1].discard(day)
                return

        low_key, high_key = f"{low_inv:010d}", f"{high_inv + 1:010d}"

        def keep(row: Row) -> bool:
            return low_key <= row.key < high_key and (after is None or row.key > after)

        rows = ordered_rows(entities(), len(prefix), keep)
        return rows if legacy or view == View.TIME else self._resolved(rows, day, page_size, on_request)

    def _resolved(self, rows: Iterator[Row], day: str, page_size: int,
                  on_request: Callable[[], None] | None) -> Iterator[Row]:
        """`rows` with the values of postings read from their time blocks: a few rows at a time
        (page_size first, then more), their blocks RESOLVE_THREADS at a time, each block once per
        scan. A posting whose block is missing (its blob's indexing was cut short: the queue
        message is retried and writes it) is left out."""
        table = self.clients.get(keys.table_name(self.prefix, View.TIME, day))
        blocks: dict[str, dict[str, list[Any]]] = {}

        def fetch(ref: str) -> tuple[str, dict[str, list[Any]]]:
            if on_request is not None:
                on_request()
            partition = keys.hour_partition(keys.from_inv(int(ref[:10])))
            try:
                entity = table.get_entity(partition, ref)
            except ResourceNotFoundError:
                return ref, {}
            return ref, {row.key: row.values for row in rows_of(entity, 0) if row.values is not None}

        chunk = max(1, page_size)
        with ThreadPoolExecutor(max_workers=RESOLVE_THREADS) as pool:
            while True:
                batch = list(itertools.islice(rows, chunk))
                if not batch:
                    return
                wanted = sorted({row.ref for row in batch if row.values is None and row.ref is not None} - set(blocks))
                blocks.update(pool.map(fetch, wanted))
                for row in batch:
                    if row.values is not None:
                        yield row
                        continue
                    values = blocks.get(row.ref or "", {}).get(row.key)
                    if values is None:
                        log.warning("index.unresolved %s: posting %s has no row in time block %s", day, row.key,
                                    row.ref, extra={"day": day})
                        continue
                    yield row._replace(values=values)
                chunk = min(4096, chunk * 2)

    def months(self) -> list[str]:
        """Months (yyyyMM) that have index tables, newest first."""
        return sorted({day[:6] for day in self.tables(View.ID, refresh=True)}, reverse=True)

    # ---------------------------------------------------------------- by id

    def locate(self, record_id: str) -> tuple[str, int] | None:
        """(archive blob, position) of a record by its Id, or None (see `lookup`)."""
        return self.lookup(record_id).found

    def lookup(self, record_id: str, *, max_days: int = LOCATE_MAX_DAYS) -> Lookup:
        """Find a record by its Id in the id entries of the newest `max_days` days, newest first.

        LOCATE_THREADS requests at a time: a point read of the deployment's own organization's id
        entry in every day's ids table first (plus, for a hit, one read of the time block it points
        to), then (only when that found nothing) per day a key-range query of the ids table for
        another organization's record with the same Id (its key carries an `_org` suffix: the
        dedupe key is (OrganizationId, Id)) and one of each older place the day has (the keys
        table of a day written before the ids table existed, format 1's id table), each for any
        organization. An unknown Id therefore costs at most 3 × max_days requests (4 on days that
        also have format 1 tables) in about max_days / 8 round trips, and the answer says how far
        back it looked.
        """
        key = keys.kid(record_id)
        days = sorted(self.tables(View.ID, refresh=True), reverse=True)
        searched = days[:max_days] if key else []
        listed = {letter: self._days(letter, False) for letter in _ID_LETTERS}

        def exact(day: str) -> tuple[str, int] | None:
            if day not in listed[keys.IDS_TABLE]:
                return None
            return self._point(day, keys.IDS_TABLE, keys.id_partition(key, keys.KEY_SHARDS),
                               keys.id_entry_key(key), key)

        def rest(day: str) -> tuple[str, int] | None:
            for letter in _ID_LETTERS:
                if day not in listed[letter]:
                    continue
                # the ids table's own-org entry was read by `exact`: only other organizations' here
                found = self._any_org(day, letter, key, own=letter != keys.IDS_TABLE)
                if found is not None:
                    return found
            return None

        with ThreadPoolExecutor(max_workers=LOCATE_THREADS) as pool:
            for probe in (exact, rest):
                for start in range(0, len(searched), 2 * LOCATE_THREADS):  # newest first, in rounds
                    for found in pool.map(probe, searched[start:start + 2 * LOCATE_THREADS]):
                        if found is not None:
                            return Lookup(found, len(searched), searched[-1] if searched else None,
                                          len(days) > len(searched))
        return Lookup(None, len(searched), searched[-1] if searched else None, len(days) > len(searched))

    def _any_org(self, day: str, letter: str, key: str, *, own: bool) -> tuple[str, int] | None:
        """The first id entry of `key` (kid) in `day`'s table `letter` (ids, keys or format 1 id
        table) for another organization (`key_org`), or for any organization (`own`: the
        deployment's own too), by one key-range query over the table's partitions (an entry's
        partition depends on its organization)."""
        if letter == keys.IDS_TABLE:
            base = keys.id_entry_key(key)
        else:
            base = keys.keys_table_id_key(key) if letter == keys.KEYS_TABLE else key  # format 1: the record key
        # "_" (the org separator) sorts just before "`": [base_, base`) holds exactly base's other orgs
        low = ("RowKey ge @low", base) if own else ("RowKey gt @low", base + "_")
        table = self.clients.get(keys.table_name(self.prefix, letter, day))
        try:
            for entity in table.query_entities(f"{low[0]} and RowKey lt @high",
                                               parameters={"low": low[1], "high": base + "`"}):
                suffix = entity["RowKey"][len(base):]
                if suffix and not suffix.startswith("_"):
                    continue  # another, longer Id that starts like this one (non-GUID ids only)
                found = self._resolve(day, entity, key + suffix)
                if found is not None:
                    return found
        except ResourceNotFoundError:
            pass  # dropped since the listing
        return None

    def location(self, day: str, record_key: str) -> tuple[str, int] | None:
        """(archive blob, position) of the record with `record_key` (kid + org suffix: the order
        key without its time) in `day`'s id entries, or None: the ids table, then the keys table
        (a day written before the ids table existed), then format 1's id table; one point read
        each, until one holds it."""
        places = (
            (keys.IDS_TABLE, keys.id_partition(record_key, keys.KEY_SHARDS), keys.id_entry_key(record_key)),
            (keys.KEYS_TABLE, keys.id_partition(record_key, keys.KEY_SHARDS), keys.keys_table_id_key(record_key)),
            (View.ID, keys.id_partition(record_key), record_key),
        )
        for letter, partition, row_key in places:
            found = self._point(day, letter, partition, row_key, record_key)
            if found is not None:
                return found
        return None

    def _point(self, day: str, letter: str, partition: str, row_key: str, record_key: str) -> tuple[str, int] | None:
        table = self.clients.get(keys.table_name(self.prefix, letter, day))
        try:
            entity = table.get_entity(partition, row_key)
        except ResourceNotFoundError:
            return None
        return self._resolve(day, entity, record_key)

    def _resolve(self, day: str, entity: dict[str, Any], record_key: str) -> tuple[str, int] | None:
        """An id entry's (blob, position): format 1 holds it, format 2 points at the time block that does."""
        pointer = pointer_of(entity)
        if not isinstance(pointer, BlockRef):
            return pointer  # format 1: (blob, position)
        where = pointer.partition + "/" + pointer.row_key
        table = self.clients.get(keys.table_name(self.prefix, View.TIME, day))
        try:
            block = table.get_entity(pointer.partition, pointer.row_key)
        except ResourceNotFoundError:
            log.warning("index.dangling %s: id entry of %s points at a missing time block %s", day, record_key, where,
                        extra={"day": day, "block": where})
            return None
        for row in rows_of(block, 0):
            if row.key[10:] == record_key and row.blob is not None and row.position is not None:
                return row.blob, row.position
        log.warning("index.dangling %s: time block %s does not hold %s", day, where, record_key,
                    extra={"day": day, "block": where})
        return None

    # ---------------------------------------------------------------- expiry

    def drop_month(self, month: str) -> list[str]:
        """Delete a month's tables (one call per table and day): the cheap way to expire the index."""
        dropped = []
        for letter in keys.TABLE_LETTERS:
            for day in sorted(d for d in self._days(letter, True) if d.startswith(month)):
                name = keys.table_name(self.prefix, letter, day)
                self.clients.delete(name)
                dropped.append(name)
        self._listing.clear()
        return dropped

    def drop_day(self, day: str) -> list[str]:
        """Delete one day's tables (yyyyMMdd): retention's unit of expiry. One delete call per table
        letter and no listing (deleting a missing table is a no-op); the id tables go last, so a
        drop cut short still shows the day to the next run."""
        names = [keys.table_name(self.prefix, letter, day) for letter in keys.TABLE_LETTERS]
        for name in names:
            self.clients.delete(name)
        with self._lock:
            for _, days in self._listing.values():
                days.discard(day)
        return names


# ---------------------------------------------------------------- compaction's reading of a day


def day_locations(clients: TableClients, prefix: str, day: str,
                  since: datetime | None = None) -> Iterator[tuple[str, str, int]]:
    """(record key, archive blob, position) of every record of `day` in the hot index, each once, in
    order-key order; with `since`, only records of time blocks the service wrote at or after it
    (their Timestamp), for late records. A format 1 row (whose place is in its id entity) is
    resolved through that entity."""
    table = clients.get(keys.table_name(prefix, View.TIME, day))
    legacy = clients.get(keys.table_name(prefix, View.ID, day))
    query, params = (None, {}) if since is None else ("Timestamp ge @since", {"since": since.astimezone(UTC)})

    def entities() -> Iterator[dict[str, Any]]:
        for page in pages(table, query, params, 1000, select=["PartitionKey", "RowKey", PAYLOAD]):
            yield from page

    try:
        for row in ordered_rows(entities(), 0):
            record_key = row.key[10:]
            if row.blob is not None and row.position is not None:
                yield record_key, row.blob, row.position
                continue
            try:
                entity = legacy.get_entity(keys.id_partition(record_key), record_key)
            except ResourceNotFoundError:
                # Format 1 wrote the id entity beside the time row; without it the record was never
                # locatable (its blob is not settled and will be indexed again, in format 2).
                log.warning("index.unlocated %s: format 1 record %s has no id entity", day, record_key,
                            extra={"day": day})
                continue
            blob, position = location_from_entity(entity)
            yield record_key, blob, position
    except ResourceNotFoundError:
        return  # the day's tables were dropped (prune-index) since the listing
