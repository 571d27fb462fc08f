"""The cold tier's layout (pure logic): columns, sort orders, blob names, the manifest format.

docs/cold-tier.md explains the choices with measurements. One compacted day is:

    {yyyy}/{MM}/{dd}/manifest.json            the commit point: a day without it is not compacted
    {yyyy}/{MM}/{dd}/g{gen:04d}/records.parquet  every column and the raw JSON, sorted by (user_hash, order_key)
    {yyyy}/{MM}/{dd}/g{gen:04d}/time.parquet     the normalized columns, sorted by order_key (newest first)
    {yyyy}/{MM}/{dd}/g{gen:04d}/ids.parquet      (key_hash, row in records.parquet), sorted by key_hash
    {yyyy}/{MM}/{dd}/g{gen:04d}/delta-{n:04d}.parquet  late records (records schema, sorted by order_key)

A day is rewritten as a new generation (merge), never in place: the manifest names the live files,
and older generations are deleted only after the manifest that replaces them is written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import keys
from ..errors import ColdFormatError
from ..models import AuditEntry

FORMAT = 1  # manifest and file format; a reader refuses any other
MANIFEST = "manifest.json"
RECORDS, TIME, IDS = "records", "time", "ids"

# Row groups: records.parquet rows are ~190 B compressed, so 8,192 rows are ~1.5 MB, one read
# for a user's day; time.parquet rows are ~33 B, so 32,768 rows (~1 MB) per group.
RECORDS_ROW_GROUP = 8_192
TIME_ROW_GROUP = 32_768
IDS_ROW_GROUP = 65_536
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 3  # level 9 saves ~10 % of the raw text for ~6x the CPU (docs/cold-tier.md)

# Column order of records.parquet (and of delta files). `user_hash` leads the sort; `order_key` is
# the hot index's global order key (collector/keys.py order_key), so a cursor is valid in both tiers.
NORMALIZED = ("user", "operation", "object", "result", "clientIp", "userAgent", "workload", "recordType",
              "contentType", "organizationId")
RECORD_COLUMNS = ("user_hash", "order_key", *NORMALIZED, "raw")
# No `id` column: the record id is inside the order key (lower-cased, as the hot index returns it).
TIME_COLUMNS = ("order_key", *NORMALIZED)
ID_COLUMNS = ("key_hash", "row")
USER_HASH_BITS = 47  # leaves 17 bits for the second of the day in the writer's sort route (2**17 > 86,400)


def user_hash(user: str) -> int:
    """The user column's seek key: the top 47 bits of the index's value hash (case-insensitive)."""
    return int(keys.value_hash(user), 16) >> (64 - USER_HASH_BITS)


def key_hash(record_key: str) -> int:
    """63-bit hash of a record key (kid + org suffix, the id view's RowKey): the ids file's seek key."""
    return int(hashlib.sha256(record_key.encode("utf-8")).hexdigest()[:16], 16) >> 1


def record_key(order_key: str) -> str:
    """The id view's RowKey (kid + org suffix) inside an order key."""
    return order_key[10:]


def raw_json(record: Any) -> str:
    """The raw record as /api/audit/{id} returns it (collector/api.py json_bytes): compact JSON,
    UTF-8; text with lone surrogates falls back to \\u escapes."""
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(record, ensure_ascii=True, separators=(",", ":"))
    return text


def day_prefix(day: str) -> str:
    """`yyyy/MM/dd/` of a day given as yyyyMMdd."""
    return f"{day[:4]}/{day[4:6]}/{day[6:]}/"


def manifest_name(day: str) -> str:
    return day_prefix(day) + MANIFEST


def file_name(day: str, generation: int, kind: str) -> str:
    return f"{day_prefix(day)}g{generation:04d}/{kind}.parquet"


def delta_name(day: str, generation: int, number: int) -> str:
    return f"{day_prefix(day)}g{generation:04d}/delta-{number:04d}.parquet"


def generation_of(name: str) -> int | None:
    """The generation of a day file's name (None for the manifest or a foreign name)."""
    parts = name.split("/")
    if len(parts) == 5 and parts[3].startswith("g") and parts[3][1:].isdigit():
        return int(parts[3][1:])
    return None


class Digest:
    """An order-independent fingerprint of a set of record keys: count and sum of key hashes.

    Verification compares it with the hot id view without holding 40 M keys in memory; a missing,
    extra or duplicated key changes it except with probability ~2**-63.
    """

    def __init__(self, count: int = 0, total: int = 0) -> None:
        self.count = count
        self.total = total % (1 << 64)

    def add(self, record_key: str) -> None:
        self.add_hash(key_hash(record_key))

    def add_hash(self, value: int) -> None:
        self.count += 1
        self.total = (self.total + value) % (1 << 64)

    def merge(self, other: Digest) -> Digest:
        return Digest(self.count + other.count, self.total + other.total)

    def text(self) -> str:
        return f"{self.count}:{self.total:016x}"

    @classmethod
    def parse(cls, text: str) -> Digest:
        count, _, total = text.partition(":")
        return cls(int(count), int(total, 16))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Digest) and (self.count, self.total) == (other.count, other.total)

    def __hash__(self) -> int:
        return hash((self.count, self.total))

    def __repr__(self) -> str:
        return f"Digest({self.text()})"


@dataclass(frozen=True)
class FileInfo:
    """One Parquet file of a day and its row groups' seek ranges (so a reader skips the footer
    round trip to choose row groups)."""

    name: str
    rows: int
    bytes: int
    # per row group: [first row, rows, min seek key, max seek key]; the seek key is user_hash
    # (records), order_key (time, deltas) or key_hash (ids)
    groups: tuple[tuple[int, int, Any, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "rows": self.rows, "bytes": self.bytes, "groups": [list(g) for g in self.groups]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FileInfo:
        return cls(str(data["name"]), int(data["rows"]), int(data["bytes"]),
                   tuple((int(g[0]), int(g[1]), g[2], g[3]) for g in data.get("groups", [])))


@dataclass(frozen=True)
class Manifest:
    """The per-day commit point: which files hold the day, how many records, their fingerprint."""

    day: str  # yyyyMMdd
    generation: int
    records: int  # records in the generation's files plus every delta
    digest: str  # Digest.text() of every record key of the day (files + deltas)
    files: dict[str, FileInfo]  # RECORDS, TIME, IDS
    deltas: tuple[FileInfo, ...] = ()
    # operation (case-folded) → row groups of time.parquet that hold it
    operations: dict[str, list[int]] = field(default_factory=dict)
    # hot id-view entities written at or after this instant (server Timestamp) may be late records
    hot_watermark: str = ""
    written_at: str = ""

    def live_files(self) -> list[str]:
        return [info.name for info in self.files.values()] + [d.name for d in self.deltas]

    def to_bytes(self) -> bytes:
        body = {
            "format": FORMAT, "day": self.day, "generation": self.generation, "records": self.records,
            "digest": self.digest, "files": {k: v.to_json() for k, v in self.files.items()},
            "deltas": [d.to_json() for d in self.deltas], "operations": self.operations,
            "hotWatermark": self.hot_watermark, "writtenAt": self.written_at,
        }
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            body = json.loads(data)
            if not isinstance(body, dict) or body.get("format") != FORMAT:
                raise ColdFormatError(f"cold manifest is not in format {FORMAT} (written by another AuditKeep version?)")
            return cls(
                day=str(body["day"]), generation=int(body["generation"]), records=int(body["records"]),
                digest=str(body["digest"]),
                files={str(k): FileInfo.from_json(v) for k, v in body["files"].items()},
                deltas=tuple(FileInfo.from_json(d) for d in body.get("deltas", [])),
                operations={str(k): [int(i) for i in v] for k, v in body.get("operations", {}).items()},
                hot_watermark=str(body.get("hotWatermark", "")), written_at=str(body.get("writtenAt", "")),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ColdFormatError(f"unreadable cold manifest ({exc.__class__.__name__}: {exc})") from exc


def entry_from_row(row: Mapping[str, Any]) -> AuditEntry:
    """The normalized entry of a records/time/delta row (the same fields the hot index returns)."""
    when, record_id, _ = keys.split_order_key(str(row["order_key"]))
    from ..timeutil import format_record_time

    record_type = row["recordType"]
    return AuditEntry(
        id=record_id, time=format_record_time(when), user=str(row["user"]), operation=str(row["operation"]),
        object=str(row["object"]), result=str(row["result"]), clientIp=str(row["clientIp"]),
        userAgent=str(row["userAgent"]), workload=str(row["workload"]),
        recordType=None if record_type is None else int(record_type),
        contentType=str(row["contentType"]), organizationId=str(row["organizationId"]),
    )


def operation_groups(pairs: Iterable[tuple[int, str]]) -> dict[str, list[int]]:
    """(row group, operation) pairs → operation (case-folded) → sorted row groups."""
    out: dict[str, set[int]] = {}
    for group, operation in pairs:
        out.setdefault(operation.casefold(), set()).add(group)
    return {op: sorted(groups) for op, groups in sorted(out.items())}
