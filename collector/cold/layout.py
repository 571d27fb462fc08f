"""The cold tier's layout (pure logic): columns, sort orders, blob names, the manifest format.

docs/cold-tier.md explains the choices with measurements. One compacted day is:

    {yyyy}/{MM}/{dd}/manifest.json            the commit point: a day without it is not compacted
    {yyyy}/{MM}/{dd}/g{gen:04d}/records.parquet  every column and the raw JSON, sorted by (user_hash, order_key)
    {yyyy}/{MM}/{dd}/g{gen:04d}/time.parquet     the normalized columns, sorted by order_key (newest first)
    {yyyy}/{MM}/{dd}/g{gen:04d}/ids.parquet      (key_hash, row in records.parquet), sorted by key_hash
    {yyyy}/{MM}/{dd}/g{gen:04d}/delta-{n:04d}.parquet  late records (records schema, sorted by order_key)

A day too large for one part (PART_RECORDS, compaction.py) is written in **parts**, each its own
records/time/ids trio, committed one at a time so that a recycled worker resumes at the first
uncommitted part:

    {yyyy}/{MM}/{dd}/g{gen:04d}/plan.json                 the parts' expected records and key digests (from the hot id view)
    {yyyy}/{MM}/{dd}/g{gen:04d}/p{n:04d}-plan.parquet     (blob, position) of part n's records
    {yyyy}/{MM}/{dd}/g{gen:04d}/p{n:04d}-{kind}.parquet   part n's files
    {yyyy}/{MM}/{dd}/g{gen:04d}/p{n:04d}.json             part n's checkpoint: written last, once its files are uploaded

The day's manifest (format 2 when it has parts) is still the one commit point: it lists every
part's files; plan and checkpoints are deleted once it is written.

A day is rewritten as a new generation (merge), never in place: the manifest names the live files,
and older generations are deleted only after the manifest that replaces them is written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import keys
from ..errors import ColdFormatError
from ..models import AuditEntry

FORMAT = 1  # manifest and file format of a one-part day
PARTS_FORMAT = 2  # a manifest with several parts: a format-1 reader refuses it rather than serve part 1 only
FORMATS = (FORMAT, PARTS_FORMAT)
MANIFEST = "manifest.json"
PLAN = "plan.json"
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


def part_file_name(day: str, generation: int, part: int, kind: str) -> str:
    """A file of part `part` (1-based) of a day compacted in parts."""
    return f"{day_prefix(day)}g{generation:04d}/p{part:04d}-{kind}.parquet"


def plan_name(day: str, generation: int) -> str:
    return f"{day_prefix(day)}g{generation:04d}/{PLAN}"


def part_plan_name(day: str, generation: int, part: int) -> str:
    """(blob, position) of the records part `part` holds."""
    return part_file_name(day, generation, part, "plan")


def part_checkpoint_name(day: str, generation: int, part: int) -> str:
    return f"{day_prefix(day)}g{generation:04d}/p{part:04d}.json"


def is_plan_file(name: str) -> bool:
    """Whether a day file's name is a plan's (plan.json, a part's plan or checkpoint): what is
    spent once the generation's manifest is written."""
    stem = name.rsplit("/", 1)[-1]
    if stem == PLAN:
        return True
    return stem.startswith("p") and stem[1:5].isdigit() and stem[5:] in (".json", "-plan.parquet")


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

    def minus(self, other: Digest) -> Digest:
        """The digest of this set without `other`, a subset of it (what a merge rewrites)."""
        return Digest(self.count - other.count, self.total - other.total)

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
class Part:
    """One records/time/ids trio of a day: a one-part day's only one, or one part of a large day."""

    files: dict[str, FileInfo]  # RECORDS, TIME, IDS
    # operation (case-folded) → row groups of this part's time file that hold it
    operations: dict[str, list[int]] = field(default_factory=dict)
    records: int = 0
    digest: str = ""  # Digest.text() of the part's record keys

    def to_json(self) -> dict[str, Any]:
        return {"files": {k: v.to_json() for k, v in self.files.items()}, "operations": self.operations,
                "records": self.records, "digest": self.digest}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Part:
        return cls(files={str(k): FileInfo.from_json(v) for k, v in data["files"].items()},
                   operations={str(k): [int(i) for i in v] for k, v in data.get("operations", {}).items()},
                   records=int(data.get("records", 0)), digest=str(data.get("digest", "")))


@dataclass(frozen=True)
class Manifest:
    """The per-day commit point: which files hold the day, how many records, their fingerprint."""

    day: str  # yyyyMMdd
    generation: int
    records: int  # records in the generation's files plus every delta
    digest: str  # Digest.text() of every record key of the day (files + deltas)
    files: dict[str, FileInfo]  # RECORDS, TIME, IDS of the first part (the only one of most days)
    deltas: tuple[FileInfo, ...] = ()
    # operation (case-folded) → row groups of time.parquet that hold it
    operations: dict[str, list[int]] = field(default_factory=dict)
    # hot id-view entities written at or after this instant (server Timestamp) may be late records
    hot_watermark: str = ""
    written_at: str = ""
    # every part of a day compacted in parts (`files` and `operations` are then the first one's);
    # empty for a one-part day
    parts: tuple[Part, ...] = ()

    @property
    def segments(self) -> tuple[Part, ...]:
        """Every part of the day (a one-part day's `files` as its one part)."""
        return self.parts or (Part(self.files, self.operations, self.records - sum(d.rows for d in self.deltas)),)

    def live_files(self) -> list[str]:
        return [info.name for part in self.segments for info in part.files.values()] + [d.name for d in self.deltas]

    def to_bytes(self) -> bytes:
        body: dict[str, Any] = {
            "format": FORMAT, "day": self.day, "generation": self.generation, "records": self.records,
            "digest": self.digest, "files": {k: v.to_json() for k, v in self.files.items()},
            "deltas": [d.to_json() for d in self.deltas], "operations": self.operations,
            "hotWatermark": self.hot_watermark, "writtenAt": self.written_at,
        }
        if self.parts:  # a one-part day's manifest stays byte for byte what format 1 was
            del body["files"], body["operations"]  # the first part's, not written twice
            body["format"] = PARTS_FORMAT
            body["parts"] = [p.to_json() for p in self.parts]
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            body = json.loads(data)
            if not isinstance(body, dict) or body.get("format") not in FORMATS:
                raise ColdFormatError(f"cold manifest is not in format {' or '.join(map(str, FORMATS))} "
                                      "(written by another AuditKeep version?)")
            parts = tuple(Part.from_json(p) for p in body.get("parts", []))
            if body["format"] == PARTS_FORMAT and not parts:
                raise ValueError("a format-2 manifest lists no parts")
            first = parts[0] if parts else Part(
                {str(k): FileInfo.from_json(v) for k, v in body["files"].items()},
                {str(k): [int(i) for i in v] for k, v in body.get("operations", {}).items()})
            return cls(
                day=str(body["day"]), generation=int(body["generation"]), records=int(body["records"]),
                digest=str(body["digest"]), files=first.files, operations=first.operations,
                deltas=tuple(FileInfo.from_json(d) for d in body.get("deltas", [])),
                hot_watermark=str(body.get("hotWatermark", "")), written_at=str(body.get("writtenAt", "")),
                parts=parts,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ColdFormatError(f"unreadable cold manifest ({exc.__class__.__name__}: {exc})") from exc


@dataclass(frozen=True)
class PlannedPart:
    """One part of a plan: how many records of the hot id view it holds and their key digest."""

    number: int  # 1-based
    records: int
    digest: str
    blobs: int  # archive blobs it reads


@dataclass(frozen=True)
class Plan:
    """How a large day is cut into parts, fixed by its one scan of the hot id view (plan.json)."""

    day: str
    generation: int
    records: int
    digest: str  # of every record key the id view held at the scan
    parts: tuple[PlannedPart, ...]
    hot_watermark: str  # the scan's watermark: becomes the manifest's
    written_at: str = ""

    def to_bytes(self) -> bytes:
        body = {"format": FORMAT, "day": self.day, "generation": self.generation, "records": self.records,
                "digest": self.digest, "hotWatermark": self.hot_watermark, "writtenAt": self.written_at,
                "parts": [[p.number, p.records, p.digest, p.blobs] for p in self.parts]}
        return json.dumps(body, separators=(",", ":"), sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Plan:
        try:
            body = json.loads(data)
            if not isinstance(body, dict) or body.get("format") != FORMAT:
                raise ColdFormatError(f"cold compaction plan is not in format {FORMAT}")
            return cls(day=str(body["day"]), generation=int(body["generation"]), records=int(body["records"]),
                       digest=str(body["digest"]), hot_watermark=str(body["hotWatermark"]),
                       written_at=str(body.get("writtenAt", "")),
                       parts=tuple(PlannedPart(int(p[0]), int(p[1]), str(p[2]), int(p[3])) for p in body["parts"]))
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise ColdFormatError(f"unreadable cold compaction plan ({exc.__class__.__name__}: {exc})") from exc


def cut_parts(counts: Sequence[int], budget: int) -> list[tuple[int, int]]:
    """[start, end) index ranges over per-blob record counts (in the plan's blob order): as few
    parts as blob boundaries allow, of about equal size (no small last part), each holding at
    most `budget` records unless one blob alone holds more."""
    if not counts:
        return []
    total = sum(counts)
    parts = -(-total // budget)
    while True:  # blob boundaries may need one part more than total / budget
        ranges = _cut(counts, -(-total // parts), budget)
        if len(ranges) <= parts:
            return ranges
        parts = len(ranges)  # at most len(counts): then every range is one blob, and it returns


def _cut(counts: Sequence[int], target: int, budget: int) -> list[tuple[int, int]]:
    """Greedy: a part ends once it holds `target` records, or before a blob that would pass `budget`."""
    ranges: list[tuple[int, int]] = []
    start = held = 0
    for index, count in enumerate(counts):
        if index > start and (held >= target or held + count > budget):
            ranges.append((start, index))
            start, held = index, 0
        held += count
    ranges.append((start, len(counts)))
    return ranges


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
